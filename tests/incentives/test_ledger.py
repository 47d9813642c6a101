"""The ledger's movements: awards, holds, settlement, refunds, reversals, expiry, idempotency."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from dateutil.relativedelta import relativedelta
from django.utils import timezone

from cem.models import AuditLog, OutboxEvent
from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import Account, IncentiveSettings, LedgerTransaction, PointsLot
from tests.incentives.ledger_helpers import funded_budget, ledger_check, rule_on

AK = Account.Kind


@pytest.fixture
def setup(world):
    org = world.a.org
    with tenant_context(org):
        budget = funded_budget(org, 1000)
        rule = rule_on(org, budget)
        yield org, world.a.employees["a-n1"], budget, rule


def _balances(*accounts):
    return [Account.objects.get(pk=a.pk).balance for a in accounts]


def test_award_moves_budget_to_wallet_once_per_key(setup):
    org, emp, budget, rule = setup
    event = uuid.uuid4()
    tx = ledger.award(org=org, rule=rule, event_id=event, employee=emp, points=10, note="lesson")
    again = ledger.award(org=org, rule=rule, event_id=event, employee=emp, points=10, note="lesson")
    assert again.pk == tx.pk and again.replayed and not tx.replayed
    wallet = ledger.wallet_for(org=org, employee=emp)
    assert _balances(budget, wallet) == [990, 10]
    assert tx.key == f"award:{rule.pk}:{event}:{emp.pk}"
    assert OutboxEvent.objects.filter(event_type="PointsAwarded").count() == 1
    lot = PointsLot.objects.get(wallet=wallet)
    assert lot.remaining == 10 and lot.expires_at > timezone.now() + relativedelta(months=11)
    assert ledger_check()[0] == 0


def test_award_refused_when_the_budget_is_short(setup):
    org, emp, budget, rule = setup
    with pytest.raises(ledger.InsufficientPoints) as exc:
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=1001)
    assert exc.value.account.pk == budget.pk
    assert _balances(budget) == [1000]
    assert not LedgerTransaction.objects.filter(kind="award").exists()


def test_funding_is_audit_logged_and_issued(setup, world):
    org, _emp, budget, _rule = setup
    ledger.budget_fund(org=org, budget=budget, points=50, user=world.users["admin"], note="Q3 top-up")
    row = AuditLog.objects.get(action="points.fund")
    assert row.actor_user_id == world.users["admin"].pk and row.changes["points"] == 50
    issuance = ledger.system_account(org=org, kind=AK.ISSUANCE)
    assert _balances(issuance, budget) == [-1050, 1050]


def test_hold_settle_refund(setup):
    org, emp, _budget, rule = setup
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=100)
    wallet = ledger.wallet_for(org=org, employee=emp)
    clearing = ledger.system_account(org=org, kind=AK.CLEARING)
    redeemed = ledger.system_account(org=org, kind=AK.REDEEMED)
    h1 = ledger.hold(org=org, employee=emp, points=30, note="gift card")
    h2 = ledger.hold(org=org, employee=emp, points=50, note="mug")
    assert _balances(wallet, clearing) == [20, 80]
    with pytest.raises(ledger.InsufficientPoints):
        ledger.hold(org=org, employee=emp, points=21, note="too much")
    s1 = ledger.settle(org=org, hold=h1)
    assert ledger.settle(org=org, hold=h1).pk == s1.pk  # idempotent
    with pytest.raises(ledger.HoldClosed):
        ledger.refund(org=org, hold=h1, note="too late")
    r2 = ledger.refund(org=org, hold=h2, note="declined")
    with pytest.raises(ledger.HoldClosed):
        ledger.settle(org=org, hold=h2)
    assert _balances(wallet, clearing, redeemed) == [70, 0, 30]
    # The refunded lot's expiry counts from the hold, not from the refund.
    assert PointsLot.objects.get(transaction=r2).expires_at == h2.created_at + relativedelta(months=12)
    assert ledger_check()[0] == 0


def test_hold_with_a_key_is_idempotent(setup):
    org, emp, _budget, rule = setup
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=100)
    a = ledger.hold(org=org, employee=emp, points=60, note="x", key="redeem:1")
    b = ledger.hold(org=org, employee=emp, points=60, note="x", key="redeem:1")
    assert a.pk == b.pk
    assert ledger.wallet_for(org=org, employee=emp).balance == 40


def _spend_all_but(org, emp, rule, keep):
    tx = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=100)
    h = ledger.hold(org=org, employee=emp, points=100 - keep, note="spent")
    ledger.settle(org=org, hold=h)
    return tx


def test_reversal_with_points_still_in_the_wallet(setup, world):
    org, emp, budget, rule = setup
    tx = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=100)
    rev = ledger.reverse(org=org, transaction=tx, note="audit rescored", user=world.users["admin"])
    assert rev.reverses_id == tx.pk and rev.kind == "reversal"
    assert ledger.reverse(org=org, transaction=tx, note="again").pk == rev.pk
    wallet = ledger.wallet_for(org=org, employee=emp)
    assert _balances(budget, wallet) == [1000, 0]
    assert AuditLog.objects.filter(action="points.reverse").count() == 1
    payload = OutboxEvent.objects.get(event_type="PointsReversed").payload
    assert payload["debt"] == 0 and payload["written_off"] == 0 and payload["points"] == 100


def test_reversal_of_spent_points_is_written_off_by_default(setup):
    org, emp, budget, rule = setup
    tx = _spend_all_but(org, emp, rule, keep=30)
    ledger.reverse(org=org, transaction=tx, note="response deleted (GDPR)")
    wallet = ledger.wallet_for(org=org, employee=emp)
    write_off = ledger.system_account(org=org, kind=AK.WRITE_OFF)
    assert _balances(wallet, budget, write_off) == [0, 1000, -70]
    assert OutboxEvent.objects.get(event_type="PointsReversed").payload["written_off"] == 70
    assert not PointsLot.objects.filter(wallet=wallet, remaining__gt=0).exists()
    assert ledger_check()[0] == 0


def test_reversal_of_spent_points_leaves_a_debt_when_allowed(setup):
    org, emp, budget, rule = setup
    IncentiveSettings.objects.update_or_create(organization=org, defaults={"allow_debt": True})
    tx = _spend_all_but(org, emp, rule, keep=30)
    ledger.reverse(org=org, transaction=tx, note="fraud")
    wallet = Account.objects.get(pk=ledger.wallet_for(org=org, employee=emp).pk)
    assert wallet.balance == -70 and wallet.allow_negative
    assert _balances(budget) == [1000]
    assert OutboxEvent.objects.get(event_type="PointsReversed").payload["debt"] == 70
    # A wallet in debt cannot spend; the next award pays the debt first.
    with pytest.raises(ledger.InsufficientPoints):
        ledger.hold(org=org, employee=emp, points=1, note="x")
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=100)
    wallet.refresh_from_db()
    assert wallet.balance == 30 and not wallet.allow_negative
    assert sum(PointsLot.objects.filter(wallet=wallet).values_list("remaining", flat=True)) == 30
    assert ledger_check()[0] == 0


def test_only_movements_that_create_points_can_be_reversed(setup):
    org, emp, _budget, rule = setup
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=10)
    h = ledger.hold(org=org, employee=emp, points=5, note="x")
    with pytest.raises(ledger.LedgerError) as exc:
        ledger.reverse(org=org, transaction=h, note="no")
    assert exc.value.field == "transaction"


def test_expiry_is_first_in_first_out_with_partial_lots(setup):
    org, emp, _budget, rule = setup
    IncentiveSettings.objects.update_or_create(organization=org, defaults={"points_expire_months": 6})
    first = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40)
    PointsLot.objects.filter(transaction=first).update(
        created_at=timezone.now() - dt.timedelta(days=90), expires_at=timezone.now() + relativedelta(months=3)
    )
    second = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=60)
    # Spending 50 takes all of the first lot and 10 of the second.
    ledger.settle(org=org, hold=ledger.hold(org=org, employee=emp, points=50, note="spend"))
    lots = {lot.transaction_id: lot.remaining for lot in PointsLot.objects.all()}
    assert lots == {first.pk: 0, second.pk: 50}
    wallet = ledger.wallet_for(org=org, employee=emp)

    assert ledger.expire_due(org=org, now=timezone.now() + relativedelta(months=4)) == []
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=5)
    later = timezone.now() + relativedelta(months=6, days=1)
    expired = ledger.expire_due(org=org, now=later)
    assert [tx.kind for tx in expired] == ["expire"]
    # The second lot (50 left) and the 5 just earned both passed their date.
    assert _balances(wallet, ledger.system_account(org=org, kind=AK.EXPIRED)) == [0, 55]
    assert ledger.expire_due(org=org, now=later) == []
    assert OutboxEvent.objects.filter(event_type="PointsExpired").count() == 1
    assert ledger_check()[0] == 0


def test_expiry_only_takes_lots_past_their_date(setup):
    org, emp, _budget, rule = setup
    old = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40)
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=60)
    PointsLot.objects.filter(transaction=old).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    ledger.expire_due(org=org, now=timezone.now())
    wallet = ledger.wallet_for(org=org, employee=emp)
    assert _balances(wallet) == [60]
    assert ledger_check()[0] == 0


def test_expire_task_runs_per_tenant(setup):
    from incentives import tasks

    org, emp, _budget, rule = setup
    tx = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40)
    PointsLot.objects.filter(transaction=tx).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert tasks.points_expire.run(org.pk) == 1  # run: the worker's tenant context is already open
    assert ledger.wallet_for(org=org, employee=emp).balance == 0


def test_statement_lists_every_movement_with_its_reason(setup):
    org, emp, _budget, rule = setup
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40, note="Lesson done")
    ledger.hold(org=org, employee=emp, points=15, note="Coffee card")
    st = ledger.statement(org=org, employee=emp)
    assert st.balance == 25
    assert [(e.amount, e.transaction.note) for e in st.entries] == [(-15, "Coffee card"), (40, "Lesson done")]
    assert st.expiring[0]["points"] == 25
    nobody = ledger.statement(org=org, employee=emp.__class__.objects.exclude(pk=emp.pk).first())
    assert nobody.wallet is None and nobody.balance == 0 and list(nobody.entries) == []


def test_adjustment_requires_a_note(setup, world):
    org, emp, _budget, _rule = setup
    wallet = ledger.wallet_for(org=org, employee=emp)
    with pytest.raises(ledger.LedgerError) as exc:
        ledger.adjust(org=org, account=wallet, points=5, note=" ", user=world.users["admin"])
    assert exc.value.field == "note"
    ledger.adjust(org=org, account=wallet, points=5, note="missed award", user=world.users["admin"])
    assert AuditLog.objects.filter(action="points.adjust").count() == 1
    with pytest.raises(ledger.InsufficientPoints):
        ledger.adjust(org=org, account=wallet, points=-6, note="too much", user=world.users["admin"])


def test_reversing_a_funding_needs_the_points_still_in_the_budget(setup):
    org, emp, budget, rule = setup
    fund = ledger.budget_fund(org=org, budget=budget, points=100, note="top-up")
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=1050)
    with pytest.raises(ledger.InsufficientPoints) as exc:
        ledger.reverse(org=org, transaction=fund, note="funded twice")
    assert exc.value.account.pk == budget.pk
    ledger.budget_fund(org=org, budget=budget, points=100, note="more")
    rev = ledger.reverse(org=org, transaction=fund, note="funded twice")
    assert _balances(budget) == [50] and rev.reverses_id == fund.pk
    with pytest.raises(ledger.LedgerError):
        ledger.reverse(org=org, transaction=rev, note="reverse the reversal")
    assert ledger_check()[0] == 0


def test_a_refusal_leaves_the_callers_transaction_usable(setup):
    from django.db import transaction

    org, emp, budget, rule = setup
    with transaction.atomic():
        with pytest.raises(ledger.InsufficientPoints):
            ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=5000)
        # e.g. the rewards handler records its skip in the same transaction
        tx = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=5)
    assert LedgerTransaction.objects.filter(pk=tx.pk).exists() and _balances(budget) == [995]


def test_ledger_check_covers_every_organization(setup, world):
    from django.db.models import F

    org, emp, _budget, rule = setup
    ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=10)
    org_b, emp_b = world.b.org, world.b.employees["b-1"]
    with tenant_context(org_b):
        rule_b = rule_on(org_b, funded_budget(org_b, 100, name="beta budget"), name="beta rule")
        ledger.award(org=org_b, rule=rule_b, event_id=uuid.uuid4(), employee=emp_b, points=10)
        assert ledger_check()[0] == 0
        Account.objects.filter(kind=AK.BUDGET).update(balance=F("balance") + 1)
    with tenant_context(org):  # whatever the caller's tenant, the check reads every tenant
        code, output = ledger_check()
    assert code == 2 and f"org {org_b.pk}:" in output and f"org {org.pk}:" not in output
    from django.core.management import call_command

    call_command("ledger_check", organization=org.pk)  # one organization: clean, no exit


def test_expiry_dispatch_queues_one_task_per_organization_with_due_lots(setup, world, monkeypatch):
    from incentives import tasks

    org, emp, _budget, rule = setup
    tx = ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40)
    queued = []
    monkeypatch.setattr(tasks.points_expire, "delay", lambda tenant_id: queued.append(tenant_id))
    assert tasks.points_expire_dispatch() == 0
    PointsLot.objects.filter(transaction=tx).update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    assert tasks.points_expire_dispatch() == 1 and queued == [org.pk]
    from incentives.beat import BEAT_SCHEDULE

    assert BEAT_SCHEDULE["incentives-points-expire"]["task"] == tasks.points_expire_dispatch.name


def test_events_leave_once_the_movement_commits(setup, django_capture_on_commit_callbacks):
    org, emp, _budget, rule = setup
    event = uuid.uuid4()
    with django_capture_on_commit_callbacks() as callbacks:
        ledger.award(org=org, rule=rule, event_id=event, employee=emp, points=5)
        ledger.award(org=org, rule=rule, event_id=event, employee=emp, points=5)  # replay: no event
    assert len(callbacks) == 1
    row = OutboxEvent.objects.get(event_type="PointsAwarded")
    assert (
        row.payload["source_event_id"] == str(event) and row.payload["location_id"] == emp.current_location_id
    )


def test_a_write_off_account_made_elsewhere_becomes_a_contra_account(setup):
    org, emp, _budget, rule = setup
    Account.objects.create(organization=org, kind=AK.WRITE_OFF, name="Written off")
    tx = _spend_all_but(org, emp, rule, keep=0)
    ledger.reverse(org=org, transaction=tx, note="fraud")
    assert ledger.system_account(org=org, kind=AK.WRITE_OFF).balance == -100
    assert ledger_check()[0] == 0
