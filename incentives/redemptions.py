"""Redeeming points for catalogue items: hold at once, fulfil (now or after approval), or refund.

Flow (all through incentives.ledger: this module never writes an account or an entry itself):

- :func:`redeem` — one database transaction: the item row is locked (its stock and the per-person
  limit are decided under that lock), the points go on hold (wallet → CLEARING; the ledger refuses
  a hold the wallet does not cover), the stock goes down by one (never below zero: checked under
  the lock, and the column is unsigned in the database), and a PENDING redemption is written with
  ``PointsRedeemed``. An **auto-approve** item is fulfilled in the same transaction: a gift card
  takes a free code from its pool (``SELECT … FOR UPDATE SKIP LOCKED``, so two redemptions never
  take the same code and never wait for each other's) and the hold is settled (CLEARING →
  REDEEMED); when the pool is empty the fulfilment **fails**: the hold is refunded, the stock put
  back, and the redemption is recorded as FAILED with the reason.
- :func:`approve` — an approver fulfils a PENDING redemption (a gift card takes its code then).
- :func:`decline` — with a reason: the hold is refunded and the stock put back.

**Lock order** (every path takes locks in this order, and only a prefix of it, so no two
redemption paths can deadlock): CatalogItem row → Redemption row → GiftCardCode row (SKIP
LOCKED: never waits) → ledger accounts in id order, all the accounts a step will touch taken in one
statement before the ledger posts (the ledger locks the same rows again, which is free).
Taking wallet, CLEARING and REDEEMED together up front matters for an auto-approved redemption:
it holds and settles in one transaction, and taking REDEEMED after CLEARING could otherwise
deadlock with a concurrent approval that locks them in id order.

Double-spending: the item lock serialises redemptions of an item, and the ledger's row locks the
wallet, so concurrent redemptions against one balance succeed only as far as it covers them;
the others get :class:`RedemptionRefused` (HTTP 409). A client key (the API's Idempotency-Key, or
the portal form's one-time token) becomes the hold's ledger key: redeeming again with the same key
returns the first redemption (``replayed`` True) instead of spending again.
"""

from __future__ import annotations

import hashlib

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cem.events import emit
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from incentives import catalog, ledger
from incentives.models import Account, CatalogItem, GiftCardCode, Redemption

Status = Redemption.Status
COUNTED = (Status.PENDING, Status.FULFILLED)  # toward the per-person limit


