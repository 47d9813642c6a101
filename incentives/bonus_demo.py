"""Demo bonus periods for ``seed_demo``: last quarter closed and approved (payouts calculated from
the demo feedback, audits, monitoring, training and cases), and this quarter open with its live
preview (and points per score point, paid at approval from a "Bonus points" budget the admin
funds). Every manager takes part.

The closed period awards no points: the demo writes no ledger rows here (the ledger is
append-only, and ``seed_demo --reset`` deletes tenant rows)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from cem.models import Membership, Role
from cem.principals import Actor
from feedback.selectors import org_tz
from incentives import bonus
from incentives.models import BonusKpi, BonusParticipant

K = BonusKpi.Kpi

# (kpi, weight, floor, target, min_sample)
DEMO_SCORECARD = [
    (K.NPS, 25, 0, 60, 30),
    (K.CSAT, 20, 60, 90, 30),
    (K.AUDIT_SCORE, 20, 70, 95, 3),
    (K.MONITORING_SCORE, 10, 70, 95, 5),
    (K.TRAINING_ON_TIME, 15, 60, 100, 10),
    (K.CASES_IN_SLA, 10, 50, 100, 5),
    (K.ALIGNMENT, 10, 0, 80, 1),  # the store's overall alignment score over the period
    (K.SALES_VS_TARGET, 10, 80, 110, 1),  # from the imported business metrics ("no data yet" without)
]
STORE_TARGET = Decimal("5000.00")
REGIONAL_TARGET = Decimal("12000.00")


def _quarter_start(day: dt.date) -> dt.date:
    return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def _define(org, actor: Actor, *, name: str, starts: dt.date, ends: dt.date, points: int):
    period = bonus.period_create(
        organization=org,
        actor=actor,
        data={
            "name": name,
            "starts_on": starts,
            "ends_on": ends,
            "payout_threshold": Decimal(50),
            "payout_cap_percent": Decimal(120),
            "points_per_score_point": points,
        },
    )
    for kpi, weight, floor, target, min_sample in DEMO_SCORECARD:
        bonus.kpi_create(
            organization=org,
            actor=actor,
            data={
                "period": period,
                "kpi": kpi,
                "weight": Decimal(weight),
                "floor": Decimal(floor),
                "target": Decimal(target),
                "min_sample": min_sample,
            },
        )
    bonus.participants_add_managers(organization=org, actor=actor, period=period, target_bonus=STORE_TARGET)
    regional_users = Membership.objects.filter(role=Role.REGIONAL_MANAGER).values_list("user_id", flat=True)
    BonusParticipant.objects.filter(period=period, user_id__in=list(regional_users)).update(
        target_bonus=REGIONAL_TARGET
    )
    return period


def seed_bonus(org, *, actor: Actor, now: dt.datetime, step=None) -> dict:
    """Call inside ``tenant_context(org)`` after the feedback, audits and learning demo data."""
    today = now.astimezone(org_tz(org)).date()
    this_start = _quarter_start(today)
    last_end = this_start - dt.timedelta(days=1)
    last_start = _quarter_start(last_end)
    this_end = (
        dt.date(this_start.year + 1, 1, 1)
        if this_start.month == 10
        else dt.date(this_start.year, this_start.month + 3, 1)
    ) - dt.timedelta(days=1)

    admin = Membership.objects.filter(role=Role.ORG_ADMIN, is_active=True).order_by("pk").first()
    approver = Actor(user_id=admin.user_id) if admin is not None else actor

    closed = _define(
        org,
        actor,
        name=f"{last_start.year} Q{(last_start.month - 1) // 3 + 1}",
        starts=last_start,
        ends=last_end,
        points=0,
    )
    _define(
        org,
        actor,
        name=f"{this_start.year} Q{(this_start.month - 1) // 3 + 1}",
        starts=this_start,
        ends=this_end,
        points=10,
    )
    bonus.period_close(organization=org, actor=actor, period=closed, now=now)
    approved = admin is not None
    if approved:
        bonus.period_approve(organization=org, actor=approver, period=closed, now=now)
    participants = BonusParticipant.objects.filter(period=closed).count()
    return {"bonus periods": 2, "bonus participants": participants, "bonus approved": int(approved)}
