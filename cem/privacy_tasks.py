"""Celery tasks of the privacy module (cem.privacy): export builds and the daily retention run.

Beat calls ``cem.privacy_retention_dispatch`` once a day; it lists the organizations (inside
``unscoped()``) and queues one ``cem.privacy_retention_apply`` per tenant, which applies that
organization's policy. Re-running either is harmless: what was removed is not there any more.
"""

from __future__ import annotations

from celery import shared_task

from cem import privacy
from cem.models.privacy import PrivacyRequest
from cem.tasking import TenantTask
from cem.tenancy import unscoped

__all__ = ["privacy_export_build", "privacy_retention_apply", "privacy_retention_dispatch"]


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
