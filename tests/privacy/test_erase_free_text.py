"""Erasure reaches free text wherever our own services copied it: ledger notes (the ledger stays
balanced and its amounts untouched), redemption notes, recognition messages, assignment notes,
event and webhook payloads, stored API responses, the request's own reason. Checked by scanning
every text, JSON and bytes column of the database for the name and the email."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from cem import models as m
from cem import privacy
from cem.db.purge import ledger_redaction
from cem.events import emit
from cem.principals import Actor
from cem.tenancy import tenant_context
from incentives import ledger, redemptions
from incentives.models import Account, CatalogItem, LedgerEntry, LedgerTransaction, Recognition
from incentives.recognition import recognise, recognition_budget
from learning import assignments as learning_assignments
from learning.models import Assignment
from tests.learning.factories import AssignmentFactory
from tests.privacy.helpers import EMPLOYEE_EMAIL, EMPLOYEE_NAME, db_columns_containing, ledger_check

pytestmark = pytest.mark.django_db
ERASURES = "/api/v1/privacy/erasures/"
CUSTOMER_EMAIL = "zed.quorra@example.com"
CUSTOMER_PHONE = "+15550123987"


def _ledger_amounts(org) -> list[tuple]:
    with tenant_context(org):
        return list(
            LedgerEntry.objects.order_by("pk").values_list(
                "pk", "transaction_id", "account_id", "amount", "balance_after"
            )
        )


def _ledger_rows(org) -> list[tuple]:
    """Every transaction column but the note."""
    with tenant_context(org):
        return list(
            LedgerTransaction.objects.order_by("pk").values_list(
                "pk", "kind", "key", "rule_id", "event_id", "employee_id", "reverses_id", "created_at"
            )
        )


def _balance(org, account) -> int:
    with tenant_context(org):
        return Account.objects.get(pk=account.pk).balance


def _adjust(api, user, account, note, key):
    resp = api(user).post(
        f"/api/v1/points-accounts/{account.pk}/adjust/",
        {"points": 15, "note": note},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )
    assert resp.status_code == 201, resp.content
    return resp


def _employee_named_everywhere(pw, api, capture):
    """The employee's name and email written where the services keep free text."""
    org, emp, admin = pw.org, pw.employee, pw.admin
    colleague = pw.world.a.employees["a-n2"]
    with tenant_context(org):
        wallet = ledger.wallet_for(org=org, employee=emp)
        colleague_wallet = ledger.wallet_for(org=org, employee=colleague)
    # Manual adjustments (through the API, so the stored Idempotency-Key response carries the note).
    _adjust(api, admin, wallet, f"Points for {EMPLOYEE_NAME}: Jordan covered a shift", "adj-own")
    _adjust(api, admin, colleague_wallet, f"Helped {EMPLOYEE_NAME} ({EMPLOYEE_EMAIL}) at close", "adj-other")
    with capture(execute=True), tenant_context(org):
        manager = m.Membership.objects.get(user=pw.world.users["manager"])
        ledger.budget_fund(org=org, budget=recognition_budget(org=org), points=100, note="seed")
        recognise(
            org=org,
            actor=Actor(user_id=manager.user_id),
            membership=manager,
            receiver=emp,
            points=5,
            message=f"Thank you {EMPLOYEE_NAME}, the customer wrote in!",
        )
        item = CatalogItem.objects.create(organization=org, name="acme mug", kind="merchandise", cost=10)
        redemption = redemptions.redeem(org=org, actor=Actor.system(), employee=emp, item=item)
        redemptions.decline(
            org=org,
            actor=Actor(user_id=admin.pk),
            redemption=redemption,
            reason=f"{EMPLOYEE_NAME} asked to cancel by email",
        )
        assignment = AssignmentFactory(organization=org, employee=emp)
        learning_assignments.assignment_withdraw(
            organization=org,
            actor=Actor(user_id=admin.pk),
            assignment=assignment,
            note=f"{EMPLOYEE_NAME} is moving to the warehouse",
        )
        emit(organization=org, event_type="PointsRedeemed", payload={"who": EMPLOYEE_NAME, "points": 10})
        endpoint = m.WebhookEndpoint.objects.create(
            organization=org, url="https://hooks.example.com/acme", event_types=["PointsRedeemed"]
        )
        m.WebhookDelivery.objects.create(
            organization=org,
            endpoint=endpoint,
            event_id=1,
            event_type="PointsRedeemed",
            payload={"data": {"note": f"for {EMPLOYEE_NAME} <{EMPLOYEE_EMAIL}>"}},
        )
    return wallet, colleague_wallet, assignment


