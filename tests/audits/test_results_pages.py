"""Published audit scores on the results pages: scoped like everything else, fixed query counts."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audits import audit_services
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_forms import GOOD, make_audit, make_form


@pytest.fixture
def results(world):
    good = GOOD
    org = world.a.org
    std_b = f.StandardFactory(organization=org, code="acme-close")
    _form, version = make_form(org, world.a.standard, std_b, name="acme results form")
    published = []
    for code, smile in (("a-n1", "2"), ("a-n1", "5"), ("a-s1", "4")):
        audit = make_audit(
            org,
            version,
            {**good, "smile": smile},
            location=world.a.locations[code],
            employee=world.a.employees[code],
        )
        with tenant_context(org):
            published.append(
                audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
            )
    draft = make_audit(org, version, good, location=world.a.locations["a-n1"])
    return published, draft


def test_store_manager_sees_their_published_scores(world, client, results):
    published, draft = results
    client.force_login(world.users["manager"])
    html = client.get("/audits/results/").content.decode()
    assert html.count('data-testid="audit-row"') == 2  # a-n1's two published audits, not a-s1's
    assert f"/audits/results/{published[0].pk}/" in html
    assert f"/audits/results/{published[2].pk}/" not in html
    assert client.get(f"/audits/results/{published[2].pk}/").status_code == 404  # another store
    assert client.get(f"/audits/results/{draft.pk}/").status_code == 404  # not published
    detail = client.get(f"/audits/results/{published[0].pk}/").content.decode()
    assert f"Score {published[0].score}" in detail


def test_employee_sees_only_own_results_and_outsider_nothing(world, client, results):
    client.force_login(world.users["employee"])
    html = client.get("/audits/results/").content.decode()
    assert html.count('data-testid="audit-row"') == 2  # the a-n1 employee's audits
    client.force_login(world.users["outsider"])
    assert "acme" not in client.get("/audits/results/").content.decode().lower()


def test_results_page_queries_do_not_grow(world, client, results):
    client.force_login(world.users["admin"])
    with CaptureQueriesContext(connection) as small:
        assert client.get("/audits/results/").status_code == 200
    org = world.a.org
    version = results[0][0].version
    for _ in range(10):
        audit = make_audit(org, version, GOOD, location=world.a.locations["a-n2"])
        with tenant_context(org):
            audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
    with CaptureQueriesContext(connection) as large:
        assert client.get("/audits/results/").status_code == 200
    assert len(large) == len(small)
