"""Real threads against PostgreSQL: lock order, racing keys, and ledger_check on a tampered row."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from cem.db.base import owner_session
from cem.tenancy import tenant_context, unscoped
from incentives import ledger
from incentives.models import Account, LedgerTransaction
from tests.incentives.ledger_helpers import funded_budget, ledger_check, rule_on

ROUNDS = 25


def _threads(*targets):
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(targets))

    def run(target):
        try:
            barrier.wait(timeout=10)
            target()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return errors


@pytest.mark.django_db(transaction=True)
def test_opposite_movements_between_two_accounts_do_not_deadlock(world):
    org = world.a.org
    with tenant_context(org):
        east = funded_budget(org, 1000, name="acme east")
        west = funded_budget(org, 1000, name="acme west")

    def mover(src, dst):
        def move():
            with tenant_context(org):
                for i in range(ROUNDS):
                    # The legs list the source first: a naive lock order would be opposite in the
                    # two threads and deadlock; post locks by id whatever the legs' order.
                    ledger.post(org=org, kind="adjust", legs=[(src, -3), (dst, 3)], note=f"move {i}")

        return move

    errors = _threads(mover(east, west), mover(west, east))
    assert errors == []
    with tenant_context(org):
        assert Account.objects.get(pk=east.pk).balance == 1000
        assert Account.objects.get(pk=west.pk).balance == 1000
        assert LedgerTransaction.objects.filter(kind="adjust").count() == 2 * ROUNDS
    assert ledger_check()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_the_same_award_racing_itself_is_posted_once(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        rule = rule_on(org, funded_budget(org, 1000))
    event = uuid.uuid4()
    results = []

    def award():
        with tenant_context(org):
            results.append(ledger.award(org=org, rule=rule, event_id=event, employee=emp, points=10).pk)

    assert _threads(*[award] * 4) == []
    assert len(set(results)) == 1
    with tenant_context(org):
        assert ledger.wallet_for(org=org, employee=emp).balance == 10
    assert ledger_check()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_never_overdraw_a_wallet(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        rule = rule_on(org, funded_budget(org, 1000))
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=100)
    outcomes = []

    def spend():
        with tenant_context(org):
            try:
                ledger.hold(org=org, employee=emp, points=30, note="race")
                outcomes.append("ok")
            except ledger.InsufficientPoints:
                outcomes.append("short")

    assert _threads(*[spend] * 6) == []
    assert sorted(outcomes) == ["ok"] * 3 + ["short"] * 3
    with tenant_context(org):
        assert ledger.wallet_for(org=org, employee=emp).balance == 10
    assert ledger_check()[0] == 0


@pytest.mark.django_db(transaction=True)
def test_ledger_check_reports_a_tampered_balance(world):
    org, emp = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        rule = rule_on(org, funded_budget(org, 1000))
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40)
        wallet = ledger.wallet_for(org=org, employee=emp)
    assert ledger_check()[0] == 0
    # The schema owner can still write the table directly: ledger_check is what catches it.
    with owner_session(), unscoped(), connection.cursor() as cursor:
        cursor.execute("UPDATE incentives_account SET balance = balance + 5 WHERE id = %s", [wallet.pk])
    code, output = ledger_check()
    assert code != 0
    assert f"account {wallet.pk}" in output and "stores 45, entries sum to 40" in output
    assert "lots do not match" in output and "does not sum to zero" in output
