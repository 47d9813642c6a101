"""Celery tasks of the cases area: the escalation sweep and the assignment emails."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from cem.tasking import TenantTask
from cem.tenancy import unscoped
from feedback import cases

__all__ = ["case_notify", "cases_escalate", "cases_escalate_tenant"]


@shared_task(name="feedback.cases_escalate")
def cases_escalate(limit: int = 10_000) -> int:
    """Beat: find overdue cases across tenants, then escalate them in one task per tenant."""
    now = timezone.now()
    with unscoped():
        found = cases.overdue_cases_by_tenant(now, limit=limit)
    for tenant_id, case_ids in found.items():
        cases_escalate_tenant.delay(tenant_id, case_ids)
    return sum(len(ids) for ids in found.values())


@shared_task(name="feedback.cases_escalate_tenant", base=TenantTask)
def cases_escalate_tenant(tenant_id: int, case_ids: list[int]) -> int:
    # The list is a hint from the dispatcher; the service re-checks each case under a lock.
    return len(cases.cases_escalate_overdue(organization=tenant_id, case_ids=case_ids))


@shared_task(
    name="feedback.case_notify",
    base=TenantTask,
    bind=True,
    max_retries=5,
    retry_backoff=True,
    retry_backoff_max=600,
)
def case_notify(self, tenant_id: int, case_id: int, assignee_id: int, reason: str) -> bool:
    try:
        return cases.case_notify_send(case_id=case_id, assignee_id=assignee_id, reason=reason)
    except OSError as exc:  # SMTP unreachable or refused: try again later
        raise self.retry(exc=exc) from exc
