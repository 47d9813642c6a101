"""Redemptions under contention, through the API with real threads against PostgreSQL.

50 concurrent redemptions against a balance that covers one: exactly one succeeds, the others get
a clear 409, and the wallet never goes below zero. The last item of stock goes to one person only.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import Account, CatalogItem, LedgerEntry, Redemption
from tests.incentives.redemption_helpers import balance, employee_login, fund, item

pytestmark = pytest.mark.django_db(transaction=True)


def _race(clients_and_bodies):
    """POST every (client, body[, url]) at once (a barrier releases them together); statuses and bodies."""
    barrier = threading.Barrier(len(clients_and_bodies))
    results = [None] * len(clients_and_bodies)

    def run(i, client, body, url="/api/v1/redemptions/"):
        try:
            barrier.wait(timeout=30)
            resp = client.post(url, body, format="json")
            results[i] = (resp.status_code, resp.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, *call)) for i, call in enumerate(clients_and_bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(r is not None for r in results), "a request did not finish"
    return results


def _wallet_never_negative(org, employee):
    with tenant_context(org):
        wallet = ledger.wallet_for(org=org, employee=employee)
        afters = list(LedgerEntry.objects.filter(account=wallet).values_list("balance_after", flat=True))
        assert afters and min(afters) >= 0
        assert wallet.balance >= 0


def test_fifty_concurrent_redemptions_against_one_balance(world, api):
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 150)
    prize = item(org, name="acme headphones", cost=100)  # unlimited stock: only the balance limits
    clients = [api(world.users["employee"]) for _ in range(50)]

    results = _race([(c, {"item": prize.pk}) for c in clients])

    codes = [status for status, _ in results]
    assert codes.count(201) == 1, codes
    assert codes.count(409) == 49, codes
    for status, body in results:
        if status == 409:
            assert "does not cover" in body["detail"] and "points" in body
    assert balance(org, emp) == 50
    _wallet_never_negative(org, emp)
    with tenant_context(org):
        assert Redemption.objects.filter(employee=emp).count() == 1
        clearing = ledger.system_account(org=org, kind=Account.Kind.CLEARING)
        assert clearing.balance == 100


def test_the_last_item_of_stock_goes_to_one_person(world, api):
    org = world.a.org
    first, second = world.a.employees["a-n1"], world.a.employees["a-n2"]
    other_user = employee_login(world, "a-n2", "second@acme.test")
    fund(org, first, 1000)
    fund(org, second, 1000)
    last = item(org, name="acme last mug", cost=100, stock=1)
    pairs = []
    for _ in range(10):
        pairs.append((api(world.users["employee"]), {"item": last.pk}))
        pairs.append((api(other_user), {"item": last.pk}))

    results = _race(pairs)

    codes = [status for status, _ in results]
    assert codes.count(201) == 1, codes
    assert codes.count(409) == 19, codes
    assert all("out of stock" in body["detail"] for status, body in results if status == 409)
    with tenant_context(org):
        assert CatalogItem.objects.get(pk=last.pk).stock == 0
        winner = Redemption.objects.get(item=last)
    winner_emp, loser = (first, second) if winner.employee_id == first.pk else (second, first)
    assert balance(org, loser) == 1000
    assert balance(org, winner_emp) == 900
    _wallet_never_negative(org, first)
    _wallet_never_negative(org, second)


def test_concurrent_auto_approved_gift_cards_never_share_a_code(world, api):
    """Auto-approved gift cards by two people at once: each code goes to one redemption."""
    from tests.incentives.redemption_helpers import codes as load_codes

    org = world.a.org
    first, second = world.a.employees["a-n1"], world.a.employees["a-n2"]
    other_user = employee_login(world, "a-n2", "second@acme.test")
    fund(org, first, 500)
    fund(org, second, 500)
    card = item(org, name="acme gift card", cost=100, kind=CatalogItem.Kind.GIFT_CARD, auto_approve=True)
    load_codes(org, card, "CODE-1", "CODE-2", "CODE-3")
    pairs = []
    for _ in range(3):
        pairs.append((api(world.users["employee"]), {"item": card.pk}))
        pairs.append((api(other_user), {"item": card.pk}))

    results = _race(pairs)

    fulfilled = [body for status, body in results if status == 201]
    failed = [body for status, body in results if status == 409]
    assert len(fulfilled) == 3 and len(failed) == 3
    assert sorted(b["code"] for b in fulfilled) == ["CODE-1", "CODE-2", "CODE-3"]
    assert all("refunded" in b["detail"] for b in failed)
    assert balance(org, first) + balance(org, second) == 1000 - 300


def test_redeeming_approving_and_declining_at_once_never_deadlock(world, api):
    """Every path takes its locks in the one order (item → redemption → code → accounts by id):
    auto-approved redemptions (hold + settle), approvals (settle) and declines (refund, stock back)
    of several items and people, all at once, finish without a deadlock and balance."""
    from django.db.models import Sum

    from tests.incentives.redemption_helpers import codes as load_codes

    org = world.a.org
    first, second = world.a.employees["a-n1"], world.a.employees["a-n2"]
    other_user = employee_login(world, "a-n2", "second@acme.test")
    fund(org, first, 2000)
    fund(org, second, 2000)
    card = item(org, name="acme auto card", cost=10, kind=CatalogItem.Kind.GIFT_CARD, auto_approve=True)
    load_codes(org, card, *[f"AUTO-{n}" for n in range(20)])
    manual = item(org, name="acme manual card", cost=10, kind=CatalogItem.Kind.GIFT_CARD)
    load_codes(org, manual, *[f"MAN-{n}" for n in range(20)])
    mug = item(org, name="acme mug", cost=10, stock=50)
    employee, other = api(world.users["employee"]), api(other_user)
    pending = []
    for client in (employee, other):
        for target in (manual, mug, manual, mug):
            resp = client.post("/api/v1/redemptions/", {"item": target.pk}, format="json")
            assert resp.status_code == 201
            pending.append(resp.json()["id"])
    calls = []
    for n, pk in enumerate(pending):
        action = "approve" if n % 2 == 0 else "decline"
        calls.append(
            (api(world.users["admin"]), {"reason": "acme no"}, f"/api/v1/redemptions/{pk}/{action}/")
        )
    for _ in range(4):
        calls.append((api(world.users["employee"]), {"item": card.pk}))
        calls.append((api(other_user), {"item": card.pk}))
        calls.append((api(world.users["employee"]), {"item": mug.pk}))

    results = _race(calls)

    assert all(status in (200, 201) for status, _ in results), results
    with tenant_context(org):
        assert LedgerEntry.objects.aggregate(total=Sum("amount"))["total"] == 0
        assert not Redemption.objects.filter(status=Redemption.Status.PENDING, pk__in=pending).exists()
        assert (
            ledger.system_account(org=org, kind=Account.Kind.CLEARING).balance
            == 10 * Redemption.objects.filter(status=Redemption.Status.PENDING).count()
        )
    _wallet_never_negative(org, first)
    _wallet_never_negative(org, second)
