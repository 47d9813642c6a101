"""Celery tasks of the outgoing webhooks (thin: the work is cem.webhooks)."""

from celery import shared_task
from django.utils import timezone

from cem import webhooks
from cem.tasking import TenantTask
from cem.tenancy import unscoped

DUE_BATCH = 1000


@shared_task(name="cem.webhooks_send", base=TenantTask)
def webhooks_send(tenant_id: int, delivery_id: int) -> str:
    """Make one delivery's due attempt; a failure is scheduled on the row, not by Celery's retry."""
    delivery = webhooks.attempt(delivery_id)
    return delivery.status if delivery is not None else "not_due"


@shared_task(name="cem.webhooks_send_due")
def webhooks_send_due(limit: int = DUE_BATCH) -> int:
    """Beat: queue every delivery whose next attempt is due, across tenants."""
    with unscoped():
        due = webhooks.due_deliveries(timezone.now(), limit)
    for tenant_id, delivery_id in due:
        webhooks_send.delay(tenant_id, delivery_id)
    return len(due)
