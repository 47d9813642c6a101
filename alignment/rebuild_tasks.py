"""Celery tasks of the nightly rollup check (alignment/rebuild.py): one per organization, from a
beat dispatcher, and on demand (``manage.py alignment_rebuild``)."""

from __future__ import annotations

from celery import shared_task

from alignment import rebuild
from cem.models import Organization
from cem.tasking import TenantTask
from cem.tenancy import unscoped

__all__ = ["rollups_verify", "rollups_verify_dispatch"]


@shared_task(name="alignment.rollups_verify", base=TenantTask)
def rollups_verify(tenant_id: int, repair: bool = True) -> dict:
    """Rebuild the organization's rollup into scratch, compare, repair what differs (a RollupCheck)."""
    check = rebuild.verify(tenant_id, repair=repair)
    return {
        "check_id": check.pk,
        "rows_compared": check.rows_compared,
        "differences": check.differences,
        "repaired": check.repaired,
    }


@shared_task(name="alignment.rollups_verify_dispatch")
def rollups_verify_dispatch() -> int:
    """Beat: one check per organization (each reads only its own rows, so they spread over workers)."""
    with unscoped():
        tenants = list(Organization.objects.order_by("pk").values_list("pk", flat=True))
    for tenant_id in tenants:
        rollups_verify.delay(tenant_id)
    return len(tenants)
