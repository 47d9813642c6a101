"""Org A's export job, so the cross-tenant sweep covers /api/v1/exports/ and the export pages."""

from cem.tenancy import tenant_context
from feedback.models import ExportJob


def populate(world) -> None:
    with tenant_context(world.a.org):
        ExportJob.objects.create(
            organization=world.a.org,
            requested_by=world.users["admin"],
            format="csv",
            filters={"scope": {}},
            status=ExportJob.Status.DONE,
            rows_done=1,
            rows_total=1,
            file_path=f"exports/{world.a.org.pk}/acme-sweep.csv",
        )
