"""Celery task forwarding xAPI statements to an organization's LRS (thin: the work is learning.xapi)."""

from celery import shared_task

from cem.tasking import TenantTask
from learning import xapi

MAX_RETRIES = 8
BACKOFF_BASE = 15  # seconds; doubled per retry
BACKOFF_MAX = 3600


def backoff(retries: int) -> int:
    return min(BACKOFF_BASE * 2**retries, BACKOFF_MAX)


@shared_task(name="learning.xapi_forward", base=TenantTask, bind=True, max_retries=MAX_RETRIES)
def xapi_forward(self, tenant_id: int, statement_ids: list[int]) -> int:
    """POST the statements; what the LRS refused or could not receive is retried with backoff."""
    pending = xapi.forward(statement_ids)
    if pending and self.request.retries < self.max_retries:
        raise self.retry(args=(tenant_id, pending), countdown=backoff(self.request.retries))
    return len(statement_ids) - len(pending)


__all__ = ["backoff", "xapi_forward", "xapi_forward_sweep"]

SWEEP_AFTER = 2 * 3600  # seconds: past the retries of the task that first sent them
SWEEP_MAX_ATTEMPTS = 30
SWEEP_BATCH = 500


@shared_task(name="learning.xapi_forward_sweep")
def xapi_forward_sweep() -> int:
    """Re-queue statements left unforwarded (broker down at commit, retries exhausted, LRS back up)."""
    import datetime as dt

    from django.utils import timezone

    from cem.tenancy import unscoped
    from learning.models import LearningSettings, Statement

    cutoff = timezone.now() - dt.timedelta(seconds=SWEEP_AFTER)
    queued = 0
    with unscoped():
        orgs = list(LearningSettings.objects.exclude(lrs_url="").values_list("organization_id", flat=True))
        for org_id in orgs:
            ids = list(
                Statement.objects.filter(
                    organization_id=org_id,
                    forwarded_at__isnull=True,
                    stored__lt=cutoff,
                    forward_attempts__lt=SWEEP_MAX_ATTEMPTS,
                )
                .order_by("pk")
                .values_list("pk", flat=True)[:SWEEP_BATCH]
            )
            if ids:
                xapi_forward.delay(org_id, ids)
                queued += len(ids)
    return queued
