"""Org A rows for the sweep behind the monitoring routes, and the builders the monitoring tests share.

A monitoring programme with its form (items linked to org A's standard), a drawn sample with its
items, a published evaluation and a closed calibration session.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from audits import monitoring
from audits.models import AuditForm, AuditFormVersion, FormItem, FormSection, Program, ProgramKind
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f

# Scored items of the monitoring form: key -> (type, weight, critical)
ITEMS = {
    "greet": ("yes_no", 1, False),
    "verify": ("yes_no", 1, False),
    "resolve": ("yes_no", 2, True),
    "tone": ("scale", 1, False),
}
GOOD = {
    "greet": {"value": "yes"},
    "verify": {"value": "yes"},
    "resolve": {"value": "yes"},
    "tone": {"value": "5"},
}


def make_program(world, *, name="acme call monitoring", per_agent=2, critical_share="0.5") -> Program:
    org = world.a.org
    with tenant_context(org):
        form = AuditForm.objects.create(organization=org, name=f"{name} form", kind=ProgramKind.MONITORING)
        version = AuditFormVersion.objects.create(organization=org, form=form, number=1)
        section = FormSection.objects.create(
            organization=org, version=version, key="call", title={"en": "Call"}
        )
        for position, (key, (kind, weight, critical)) in enumerate(ITEMS.items()):
            FormItem.objects.create(
                organization=org,
                version=version,
                section=section,
                key=key,
                position=position,
                text={"en": key},
                type=kind,
                weight=weight,
                critical=critical,
                standard=world.a.standard if key == "greet" else None,
                comment_required_on_fail=False,
            )
        return Program.objects.create(
            organization=org,
            name=name,
            kind=ProgramKind.MONITORING,
            form=form,
            sample_per_agent=per_agent,
            sample_critical_share=critical_share,
        )


def phone_channel(world) -> m.Channel:
    org = world.a.org
    with tenant_context(org):
        channel = m.Channel.objects.filter(code="acme-phone").first()
    return channel or f.ChannelFactory(organization=org, code="acme-phone", name="acme phone", kind="phone")


def make_calls(world, *, agent_key="a-n1", count=4, critical=0, start=None, prefix="acme-call"):
    """``count`` phone interactions of one agent, the first ``critical`` of them Critical."""
    start = start or timezone.now() - dt.timedelta(days=3)
    channel = phone_channel(world)
    calls = []
    for n in range(count):
        calls.append(
            f.InteractionFactory(
                organization=world.a.org,
                external_id=f"{prefix}-{agent_key}-{n}",
                location=world.a.locations[agent_key],
                channel=channel,
                category=m.InteractionCategory.CRITICAL
                if n < critical
                else m.InteractionCategory.STABILIZING,
                employees=[world.a.employees[agent_key]],
                occurred_at=start + dt.timedelta(minutes=n),
                attributes={"duration": 300 + n, "transcript": "acme: hello"},
            )
        )
    return calls


def populate(world) -> None:
    org = world.a.org
    program = make_program(world, name="acme sweep monitoring")
    calls = make_calls(world, count=3, prefix="acme-sweep-call")
    evaluator = Actor(user_id=world.users["evaluator"].pk)
    with tenant_context(org):
        drawn, _ = monitoring.sample_draw(
            organization=org,
            actor=Actor.system(),
            program=program,
            period_start=calls[0].occurred_at - dt.timedelta(hours=1),
            period_end=calls[-1].occurred_at + dt.timedelta(hours=1),
        )
        item = drawn.items.order_by("pk").first()
        monitoring.evaluation_save(organization=org, actor=evaluator, sample_item=item, answers=GOOD)
        monitoring.evaluation_submit(organization=org, actor=evaluator, sample_item=item)
        spare = [c for c in calls if not drawn.items.filter(interaction_id=c.pk).exists()]
        session = monitoring.calibration_create(
            organization=org, actor=evaluator, program=program, interaction=spare[0] if spare else calls[0]
        )
        monitoring.calibration_evaluate(organization=org, actor=evaluator, session=session, answers=GOOD)
        monitoring.calibration_close(organization=org, actor=evaluator, session=session, answers=GOOD)
