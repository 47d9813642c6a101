"""Celery tasks of the driver analysis (alignment/drivers.py): nightly from beat for every
organization with survey answers or business metrics, and on demand from the page or the API."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from alignment import drivers
from alignment.models import BusinessMetric
from cem.models import Organization
from cem.tasking import TenantTask
from cem.tenancy import unscoped
from feedback.models import Answer

__all__ = ["drivers_compute_task", "drivers_dispatch"]


@shared_task(name="alignment.drivers_compute", base=TenantTask)
def drivers_compute_task(
    tenant_id: int, period_start: str | None = None, period_end: str | None = None
) -> int:
    start = dt.date.fromisoformat(period_start) if period_start else None
    end = dt.date.fromisoformat(period_end) if period_end else None
    return drivers.drivers_compute(organization=tenant_id, period_start=start, period_end=end)


def tenants_with_data(since: dt.datetime) -> list[int]:
    """Organizations with NPS answers since ``since`` or any business metric (inside unscoped())."""
    out = []
    for org_id in Organization.objects.order_by("pk").values_list("pk", flat=True):
        if (
            Answer.objects.filter(
                organization_id=org_id, question_type="nps", submitted_at__gte=since
            ).exists()
            or BusinessMetric.objects.filter(organization_id=org_id).exists()
        ):
            out.append(org_id)
    return out


@shared_task(name="alignment.drivers_dispatch")
def drivers_dispatch() -> int:
    """Beat (nightly): one recompute per organization with data in the default window."""
    since = timezone.now() - dt.timedelta(days=drivers.WINDOW_DAYS)
    with unscoped():
        tenants = tenants_with_data(since)
    for tenant_id in tenants:
        drivers_compute_task.delay(tenant_id)
    return len(tenants)
