"""The org-admin privacy pages: find a person, see what is held, export, erase with a typed
confirmation and a reason, record consent, set the retention policy; fixed queries on the list."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cem import models as m
from cem.models.privacy import PrivacyRequest
from cem.tenancy import tenant_context
from tests.privacy.helpers import CUSTOMER_EMAIL, zip_contents

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def admin(client, pw):
    client.force_login(pw.admin)
    return client


def test_search_finds_customers_and_employees(pw, admin):
    page = admin.get("/manage/privacy/")
    assert page.status_code == 200 and 'href="/manage/privacy/"' in page.content.decode()
    html = admin.get("/manage/privacy/", {"q": CUSTOMER_EMAIL}).content.decode()
    assert f'data-type="customer" data-id="{pw.customer.pk}"' in html
    html = admin.get("/manage/privacy/", {"q": "Quimby"}).content.decode()
    assert f'data-type="employee" data-id="{pw.employee.pk}"' in html
    html = admin.get("/manage/privacy/", {"q": "rosalind"}).content.decode()
    assert 'data-testid="none-found"' in html  # customers only by exact identifiers


def test_subject_page_export_and_download(pw, admin, django_capture_on_commit_callbacks):
    html = admin.get(f"/manage/privacy/customers/{pw.customer.pk}/").content.decode()
    for label in ("cem.Customer", "feedback.Response", "feedback.Answer", "cem.ConsentRecord"):
        assert f'data-model="{label}"' in html
    assert "loyalty sign-up form" in html
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin.post(f"/manage/privacy/customers/{pw.customer.pk}/export/")
    assert resp.status_code == 302
    detail = admin.get(resp["Location"]).content.decode()
    assert 'data-status="done"' in detail and 'data-testid="download"' in detail
    with tenant_context(pw.org):
        job = PrivacyRequest.objects.get(kind="export")
    download = admin.get(f"/manage/privacy/requests/{job.pk}/download/")
    files = zip_contents(b"".join(download.streaming_content))
    assert files["cem.Customer.json"][0]["email"] == CUSTOMER_EMAIL


def test_erase_page_needs_the_typed_external_id(pw, admin, django_capture_on_commit_callbacks):
    url = f"/manage/privacy/customers/{pw.customer.pk}/erase/"
    assert 'data-testid="erase-form"' in admin.get(url).content.decode()
    resp = admin.post(url, {"reason": "ticket 12", "confirm": "wrong"})
    assert resp.status_code == 200 and 'data-testid="error-confirm"' in resp.content.decode()
    assert pw.count(m.Customer, pk=pw.customer.pk) == 1
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin.post(
            url, {"reason": "ticket 12", "confirm": "acme-cust-rv", "redact_terms": "Rosalind Vexley"}
        )
    assert resp.status_code == 302
    assert pw.count(m.Customer, pk=pw.customer.pk) == 0
    html = admin.get(resp["Location"]).content.decode()
    assert "(erased)" in html and "ticket 12" in html
    listing = admin.get("/manage/privacy/").content.decode()
    assert "Erasure" in listing and CUSTOMER_EMAIL not in listing


def test_consent_form_on_the_customer_page(pw, admin):
    resp = admin.post(
        f"/manage/privacy/customers/{pw.customer.pk}/consent/",
        {"channel": "sms", "granted": "no", "detail": "asked by phone"},
    )
    assert resp.status_code == 302
    with tenant_context(pw.org):
        pw.customer.refresh_from_db()
        assert pw.customer.consent_sms is False
    html = admin.get(f"/manage/privacy/customers/{pw.customer.pk}/").content.decode()
    assert "asked by phone" in html and "Organization admin" in html


def test_retention_form(pw, admin):
    assert admin.get("/manage/privacy/retention/").status_code == 200
    resp = admin.post(
        "/manage/privacy/retention/",
        {
            "comments_months": "24",
            "invitations_months": "6",
            "case_contacts_months": "",
            "abuse_hashes_days": "7",
            "exports_days": "3",
        },
    )
    assert resp.status_code == 302
    with tenant_context(pw.org):
        policy = m.RetentionPolicy.objects.get()
        assert (policy.comments_months, policy.case_contacts_months, policy.exports_days) == (24, None, 3)
        assert m.AuditLog.objects.filter(action="update", object_type="cem.RetentionPolicy").exists()
    resp = admin.post("/manage/privacy/retention/", {"comments_months": "0", "exports_days": "3"})
    assert resp.status_code == 200 and 'data-testid="error-comments_months"' in resp.content.decode()


@pytest.mark.parametrize("persona", ["executive", "manager", "employee", "trainer"])
def test_only_admins_see_the_privacy_pages(pw, client, persona):
    client.force_login(pw.world.users[persona])
    assert client.get("/manage/privacy/").status_code == 403
    assert client.get(f"/manage/privacy/customers/{pw.customer.pk}/").status_code == 403


def _requests(pw, n):
    with tenant_context(pw.org):
        PrivacyRequest.objects.bulk_create(
            PrivacyRequest(
                organization=pw.org,
                kind="export" if i % 2 else "erasure",
                subject_type="customer" if i % 3 else "employee",
                subject_id=pw.customer.pk if i % 3 else pw.employee.pk,
                status="done",
                requested_by=pw.admin,
                reason=f"r{i}",
            )
            for i in range(n)
        )


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200
    return len(ctx)


def test_the_list_page_runs_a_fixed_number_of_queries(pw, admin, api):
    _requests(pw, 2)
    small = _queries(admin, "/manage/privacy/")
    small_api = _queries(api(pw.admin), "/api/v1/privacy/erasures/")
    _requests(pw, 20)
    assert _queries(admin, "/manage/privacy/") == small
    assert _queries(api(pw.admin), "/api/v1/privacy/erasures/") == small_api
