"""Celery tasks of the alignment scores (alignment/scores.py): thin, named, tenant id first.

- ``alignment.scores_recompute(tenant_id, since=None)``: every scope and period with data (from
  the periods holding ``since``, an ISO date); run by the demo seed, after a rollup rebuild and
  when the alignment settings change.
- ``alignment.scores_refresh_dispatch``: beat, nightly — recent periods of every organization
  again, so changes that raise no rollup event (a new standard, lesson or reward rule, the
  hourly lesson-effect snapshots) reach the scores of the current periods.
- ``alignment.scores_drain(tenant_id)``: the scores of the keys rollup changes queued
  (alignment/score_queue.py), scheduled by the doorbell a short debounce after the change commits;
  ``alignment.scores_drain_sweep`` (beat, every minute) drains organizations whose keys waited
  longer (a doorbell rung while the broker was down, a drain lost with its worker).
- ``alignment.month_close(tenant_id)`` / ``alignment.month_close_dispatch`` (beat, daily, after the
  refresh): publish last month's store scores once (alignment/score_months.py).
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from alignment import score_months, score_queue, scores
from alignment.models import PendingScore
from cem.models import Organization
from cem.tasking import TenantTask
from cem.tenancy import unscoped

__all__ = [
    "month_close",
    "month_close_dispatch",
    "scores_drain",
    "scores_drain_sweep",
    "scores_recompute",
    "scores_refresh_dispatch",
]

REFRESH_DAYS = 35
SWEEP_AFTER_SECONDS = 30


@shared_task(name="alignment.scores_recompute", base=TenantTask)
def scores_recompute(tenant_id: int, since: str | None = None) -> int:
    return scores.recompute_all(tenant_id, since=dt.date.fromisoformat(since) if since else None)


@shared_task(name="alignment.scores_refresh_dispatch")
def scores_refresh_dispatch() -> int:
    since = (timezone.now() - dt.timedelta(days=REFRESH_DAYS)).date().isoformat()
    with unscoped():
        tenants = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for tenant_id in tenants:
        scores_recompute.delay(tenant_id, since)
    return len(tenants)


@shared_task(name="alignment.scores_drain", base=TenantTask)
def scores_drain(tenant_id: int) -> int:
    from django.core.cache import cache

    # Cleared before the keys are taken: a change committed from here on rings again.
    cache.delete(score_queue.DOORBELL.format(tenant_id))
    return score_queue.drain(tenant_id)


@shared_task(name="alignment.scores_drain_sweep")
def scores_drain_sweep() -> int:
    cutoff = timezone.now() - dt.timedelta(seconds=SWEEP_AFTER_SECONDS)
    with unscoped():
        tenants = sorted(
            set(PendingScore.objects.filter(created_at__lt=cutoff).values_list("organization_id", flat=True))
        )
    for tenant_id in tenants:
        scores_drain.delay(tenant_id)
    return len(tenants)


@shared_task(name="alignment.month_close", base=TenantTask)
def month_close(tenant_id: int) -> bool:
    return score_months.month_close(tenant_id) is not None


@shared_task(name="alignment.month_close_dispatch")
def month_close_dispatch() -> int:
    with unscoped():
        tenants = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for tenant_id in tenants:
        month_close.delay(tenant_id)
    return len(tenants)
