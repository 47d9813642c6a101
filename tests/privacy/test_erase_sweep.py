"""An erasure in two steps: the request erases the person's own records at once and is
"redacting"; the sweep of the organization's free text (cem.privacy_erasure_sweep, queued on
commit) then completes it — counts, finished_at, the identifiers it kept for this emptied.
Idempotent, retried, never outside the tenant, and the same redaction in SQL as in Python."""

from __future__ import annotations

import datetime as dt

import pytest
from celery.exceptions import Retry
from django.db import OperationalError, connection

from cem import models as m
from cem import privacy
from cem.models.privacy import PrivacyRequest
from cem.privacy_tasks import privacy_erasure_sweep
from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import LedgerTransaction
from tests.privacy.helpers import (
    CUSTOMER_EMAIL,
    CUSTOMER_NAME,
    CUSTOMER_PHONE,
    db_columns_containing,
    ledger_check,
)

pytestmark = pytest.mark.django_db
ERASURES = "/api/v1/privacy/erasures/"
COLLEAGUE_NOTE = f"Found the card of {CUSTOMER_NAME} <{CUSTOMER_EMAIL}>"
BODY = {
    "subject_type": "customer",
    "external_id": "acme-cust-rv",
    "reason": "Erasure request, ticket 4711",
    "confirm": "acme-cust-rv",
    "redact_terms": [CUSTOMER_NAME],
}


@pytest.fixture
def named(pw):
    """The customer named where only the sweep reaches: a ledger note on a colleague's wallet
    and an event payload, in org A; and the same words in org B, which is no business of A's."""
    colleague = pw.world.a.employees["a-n2"]
    with tenant_context(pw.org):
        wallet = ledger.wallet_for(org=pw.org, employee=colleague)
        tx = ledger.adjust(org=pw.org, account=wallet, points=5, note=COLLEAGUE_NOTE)
        m.OutboxEvent.objects.create(
            organization=pw.org, event_type="PointsRedeemed", payload={"to": [CUSTOMER_PHONE], "n": 2}
        )
    b = pw.world.b
    with tenant_context(b.org):
        b_wallet = ledger.wallet_for(org=b.org, employee=next(iter(b.employees.values())))
        b_tx = ledger.adjust(org=b.org, account=b_wallet, points=5, note=COLLEAGUE_NOTE)
    return tx, b_tx


def _note(org, tx) -> str:
    with tenant_context(org):
        return LedgerTransaction.objects.get(pk=tx.pk).note


def _request(pw, pk) -> PrivacyRequest:
    with tenant_context(pw.org):
        return PrivacyRequest.objects.get(pk=pk)


