"""Periodic job-board upkeep: a cross-tenant dispatcher per job (beat) fanning out per-tenant tasks.

Dispatchers only list due ids inside ``unscoped()``; the per-tenant tasks re-check each condition
on locked rows, so two dispatchers at once, or a task redelivered after a crash, change nothing
twice and send no reminder twice.
"""

from __future__ import annotations

from collections import defaultdict

from celery import shared_task
from django.utils import timezone

from audits import jobs
from cem.tasking import TenantTask
from cem.tenancy import unscoped

CHUNK = 200

__all__ = [
    "assignments_auto_assign",
    "assignments_auto_assign_dispatch",
    "assignments_expire_revisions",
    "assignments_expire_revisions_dispatch",
    "assignments_release_overdue",
    "assignments_release_overdue_dispatch",
    "assignments_remind",
    "assignments_remind_dispatch",
]


@shared_task(name="audits.assignments_release_overdue", base=TenantTask)
def assignments_release_overdue(tenant_id: int, ids: list[int]) -> list[int]:
    return jobs.assignments_release_overdue(organization=tenant_id, ids=ids)


@shared_task(name="audits.assignments_auto_assign", base=TenantTask)
def assignments_auto_assign(tenant_id: int, ids: list[int]) -> list[tuple[int, int]]:
    return jobs.assignments_auto_assign(organization=tenant_id, ids=ids)


@shared_task(name="audits.assignments_expire_revisions", base=TenantTask)
def assignments_expire_revisions(tenant_id: int, ids: list[int]) -> list[int]:
    return jobs.assignments_expire_revisions(organization=tenant_id, ids=ids)


@shared_task(name="audits.assignments_remind", base=TenantTask)
def assignments_remind(tenant_id: int, ids: list[int]) -> list[int]:
    return jobs.assignments_remind(organization=tenant_id, ids=ids)


def _fan_out(task, due: list[tuple[int, int]]) -> int:
    by_tenant: dict[int, list[int]] = defaultdict(list)
    for tenant_id, pk in due:
        by_tenant[tenant_id].append(pk)
    for tenant_id, ids in by_tenant.items():
        for start in range(0, len(ids), CHUNK):
            task.delay(tenant_id, ids[start : start + CHUNK])
    return len(due)


@shared_task(name="audits.assignments_release_overdue_dispatch")
def assignments_release_overdue_dispatch() -> int:
    with unscoped():
        due = jobs.overdue_jobs(timezone.now())
    return _fan_out(assignments_release_overdue, due)


@shared_task(name="audits.assignments_expire_revisions_dispatch")
def assignments_expire_revisions_dispatch() -> int:
    with unscoped():
        due = jobs.expired_revisions(timezone.now())
    return _fan_out(assignments_expire_revisions, due)


@shared_task(name="audits.assignments_remind_dispatch")
def assignments_remind_dispatch() -> int:
    with unscoped():
        due = jobs.reminders_due(timezone.now())
    return _fan_out(assignments_remind, due)


@shared_task(name="audits.assignments_auto_assign_dispatch")
def assignments_auto_assign_dispatch() -> int:
    with unscoped():
        due = jobs.auto_assign_due(timezone.now())
    return _fan_out(assignments_auto_assign, due)
