"""Celery tasks of the monitoring area: the weekly sample draw, dispatched per tenant."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from audits import monitoring
from audits.models import Program, ProgramKind
from cem.models import Organization
from cem.principals import Actor
from cem.tasking import TenantTask
from cem.tenancy import unscoped

__all__ = ["monitoring_sample_dispatch", "monitoring_sample_draw_tenant"]


@shared_task(name="audits.monitoring_sample_dispatch")
def monitoring_sample_dispatch() -> int:
    """Beat: one task per tenant with active monitoring programmes."""
    with unscoped():
        rows = list(
            Program.objects.filter(kind=ProgramKind.MONITORING, active=True)
            .order_by("organization_id", "pk")
            .values_list("organization_id", "pk")
        )
    by_tenant: dict[int, list[int]] = {}
    for tenant_id, program_id in rows:
        by_tenant.setdefault(tenant_id, []).append(program_id)
    now = timezone.now().isoformat()
    for tenant_id, program_ids in by_tenant.items():
        monitoring_sample_draw_tenant.delay(tenant_id, program_ids, now)
    return len(rows)


@shared_task(name="audits.monitoring_sample_draw_tenant", base=TenantTask)
def monitoring_sample_draw_tenant(tenant_id: int, program_ids: list[int], now: str) -> int:
    """Draw last week's sample (the org's local week) for each programme; drawn weeks are skipped."""
    organization = Organization.objects.get(pk=tenant_id)
    start, end = monitoring.last_week(dt.datetime.fromisoformat(now), organization.time_zone)
    created = 0
    # Re-checked here: the programme may have been paused since the dispatcher listed it.
    for program in Program.objects.filter(pk__in=program_ids, kind=ProgramKind.MONITORING, active=True):
        _, new = monitoring.sample_draw(
            organization=tenant_id, actor=Actor.system(), program=program, period_start=start, period_end=end
        )
        created += new
    return created
