"""Org A rows behind the audit-form routes (forms, programs, scenarios, audits, disputes).

Also the shared builders of tests/audits: a form with two sections on two standards, and an
audit of it with answers.
"""

from __future__ import annotations

from audits import audit_services, form_services
from audits.models import Audit, AuditAnswer, FormItem, Program, Scenario, ScenarioLeg
from cem.models import Membership
from cem.principals import Actor
from cem.tenancy import tenant_context

SYSTEM = Actor.system()


def structure(std_a: int, std_b: int) -> tuple[list[dict], list[dict]]:
    """Two sections; weights 2/1/1/1 on std_a, one critical item and a choice on std_b."""
    sections = [
        {"key": "greeting", "title": {"en": "Greeting"}, "channel_kind": "in_store"},
        {"key": "checkout", "title": {"en": "Checkout"}},
    ]
    items = [
        {"key": "greeted", "section": "greeting", "type": "yes_no_na", "weight": "2", "standard": std_a,
         "text": {"en": "Greeted within 30 s?"}},
        {"key": "smile", "section": "greeting", "type": "scale", "weight": "1", "standard": std_a,
         "scale_min": 1, "scale_max": 5, "pass_fraction": "0.5", "text": {"en": "Smile"}},
        {"key": "wait", "section": "greeting", "type": "time", "weight": "1", "standard": std_a,
         "target_max": "60", "plausible_max": "3600", "text": {"en": "Wait (s)"}},
        {"key": "id_check", "section": "checkout", "type": "yes_no", "weight": "1", "standard": std_b,
         "critical": True, "text": {"en": "Asked for ID?"}},
        {"key": "upsell", "section": "checkout", "type": "choice", "weight": "1", "standard": std_b,
         "choices": [{"value": "asked", "label": {"en": "Asked"}, "points": "1"},
                     {"value": "hinted", "label": {"en": "Hinted"}, "points": "0.5"},
                     {"value": "none", "label": {"en": "None"}, "points": "0"}],
         "pass_fraction": "0.5", "text": {"en": "Upsell"}},
        {"key": "notes", "section": "checkout", "type": "text", "text": {"en": "Notes"}},
    ]  # fmt: skip
    return sections, items


def make_form(org, std_a, std_b, *, name="acme visit form", **data):
    with tenant_context(org):
        form = form_services.form_create(
            organization=org, actor=SYSTEM, data={"name": name, "kind": "mystery_shop", **data}
        )
        sections, items = structure(std_a.pk, std_b.pk)
        version, _ = form_services.form_structure_save(
            organization=org, actor=SYSTEM, form=form, sections=sections, items=items
        )
    return form, version


def make_audit(org, version, answers: dict[str, str], *, location=None, employee=None, **fields) -> Audit:
    with tenant_context(org):
        audit = Audit.objects.create(
            organization=org,
            version=version,
            location=location,
            employee=employee,
            status="submitted",
            **fields,
        )
        by_key = {i.key: i for i in FormItem.objects.filter(version=version)}
        AuditAnswer.objects.bulk_create(
            [AuditAnswer(organization=org, audit=audit, item=by_key[k], value=v) for k, v in answers.items()]
        )
    return audit


GOOD = {
    "greeted": "yes",
    "smile": "5",
    "wait": "30",
    "id_check": "yes",
    "upsell": "asked",
    "notes": "acme ok",
}


def populate(world) -> None:
    from tests import factories as f

    org = world.a.org
    std_b = f.StandardFactory(organization=org, code="acme-std-b", title="acme checkout")
    form, version = make_form(org, world.a.standard, std_b, name="acme sweep form")
    with tenant_context(org):
        program = Program.objects.create(
            organization=org, name="acme sweep program", kind="mystery_shop", form=form
        )
        scenario = Scenario.objects.create(
            organization=org, program=program, title="acme sweep scenario", instructions="acme: buy a coffee"
        )
        ScenarioLeg.objects.create(
            organization=org, scenario=scenario, channel_kind="phone", section_key="greeting"
        )
    audit = make_audit(
        org,
        version,
        {**GOOD, "smile": "2"},
        location=world.a.locations["a-n1"],
        employee=world.a.employees["a-n1"],
    )
    with tenant_context(org):
        audit_services.audit_publish(organization=org, actor=SYSTEM, audit=audit)
        membership = Membership.objects.get(user=world.users["manager"])
        audit_services.dispute_open(
            organization=org,
            actor=Actor(user_id=world.users["manager"].pk),
            audit=audit,
            item_key="smile",
            reason="acme: the shopper arrived at closing time",
            proposed_value="4",
            membership=membership,
        )
