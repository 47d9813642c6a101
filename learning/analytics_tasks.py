"""Celery tasks of the analytics area: lesson effectiveness snapshots (learning/effect_data.py),
hourly from beat for every organization with lesson gap rules, and on demand from the page."""

from __future__ import annotations

from celery import shared_task

from cem.tasking import TenantTask
from cem.tenancy import unscoped
from learning import effect_data

__all__ = ["lesson_effects_compute", "lesson_effects_dispatch"]


@shared_task(name="learning.lesson_effects_compute", base=TenantTask)
def lesson_effects_compute(tenant_id: int) -> int:
    return effect_data.lesson_effects_compute(organization=tenant_id)


@shared_task(name="learning.lesson_effects_dispatch")
def lesson_effects_dispatch() -> int:
    """Beat: one recompute per organization with lesson gap rules."""
    with unscoped():
        tenants = effect_data.tenants_with_rules()
    for tenant_id in tenants:
        lesson_effects_compute.delay(tenant_id)
    return len(tenants)
