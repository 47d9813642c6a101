"""Celery task that builds an export file (see feedback.exports)."""

from celery import shared_task

from cem.tasking import TenantTask
from feedback import exports
from feedback.models import ExportJob

__all__ = ["export_build"]


@shared_task(name="feedback.export_build", base=TenantTask, acks_late=True)
def export_build(tenant_id: int, job_id: int) -> int:
    job = ExportJob.objects.filter(pk=job_id).first()
    # A redelivery after the file was written (worker lost after the last update) is a no-op.
    if job is None or job.status in (ExportJob.Status.DONE, ExportJob.Status.FAILED):
        return 0
    try:
        return exports.export_build(job)
    except Exception as exc:
        exports.export_failed(job_id, exc)
        raise
