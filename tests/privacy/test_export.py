"""Export everything held about a customer or an employee: a ZIP of JSON, one file per model."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from cem import models as m
from cem import privacy
from cem.models.privacy import PrivacyRequest
from cem.tenancy import tenant_context, tenant_models
from tests.privacy.helpers import CUSTOMER_EMAIL, EMPLOYEE_NAME, zip_contents

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _export(api, capture, client_kwargs, body):
    client = api(**client_kwargs)
    with capture(execute=True):
        resp = client.post("/api/v1/privacy/exports/", body, format="json")
    assert resp.status_code == 202, resp.content
    job = client.get(f"/api/v1/privacy/exports/{resp.json()['id']}/").json()
    assert job["status"] == "done", job
    download = client.get(job["download_url"])
    assert download.status_code == 200 and download["Content-Type"] == "application/zip"
    return job, zip_contents(b"".join(download.streaming_content))


def _models_holding(pw, target, pk, extra_user_ids=()):
    """Every tenant model with a row pointing at the subject (foreign keys), by label."""
    labels = set()
    with tenant_context(pw.org):
        for model in tenant_models():
            for field in model._meta.get_fields():
                if not (field.concrete and field.many_to_one):
                    continue
                if field.related_model is target and model.objects.filter(**{field.name: pk}).exists():
                    labels.add(model._meta.label)
                is_login = extra_user_ids and field.related_model is get_user_model()
                if is_login and model.objects.filter(**{f"{field.name}__in": extra_user_ids}).exists():
                    labels.add(model._meta.label)
    return labels


def test_customer_export_by_email_holds_every_model_that_points_at_them(
    pw, api, django_capture_on_commit_callbacks
):
    job, files = _export(
        api,
        django_capture_on_commit_callbacks,
        {"user": pw.admin},
        {"subject_type": "customer", "email": CUSTOMER_EMAIL.upper()},
    )
    expected = _models_holding(pw, m.Customer, pw.customer.pk) | {"cem.Customer"}
    # Reached through their responses, not by a foreign key to the customer:
    expected |= {"feedback.Answer", "feedback.Case", "feedback.CaseNote"}
    assert {
        "cem.Interaction",
        "feedback.Response",
        "feedback.Invitation",
        "alignment.CustomerTransaction",
        "cem.ConsentRecord",
    } <= expected
    assert {f"{label}.json" for label in expected} <= set(files)
    assert files["manifest.json"]["subject"] == {"type": "customer", "id": pw.customer.pk}
    assert files["manifest.json"]["files"] == {k: len(v) for k, v in files.items() if k != "manifest.json"}
    [customer] = files["cem.Customer.json"]
    assert customer["email"] == CUSTOMER_EMAIL and customer["consent_email"] is True
    assert {r["id"] for r in files["feedback.Response.json"]} == set(pw.response_ids)
    comments = [a["text"] for a in files["feedback.Answer.json"] if a["question_type"] == "text"]
    assert len(comments) == 2 and any(CUSTOMER_EMAIL in c for c in comments)
    assert files["cem.ConsentRecord.json"][0]["detail"] == "loyalty sign-up form"
    # Nobody else's answers: the other response (no customer) is not in it.
    assert pw.other_response_id not in {a["response_id"] for a in files["feedback.Answer.json"]}
    with tenant_context(pw.org):
        assert m.AuditLog.objects.filter(action="privacy.export", object_id=str(job["id"])).exists()
        assert m.AuditLog.objects.filter(action="privacy.export.download", object_id=str(job["id"])).exists()


def test_employee_export_by_external_id_with_the_integrator_key(pw, api, django_capture_on_commit_callbacks):
    emp = pw.employee
    user = pw.world.users["employee"]
    job, files = _export(
        api,
        django_capture_on_commit_callbacks,
        {"key": pw.world.a.api_key},
        {"subject_type": "employee", "external_id": emp.external_id},
    )
    expected = _models_holding(pw, m.Employee, emp.pk, extra_user_ids=[user.pk]) | {"cem.Employee"}
    assert {
        "feedback.Answer",
        "feedback.Response",
        "incentives.Account",
        "incentives.LedgerTransaction",
        "cem.Membership",
        "cem.EmployeeAssignment",
        "cem.InteractionEmployee",
    } <= expected
    assert {f"{label}.json" for label in expected} <= set(files)
    assert files["cem.Employee.json"][0]["name"] == EMPLOYEE_NAME
    [login] = files["auth.User.json"]
    assert login["username"] == user.username and "password" not in login
    assert job["requested_by_api_key"] == pw.world.a.api_key_obj.pk


def test_idempotency_key_replays_the_export_request(pw, api, django_capture_on_commit_callbacks):
    client = api(pw.admin)
    body = {"subject_type": "customer", "external_id": pw.customer.external_id}
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post("/api/v1/privacy/exports/", body, format="json", HTTP_IDEMPOTENCY_KEY="exp-1")
        second = client.post("/api/v1/privacy/exports/", body, format="json", HTTP_IDEMPOTENCY_KEY="exp-1")
    assert first.status_code == second.status_code == 202
    assert second["Idempotent-Replayed"] == "true" and second.json()["id"] == first.json()["id"]
    assert pw.count(PrivacyRequest, kind="export") == 1


def test_bad_requests_are_400s_naming_the_field(pw, api):
    client = api(pw.admin)
    url = "/api/v1/privacy/exports/"
    resp = client.post(url, {"subject_type": "customer"}, format="json")
    assert resp.status_code == 400 and "external_id" in resp.json()
    resp = client.post(url, {"subject_type": "robot", "id": 1}, format="json")
    assert resp.status_code == 400 and "subject_type" in resp.json()
    resp = client.post(url, {"subject_type": "customer", "external_id": "nobody"}, format="json")
    assert resp.status_code == 400 and "external_id" in resp.json()


def test_only_admins_and_integrators_may_export(pw, api):
    for persona in ("executive", "manager", "employee"):
        resp = api(pw.world.users[persona]).post(
            "/api/v1/privacy/exports/", {"subject_type": "customer", "id": pw.customer.pk}, format="json"
        )
        assert resp.status_code == 403, persona


def test_org_b_cannot_export_or_download_org_a_subjects(pw, api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), tenant_context(pw.org):
        job = privacy.export_request(
            organization=pw.org, actor=privacy.Actor.system(), subject_type="customer", instance=pw.customer
        )
    for client in (api(pw.world.users["outsider"]), api(key=pw.world.b.api_key)):
        for ref in ({"id": pw.customer.pk}, {"email": CUSTOMER_EMAIL}, {"external_id": "acme-cust-rv"}):
            resp = client.post("/api/v1/privacy/exports/", {"subject_type": "customer", **ref}, format="json")
            assert resp.status_code == 400, resp.content
        assert client.get(f"/api/v1/privacy/exports/{job.pk}/download/").status_code == 404
        assert client.get(f"/api/v1/privacy/exports/{job.pk}/").status_code == 404
        assert client.get("/api/v1/privacy/subjects/", {"q": CUSTOMER_EMAIL}).json() == []
    outsider = api(pw.world.users["outsider"])
    assert outsider.get(f"/manage/privacy/requests/{job.pk}/download/").status_code == 404
    assert pw.count(PrivacyRequest) == 1
