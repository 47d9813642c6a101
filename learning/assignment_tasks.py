"""Celery tasks of the assignment area: a cross-tenant dispatcher per job (beat) fanning out
thin per-tenant tasks that take ids. The services re-check every condition (conditional
updates, row locks), so a dispatcher running twice or a redelivered task sends nothing twice."""

from __future__ import annotations

from collections import defaultdict

from celery import shared_task
from django.utils import timezone

from cem.tasking import TenantTask
from cem.tenancy import unscoped
from learning import assignments, gaps

CHUNK = 200

__all__ = [
    "assignments_notify",
    "assignments_notify_dispatch",
    "holdouts_release",
    "holdouts_release_dispatch",
]


@shared_task(name="learning.assignments_notify", base=TenantTask)
def assignments_notify(tenant_id: int) -> dict:
    return assignments.assignments_notify(organization=tenant_id)


@shared_task(name="learning.assignments_notify_dispatch")
def assignments_notify_dispatch() -> int:
    """Beat: one task per organization with open assignments (reminders, overdue, escalation)."""
    with unscoped():
        tenants = assignments.tenants_with_open_assignments()
    for tenant_id in tenants:
        assignments_notify.delay(tenant_id)
    return len(tenants)


@shared_task(name="learning.holdouts_release", base=TenantTask)
def holdouts_release(tenant_id: int, ids: list[int]) -> list[int]:
    return gaps.holdouts_release(organization=tenant_id, ids=ids)


@shared_task(name="learning.holdouts_release_dispatch")
def holdouts_release_dispatch() -> int:
    """Beat: held-out gap cases past their date, assigned now if the gap still holds."""
    with unscoped():
        due = gaps.holdouts_due(timezone.now())
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for tenant_id, pk in due:
        by_tenant[tenant_id].append(pk)
    for tenant_id, ids in by_tenant.items():
        for start in range(0, len(ids), CHUNK):
            holdouts_release.delay(tenant_id, ids[start : start + CHUNK])
    return len(due)