def test_employee_erasure_leaves_the_name_in_no_column_and_the_ledger_as_it_was(
    pw, api, django_capture_on_commit_callbacks
):
    wallet, colleague_wallet, assignment = _employee_named_everywhere(
        pw, api, django_capture_on_commit_callbacks
    )
    # The scan sees every kind of copy while they are there.
    assert {
        "incentives_ledgertransaction.note",
        "incentives_redemption.note",
        "incentives_recognition.message",
        "learning_assignment.withdrawn_note",
        "cem_outboxevent.payload",
        "cem_webhookdelivery.payload",
        "cem_idempotencyrecord.response_body",
    } <= set(db_columns_containing(EMPLOYEE_NAME))
    amounts, rows = _ledger_amounts(pw.org), _ledger_rows(pw.org)
    balances = (_balance(pw.org, wallet), _balance(pw.org, colleague_wallet))
    assert ledger_check()[0] == 0

    with django_capture_on_commit_callbacks(execute=True):
        resp = api(pw.admin).post(
            ERASURES,
            {
                "subject_type": "employee",
                "id": pw.employee.pk,
                "reason": f"Erasure asked by {EMPLOYEE_NAME} on 2 March",
                "confirm": pw.employee.external_id,
            },
            format="json",
        )
    assert resp.status_code == 201, resp.content

    for needle in (EMPLOYEE_NAME, EMPLOYEE_EMAIL, "Quimby"):
        assert db_columns_containing(needle) == [], needle
    # The ledger: the same transactions, entries, amounts and balances; only the words changed.
    assert _ledger_amounts(pw.org) == amounts
    assert _ledger_rows(pw.org) == rows
    assert ledger_check()[0] == 0
    with tenant_context(pw.org):
        notes = set(LedgerTransaction.objects.values_list("note", flat=True))
        # Their own movements lose every name they go by, the first name too ...
        assert "Points for [redacted]: [redacted] covered a shift" in notes
        assert "Declined: [redacted] asked to cancel by email" in notes
        # ... a colleague's only the full name and the email (another Jordan keeps theirs).
        assert "Helped [redacted] ([redacted]) at close" in notes
        assert Recognition.objects.get().message == "Thank you [redacted], the customer wrote in!"
        assert (
            Assignment.objects.get(pk=assignment.pk).withdrawn_note == "[redacted] is moving to the warehouse"
        )
        log = m.AuditLog.objects.get(action="privacy.erase")
        assert log.object_id == str(pw.employee.pk)
        assert log.changes["reason"] == "Erasure asked by [redacted] on 2 March"
        assert log.changes["counts"]["ledger_notes_redacted"] == 2
        # The colleague's note is the sweep's, after the request: on its completion row.
        done = m.AuditLog.objects.get(action="privacy.erase.completed")
        assert done.changes["counts"]["incentives.LedgerTransaction.redacted"] == 1
        assert done.changes["counts"]["recognitions_redacted"] == 1
    assert (_balance(pw.org, wallet), _balance(pw.org, colleague_wallet)) == balances


def test_customer_erasure_reaches_ledger_notes_and_stored_api_responses(
    pw, api, django_capture_on_commit_callbacks
):
    admin = api(pw.admin)
    resp = admin.post(
        "/api/v1/customers/",
        {
            "external_id": "acme-cust-zq",
            "email": CUSTOMER_EMAIL,
            "phone": CUSTOMER_PHONE,
            "consent_email": True,
        },
        format="json",
        HTTP_IDEMPOTENCY_KEY="cust-zq",
    )
    assert resp.status_code == 201, resp.content
    with tenant_context(pw.org):
        customer = m.Customer.objects.get(external_id="acme-cust-zq")
        wallet = ledger.wallet_for(org=pw.org, employee=pw.employee)
    _adjust(api, pw.admin, wallet, f"Found a lost card for {CUSTOMER_EMAIL} / {CUSTOMER_PHONE}", "adj-cust")
    assert "cem_idempotencyrecord.response_body" in db_columns_containing(CUSTOMER_EMAIL)
    amounts = _ledger_amounts(pw.org)

    with django_capture_on_commit_callbacks(execute=True):
        resp = admin.post(
            ERASURES,
            {
                "subject_type": "customer",
                "id": customer.pk,
                "reason": f"Request from {CUSTOMER_EMAIL}",
                "confirm": "acme-cust-zq",
            },
            format="json",
        )
    assert resp.status_code == 201, resp.content
    for needle in (CUSTOMER_EMAIL, CUSTOMER_PHONE):
        assert db_columns_containing(needle) == [], needle
    assert _ledger_amounts(pw.org) == amounts
    assert ledger_check()[0] == 0
    with tenant_context(pw.org):
        assert LedgerTransaction.objects.filter(note="Found a lost card for [redacted] / [redacted]").exists()
        assert m.AuditLog.objects.filter(
            action="privacy.erase", object_type="cem.Customer", object_id=str(customer.pk)
        ).exists()


