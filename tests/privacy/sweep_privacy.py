"""Org A rows behind the privacy routes, for tests/test_cross_tenant_sweep.py."""

from __future__ import annotations

from cem import privacy, suppression
from cem.models.privacy import ConsentSource, PrivacyRequest
from cem.principals import Actor
from cem.tenancy import tenant_context


def populate(world) -> None:
    org = world.a.org
    with tenant_context(org):
        privacy.consent_record(
            organization=org,
            actor=Actor.system(),
            customer=world.a.customer,
            channel="email",
            granted=True,
            source=ConsentSource.ADMIN,
            detail="acme consent form",
        )
        privacy.retention_policy_for(org)
        # A suppressed identifier (only its hash): /api/v1/privacy/suppressions/ has a row to hide.
        suppression.add(
            org.pk, suppression.identifiers(org.pk, email="acme-suppressed@example.com"), "opt_out"
        )
        # A finished export request (the file itself is not needed to sweep the routes).
        PrivacyRequest.objects.create(
            organization=org,
            kind=PrivacyRequest.Kind.EXPORT,
            subject_type=PrivacyRequest.SubjectType.CUSTOMER,
            subject_id=world.a.customer.pk,
            reason="acme export",
            status=PrivacyRequest.Status.DONE,
            file_path=f"privacy/{org.pk}/acme-missing.zip",
        )
        PrivacyRequest.objects.create(
            organization=org,
            kind=PrivacyRequest.Kind.ERASURE,
            subject_type=PrivacyRequest.SubjectType.EMPLOYEE,
            subject_id=world.a.employees["a-n1"].pk,
            reason="acme erasure",
            status=PrivacyRequest.Status.DONE,
        )