def _erase_held(pw, api, capture):
    """Erase through the API; the on-commit callbacks (the sweep's enqueue) are held back."""
    with capture() as callbacks:
        resp = api(pw.admin).post(ERASURES, BODY, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json(), callbacks


def test_the_request_is_redacting_until_the_sweep_completes_it(
    pw, named, api, client, django_capture_on_commit_callbacks
):
    tx, b_tx = named
    body, callbacks = _erase_held(pw, api, django_capture_on_commit_callbacks)
    # The person's own records are gone when the request answers ...
    assert body["status"] == "redacting" and body["finished_at"] is None
    assert pw.count(m.Customer, pk=pw.customer.pk) == 0
    assert "acme-cust-rv" not in str(body)
    # ... what others wrote about them waits for the sweep, which alone keeps their identifiers.
    assert _note(pw.org, tx) == COLLEAGUE_NOTE
    req = _request(pw, body["id"])
    assert req.status == "redacting"
    assert set(req.sweep_identifiers["terms"]) == {CUSTOMER_EMAIL, CUSTOMER_PHONE, CUSTOMER_NAME}
    assert "cem_privacyrequest.sweep_identifiers" in db_columns_containing(CUSTOMER_EMAIL)
    # Shown as erased and redacting, never with the identifiers; the page polls.
    client.force_login(pw.admin)
    page = client.get(f"/manage/privacy/requests/{req.pk}/").content.decode()
    assert 'data-status="redacting"' in page and "hx-get" in page
    assert "Erased — redacting free text" in page
    detail = api(pw.admin).get(f"{ERASURES}{req.pk}/")
    assert detail.json()["status"] == "redacting"
    for shown in (page, detail.content.decode()):
        assert CUSTOMER_EMAIL not in shown and CUSTOMER_PHONE not in shown

    for callback in callbacks:
        callback()

    req = _request(pw, body["id"])
    assert req.status == "done" and req.finished_at is not None and req.error == ""
    assert req.sweep_identifiers == {}
    assert req.counts["incentives.LedgerTransaction.redacted"] == 1
    assert req.counts["cem.OutboxEvent.redacted"] == 1
    assert req.counts["feedback.Response.detached"] == 2  # the request's own counts stay
    assert _note(pw.org, tx) == "Found the card of [redacted] <[redacted]>"
    # Org B's words are org B's.
    assert _note(pw.world.b.org, b_tx) == COLLEAGUE_NOTE
    assert ledger_check()[0] == 0
    for needle in (CUSTOMER_PHONE, "acme-cust-rv"):
        assert db_columns_containing(needle) == [], needle
    assert db_columns_containing(CUSTOMER_EMAIL) == ["incentives_ledgertransaction.note"]  # org B's
    with tenant_context(pw.org):
        [completed] = m.AuditLog.objects.filter(action="privacy.erase.completed")
        assert completed.object_id == str(req.pk) and completed.changes["counts"] == req.counts
    done = api(pw.admin).get(f"{ERASURES}{req.pk}/").json()
    assert done["status"] == "done" and done["finished_at"] and done["counts"] == req.counts
    page = client.get(f"/manage/privacy/requests/{req.pk}/").content.decode()
    assert 'data-status="done"' in page and "hx-get" not in page
    assert "Completed" in page and 'data-testid="completed-at"' in page


def test_running_the_sweep_again_changes_nothing(pw, named, api, django_capture_on_commit_callbacks):
    tx, _ = named
    body, callbacks = _erase_held(pw, api, django_capture_on_commit_callbacks)
    for callback in callbacks:
        callback()
    req = _request(pw, body["id"])
    before = (req.status, req.counts, req.finished_at, _note(pw.org, tx))
    with tenant_context(pw.org):
        logs = m.AuditLog.objects.count()
    # A redelivered task: the request is done, nothing is read or written.
    assert privacy_erasure_sweep.delay(pw.org.pk, req.pk).get() == {}
    req = _request(pw, body["id"])
    assert (req.status, req.counts, req.finished_at, _note(pw.org, tx)) == before
    with tenant_context(pw.org):
        assert m.AuditLog.objects.count() == logs
    # A sweep that died after redacting everything, before it could say so, runs again: nothing
    # is left to change and nothing is counted twice.
    with tenant_context(pw.org):
        PrivacyRequest.objects.filter(pk=req.pk).update(
            status="redacting",
            finished_at=None,
            sweep_identifiers={"terms": [CUSTOMER_EMAIL], "name_parts": []},
        )
    privacy_erasure_sweep.delay(pw.org.pk, req.pk)
    req = _request(pw, body["id"])
    assert req.status == "done" and req.counts == before[1] and req.sweep_identifiers == {}
    assert _note(pw.org, tx) == before[3]


def _failing(monkeypatch, key: str, times: int) -> dict:
    """The sweep fails on the target ``key`` (the connection dropped) ``times`` times."""
    real = privacy.sweep_target
    calls = {"failed": 0}

    def sweep_target(request_id, target, redactor):
        if target.key == key and calls["failed"] < times:
            calls["failed"] += 1
            raise OperationalError("server closed the connection unexpectedly")
        return real(request_id, target, redactor)

    monkeypatch.setattr(privacy, "sweep_target", sweep_target)
    return calls


def test_a_failing_sweep_leaves_the_request_redacting_and_a_retry_completes_it(
    pw, named, api, monkeypatch, django_capture_on_commit_callbacks
):
    tx, _ = named
    # Small windows and statements, as on a large organization: each window its own transaction.
    monkeypatch.setattr(privacy, "SWEEP_WINDOW", 3)
    monkeypatch.setattr(privacy, "UPDATE_CHUNK", 1)
    # The outbox is swept before the ledger (models in label order), which then fails.
    calls = _failing(monkeypatch, "incentives.LedgerTransaction.redacted", times=2)
    with django_capture_on_commit_callbacks(execute=True):
        resp = api(pw.admin).post(ERASURES, BODY, format="json")
    assert resp.status_code == 201, resp.content  # the erasure itself stands
    assert calls["failed"] == 1
    req = _request(pw, resp.json()["id"])
    assert req.status == "redacting" and req.finished_at is None
    assert req.error == "Redacting free text was interrupted (OperationalError); it is retried."
    assert req.sweep_identifiers["terms"]  # still needed
    # What was swept before the failure stays swept and counted once; the rest waits.
    assert req.counts["cem.OutboxEvent.redacted"] == 1
    assert _note(pw.org, tx) == COLLEAGUE_NOTE
    # The task asks Celery to run it again (a worker does, with backoff; eager mode hands the
    # request back here), and fails again.
    with pytest.raises(Retry):
        privacy_erasure_sweep.delay(pw.org.pk, req.pk)
    assert calls["failed"] == 2 and _request(pw, req.pk).status == "redacting"

    privacy_erasure_sweep.delay(pw.org.pk, req.pk)  # the retry that gets through
    req = _request(pw, req.pk)
    assert req.status == "done" and req.error == "" and req.sweep_identifiers == {}
    assert req.counts["cem.OutboxEvent.redacted"] == 1
    assert req.counts["incentives.LedgerTransaction.redacted"] == 1
    assert _note(pw.org, tx) == "Found the card of [redacted] <[redacted]>"
    assert privacy_erasure_sweep.max_retries and privacy_erasure_sweep.retry_backoff


def test_the_daily_retention_run_queues_a_lost_sweep_again(
    pw, named, api, django_capture_on_commit_callbacks
):
    body, _lost = _erase_held(pw, api, django_capture_on_commit_callbacks)
    with tenant_context(pw.org):
        PrivacyRequest.objects.filter(pk=body["id"]).update(
            created_at=dt.datetime.now(dt.UTC) - privacy.SWEEP_REQUEUE_AFTER - dt.timedelta(minutes=1)
        )
        with django_capture_on_commit_callbacks(execute=True):
            counts = privacy.retention_apply(organization=pw.org)
    assert counts["erasure_sweeps_requeued"] == 1
    req = _request(pw, body["id"])
    assert req.status == "done" and req.sweep_identifiers == {}


@pytest.mark.parametrize(
    "value",
    [
        "Jordan Quimby was great, JORDAN QUIMBY too",
        "jordan.quimby@acme.test wrote; Jordan's shift; Jordanx; x_Jordan; jordan (lower)",
        "Ask for Jordan, he will help; Quimby rocks",
        "Zoë Ärger and ZOË ÄRGER and zoë ärger",
        "call +1 555-0199-321 or +15550199321 or 1+15550199321",
        "a.b+c@x.io a1b+c@x.io (a.b+c@x.io)",
        "Jordan\nQuimby on two lines, Jordan Quimby on one",
        "",
    ],
)
def test_the_database_redacts_text_as_python_does(value):
    redactor = privacy.Redactor(
        ["Jordan Quimby", "jordan.quimby@acme.test", "Zoë Ärger", "+15550199321", "a.b+c@x.io"],
        ["Jordan", "Quimby"],
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT regexp_replace(%s, %s, %s, 'g')", [value, redactor.sql_pattern, privacy.REDACTED]
        )
        assert cursor.fetchone()[0] == redactor.text(value)
