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
