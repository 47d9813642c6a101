"""The points ledger: the only code that moves points (everything else calls these functions).

Every movement is one :func:`post`: inside one database transaction it locks the accounts of its
legs with ``SELECT … FOR UPDATE`` **in id order** (so two movements between the same accounts in
opposite directions queue instead of deadlocking), refuses a leg that would take a wallet or a
budget below zero (:class:`InsufficientPoints`; the CHECK on ``Account.balance`` is the backstop),
writes the transaction, one entry per account with its ``balance_after``, and the new stored
balances. A ``key`` makes a movement idempotent: posting the same key again returns the first
transaction (checked once the locks are held, so a concurrent post of the same key waits and then
finds it).

Wallet credits become :class:`~incentives.models.PointsLot` rows that expire together
(``IncentiveSettings.points_expire_months`` after the credit); wallet debits consume lots first in,
first out, so the invariant ``sum(open lots) == max(wallet balance, 0)`` always holds and
``manage.py ledger_check`` verifies it. :func:`expire_due` debits exactly the lots past their date.

Reversals (:func:`reverse`) are new transactions linked by ``reverses`` (one per original). When
the wallet no longer holds the points (they were redeemed, held or expired):

- if the organization allows debt (``IncentiveSettings.allow_debt``), the wallet is debited in full
  and shows a negative balance (``allow_negative`` is set on it for as long as it is in debt);
  later credits pay the debt first and only the rest becomes spendable lots;
- otherwise the wallet gives back what it holds and the shortfall is **written off**: the budget
  still gets the whole award back (as far as the rule's budget is concerned the award never
  happened) and the organization's WRITE_OFF account, a contra account like ISSUANCE, goes down
  by the shortfall — so ``-WRITE_OFF.balance`` is every point the organization lost to reversals
  of spent awards, and the employee is never asked to pay back what they already redeemed.

Decided this way because a reversal usually comes from a dispute or a GDPR deletion the employee
had no part in; clawing back redeemed rewards is a policy an organization opts into (debt).

Human-initiated movements (funding, manual adjustments, reversals by a user) leave an audit-log
row; awards, reversals, redemptions' holds and expiries emit their outbox events in the same
transaction, delivered once it commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from dateutil.relativedelta import relativedelta
from django.db import IntegrityError, transaction
from django.db.models import Case, Sum, Value, When
from django.utils import timezone

from cem.events import emit
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from incentives.models import Account, IncentiveSettings, LedgerEntry, LedgerTransaction, PointsLot

Kind = LedgerTransaction.Kind
AK = Account.Kind

# Accounts that can never go below zero (ISSUANCE is minus everything issued; WRITE_OFF minus
# everything written off).
NON_NEGATIVE_KINDS = (AK.BUDGET, AK.WALLET, AK.CLEARING, AK.REDEEMED, AK.EXPIRED)
REVERSIBLE_KINDS = (Kind.AWARD, Kind.RECOGNITION, Kind.FUND, Kind.ADJUST)


class LedgerError(Exception):
    """A movement the ledger refuses; ``field`` names the input at fault for API answers."""

    field = "non_field_errors"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        if field:
            self.field = field


class InsufficientPoints(LedgerError):
    field = "points"

    def __init__(self, account: Account, *, needed: int | None = None):
        self.account = account
        self.needed = needed
        super().__init__(
            f"{account.name} holds {account.balance} points"
            + (f", {needed} needed" if needed is not None else "")
        )


class AlreadyReversed(LedgerError):
    field = "transaction"


class HoldClosed(LedgerError):
    field = "hold"


# --- settings and accounts --------------------------------------------------------------------


def _org_id(org) -> int:
    return getattr(org, "pk", org)


def incentive_settings(*, org) -> IncentiveSettings:
    org_id = _org_id(org)
    found = IncentiveSettings.objects.filter(organization_id=org_id).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return IncentiveSettings.objects.create(organization_id=org_id)
    except IntegrityError:
        return IncentiveSettings.objects.get(organization_id=org_id)


def _get_or_create(lookup: dict, defaults: dict) -> Account:
    found = Account.objects.filter(**lookup).first()
    if found is not None:
        return found
    # A concurrent first use creates the same row: the partial unique index makes one of them
    # lose, and the loser reads the winner's row (savepoint, so the caller's transaction lives on).
    try:
        with transaction.atomic():
            return Account.objects.create(**lookup, **defaults)
    except IntegrityError:
        return Account.objects.get(**lookup)


def system_account(*, org, kind) -> Account:
    if kind not in Account.SYSTEM_KINDS:
        raise ValueError(f"{kind!r} is not a system account kind")
    label = Account.Kind(kind).label
    account = _get_or_create(
        {"organization_id": _org_id(org), "kind": kind},
        {"name": label, "allow_negative": kind == AK.WRITE_OFF},
    )
    if kind == AK.WRITE_OFF and not account.allow_negative:
        # A WRITE_OFF account made elsewhere (a fixture, an old seed): it is a contra account.
        Account.objects.filter(pk=account.pk).update(allow_negative=True)
        account.allow_negative = True
    return account


def wallet_for(*, org, employee) -> Account:
    return _get_or_create(
        {"organization_id": _org_id(org), "kind": AK.WALLET, "employee": employee},
        # An id, not the name: account names are copied into reports and logs, and people leave.
        {"name": f"Wallet: employee #{employee.pk}"},
    )


def budget_create(*, org, name: str, location=None, manager=None, actor: Actor | None = None) -> Account:
    """A budget account (empty; :func:`budget_fund` fills it)."""
    _check_tenant(org)
    with transaction.atomic():
        budget = Account.objects.create(
            organization_id=_org_id(org), kind=AK.BUDGET, name=name, location=location, manager=manager
        )
        if actor is not None:
            audit_log_write(
                organization=org,
                actor=actor,
                action="points.budget_create",
                instance=budget,
                changes={"name": name},
            )
    return budget


def _lock(accounts: Iterable[Account]) -> dict[int, Account]:
    """Lock the accounts in id order (the one order every movement uses) and return fresh rows."""
    ids = sorted({a.pk for a in accounts})
    locked = {a.pk: a for a in Account.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    return locked


def _expiry(org, base: dt.datetime) -> dt.datetime | None:
    months = incentive_settings(org=org).points_expire_months
    return None if months is None else base + relativedelta(months=months)


# --- the one write path ----------------------------------------------------------------------


def _existing(org_id: int, key: str | None) -> LedgerTransaction | None:
    if key is None:
        return None
    found = LedgerTransaction.objects.filter(organization_id=org_id, key=key).first()
    if found is not None:
        found.replayed = True
    return found


def post(
    *,
    org,
    kind,
    legs: list[tuple[Account, int]],
    key: str | None = None,
    rule=None,
    event_id=None,
    employee=None,
    note: str = "",
    reverses: LedgerTransaction | None = None,
    created_by=None,
    debt_ok: Iterable[int] = (),
    consume: dict[int, list[PointsLot]] | None = None,
    lot_base: dt.datetime | None = None,
    guard: Callable[[dict[int, Account]], None] | None = None,
    after: Callable[[LedgerTransaction], None] | None = None,
) -> LedgerTransaction:
    """Write one balanced transaction (see the module docstring).

    ``debt_ok``: wallet ids this movement may take below zero (a reversal in debt mode only).
    ``consume``: wallet id → the exact lots a debit of that wallet uses (expiry), else FIFO.
    ``lot_base``: when lots created by this movement start their expiry clock (default now).
    ``guard(locked_accounts)``: runs once the accounts are locked and may refuse by raising.
    ``after(tx)``: runs in the same database transaction once a new movement is written (its
    event, its audit-log row); not on a replay.
    One savepoint when called inside a transaction, so a refusal leaves the caller's usable.
    The returned transaction has ``replayed`` True when the key had already been posted.
    """
    org_id = _check_tenant(org)
    if kind not in Kind.values:
        raise LedgerError(f"{kind!r} is not a kind of movement", field="kind")
    merged: dict[int, int] = {}
    by_id: dict[int, Account] = {}
    for account, amount in legs:
        if account.organization_id != org_id:
            raise LedgerError("an account of another organization", field="account")
        merged[account.pk] = merged.get(account.pk, 0) + int(amount)
        by_id[account.pk] = account
    merged = {pk: amount for pk, amount in merged.items() if amount != 0}
    if sum(merged.values()) != 0:
        raise LedgerError(f"legs do not balance (sum {sum(merged.values())})", field="legs")
    if not merged:
        raise LedgerError("a transaction moves points", field="points")

    with transaction.atomic():
        locked = _lock(by_id.values())
        # After the locks: a post of the same key that held them before us has committed by now.
        found = _existing(org_id, key)
        if found is not None:
            return found
        if guard is not None:
            guard(locked)
        debt_ok = set(debt_ok)
        for pk, amount in merged.items():
            account = locked[pk]
            new = account.balance + amount
            if amount < 0 and new < 0 and account.kind in NON_NEGATIVE_KINDS and pk not in debt_ok:
                raise InsufficientPoints(account, needed=-amount)

        now = timezone.now()
        tx = LedgerTransaction(
            organization_id=org_id,
            kind=kind,
            key=key,
            rule=rule,
            event_id=event_id,
            employee_id=getattr(employee, "pk", employee),
            note=note[:400],
            reverses=reverses,
            created_by=created_by,
            created_at=now,
        )
        # Two posts of one key over different accounts would not queue on the same locks; the
        # key's unique index refuses the second one (never expected: a key names its accounts).
        tx.save(force_insert=True)

        entries = []
        for pk in sorted(merged):
            account, amount = locked[pk], merged[pk]
            old = account.balance
            account.balance = old + amount
            entries.append(
                LedgerEntry(
                    organization_id=org_id,
                    transaction=tx,
                    account=account,
                    amount=amount,
                    balance_after=account.balance,
                    created_at=now,
                )
            )
            if account.kind == AK.WALLET:
                # A wallet may be negative only while in debt: out of it, the CHECK guards it again.
                account.allow_negative = account.balance < 0
                if amount > 0:
                    _credit_lots(org, tx, account, old, amount, lot_base or now)
                else:
                    _debit_lots(account, old, -amount, (consume or {}).get(pk))
        # One statement for every leg's balance (the rows are already ours).
        Account.objects.filter(pk__in=list(merged)).update(
            balance=Case(*(When(pk=pk, then=Value(locked[pk].balance)) for pk in merged)),
            allow_negative=Case(*(When(pk=pk, then=Value(locked[pk].allow_negative)) for pk in merged)),
        )
        LedgerEntry.objects.bulk_create(entries)
        for pk, account in locked.items():
            if pk in by_id:
                by_id[pk].balance = account.balance
                by_id[pk].allow_negative = account.allow_negative
        tx.replayed = False
        if after is not None:
            after(tx)
    return tx


def _credit_lots(org, tx, wallet: Account, old: int, amount: int, base: dt.datetime) -> None:
    # A wallet in debt pays the debt first; only what is left is spendable (and can expire).
    spendable = min(amount, max(old + amount, 0))
    if spendable > 0:
        PointsLot.objects.create(
            organization_id=wallet.organization_id,
            wallet=wallet,
            transaction=tx,
            amount=amount,
            remaining=spendable,
            expires_at=_expiry(org, base),
            created_at=tx.created_at,
        )


def _debit_lots(wallet: Account, old: int, amount: int, lots: list[PointsLot] | None) -> None:
    todo = min(amount, max(old, 0))
    if lots is None:
        lots = PointsLot.objects.filter(wallet=wallet, remaining__gt=0).order_by("created_at", "pk")
    for lot in lots:
        if todo <= 0:
            break
        take = min(lot.remaining, todo)
        lot.remaining -= take
        todo -= take
        PointsLot.objects.filter(pk=lot.pk).update(remaining=lot.remaining)
    if todo > 0:
        raise LedgerError(f"{wallet.name}: its lots do not cover the debit (run ledger_check)")


# --- movements ----------------------------------------------------------------------------------


def _actor(user, actor):
    if actor is not None:
        return actor
    return Actor(user_id=getattr(user, "pk", user)) if user is not None else None


def _positive(points) -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise LedgerError("points must be a whole number above zero", field="points")
    return points


def _audit_after(org, who, action: str, changes: dict):
    """The ``after`` hook of a movement a person made: its audit-log row, in the same transaction."""

    def after(tx):
        if who is not None:
            audit_log_write(organization=org, actor=who, action=action, instance=tx, changes=changes)

    return after


def budget_fund(
    *, org, budget: Account, points: int, user=None, note: str = "", key=None, actor: Actor | None = None
) -> LedgerTransaction:
    """New points into a budget (ISSUANCE → budget); audit-logged."""
    points = _positive(points)
    if budget.kind != AK.BUDGET:
        raise LedgerError("only a budget can be funded", field="budget")
    audit = _audit_after(
        org, _actor(user, actor), "points.fund", {"budget": budget.pk, "points": points, "note": note}
    )
    return post(
        org=org,
        kind=Kind.FUND,
        legs=[(system_account(org=org, kind=AK.ISSUANCE), -points), (budget, points)],
        key=key,
        note=note or f"Budget {budget.name} funded",
        created_by=user,
        after=audit,
    )


def adjust(
    *, org, account: Account, points: int, note: str, user=None, key=None, actor: Actor | None = None
) -> LedgerTransaction:
    """A manual correction of a wallet or budget against ISSUANCE (positive adds, negative removes)."""
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise LedgerError("points must be a whole number other than zero", field="points")
    if not note.strip():
        raise LedgerError("a note saying why is required", field="note")
    if account.kind not in (AK.WALLET, AK.BUDGET):
        raise LedgerError("only a wallet or a budget can be adjusted", field="account")
    audit = _audit_after(
        org, _actor(user, actor), "points.adjust", {"account": account.pk, "points": points, "note": note}
    )
    return post(
        org=org,
        kind=Kind.ADJUST,
        legs=[(system_account(org=org, kind=AK.ISSUANCE), -points), (account, points)],
        key=key,
        employee=account.employee_id,
        note=note,
        created_by=user,
        after=audit,
    )


def award_key(rule, event_id, employee) -> str:
    return f"award:{getattr(rule, 'pk', rule)}:{event_id}:{getattr(employee, 'pk', employee)}"


def award(
    *, org, rule, event_id, employee, points: int, note: str = "", kind=Kind.AWARD
) -> LedgerTransaction:
    """rule's budget → the employee's wallet, once per (rule, event, employee)."""
    points = _positive(points)
    wallet = wallet_for(org=org, employee=employee)

    def awarded(tx):
        emit(
            organization=org,
            event_type="PointsAwarded",
            payload={
                "transaction_id": tx.pk,
                "employee_id": employee.pk,
                "location_id": employee.current_location_id,
                "points": points,
                "kind": str(kind),
                "rule_id": rule.pk,
                "source_event_id": str(event_id) if event_id is not None else None,
            },
            aggregate=tx,
        )

    return post(
        org=org,
        kind=kind,
        legs=[(rule.budget, -points), (wallet, points)],
        key=award_key(rule, event_id, employee),
        rule=rule,
        event_id=event_id,
        employee=employee,
        note=note or rule.name,
        after=awarded,
    )


def reverse(*, org, transaction: LedgerTransaction, note: str, user=None, actor: Actor | None = None):
    """The linked reversing transaction of an award, recognition, funding or adjustment.

    Idempotent: reversing again returns the first reversal. See the module docstring for what
    happens when the wallet no longer holds the points.
    """
    from django.db import transaction as db

    original = transaction
    if original.kind not in REVERSIBLE_KINDS:
        raise LedgerError(f"a {original.get_kind_display().lower()} cannot be reversed", field="transaction")
    if not note.strip():
        raise LedgerError("a note saying why is required", field="note")
    org_id = _check_tenant(org)
    with db.atomic():
        key = f"reverse:{original.pk}"
        done = _existing(org_id, key)
        if done is not None:
            return done
        entries = list(LedgerEntry.objects.filter(transaction=original).select_related("account"))
        write_off = system_account(org=org, kind=AK.WRITE_OFF)
        locked = _lock([e.account for e in entries] + [write_off])
        done = _existing(org_id, key)
        if done is not None:
            return done
        allow_debt = incentive_settings(org=org).allow_debt
        legs: list[tuple[Account, int]] = []
        debt_ok: list[int] = []
        debt = written_off = 0
        for entry in entries:
            account = locked[entry.account_id]
            amount = -entry.amount
            if amount < 0 and account.kind == AK.WALLET and account.balance + amount < 0:
                shortfall = -(account.balance + amount) if account.balance >= 0 else -amount
                if allow_debt:
                    debt_ok.append(account.pk)
                    debt = shortfall
                else:
                    amount += shortfall
                    written_off = shortfall
                    legs.append((locked[write_off.pk], -shortfall))
            legs.append((account, amount))
        parts = [note]
        if debt:
            parts.append(f"{debt} points already spent: the wallet owes them")
        if written_off:
            parts.append(f"{written_off} points already spent: written off")
        tx = post(
            org=org,
            kind=Kind.REVERSAL,
            legs=legs,
            key=key,
            rule=original.rule,
            event_id=original.event_id,
            employee=original.employee_id,
            note="; ".join(parts),
            reverses=original,
            created_by=user,
            debt_ok=debt_ok,
        )
        if tx.replayed:
            return tx
        points = sum(e.amount for e in entries if e.amount > 0)
        emit(
            organization=org,
            event_type="PointsReversed",
            payload={
                "transaction_id": tx.pk,
                "reversed_transaction_id": original.pk,
                "employee_id": original.employee_id,
                "points": points,
                "debt": debt,
                "written_off": written_off,
            },
            aggregate=tx,
        )
        who = _actor(user, actor)
        if who is not None:
            audit_log_write(
                organization=org,
                actor=who,
                action="points.reverse",
                instance=tx,
                changes={"reverses": original.pk, "note": note, "debt": debt, "written_off": written_off},
            )
    return tx


def hold(*, org, employee, points: int, note: str, key: str | None = None) -> LedgerTransaction:
    """Put points on hold for a redemption: wallet → CLEARING (InsufficientPoints when short)."""
    points = _positive(points)
    wallet = wallet_for(org=org, employee=employee)
    clearing = system_account(org=org, kind=AK.CLEARING)
    return post(
        org=org,
        kind=Kind.HOLD,
        legs=[(wallet, -points), (clearing, points)],
        key=key,
        employee=employee,
        note=note,
    )


def _held(hold_tx: LedgerTransaction) -> tuple[Account, int]:
    if hold_tx.kind != Kind.HOLD:
        raise HoldClosed("not a hold", field="hold")
    wallet_entry = LedgerEntry.objects.select_related("account").get(
        transaction=hold_tx, account__kind=AK.WALLET
    )
    return wallet_entry.account, -wallet_entry.amount


def _close_hold(*, org, hold: LedgerTransaction, kind, legs_for, note: str) -> LedgerTransaction:
    org_id = _check_tenant(org)
    other_kind = Kind.REFUND if kind == Kind.SETTLE else Kind.SETTLE
    own, other = f"{Kind(kind).value}:{hold.pk}", f"{other_kind.value}:{hold.pk}"
    wallet, points = _held(hold)
    clearing = system_account(org=org, kind=AK.CLEARING)
    legs = legs_for(wallet, clearing, points)

    def still_open(_locked):
        # Settling and refunding both lock CLEARING, so this check cannot race the other one.
        if LedgerTransaction.objects.filter(organization_id=org_id, key=other).exists():
            raise HoldClosed(f"the hold was already {'refunded' if kind == Kind.SETTLE else 'settled'}")

    return post(
        org=org,
        kind=kind,
        legs=legs,
        key=own,
        employee=hold.employee_id,
        note=note,
        lot_base=hold.created_at if kind == Kind.REFUND else None,
        guard=still_open,
    )


def settle(*, org, hold: LedgerTransaction, note: str = "") -> LedgerTransaction:
    """The redemption was fulfilled: CLEARING → REDEEMED."""
    redeemed = system_account(org=org, kind=AK.REDEEMED)
    return _close_hold(
        org=org,
        hold=hold,
        kind=Kind.SETTLE,
        note=note or hold.note,
        legs_for=lambda wallet, clearing, points: [(clearing, -points), (redeemed, points)],
    )


def refund(*, org, hold: LedgerTransaction, note: str) -> LedgerTransaction:
    """Declined or failed: CLEARING → the wallet. The refunded lot's expiry counts from the hold,
    so a declined redemption never makes points live longer than they would have."""
    return _close_hold(
        org=org,
        hold=hold,
        kind=Kind.REFUND,
        note=note,
        legs_for=lambda wallet, clearing, points: [(clearing, -points), (wallet, points)],
    )


def expire_due(*, org, now: dt.datetime | None = None) -> list[LedgerTransaction]:
    """One EXPIRE transaction per wallet with lots past ``expires_at`` (their remaining points)."""
    org_id = _check_tenant(org)
    now = now or timezone.now()
    wallet_ids = list(
        PointsLot.objects.filter(organization_id=org_id, remaining__gt=0, expires_at__lte=now)
        .values_list("wallet_id", flat=True)
        .distinct()
    )
    expired = system_account(org=org, kind=AK.EXPIRED) if wallet_ids else None
    done = []
    for wallet_id in sorted(wallet_ids):
        with transaction.atomic():
            locked = _lock([Account(pk=wallet_id), expired])
            wallet = locked[wallet_id]
            lots = list(
                PointsLot.objects.filter(wallet_id=wallet_id, remaining__gt=0, expires_at__lte=now).order_by(
                    "created_at", "pk"
                )
            )
            points = sum(lot.remaining for lot in lots)
            if points <= 0:
                continue
            tx = post(
                org=org,
                kind=Kind.EXPIRE,
                legs=[(wallet, -points), (locked[expired.pk], points)],
                key=f"expire:{wallet_id}:{lots[-1].pk}:{points}",
                employee=wallet.employee_id,
                note=f"{points} points expired",
                consume={wallet_id: lots},
            )
            if not tx.replayed:
                emit(
                    organization=org,
                    event_type="PointsExpired",
                    payload={"transaction_id": tx.pk, "employee_id": wallet.employee_id, "points": points},
                    aggregate=tx,
                )
                done.append(tx)
    return done


def tenants_with_due_lots(now: dt.datetime) -> list[int]:
    """Organizations with lots past their expiry (call inside ``unscoped()``)."""
    return sorted(
        set(
            PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now)
            .values_list("organization_id", flat=True)
            .distinct()
        )
    )


# --- reads ------------------------------------------------------------------------------------


@dataclass
class Statement:
    employee: object
    wallet: Account | None
    balance: int
    entries: object  # LedgerEntry queryset, newest first, with their transactions
    expiring: list[dict]  # [{"expires_at", "points"}] of the open lots, soonest first


def statement(*, org, employee) -> Statement:
    """The wallet of one employee: balance, every movement with its reason, what expires when.

    Reads only: an employee with no wallet yet has an empty statement.
    """
    wallet = Account.objects.filter(organization_id=_org_id(org), kind=AK.WALLET, employee=employee).first()
    if wallet is None:
        return Statement(employee, None, 0, LedgerEntry.objects.none(), [])
    entries = (
        LedgerEntry.objects.filter(account=wallet)
        .select_related(
            "transaction", "transaction__rule", "transaction__reverses", "transaction__recognition"
        )
        .order_by("-created_at", "-pk")
    )
    expiring = list(
        PointsLot.objects.filter(wallet=wallet, remaining__gt=0, expires_at__isnull=False)
        .values("expires_at")
        .annotate(points=Sum("remaining"))
        .order_by("expires_at")
    )
    return Statement(employee, wallet, wallet.balance, entries, expiring)
