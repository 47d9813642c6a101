"""Recognition: managers (and, when the organization enables it, peers) give points with a message.

Where the points come from: one organization budget named :data:`BUDGET_NAME` (a BUDGET account the
admins fund on the budgets page like any other) pays every recognition, manager's or peer's. A
giver's allowance is not an account of its own: it is a limit checked against what that giver has
given this calendar month (organization time zone) — ``manager_monthly_recognition_limit`` for
managers and admins, ``peer_monthly_allowance`` for peers — so the ledger never holds unspent
allowances that would have to expire or be swept back each month. The budget and the receiver's
wallet are locked (the ledger's id order) before the month's total is read, so two recognitions by
the same giver cannot both slip under the limit.

Rules: a message and at most ``recognition_max_points`` each; never oneself (the database refuses
it too); managers recognise the people within their scope (store managers their store, regional
managers their region, admins everyone); peers only colleagues of their own location, and only
while ``peer_recognition_enabled``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from cem.events import emit
from cem.models import Employee, Role
from cem.principals import Actor
from cem.scoping import scope_queryset
from cem.services import _check_tenant, audit_log_write
from incentives import ledger
from incentives.models import (
    Account,
    LeaderboardOptIn,
    LedgerEntry,
    LedgerTransaction,
    Recognition,
)
from incentives.rewards import org_zone, period_start

BUDGET_NAME = "Recognition"
MESSAGE_MAX = 500
MANAGER_ROLES = (Role.ORG_ADMIN, Role.REGIONAL_MANAGER, Role.STORE_MANAGER)


def recognition_budget(*, org) -> Account:
    found = Account.objects.filter(kind=Account.Kind.BUDGET, name=BUDGET_NAME).first()
    return found or ledger.budget_create(org=org, name=BUDGET_NAME)


def month_start(org):
    return period_start("month", timezone.now(), org_zone(org))


def given_this_month(*, org, giver) -> int:
    total = Recognition.objects.filter(giver=giver, created_at__gte=month_start(org)).aggregate(
        s=Sum("points")
    )
    return int(total["s"] or 0)


def giver_limits(*, org, membership) -> dict:
    """What the giver may still give this month (for the form and the API)."""
    settings = ledger.incentive_settings(org=org)
    peer = membership.role not in MANAGER_ROLES
    limit = settings.peer_monthly_allowance if peer else settings.manager_monthly_recognition_limit
    given = given_this_month(org=org, giver=membership.user_id)
    return {
        "peer": peer,
        "allowed": (not peer) or (settings.peer_recognition_enabled and membership.employee_id is not None),
        "monthly_limit": limit,
        "given_this_month": given,
        "remaining": max(limit - given, 0),
        "max_points": settings.recognition_max_points,
    }


def receivers_for(*, membership):
    """The employees this giver may recognise (active, not themselves)."""
    qs = Employee.objects.filter(active=True)
    if membership.role in MANAGER_ROLES:
        qs = scope_queryset(qs, role=membership.role, membership=membership)
    else:
        location = (
            Employee.objects.filter(pk=membership.employee_id)
            .values_list("current_location_id", flat=True)
            .first()
        )
        qs = qs.filter(current_location_id=location) if location else qs.none()
    if membership.employee_id:
        qs = qs.exclude(pk=membership.employee_id)
    return qs


def recognise(
    *, org, actor: Actor, membership, receiver: Employee, points: int, message: str, standard=None
) -> Recognition:
    org_id = _check_tenant(org)
    limits = giver_limits(org=org, membership=membership)
    if not limits["allowed"]:
        raise PermissionDenied("Peer recognition is not enabled for your organization.")
    message = (message or "").strip()
    errors = {}
    if not message:
        errors["message"] = "Say what they did well."
    elif len(message) > MESSAGE_MAX:
        errors["message"] = f"At most {MESSAGE_MAX} characters."
    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        errors["points"] = "A whole number of points above zero."
    elif points > limits["max_points"]:
        errors["points"] = f"At most {limits['max_points']} points per recognition."
    if receiver.pk == membership.employee_id:
        errors["receiver"] = "You cannot recognise yourself."
    elif not receivers_for(membership=membership).filter(pk=receiver.pk).exists():
        errors["receiver"] = "You can recognise only the people you work with."
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        budget = recognition_budget(org=org)
        wallet = ledger.wallet_for(org=org, employee=receiver)
        list(Account.objects.select_for_update().filter(pk__in=[budget.pk, wallet.pk]).order_by("pk"))
        given = given_this_month(org=org, giver=membership.user_id)
        if given + points > limits["monthly_limit"]:
            left = max(limits["monthly_limit"] - given, 0)
            raise ValidationError({"points": f"Your monthly allowance has {left} points left."})
        try:
            tx = ledger.post(
                org=org,
                kind=LedgerTransaction.Kind.RECOGNITION,
                legs=[(budget, -points), (wallet, points)],
                employee=receiver,
                # The message stays on the Recognition only: an append-only ledger note must not
                # carry a copy of free text that may name people (the statement shows it from there).
                note="",
                created_by=membership.user,
            )
        except ledger.InsufficientPoints:
            raise ValidationError(
                {"points": "The recognition budget is empty; ask an admin to fund it."}
            ) from None
        recognition = Recognition.objects.create(
            organization_id=org_id,
            giver_id=membership.user_id,
            giver_employee_id=membership.employee_id,
            receiver=receiver,
            points=points,
            message=message,
            standard=standard,
            peer=limits["peer"],
            transaction=tx,
            created_at=tx.created_at,
        )
        emit(
            organization=org_id,
            event_type="PointsAwarded",
            payload={
                "transaction_id": tx.pk,
                "employee_id": receiver.pk,
                "location_id": receiver.current_location_id,
                "points": points,
                "kind": "recognition",
                "rule_id": None,
                "source_event_id": None,
            },
            aggregate=tx,
        )
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="recognition.create",
            instance=recognition,
            changes={"receiver": receiver.pk, "points": points, "standard": getattr(standard, "pk", None)},
        )
    return recognition


# --- leaderboard ------------------------------------------------------------------------------


def leaderboard_opt(*, org, employee, opt_in: bool) -> bool:
    _check_tenant(org)
    if opt_in:
        LeaderboardOptIn.objects.get_or_create(
            organization_id=getattr(org, "pk", org),
            employee=employee,
            defaults={"opted_in_at": timezone.now()},
        )
    else:
        LeaderboardOptIn.objects.filter(employee=employee).delete()
    return opt_in


def leaderboard(*, org, location_id: int, since=None, limit: int = 20) -> list[dict]:
    """Opted-in employees of one location by points earned (awards + recognition, net of their
    reversals) since ``since`` (default: this month); nobody who has not opted in is shown."""
    since = since or month_start(org)
    opted = LeaderboardOptIn.objects.filter(employee__current_location_id=location_id, employee__active=True)
    rows = (
        LedgerEntry.objects.filter(
            account__kind=Account.Kind.WALLET,
            account__employee__in=opted.values("employee_id"),
            created_at__gte=since,
            transaction__kind__in=[
                LedgerTransaction.Kind.AWARD,
                LedgerTransaction.Kind.RECOGNITION,
                LedgerTransaction.Kind.REVERSAL,
            ],
        )
        .values("account__employee_id", "account__employee__name")
        .annotate(points=Sum("amount"))
        .order_by("-points", "account__employee__name")[:limit]
    )
    board = [
        {
            "employee": r["account__employee_id"],
            "name": r["account__employee__name"],
            "points": int(r["points"]),
        }
        for r in rows
    ]
    shown = {r["employee"] for r in board}
    if len(board) < limit:
        for emp_id, name in (
            Employee.objects.filter(pk__in=opted.values("employee_id"))
            .exclude(pk__in=shown)
            .order_by("name")
            .values_list("pk", "name")[: limit - len(board)]
        ):
            board.append({"employee": emp_id, "name": name, "points": 0})
    for rank, row in enumerate(board, 1):
        row["rank"] = rank
    return board
