"""Celery tasks of the alignment scores (alignment/scores.py): thin, named, tenant id first.

- ``alignment.scores_recompute(tenant_id, since=None)``: every scope and period with data (from
  the periods holding ``since``, an ISO date); run by the demo seed, after a rollup rebuild and
  when the alignment settings change.
- ``alignment.scores_refresh_dispatch``: beat, nightly — recent periods of every organization
  again, so changes that raise no rollup event (a new standard, lesson or reward rule, the
  hourly lesson-effect snapshots) reach the scores of the current periods.
"""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from alignment import scores
from cem.models import Organization
from cem.tasking import TenantTask
from cem.tenancy import unscoped

__all__ = ["scores_recompute", "scores_refresh_dispatch"]

REFRESH_DAYS = 35


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