def test_only_the_redaction_path_edits_the_ledger_and_only_its_notes(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        wallet = ledger.wallet_for(org=org, employee=emp)
        tx = ledger.adjust(org=org, account=wallet, points=5, note="for Pat Example")
        # The application role cannot edit a note, even with the setting on.
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SET LOCAL cem.ledger_redaction = 'on'")
            LedgerTransaction.objects.filter(pk=tx.pk).update(note="edited")
        # The redaction path changes the note, and nothing else: not a kind, not an amount.
        with ledger_redaction():
            LedgerTransaction.objects.filter(pk=tx.pk).update(note="for [redacted]")
        for attempt in (
            lambda: LedgerTransaction.objects.filter(pk=tx.pk).update(kind="fund"),
            lambda: LedgerTransaction.objects.filter(pk=tx.pk).update(note="x", employee=None),
            lambda: LedgerEntry.objects.filter(transaction=tx).update(amount=50),
            lambda: LedgerEntry.objects.filter(transaction=tx).delete(),
        ):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), ledger_redaction():
                attempt()
        tx.refresh_from_db()
        assert tx.note == "for [redacted]" and tx.kind == "adjust"
        assert sorted(LedgerEntry.objects.filter(transaction=tx).values_list("amount", flat=True)) == [-5, 5]
        with connection.cursor() as cur:
            cur.execute("SELECT current_setting('cem.ledger_redaction', true), current_user")
            setting, role = cur.fetchone()
        assert setting == "off" and role == connection.settings_dict["OPTIONS"]["assume_role"]


def test_the_sweep_covers_free_text_and_leaves_identities_alone():
    def swept(model):
        text, json_, binary = privacy.free_text_fields(model)
        return set(text + json_ + binary)

    from feedback import models as fm
    from incentives import models as im

    assert {"note"} <= swept(im.LedgerTransaction)
    assert {"note"} <= swept(im.Redemption)
    assert {"message"} <= swept(im.Recognition)
    assert {"reason", "withdrawn_note"} <= swept(Assignment)
    assert {"payload", "last_error"} <= swept(m.OutboxEvent)
    assert {"payload"} <= swept(m.WebhookDelivery)
    assert {"response_body"} <= swept(m.IdempotencyRecord)
    assert {"changes"} <= swept(m.AuditLog)
    assert {"text"} <= swept(fm.CaseNote)
    assert {"reason"} <= swept(m.PrivacyRequest)
    # Another person's own identity columns are theirs, even when they share the name.
    assert not swept(m.Employee) & {"name", "email", "external_id"}
    assert not swept(m.Customer) & {"email", "phone", "external_id"}
    assert not swept(Account) & {"name"}
    assert "key" not in swept(im.LedgerTransaction)


def test_a_recognition_message_is_kept_once_and_shown_on_the_statement(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        manager = m.Membership.objects.get(user=world.users["manager"])
        ledger.budget_fund(org=org, budget=recognition_budget(org=org), points=50, note="seed")
        rec = recognise(
            org=org,
            actor=Actor(user_id=manager.user_id),
            membership=manager,
            receiver=emp,
            points=5,
            message="Great greeting",
        )
        assert rec.transaction.note == ""
        wallet = ledger.wallet_for(org=org, employee=emp)
        assert wallet.name == f"Wallet: employee #{emp.pk}"
        [entry] = ledger.statement(org=org, employee=emp).entries
        assert entry.transaction.statement_note == "Recognition: Great greeting"
