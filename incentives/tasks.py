"""Celery tasks of the incentives app: thin, named, taking the tenant's id first (cem.tasking)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from cem.tasking import TenantTask
from cem.tenancy import unscoped
from incentives import ledger

__all__ = ["points_expire", "points_expire_dispatch"]


@shared_task(name="incentives.points_expire", base=TenantTask)
def points_expire(tenant_id: int) -> int:
    # expire_due re-reads the due lots under the wallet's lock, so a redelivery expires nothing twice.
    return len(ledger.expire_due(org=tenant_id, now=timezone.now()))


@shared_task(name="incentives.points_expire_dispatch")
def points_expire_dispatch() -> int:
    """Beat: one expiry task per organization with lots past their date."""
    with unscoped():
        tenants = ledger.tenants_with_due_lots(timezone.now())
    for tenant_id in tenants:
        points_expire.delay(tenant_id)
    return len(tenants)
