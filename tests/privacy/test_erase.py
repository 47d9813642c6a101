"""Erasure on request: identity gone everywhere, comments redacted, scores kept, an audit row,
rollups equal to a rebuild from raw data, the points ledger balanced."""

from __future__ import annotations

import pytest

from cem import models as m
from cem.models.privacy import PrivacyRequest
from cem.tenancy import tenant_context
from feedback import models as fm
from incentives.models import Account, LedgerTransaction
from tests.privacy.helpers import (
    CUSTOMER_EMAIL,
    CUSTOMER_NAME,
    CUSTOMER_PHONE,
    EMPLOYEE_EMAIL,
    EMPLOYEE_NAME,
    db_columns_containing,
    ledger_check,
    rollups_equal_rebuild,
)

pytestmark = pytest.mark.django_db
ERASURES = "/api/v1/privacy/erasures/"


def _scores(pw) -> list[tuple]:
    """Every score answer of the organization with its dimensions (what aggregates are made of)."""
    with tenant_context(pw.org):
        return list(
            fm.Answer.objects.exclude(question_type="text")
            .order_by("pk")
            .values_list("response_id", "question_type", "number", "location_id", "employee_id", "segment_id")
        )


def _erase(pw, api, capture, body, *, user=None):
    with capture(execute=True):
        return api(user or pw.admin).post(ERASURES, body, format="json")


