"""Periodic invitation jobs: a cross-tenant dispatcher per job (beat) fanning out per-tenant tasks.

Dispatchers only list due ids inside ``unscoped()``; the per-tenant tasks re-check every condition
with conditional UPDATEs, so a dispatcher running twice at once, or a task redelivered after a
crash, sends nothing twice.
"""

from __future__ import annotations

from collections import defaultdict

from celery import shared_task
from django.utils import timezone

from cem.tasking import TenantTask
from cem.tenancy import unscoped
from feedback import invitations

CHUNK = 200
DISPATCH_LIMIT = 20_000

__all__ = [
    "invitations_expire",
    "invitations_expire_dispatch",
    "invitations_remind",
    "invitations_remind_dispatch",
    "invitations_send_due",
    "invitations_send_due_dispatch",
]


@shared_task(name="feedback.invitations_send_due", base=TenantTask)
def invitations_send_due(tenant_id: int, invitation_ids: list[int] | None = None) -> dict:
    return invitations.invitations_send_due(organization=tenant_id, invitation_ids=invitation_ids)


@shared_task(name="feedback.invitations_remind", base=TenantTask)
def invitations_remind(tenant_id: int, invitation_ids: list[int] | None = None) -> dict:
    return invitations.invitations_remind(organization=tenant_id, invitation_ids=invitation_ids)


@shared_task(name="feedback.invitations_expire", base=TenantTask)
def invitations_expire(tenant_id: int) -> int:
    return invitations.invitations_expire(organization=tenant_id)


def _fan_out(task, due: list[tuple[int, int]]) -> int:
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for tenant_id, pk in due:
        by_tenant[tenant_id].append(pk)
    for tenant_id, ids in by_tenant.items():
        for start in range(0, len(ids), CHUNK):
            task.delay(tenant_id, ids[start : start + CHUNK])
    return len(due)


@shared_task(name="feedback.invitations_send_due_dispatch")
def invitations_send_due_dispatch(limit: int = DISPATCH_LIMIT) -> int:
    with unscoped():
        due = invitations.due_for_sending(timezone.now(), limit)
    return _fan_out(invitations_send_due, due)


@shared_task(name="feedback.invitations_remind_dispatch")
def invitations_remind_dispatch(limit: int = DISPATCH_LIMIT) -> int:
    with unscoped():
        due = invitations.due_for_reminder(timezone.now(), limit)
    return _fan_out(invitations_remind, due)


@shared_task(name="feedback.invitations_expire_dispatch")
def invitations_expire_dispatch() -> int:
    with unscoped():
        tenants = invitations.tenants_with_expiring(timezone.now())
    for tenant_id in tenants:
        invitations_expire.delay(tenant_id)
    return len(tenants)
