"""A month's store alignment scores, published once the month is over, for the apps that act on
them (incentives: reward rules "store alignment score at or above a score for the month").

``month_close`` emits ``AlignmentMonthScored`` for the organization's previous local month once
``GRACE_DAYS`` have passed (late data and the nightly refresh land first), at most once per month:
the outbox row itself, keyed by the month (aggregate ``AlignmentMonth``), is the record that it
was published, checked under the same advisory lock as score recomputes. The payload carries
every location's overall monthly score with its n and whether it is rankable; consumers decide
what to do with scores too thin to rank (incentives pays only rankable ones).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from alignment import score_periods as periods
from alignment.models import AlignmentScore, Link, PeriodKind, ScopeKind
from alignment.scores import lock
from cem.events import emit
from cem.models import OutboxEvent
from cem.services import _check_tenant

EVENT = "AlignmentMonthScored"
GRACE_DAYS = 1


@dataclass(frozen=True)
class AlignmentMonth:
    """The outbox aggregate of a month's publication: its id is the month's first day."""

    pk: str


def _month_to_close(tz, now: dt.datetime) -> dt.date | None:
    today = now.astimezone(tz).date()
    month = periods.shift(PeriodKind.MONTH, periods.start_of(PeriodKind.MONTH, today), -1)
    if today < periods.end_of(PeriodKind.MONTH, month) + dt.timedelta(days=GRACE_DAYS):
        return None
    return month


@transaction.atomic
def month_close(org, *, now: dt.datetime | None = None, month: dt.date | None = None) -> OutboxEvent | None:
    """Publish the previous month's (or ``month``'s) store scores, unless already published."""
    from cem.models import Organization
    from feedback.selectors import org_tz

    org_id = _check_tenant(org)
    tz = org_tz(Organization.objects.get(pk=org_id))
    month = periods.start_of(PeriodKind.MONTH, month) if month else _month_to_close(tz, now or timezone.now())
    if month is None:
        return None
    lock(org_id)
    key = AlignmentMonth(month.isoformat())
    already = OutboxEvent.objects.filter(
        event_type=EVENT, aggregate_type=type(key).__name__, aggregate_id=key.pk
    ).exists()
    if already:
        return None
    rows = (
        AlignmentScore.objects.filter(
            scope=ScopeKind.LOCATION, period=PeriodKind.MONTH, period_start=month, link=Link.OVERALL
        )
        .order_by("scope_id")
        .values("pk", "scope_id", "region_id", "value", "n", "inputs__rankable")
    )
    last_day = periods.end_of(PeriodKind.MONTH, month) - dt.timedelta(days=1)
    return emit(
        organization=org_id,
        event_type=EVENT,
        payload={
            "period": PeriodKind.MONTH.value,
            "period_start": month.isoformat(),
            "period_end": last_day.isoformat(),
            "scores": [
                {
                    "score_id": r["pk"],
                    "location_id": r["scope_id"],
                    "region_id": r["region_id"],
                    "value": None if r["value"] is None else str(r["value"]),
                    "n": r["n"],
                    "rankable": bool(r["inputs__rankable"]),
                }
                for r in rows
            ],
        },
        aggregate=key,
    )