def test_customer_erasure_keeps_scores_and_drops_identity(pw, api, django_capture_on_commit_callbacks):
    scores_before = _scores(pw)
    wallet_before = _wallet_balance(pw)
    assert db_columns_containing(CUSTOMER_EMAIL)  # the scan does find it while it is there
    assert rollups_equal_rebuild(pw.org)

    resp = _erase(
        pw,
        api,
        django_capture_on_commit_callbacks,
        {
            "subject_type": "customer",
            "email": CUSTOMER_EMAIL,
            "reason": "Erasure request by email, 2 March, ticket 4711",
            "confirm": "acme-cust-rv",
            "redact_terms": [CUSTOMER_NAME],
        },
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    # Their own records are gone when the request answers; the free-text sweep follows it.
    assert (
        body["kind"] == "erasure" and body["status"] == "redacting" and body["subject_id"] == pw.customer.pk
    )
    assert body["finished_at"] is None
    done = api(pw.admin).get(f"{ERASURES}{body['id']}/").json()
    assert done["status"] == "done" and done["finished_at"]

    # Identity gone: not in any column of any table (comments, notes, case contacts, audit log…).
    for needle in (CUSTOMER_EMAIL, CUSTOMER_PHONE, CUSTOMER_NAME, "acme-cust-rv"):
        assert db_columns_containing(needle) == [], needle
    assert pw.count(m.Customer, pk=pw.customer.pk) == 0
    with tenant_context(pw.org):
        responses = fm.Response.objects.filter(pk__in=pw.response_ids)
        assert responses.count() == 2 and set(responses.values_list("customer_id", flat=True)) == {None}
        comments = dict(
            fm.Answer.objects.filter(response_id__in=pw.response_ids, question_type="text").values_list(
                "response_id", "text"
            )
        )
        assert comments[pw.response_ids[0]] == "I'm [redacted], write to [redacted]. Jordan Quimby was great!"
        case = fm.Case.objects.get(pk=pw.case.pk)
        assert case.customer_contact == {}
        assert (
            fm.CaseNote.objects.get(case=case).text == "Called [redacted] on [redacted]; Jordan apologised."
        )
        assert fm.Invitation.objects.get(survey=pw.survey).status == "suppressed"
        assert m.Interaction.objects.get(pk=pw.world.a.interactions["a-n1"].pk).attributes == {
            "note": "card holder [redacted]",
            "basket": 3,
        }
        log = m.AuditLog.objects.get(action="privacy.erase")
        assert log.object_type == "cem.Customer" and log.object_id == str(pw.customer.pk)
        assert log.actor_user_id == pw.admin.pk and log.changes["request"] == body["id"]
        assert log.changes["counts"]["alignment.CustomerTransaction.deleted"] == 1
        assert log.changes["counts"]["feedback.Response.detached"] == 2
    # Scores kept, aggregates unchanged; derived data (rollups, points) still true.
    assert _scores(pw) == scores_before
    assert _wallet_balance(pw) == wallet_before
    assert rollups_equal_rebuild(pw.org)
    assert ledger_check()[0] == 0


def _wallet_balance(pw) -> int:
    with tenant_context(pw.org):
        wallet = Account.objects.filter(kind="wallet", employee=pw.employee).first()
        return wallet.balance if wallet else 0


def test_customer_erasure_with_their_responses_deleted_moves_rollups_and_points(
    pw, api, django_capture_on_commit_callbacks
):
    # Two promoter responses (the customer's and another) earned the named employee 10 points each.
    assert _wallet_balance(pw) == 20
    resp = _erase(
        pw,
        api,
        django_capture_on_commit_callbacks,
        {
            "subject_type": "customer",
            "external_id": "acme-cust-rv",
            "reason": "Customer asked that their answers be deleted",
            "confirm": "acme-cust-rv",
            "delete_responses": True,
        },
    )
    assert resp.status_code == 201, resp.content
    assert pw.count(fm.Response, pk__in=pw.response_ids) == 0
    assert pw.count(fm.Answer, response_id__in=pw.response_ids) == 0
    assert pw.count(fm.Case, pk=pw.case.pk) == 0
    assert pw.count(fm.Response, pk=pw.other_response_id) == 1
    with tenant_context(pw.org):
        [event] = m.OutboxEvent.objects.filter(event_type="ResponseErased")
        assert sorted(event.payload["response_ids"]) == sorted(pw.response_ids)
        [reversal] = LedgerTransaction.objects.filter(kind="reversal")
        # Ledger notes are append-only: they carry a fixed reason, never the requester's words.
        assert "asked" not in reversal.note
    assert _wallet_balance(pw) == 10  # the other response's award stands
    assert rollups_equal_rebuild(pw.org)
    assert ledger_check()[0] == 0
    assert db_columns_containing(CUSTOMER_EMAIL) == []


def test_employee_erasure_anonymises_name_login_and_comments(pw, api, django_capture_on_commit_callbacks):
    user = pw.world.users["employee"]
    scores_before = _scores(pw)
    wallet_before = _wallet_balance(pw)
    assert wallet_before == 20
    with tenant_context(pw.org):
        awards_before = LedgerTransaction.objects.filter(employee=pw.employee).count()

    resp = _erase(
        pw,
        api,
        django_capture_on_commit_callbacks,
        {
            "subject_type": "employee",
            "id": pw.employee.pk,
            "reason": "Former employee's erasure request",
            "confirm": pw.employee.external_id,
        },
    )
    assert resp.status_code == 201, resp.content
    for needle in (EMPLOYEE_NAME, EMPLOYEE_EMAIL, "Quimby", user.username):
        assert db_columns_containing(needle) == [], needle
    with tenant_context(pw.org):
        emp = m.Employee.objects.get(pk=pw.employee.pk)
        assert emp.name == f"Erased employee #{emp.pk}" and emp.email == "" and not emp.active
        texts = set(fm.Answer.objects.filter(question_type="text").values_list("text", flat=True))
        # The first name alone is redacted where written as a name, not the word "will".
        assert "Ask for [redacted], he will help; [redacted] rocks" in texts
        assert "[redacted] ignored me." in texts
        assert not m.Membership.objects.get(user=user).is_active
        assert Account.objects.get(kind="wallet", employee=emp).name == f"Wallet: Erased employee #{emp.pk}"
        assert LedgerTransaction.objects.filter(employee=emp).count() == awards_before
        assert m.AuditLog.objects.filter(action="privacy.erase", object_type="cem.Employee").exists()
    user.refresh_from_db()
    assert user.username == f"erased-{user.pk}" and not user.is_active and not user.has_usable_password()
    assert _scores(pw) == scores_before
    assert _wallet_balance(pw) == wallet_before
    assert rollups_equal_rebuild(pw.org)
    assert ledger_check()[0] == 0


def test_a_login_shared_with_another_organization_is_only_ended_here(
    pw, api, django_capture_on_commit_callbacks
):
    from tests import factories as f

    user = pw.world.users["employee"]
    f.MembershipFactory(organization=pw.world.b.org, user=user, role=m.Role.EXECUTIVE)
    resp = _erase(
        pw,
        api,
        django_capture_on_commit_callbacks,
        {
            "subject_type": "employee",
            "id": pw.employee.pk,
            "reason": "request",
            "confirm": pw.employee.external_id,
        },
    )
    assert resp.status_code == 201
    assert resp.json()["counts"]["logins_shared_with_other_organizations"] == 1
    user.refresh_from_db()
    assert user.is_active and user.username == "employee@acme.test"
    with tenant_context(pw.world.b.org):
        assert m.Membership.objects.get(user=user).is_active


def test_erasure_needs_the_typed_confirmation_and_a_reason(pw, api, django_capture_on_commit_callbacks):
    base = {"subject_type": "customer", "id": pw.customer.pk}
    resp = _erase(
        pw, api, django_capture_on_commit_callbacks, {**base, "reason": "x", "confirm": "acme-cust"}
    )
    assert resp.status_code == 400 and "confirm" in resp.json()
    resp = _erase(
        pw, api, django_capture_on_commit_callbacks, {**base, "reason": "  ", "confirm": "acme-cust-rv"}
    )
    assert resp.status_code == 400 and "reason" in resp.json()
    assert pw.count(m.Customer, pk=pw.customer.pk) == 1
    assert pw.count(PrivacyRequest) == 0


def test_an_admin_cannot_erase_their_own_login(pw, api, django_capture_on_commit_callbacks):
    from tests import factories as f

    admin = pw.admin
    with tenant_context(pw.org):
        emp = f.EmployeeFactory(organization=pw.org, name="Ada Admin")
        m.Membership.objects.filter(user=admin).update(employee=emp)
    resp = _erase(
        pw,
        api,
        django_capture_on_commit_callbacks,
        {"subject_type": "employee", "id": emp.pk, "reason": "test", "confirm": emp.external_id},
    )
    assert resp.status_code == 400 and "confirm" in resp.json()


def test_idempotency_key_makes_a_retried_erasure_one(pw, api, django_capture_on_commit_callbacks):
    client = api(pw.admin)
    body = {"subject_type": "customer", "id": pw.customer.pk, "reason": "ticket 9", "confirm": "acme-cust-rv"}
    first = client.post(ERASURES, body, format="json", HTTP_IDEMPOTENCY_KEY="erase-1")
    second = client.post(ERASURES, body, format="json", HTTP_IDEMPOTENCY_KEY="erase-1")
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and second.json() == first.json()
    assert pw.count(PrivacyRequest, kind="erasure") == 1


def test_org_b_cannot_erase_org_a_subjects(pw, api, client):
    for caller in (api(pw.world.users["outsider"]), api(key=pw.world.b.api_key)):
        for subject_type, pk, ext in (
            ("customer", pw.customer.pk, "acme-cust-rv"),
            ("employee", pw.employee.pk, pw.employee.external_id),
        ):
            for ref in ({"id": pk}, {"external_id": ext}):
                resp = caller.post(
                    ERASURES,
                    {"subject_type": subject_type, **ref, "reason": "hostile", "confirm": ext},
                    format="json",
                )
                assert resp.status_code == 400, resp.content
    client.force_login(pw.world.users["outsider"])
    for url in (
        f"/manage/privacy/customers/{pw.customer.pk}/erase/",
        f"/manage/privacy/employees/{pw.employee.pk}/erase/",
    ):
        assert client.get(url).status_code == 404
        resp = client.post(url, {"reason": "hostile", "confirm": "acme-cust-rv"})
        assert resp.status_code == 404
    assert pw.count(m.Customer, pk=pw.customer.pk) == 1
    with tenant_context(pw.org):
        assert m.Employee.objects.get(pk=pw.employee.pk).name == EMPLOYEE_NAME
    assert db_columns_containing(CUSTOMER_EMAIL)


def test_store_managers_cannot_erase(pw, api):
    body = {"subject_type": "customer", "id": pw.customer.pk, "reason": "x", "confirm": "acme-cust-rv"}
    assert api(pw.world.users["manager"]).post(ERASURES, body, format="json").status_code == 403
