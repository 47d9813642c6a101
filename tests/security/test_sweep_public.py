"""Public routes whose tenant comes from a code or a slug (not a token), swept across tenants.

tests/test_cross_tenant_sweep.py::test_public_routes_never_cross_tenants sweeps the token routes
(invitation, anonymous link / QR, widget key, unsubscribe); its page sweep cannot fill
``<uuid:code>`` or ``<slug:org_slug>``, so the certificate check and the shopper application are
swept here: with org B's admin signed in (the session plays no part), org A's code or slug shows
and writes org A only, never a row or a name of org B; and nothing in the public answer tells
whether an address is already a shopper of another organization.
Widget keys across tenants: tests/feedback/test_widget.py::test_key_of_org_a_never_shows_or_writes_org_b.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

import tests.test_cross_tenant_sweep as sweep
from audits import models as am
from cem.tenancy import tenant_context, unscoped
from learning.models import PathCertificate
from tests.learning import factories as lf
from tests.security.test_rate_limits import APPLICATION

SWEPT_HERE = {"code": "learning_certificate_verify", "org_slug": "shopper_apply"}


def _patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _fingerprint(org_id) -> str:
    saved, sweep._org_a_id = sweep._org_a_id, org_id
    try:
        return sweep._fingerprint()
    finally:
        sweep._org_a_id = saved


@pytest.fixture
def certificates(world):
    made = {}
    for tenant, name in ((world.a, "Acme"), (world.b, "Beta")):
        with tenant_context(tenant.org):
            made[name] = PathCertificate.objects.create(
                organization=tenant.org,
                path=lf.LearningPathFactory(organization=tenant.org, name=f"{name.lower()} path"),
                learner_name=f"{name} learner",
                issued_at=timezone.now(),
            )
    return made


def test_code_and_slug_routes_are_the_ones_swept_here():
    found = {}
    for _route, pattern in _patterns():
        for param in set(getattr(pattern.pattern, "converters", {})) & set(SWEPT_HERE):
            found[param] = pattern.name
    assert found == SWEPT_HERE


def test_certificate_check_shows_only_the_codes_organization(world, certificates):
    client = Client()
    client.force_login(world.users["outsider"])  # org B's admin: must not matter
    before_a, before_b = _fingerprint(world.a.org.pk), _fingerprint(world.b.org.pk)
    page = client.get(f"/learning/certificates/verify/{certificates['Acme'].code}/")
    assert page.status_code == 200
    # The signed-in viewer's own organization names the navigation; the page's content is org A's.
    content = page.content.decode().split("<main", 1)[1].split("</main>", 1)[0]
    assert "Acme learner" in content and "Acme" in content and "beta" not in content.lower()
    anonymous = Client().get(f"/learning/certificates/verify/{certificates['Acme'].code}/").content.decode()
    assert "Acme learner" in anonymous and "beta" not in anonymous.lower()
    # Org B's code answers for org B, and an id in place of a code finds nothing.
    assert (
        b"Beta learner" in client.get(f"/learning/certificates/verify/{certificates['Beta'].code}/").content
    )
    assert client.get(f"/learning/certificates/verify/{certificates['Acme'].pk}/").status_code == 404
    assert client.post(f"/learning/certificates/verify/{certificates['Acme'].code}/").status_code == 405
    assert (_fingerprint(world.a.org.pk), _fingerprint(world.b.org.pk)) == (before_a, before_b)


def test_shopper_application_lands_in_the_slugs_organization_only(world):
    with tenant_context(world.b.org):
        am.Shopper.objects.create(
            organization=world.b.org,
            name="Beta Shopper",
            email="taken@example.com",
            consent_at=timezone.now(),
        )
    client = Client()
    client.force_login(world.users["outsider"])
    before_b = _fingerprint(world.b.org.pk)
    form = client.get("/shop/acme/apply/")
    assert form.status_code == 200 and b"Beta" not in form.content
    for email in ("new@example.com", "taken@example.com"):
        resp = client.post("/shop/acme/apply/", {**APPLICATION, "email": email})
        # The same answer whether or not another organization knows the address.
        assert resp.status_code == 201 and b"We have your application" in resp.content
        assert b"Beta" not in resp.content and b"taken" not in resp.content
    assert _fingerprint(world.b.org.pk) == before_b, "an application to org A changed org B"
    with unscoped():
        by_org = sorted(am.Shopper.objects.values_list("organization_id", "email"))
    assert (world.a.org.pk, "new@example.com") in by_org and (world.a.org.pk, "taken@example.com") in by_org
    assert (world.b.org.pk, "taken@example.com") in by_org
    assert client.get("/shop/no-such-org/apply/").status_code == 404
