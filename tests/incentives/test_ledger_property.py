"""Hypothesis stateful test of the ledger: random award / fund / redeem (hold) / settle / decline
(refund) / reverse / expire sequences, checked against a shadow model after every step.

Each example runs inside a savepoint rolled back at its end, so examples do not see each other;
the commit-time balance trigger therefore never fires here, which is why every step runs the
same reconciliation as ``manage.py ledger_check`` (balanced transactions, stored balances = sums
of entries, signs, lots) and the shadow model checks the amounts themselves.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cem.tenancy import tenant_context
from incentives import ledger
from incentives.management.commands.ledger_check import run_checks
from incentives.models import Account, IncentiveSettings, LedgerTransaction, PointsLot
from tests.incentives.ledger_helpers import rule_on

AK = Account.Kind
EXAMPLES = 1000
STEPS = 5
FUNDED = 2000  # each budget's points when an example starts


@dataclass
class Shadow:
    """What the balances and each wallet's lots must be (lots: [remaining, aged] oldest first)."""

    balances: dict[int, int] = field(default_factory=dict)
    lots: dict[int, list[list]] = field(default_factory=dict)

    def move(self, pk, amount):
        self.balances[pk] = self.balances.get(pk, 0) + amount

    def credit_wallet(self, pk, amount):
        old = self.balances.get(pk, 0)
        self.move(pk, amount)
        spendable = min(amount, max(old + amount, 0))
        if spendable > 0:
            self.lots.setdefault(pk, []).append([spendable, False])

    def debit_wallet(self, pk, amount):
        old = self.balances.get(pk, 0)
        self.move(pk, -amount)
        todo = min(amount, max(old, 0))
        for lot in self.lots.get(pk, []):
            take = min(lot[0], todo)
            lot[0] -= take
            todo -= take
        assert todo == 0


SNAPSHOT = """
WITH ent AS (
    SELECT account_id, SUM(amount) AS total, (ARRAY_AGG(balance_after ORDER BY id DESC))[1] AS last_after
      FROM incentives_ledgerentry WHERE organization_id = %(org)s GROUP BY account_id
), lots AS (
    SELECT wallet_id, SUM(remaining) AS open,
           JSON_AGG(remaining ORDER BY created_at, id) FILTER (WHERE remaining > 0) AS lots
      FROM incentives_pointslot WHERE organization_id = %(org)s GROUP BY wallet_id
)
SELECT (
    SELECT COUNT(*) FROM (
        SELECT t.id FROM incentives_ledgertransaction t
          LEFT JOIN incentives_ledgerentry e ON e.transaction_id = t.id
         WHERE t.organization_id = %(org)s
         GROUP BY t.id HAVING COALESCE(SUM(e.amount), 0) <> 0 OR COUNT(e.id) = 0
    ) bad
), (
    SELECT JSON_OBJECT_AGG(a.id, JSON_BUILD_ARRAY(
               a.balance, COALESCE(ent.total, 0), COALESCE(ent.last_after, 0), a.kind, a.allow_negative,
               COALESCE(lots.open, 0), lots.lots))
      FROM incentives_account a
      LEFT JOIN ent ON ent.account_id = a.id
      LEFT JOIN lots ON lots.wallet_id = a.id
     WHERE a.organization_id = %(org)s
)
"""


def _snapshot(org_id):
    with connection.cursor() as cursor:
        cursor.execute(SNAPSHOT, {"org": org_id})
        unbalanced, accounts = cursor.fetchone()
    return unbalanced, accounts if isinstance(accounts, dict) else json.loads(accounts)


