"""Celery tasks of the privacy module (cem.privacy): export builds, erasure sweeps and the daily
retention run.

``cem.privacy_erasure_sweep`` is queued when an erasure commits (``cem.privacy.erasure_sweep``:
the person's identifiers out of the organization's free text). It takes ids only; a failure
leaves the request ``redacting`` with the kind of error, and is retried with backoff (the daily
retention run queues it again after that). A rerun after it completed does nothing.

Beat calls ``cem.privacy_retention_dispatch`` once a day; it lists the organizations (inside
``unscoped()``) and queues one ``cem.privacy_retention_apply`` per tenant, which applies that
organization's policy. Re-running either is harmless: what was removed is not there any more.
"""

from __future__ import annotations

import contextlib

from celery import shared_task
from django.db import DatabaseError

from cem import privacy
from cem.models.privacy import PrivacyRequest
from cem.tasking import TenantTask
from cem.tenancy import unscoped

__all__ = [
    "privacy_erasure_sweep",
    "privacy_export_build",
    "privacy_retention_apply",
    "privacy_retention_dispatch",
]


@shared_task(name="cem.privacy_export_build", base=TenantTask, acks_late=True)
def privacy_export_build(tenant_id: int, request_id: int) -> dict:
    request = PrivacyRequest.objects.filter(pk=request_id).first()
    # A redelivery after the file was written is a no-op.
    if request is None or request.status not in (PrivacyRequest.Status.QUEUED, PrivacyRequest.Status.RUNNING):
        return {}
    try:
        return privacy.export_build(request)
    except Exception as exc:
        privacy.export_failed(request_id, exc)
        raise


@shared_task(
    name="cem.privacy_erasure_sweep",
    base=TenantTask,
    bind=True,
    acks_late=True,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
)
def privacy_erasure_sweep(self, tenant_id: int, request_id: int) -> dict:
    try:
        return privacy.erasure_sweep(request_id)
    except Exception as exc:
        # Noted on the request when the database still answers; retried either way.
        with contextlib.suppress(DatabaseError):
            privacy.erasure_sweep_failed(request_id, exc)
        raise self.retry(exc=exc) from exc


@shared_task(name="cem.privacy_retention_apply", base=TenantTask)
def privacy_retention_apply(tenant_id: int) -> dict:
    return privacy.retention_apply(organization=tenant_id)


@shared_task(name="cem.privacy_retention_dispatch")
def privacy_retention_dispatch() -> int:
    with unscoped():
        tenant_ids = privacy.organizations_for_retention()
    for tenant_id in tenant_ids:
        privacy_retention_apply.delay(tenant_id)
    return len(tenant_ids)
