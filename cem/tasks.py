import logging
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from cem import outbox
from cem.password_tasks import password_reset_send, password_set_send  # noqa: F401 - registered with the core's tasks
from cem.privacy_tasks import (  # noqa: F401 - registered with the core's tasks
    privacy_export_build,
    privacy_retention_apply,
    privacy_retention_dispatch,
)
from cem.tasking import TenantTask
from cem.tenancy import unscoped
from cem.webhook_tasks import webhooks_send, webhooks_send_due  # noqa: F401 - registered with the core's tasks

logger = logging.getLogger(__name__)


@shared_task(name="cem.events_deliver", base=TenantTask)
def events_deliver(tenant_id: int, event_id: int, counted: bool = False) -> int:
    """Fan one outbox event out to a task per handler that has not processed it yet.

    ``counted``: the caller already counted this dispatch (the drain claims events as it reads).
    """
    pending = outbox.pending_handlers(event_id)
    for handler_name in pending:
        events_handle.delay(tenant_id, event_id, handler_name)
    outbox.mark_dispatched(event_id, complete=not pending, count=not counted)
    return len(pending)


@shared_task(
    name="cem.events_handle",
    base=TenantTask,
    bind=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
)
def events_handle(self, tenant_id: int, event_id: int, handler_name: str) -> bool:
    try:
        return outbox.run_handler(event_id, handler_name)
    except outbox.UnknownHandler:
        return False
    except Exception as exc:
        outbox.record_failure(event_id, handler_name, exc)
        raise self.retry(exc=exc) from exc


@shared_task(name="cem.events_deliver_pending")
def events_deliver_pending(limit: int = 1000) -> int:
    """Dispatch every event committed but not yet dispatched (rung by cem.events' doorbell)."""
    from django.core.cache import cache

    from cem.events import DOORBELL_KEY

    # Cleared before reading: an event committed from here on rings again and gets its own run.
    cache.delete(DOORBELL_KEY)
    with unscoped():
        fresh = outbox.claim_undispatched(limit)
    for tenant_id, event_id in fresh:
        try:
            events_deliver(tenant_id, event_id, counted=True)  # in this task: one hop less per event
        except Exception:
            # One bad event must not hold up the others; the sweep tries it again later.
            logger.exception("dispatching event %s failed; left for the sweep", event_id)
    if len(fresh) == limit:
        events_deliver_pending.delay(limit)
    return len(fresh)


@shared_task(name="cem.events_sweep")
def events_sweep(older_than_seconds: int = 20, limit: int = 1000) -> int:
    """Re-dispatch events whose kick was lost (broker down at commit, worker killed)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    with unscoped():
        stale = outbox.stale_events(cutoff, limit)
    for tenant_id, event_id in stale:
        events_deliver.delay(tenant_id, event_id)
    return len(stale)


@shared_task(name="cem.idempotency_purge")
def idempotency_purge() -> int:
    from django.conf import settings

    from cem.models import IdempotencyRecord

    with unscoped():
        deleted, _ = IdempotencyRecord.objects.filter(
            created_at__lt=timezone.now() - settings.IDEMPOTENCY_TTL
        ).delete()
    return deleted