def _machine(world, examples):
    org = world.a.org
    employees = list(world.a.employees.values())
    # The accounts and rules exist before the examples (each example rolls back to empty
    # balances), so an example spends its queries on movements, not on set-up.
    with tenant_context(org):
        IncentiveSettings.objects.update_or_create(
            organization=org, defaults={"allow_debt": False, "points_expire_months": 12}
        )
        budgets = [ledger.budget_create(org=org, name=f"prop budget {i}") for i in range(2)]
        for budget in budgets:
            ledger.budget_fund(org=org, budget=budget, points=FUNDED, note="before the examples")
        start = dict(Account.objects.exclude(balance=0).values_list("pk", "balance"))
        fixed = (
            budgets,
            [rule_on(org, b, name=f"prop rule {i}") for i, b in enumerate(budgets)],
            [ledger.wallet_for(org=org, employee=e) for e in employees],
            {k: ledger.system_account(org=org, kind=k) for k in Account.SYSTEM_KINDS},
        )

    class LedgerMachine(RuleBasedStateMachine):
        awards = Bundle("awards")
        holds = Bundle("holds")

        def __init__(self):
            super().__init__()
            self._tenant = tenant_context(org)
            self._tenant.__enter__()
            self._atomic = transaction.atomic()
            self._atomic.__enter__()
            self.shadow = Shadow(balances=dict(start))
            self.budgets, self.rules, self.wallets, self.sys = fixed
            self.allow_debt = False

        def teardown(self):
            examples.append(1)
            try:
                # What manage.py ledger_check runs, for this organization.
                assert run_checks(org.pk) == []
            finally:
                transaction.set_rollback(True)
                self._atomic.__exit__(None, None, None)
                self._tenant.__exit__(None, None, None)

        def bal(self, pk):
            return self.shadow.balances.get(pk, 0)

        # --- rules ---------------------------------------------------------------------------

        @rule(b=st.integers(0, 1), points=st.integers(1, 400))
        def fund(self, b, points):
            budget = self.budgets[b]
            ledger.budget_fund(org=org, budget=budget, points=points, note="prop")
            self.shadow.move(self.sys[AK.ISSUANCE].pk, -points)
            self.shadow.move(budget.pk, points)

        @rule(
            target=awards,
            b=st.integers(0, 1),
            e=st.integers(0, len(employees) - 1),
            points=st.integers(1, 150),
        )
        def award(self, b, e, points):
            budget, wallet = self.budgets[b], self.wallets[e]
            event = uuid.uuid4()
            if self.bal(budget.pk) < points:
                with pytest.raises(ledger.InsufficientPoints):
                    ledger.award(
                        org=org, rule=self.rules[b], event_id=event, employee=employees[e], points=points
                    )
                return None
            tx = ledger.award(
                org=org, rule=self.rules[b], event_id=event, employee=employees[e], points=points
            )
            self.shadow.move(budget.pk, -points)
            self.shadow.credit_wallet(wallet.pk, points)
            return (tx, b, e, event, points)

        @rule(a=awards)
        def award_again(self, a):
            if a is None:
                return
            tx, b, e, event, points = a
            again = ledger.award(
                org=org, rule=self.rules[b], event_id=event, employee=employees[e], points=points
            )
            assert again.pk == tx.pk and again.replayed

        @rule(target=holds, e=st.integers(0, len(employees) - 1), points=st.integers(1, 120))
        def redeem(self, e, points):
            wallet = self.wallets[e]
            if self.bal(wallet.pk) < points:
                with pytest.raises(ledger.InsufficientPoints):
                    ledger.hold(org=org, employee=employees[e], points=points, note="prop")
                return None
            tx = ledger.hold(org=org, employee=employees[e], points=points, note="prop")
            self.shadow.debit_wallet(wallet.pk, points)
            self.shadow.move(self.sys[AK.CLEARING].pk, points)
            return (tx, e, points)

        @rule(h=consumes(holds))
        def settle(self, h):
            if h is None:
                return
            tx, _e, points = h
            ledger.settle(org=org, hold=tx)
            self.shadow.move(self.sys[AK.CLEARING].pk, -points)
            self.shadow.move(self.sys[AK.REDEEMED].pk, points)
            with pytest.raises(ledger.HoldClosed):
                ledger.refund(org=org, hold=tx, note="too late")

        @rule(h=consumes(holds))
        def decline(self, h):
            if h is None:
                return
            tx, e, points = h
            ledger.refund(org=org, hold=tx, note="declined")
            self.shadow.move(self.sys[AK.CLEARING].pk, -points)
            self.shadow.credit_wallet(self.wallets[e].pk, points)

        @rule(a=awards)
        def reverse(self, a):
            if a is None:
                return
            tx, b, e, _event, points = a
            first = not LedgerTransaction.objects.filter(reverses=tx).exists()
            rev = ledger.reverse(org=org, transaction=tx, note="prop reversal")
            assert rev.reverses_id == tx.pk
            if not first:
                assert rev.replayed
                return
            wallet = self.wallets[e].pk
            have = max(self.bal(wallet), 0)
            self.shadow.move(self.budgets[b].pk, points)
            if have >= points or self.allow_debt:
                self.shadow.debit_wallet(wallet, points)
            else:
                if have:
                    self.shadow.debit_wallet(wallet, have)
                self.shadow.move(self.sys[AK.WRITE_OFF].pk, -(points - have))

        @rule()
        def toggle_debt(self):
            self.allow_debt = not self.allow_debt
            IncentiveSettings.objects.filter(organization=org).update(allow_debt=self.allow_debt)

        @rule(e=st.integers(0, len(employees) - 1), i=st.integers(0, 5))
        def age_lot(self, e, i):
            """Time passes for one lot: it is now past its expiry date."""
            wallet = self.wallets[e].pk
            open_lots = [lot for lot in self.shadow.lots.get(wallet, []) if lot[0] > 0]
            if i >= len(open_lots):
                return
            db_lots = list(
                PointsLot.objects.filter(wallet_id=wallet, remaining__gt=0).order_by("created_at", "pk")
            )
            assert [lot.remaining for lot in db_lots] == [lot[0] for lot in open_lots]
            PointsLot.objects.filter(pk=db_lots[i].pk).update(
                expires_at=timezone.now() - dt.timedelta(days=1)
            )
            open_lots[i][1] = True

        @rule()
        def expire(self):
            ledger.expire_due(org=org, now=timezone.now())
            for wallet, lots in self.shadow.lots.items():
                due = sum(lot[0] for lot in lots if lot[1])
                if due:
                    self.shadow.move(wallet, -due)
                    self.shadow.move(self.sys[AK.EXPIRED].pk, due)
                    for lot in lots:
                        if lot[1]:
                            lot[0] = 0

        # --- invariants ------------------------------------------------------------------------

        @invariant()
        def reconciles_and_matches_the_shadow(self):
            """One query: ledger_check's checks for this organization, and the shadow's amounts."""
            unbalanced, accounts = _snapshot(org.pk)
            assert unbalanced == 0, "a transaction does not balance"
            issued = 0
            for pk, (balance, entries, last_after, kind, allow_negative, open_lots, lots) in accounts.items():
                pk = int(pk)
                assert balance == entries == last_after, (pk, balance, entries, last_after)
                if kind in ("issuance", "write_off"):
                    assert balance <= 0, (kind, balance)
                elif kind == "wallet":
                    assert balance >= 0 or allow_negative, (pk, balance)
                    assert open_lots == max(balance, 0), (pk, open_lots, balance)
                    expected_lots = [lot[0] for lot in self.shadow.lots.get(pk, []) if lot[0] > 0]
                    assert (lots or []) == expected_lots, (pk, lots, expected_lots)
                else:
                    assert balance >= 0, (kind, balance)
                assert balance == self.shadow.balances.get(pk, 0), (pk, kind, balance, self.shadow.balances)
                if kind == "issuance":
                    issued = -balance
            # Property: everything issued is somewhere (in a budget, a wallet, on hold, spent,
            # expired), less what was written off.
            assert issued == sum(v[0] for v in accounts.values() if v[3] != "issuance")

    return LedgerMachine


def test_ledger_state_machine(world):
    examples: list[int] = []
    run_state_machine_as_test(
        _machine(world, examples),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    assert len(examples) >= EXAMPLES
