"""Org A rows behind the audit photo routes (``/api/v1/audit-photos/``)."""

from __future__ import annotations

from audits import models as am
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_job, make_program


def populate(world) -> None:
    org = world.a.org
    program, scenario = make_program(org, name="acme photo programme")
    job = make_job(org, program, scenario, world.a.locations["a-n1"], status_reason="acme photo job")
    with tenant_context(org):
        version = am.AuditFormVersion.objects.get(form=program.form)
        audit = am.Audit.objects.create(
            organization=org, version=version, assignment=job, location=job.location
        )
        am.AuditPhoto.objects.create(
            organization=org,
            audit=audit,
            item=am.FormItem.objects.get(version=version, key="receipt"),
            file_path=f"audits/{org.pk}/acme-missing.jpg",
            thumbnail_path=f"audits/{org.pk}/acme-missing-thumb.jpg",
            content_type="image/jpeg",
            size=1,
        )