class RedemptionRefused(Exception):
    """A redemption or decision the current state does not allow (HTTP 409), with the field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def hold_key(employee, client_key: str) -> str:
    """The hold's ledger key for a client's idempotency key, per employee (keys are the client's choice)."""
    digest = hashlib.sha256(client_key.encode()).hexdigest()
    return f"redeem:{employee.pk}:{digest}"


def _lock_accounts(accounts: list[Account]) -> None:
    ids = sorted({a.pk for a in accounts})
    list(Account.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", flat=True))


def _take_code(item: CatalogItem, redemption: Redemption) -> GiftCardCode | None:
    code = (
        GiftCardCode.objects.select_for_update(skip_locked=True)
        .filter(item=item, redemption__isnull=True)
        .order_by("pk")
        .first()
    )
    if code is not None:
        code.redemption = redemption
        code.save(update_fields=["redemption"])
    return code


def _stock_back(item: CatalogItem) -> None:
    # Only called with the item row locked (redeem, decline).
    if item.stock is not None:
        item.stock += 1
        item.save(update_fields=["stock"])


def _decided(org, redemption: Redemption, actor: Actor | None, action: str, changes: dict) -> None:
    emit(
        organization=org,
        event_type="RedemptionDecided",
        payload={"redemption_id": redemption.pk, "status": str(redemption.status)},
        aggregate=redemption,
    )
    audit_log_write(
        organization=org,
        actor=actor or Actor.system(),
        action=action,
        instance=redemption,
        changes={"status": str(redemption.status), **changes},
    )


def _settle(org, redemption: Redemption, note: str) -> None:
    redemption.settlement = ledger.settle(org=org, hold=redemption.hold, note=note)
    redemption.status = Status.FULFILLED
    redemption.decided_at = timezone.now()


def _fulfil_now(org, item: CatalogItem, redemption: Redemption) -> None:
    """Auto-approve: take a code (gift cards) and settle, or fail and refund."""
    if item.kind == CatalogItem.Kind.GIFT_CARD:
        code = _take_code(item, redemption)
        if code is None:
            note = f"No {item.name} codes were left; your {redemption.points} points were refunded."
            redemption.refund = ledger.refund(org=org, hold=redemption.hold, note=note)
            redemption.status = Status.FAILED
            redemption.note = note
            redemption.decided_at = timezone.now()
            _stock_back(item)
            redemption.save(update_fields=["refund", "status", "note", "decided_at"])
            _decided(org, redemption, None, "redemption.fail", {"reason": "no codes left"})
            return
    _settle(org, redemption, f"Redeemed: {item.name}")
    redemption.save(update_fields=["settlement", "status", "decided_at"])
    _decided(org, redemption, None, "redemption.fulfil", {"auto_approve": True})


def redeem(*, org, actor: Actor, employee, item: CatalogItem, key: str | None = None) -> Redemption:
    """Redeem one ``item`` for ``employee`` (see the module docstring).

    Raises RedemptionRefused (balance short, out of stock, limit reached) and ValidationError
    (an item not offered to this employee). The result has ``replayed`` True for a repeated key.
    """
    org_id = _check_tenant(org)
    if employee is None:
        raise ValidationError(
            {"employee": "Only employees redeem points (your login has no employee record)."}
        )
    tx_key = hold_key(employee, key) if key else None
    with transaction.atomic():
        item = CatalogItem.objects.select_for_update().get(pk=item.pk)
        if tx_key is not None:
            earlier = Redemption.objects.filter(hold__key=tx_key, employee=employee).first()
            if earlier is not None:
                earlier.replayed = True
                return earlier
        if not catalog.is_visible(item, employee):
            raise ValidationError({"item": "This item is not offered to you."})
        if item.per_person_limit is not None:
            taken = Redemption.objects.filter(employee=employee, item=item, status__in=COUNTED).count()
            if taken >= item.per_person_limit:
                raise RedemptionRefused(
                    "item",
                    f"You have already redeemed {item.name} {taken} time(s), the most allowed per person.",
                )
        if item.stock is not None and item.stock <= 0:
            raise RedemptionRefused("item", f"{item.name} is out of stock.")

        wallet = ledger.wallet_for(org=org, employee=employee)
        accounts = [wallet, ledger.system_account(org=org, kind=Account.Kind.CLEARING)]
        if item.auto_approve:
            accounts.append(ledger.system_account(org=org, kind=Account.Kind.REDEEMED))
        _lock_accounts(accounts)
        try:
            hold = ledger.hold(
                org=org, employee=employee, points=item.cost, note=f"Redeemed: {item.name}", key=tx_key
            )
        except ledger.InsufficientPoints as exc:
            balance = exc.account.balance
            raise RedemptionRefused(
                "points", f"Your balance of {balance} points does not cover {item.name} ({item.cost} points)."
            ) from None
        if getattr(hold, "replayed", False):
            # Cannot happen under the item lock unless the key was used for another item.
            earlier = Redemption.objects.filter(hold=hold).first()
            if earlier is not None:
                earlier.replayed = True
                return earlier
            raise RedemptionRefused("key", "This key was already used for another redemption.")

        if item.stock is not None:
            item.stock -= 1
            item.save(update_fields=["stock"])
        redemption = Redemption.objects.create(
            organization_id=org_id,
            item=item,
            employee=employee,
            points=item.cost,
            status=Status.PENDING,
            hold=hold,
            created_at=hold.created_at,
        )
        emit(
            organization=org,
            event_type="PointsRedeemed",
            payload={
                "redemption_id": redemption.pk,
                "employee_id": employee.pk,
                "item_id": item.pk,
                "points": item.cost,
                "status": str(redemption.status),
            },
            aggregate=redemption,
        )
        audit_log_write(
            organization=org,
            actor=actor,
            action="redemption.create",
            instance=redemption,
            changes={"item": item.pk, "points": item.cost, "employee": employee.pk},
        )
        if item.auto_approve:
            _fulfil_now(org, item, redemption)
    redemption.replayed = False
    return redemption


def approve(*, org, actor: Actor, redemption: Redemption, note: str = "") -> Redemption:
    """Fulfil a pending redemption; approving a fulfilled one again returns it unchanged."""
    _check_tenant(org)
    with transaction.atomic():
        redemption = (
            Redemption.objects.select_for_update().select_related("item", "hold").get(pk=redemption.pk)
        )
        if redemption.status == Status.FULFILLED:
            return redemption
        if redemption.status != Status.PENDING:
            raise RedemptionRefused(
                "status", f"This redemption is already {redemption.get_status_display().lower()}."
            )
        item = redemption.item
        if item.kind == CatalogItem.Kind.GIFT_CARD and _take_code(item, redemption) is None:
            raise RedemptionRefused(
                "item", f"No {item.name} codes are left: load more codes, or decline the redemption."
            )
        _lock_accounts(
            [
                ledger.system_account(org=org, kind=Account.Kind.CLEARING),
                ledger.system_account(org=org, kind=Account.Kind.REDEEMED),
            ]
        )
        _settle(org, redemption, note or f"Redeemed: {item.name}")
        redemption.decided_by_id = actor.user_id
        if note:
            redemption.note = note[:400]
        redemption.save(update_fields=["settlement", "status", "decided_at", "decided_by", "note"])
        _decided(org, redemption, actor, "redemption.approve", {"note": note})
    return redemption


def decline(*, org, actor: Actor, redemption: Redemption, reason: str) -> Redemption:
    """Decline a pending redemption with a reason: the points go back to the wallet, the stock back."""
    _check_tenant(org)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Say why the redemption is declined (the employee sees it)."})
    with transaction.atomic():
        # Item before redemption: the fixed lock order (see the module docstring).
        item_id = Redemption.objects.filter(pk=redemption.pk).values_list("item_id", flat=True).get()
        item = CatalogItem.objects.select_for_update().get(pk=item_id)
        redemption = Redemption.objects.select_for_update().select_related("hold").get(pk=redemption.pk)
        if redemption.status == Status.DECLINED:
            return redemption
        if redemption.status != Status.PENDING:
            raise RedemptionRefused(
                "status", f"This redemption is already {redemption.get_status_display().lower()}."
            )
        wallet_id = (
            redemption.hold.entries.filter(account__kind=Account.Kind.WALLET)
            .values_list("account_id", flat=True)
            .get()
        )
        _lock_accounts([Account(pk=wallet_id), ledger.system_account(org=org, kind=Account.Kind.CLEARING)])
        redemption.refund = ledger.refund(org=org, hold=redemption.hold, note=f"Declined: {reason}"[:400])
        redemption.status = Status.DECLINED
        redemption.note = reason[:400]
        redemption.decided_by_id = actor.user_id
        redemption.decided_at = timezone.now()
        redemption.save(update_fields=["refund", "status", "note", "decided_by", "decided_at"])
        _stock_back(item)
        _decided(org, redemption, actor, "redemption.decline", {"reason": reason})
    return redemption


# --- reads ---------------------------------------------------------------------------------------


def revealed_code(redemption: Redemption) -> str | None:
    """The gift-card code a fulfilled redemption took (callers decide who may see it)."""
    code = getattr(redemption, "gift_card_code", None) if redemption.status == Status.FULFILLED else None
    return code.code if code is not None else None
