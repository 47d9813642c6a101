"""Builders for bonus-period tests and the cross-tenant sweep: periods with KPIs and participants,
and the KPI inputs of a store (survey answers, audits, evaluations, learning assignments, cases)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from audits import models as am
from cem import models as m
from cem.tenancy import tenant_context
from feedback import models as fm
from incentives.models import BonusKpi, BonusParticipant, BonusPeriod
from learning import models as lm
from tests.learning.factories import AssignmentFactory


def make_period(org, *, name, starts_on, ends_on, kpis=(), **fields) -> BonusPeriod:
    """kpis: (kpi, weight, floor, target, min_sample) tuples."""
    with tenant_context(org):
        period = BonusPeriod.objects.create(
            organization=org, name=name, starts_on=starts_on, ends_on=ends_on, **fields
        )
        for kpi, weight, floor, target, min_sample in kpis:
            BonusKpi.objects.create(
                organization=org,
                period=period,
                kpi=kpi,
                weight=Decimal(weight),
                floor=Decimal(floor),
                target=Decimal(target),
                min_sample=min_sample,
            )
    return period


def add_participant(org, period, user, *, target_bonus="1000.00", currency="EUR") -> BonusParticipant:
    with tenant_context(org):
        membership = m.Membership.objects.get(user=user)
        return BonusParticipant.objects.create(
            organization=org,
            period=period,
            user=user,
            employee=membership.employee,
            location=membership.location if membership.role == m.Role.STORE_MANAGER else None,
            region=membership.region if membership.role == m.Role.REGIONAL_MANAGER else None,
            target_bonus=Decimal(target_bonus),
            currency=currency,
        )


def _survey(org):
    with tenant_context(org):
        survey = fm.Survey.objects.filter(name="bonus survey").first()
        if survey is None:
            survey = fm.Survey.objects.create(
                organization=org, name="bonus survey", status=fm.Survey.Status.ACTIVE, default_locale="en"
            )
            version = fm.SurveyVersion.objects.create(organization=org, survey=survey, number=1)
            for position, qtype in enumerate(("nps", "csat")):
                fm.Question.objects.create(
                    organization=org,
                    version=version,
                    key=qtype,
                    position=position,
                    type=qtype,
                    required=False,
                    text={"en": qtype},
                )
        return survey


def answers(tenant, store: str, qtype: str, values, *, when: dt.datetime, employee=None) -> list[fm.Response]:
    """One response per value with a single ``qtype`` answer at ``store`` (by ``employee``, else
    the store's employee)."""
    org = tenant.org
    survey = _survey(org)
    with tenant_context(org):
        version = survey.versions.get()
        question = fm.Question.objects.get(version=version, key=qtype)
        location = tenant.locations[store]
        responses = fm.Response.objects.bulk_create(
            [
                fm.Response(
                    organization=org,
                    survey=survey,
                    version=version,
                    source="api",
                    submitted_at=when,
                    location=location,
                    employee=employee or tenant.employees[store],
                    channel=tenant.channel,
                    touchpoint=tenant.touchpoint,
                )
                for _ in values
            ]
        )
        fm.Answer.objects.bulk_create(
            [
                fm.Answer(
                    organization=org,
                    response=r,
                    question=question,
                    question_key=question.key,
                    question_type=qtype,
                    number=v,
                    survey=survey,
                    submitted_at=when,
                    location=location,
                    employee=r.employee,
                    channel=r.channel,
                    touchpoint=r.touchpoint,
                )
                for r, v in zip(responses, values, strict=True)
            ]
        )
    return responses


def _version(org):
    with tenant_context(org):
        form = am.AuditForm.objects.filter(name="bonus form").first()
        if form is None:
            form = am.AuditForm.objects.create(organization=org, name="bonus form", kind="mystery_shop")
            am.AuditFormVersion.objects.create(organization=org, form=form, number=1)
        return form.versions.get()


def audits(tenant, store: str, scores, *, when: dt.datetime, evaluation: bool = False, employee=None) -> None:
    org = tenant.org
    version = _version(org)
    with tenant_context(org):
        for score in scores:
            am.Audit.objects.create(
                organization=org,
                version=version,
                location=tenant.locations[store],
                employee=employee or tenant.employees[store],
                interaction=tenant.interactions[store] if evaluation else None,
                status=am.Audit.Status.PUBLISHED,
                score=Decimal(score),
                raw_score=Decimal(score),
                published_at=when,
            )


def training(
    tenant, store: str, *, due: dt.datetime, on_time=0, late=0, overdue=0, withdrawn=0, employee=None
) -> None:
    """Assignments of the store's employee (or ``employee``) due at ``due``: completed on time /
    late, left open past the due date, withdrawn."""
    org = tenant.org
    employee = employee or tenant.employees[store]
    A = lm.Assignment.Status
    with tenant_context(org):
        for _ in range(on_time):
            AssignmentFactory(
                organization=org,
                employee=employee,
                assigned_at=due - dt.timedelta(days=7),
                due_at=due,
                status=A.COMPLETED,
                completed_at=due - dt.timedelta(days=1),
            )
        for _ in range(late):
            AssignmentFactory(
                organization=org,
                employee=employee,
                assigned_at=due - dt.timedelta(days=7),
                due_at=due,
                status=A.COMPLETED,
                completed_at=due + dt.timedelta(days=1),
            )
        for _ in range(overdue):
            AssignmentFactory(
                organization=org, employee=employee, assigned_at=due - dt.timedelta(days=7), due_at=due
            )
        for _ in range(withdrawn):
            AssignmentFactory(
                organization=org,
                employee=employee,
                assigned_at=due - dt.timedelta(days=7),
                due_at=due,
                status=A.WITHDRAWN,
                withdrawn_at=due,
            )


def cases(tenant, store: str, *, due: dt.datetime, in_sla=0, late=0, employee=None) -> None:
    org = tenant.org
    responses = answers(
        tenant, store, "nps", [0] * (in_sla + late), when=due - dt.timedelta(days=2), employee=employee
    )
    with tenant_context(org):
        for i, response in enumerate(responses):
            fm.Case.objects.create(
                organization=org,
                response=response,
                title=f"case {i}",
                location=tenant.locations[store],
                employee=response.employee,
                status=fm.Case.Status.RESOLVED,
                sla_due_at=due,
                resolved_at=due - dt.timedelta(hours=1) if i < in_sla else due + dt.timedelta(hours=1),
            )


def past_window(days_ago_end: int = 10, length: int = 90) -> tuple[dt.date, dt.date, dt.datetime]:
    """A period that ended ``days_ago_end`` days ago, and a moment in its middle (UTC noon)."""
    today = timezone.now().date()
    ends = today - dt.timedelta(days=days_ago_end)
    starts = ends - dt.timedelta(days=length - 1)
    mid = dt.datetime.combine(starts + dt.timedelta(days=length // 2), dt.time(12), tzinfo=dt.UTC)
    return starts, ends, mid


def sweep_rows(world) -> None:
    """For the cross-tenant sweep: a closed period in org A with a KPI, a participant and a result."""
    from incentives.models import BonusResult

    starts, ends, mid = past_window()
    period = make_period(
        world.a.org,
        name="acme sweep bonus",
        starts_on=starts,
        ends_on=ends,
        kpis=[(BonusKpi.Kpi.NPS, 1, 0, 50, 1)],
    )
    participant = add_participant(world.a.org, period, world.users["manager"])
    with tenant_context(world.a.org):
        BonusResult.objects.create(
            organization=world.a.org,
            participant=participant,
            kpi_scores=[],
            score=None,
            payout_percent=Decimal(0),
            payout_amount=Decimal(0),
            computed_at=mid,
        )
        BonusPeriod.objects.filter(pk=period.pk).update(status=BonusPeriod.Status.CLOSED, closed_at=mid)
