"""Demo catalogue and redemptions for ``seed_demo`` (call :func:`seed` inside the tenant's context).

About twenty items (gift cards with code pools, merchandise with stock, time off for store
employees only, a charity donation, one item for a single region's stores), then redemptions in
every state through the real services: fulfilled gift cards with their codes, pending merchandise
for the approvals page, declined with a reason, and a failed one (a gift card whose pool ran dry,
refunded). Deterministic: codes and choices come from a seeded random generator.
"""

from __future__ import annotations

import random

from cem.models import Employee, Location
from cem.principals import Actor
from incentives import ledger, redemptions
from incentives.models import CatalogItem, CatalogItemLocation, GiftCardCode, Redemption

GIFT_CARDS = [
    ("Coffee shop gift card $5", 250, 40),
    ("Coffee shop gift card $10", 500, 30),
    ("Bookstore gift card $15", 750, 25),
    ("Cinema ticket", 600, 25),
    ("Online marketplace gift card $25", 1250, 20),
    ("Grocery gift card $20", 1000, 20),
    ("Streaming month", 700, 15),
    ("Restaurant voucher $30", 1500, 10),
    ("Fuel card $20", 1000, 10),
    ("Sports store gift card $50", 2500, 5),
]
MERCHANDISE = [
    ("Branded water bottle", 300, 60),
    ("Branded hoodie", 1200, 25),
    ("Wireless earbuds", 3000, 8),
    ("Backpack", 1800, 15),
    ("Umbrella", 400, None),
]
OTHERS = [
    ("Extra half day off", CatalogItem.Kind.TIME_OFF, 2000, None, 2, ["associate", "supervisor"]),
    ("Extra day off", CatalogItem.Kind.TIME_OFF, 3800, None, 1, ["associate", "supervisor"]),
    ("Donate $10 to the food bank", CatalogItem.Kind.CHARITY, 500, None, None, []),
    ("Donate $25 to the children's hospital", CatalogItem.Kind.CHARITY, 1250, None, None, []),
]
EMPTY_POOL = "Concert ticket (sold out)"


def _code(rng: random.Random) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "-".join("".join(rng.choice(alphabet) for _ in range(4)) for _ in range(4))


def seed(*, org, admin_user=None, seed_value: int = 7) -> dict:
    """Create the catalogue and the redemptions; returns counts per redemption status."""
    rng = random.Random(seed_value)
    system = Actor.system()
    admin = Actor(user_id=admin_user.pk) if admin_user is not None else system
    items: list[CatalogItem] = []
    for name, cost, pool in GIFT_CARDS:
        card = CatalogItem.objects.create(
            organization=org,
            name=name,
            kind=CatalogItem.Kind.GIFT_CARD,
            cost=cost,
            auto_approve=True,
            description="Your code appears as soon as you redeem.",
        )
        GiftCardCode.objects.bulk_create(
            [GiftCardCode(organization=org, item=card, code=_code(rng)) for _ in range(pool)]
        )
        items.append(card)
    for name, cost, stock in MERCHANDISE:
        items.append(
            CatalogItem.objects.create(
                organization=org,
                name=name,
                kind=CatalogItem.Kind.MERCHANDISE,
                cost=cost,
                stock=stock,
                per_person_limit=2,
                description="Delivered to your store after approval.",
            )
        )
    for name, kind, cost, stock, limit, roles in OTHERS:
        items.append(
            CatalogItem.objects.create(
                organization=org,
                name=name,
                kind=kind,
                cost=cost,
                stock=stock,
                per_person_limit=limit,
                visible_roles=roles,
                auto_approve=kind == CatalogItem.Kind.CHARITY,
            )
        )
    regional = CatalogItem.objects.create(
        organization=org,
        name="Regional team dinner seat",
        kind=CatalogItem.Kind.MERCHANDISE,
        cost=2200,
        stock=12,
    )
    first_region = Location.objects.order_by("region_id").values_list("region_id", flat=True).first()
    CatalogItemLocation.objects.bulk_create(
        [
            CatalogItemLocation(organization=org, item=regional, location_id=pk)
            for pk in Location.objects.filter(region_id=first_region).values_list("pk", flat=True)
        ]
    )
    dry = CatalogItem.objects.create(
        organization=org, name=EMPTY_POOL, kind=CatalogItem.Kind.GIFT_CARD, cost=900, auto_approve=True
    )

    employees = list(
        Employee.objects.filter(active=True, current_location__isnull=False, role="associate").order_by("pk")[
            :60
        ]
    )
    for emp in employees:
        # Top up only what the demo awards did not already give, so the story holds with or without them.
        wallet = ledger.wallet_for(org=org, employee=emp)
        if wallet.balance < 6000:
            ledger.adjust(org=org, account=wallet, points=6000 - wallet.balance, note="Welcome points")
    gift_cards = [i for i in items if i.kind == CatalogItem.Kind.GIFT_CARD]
    merch = [i for i in items if i.kind == CatalogItem.Kind.MERCHANDISE]
    charity = [i for i in items if i.kind == CatalogItem.Kind.CHARITY]

    def redeem(emp, item):
        # Stock, limits and balances refuse some picks, as they would in the shop: skip those.
        try:
            return redemptions.redeem(org=org, actor=system, employee=emp, item=item)
        except redemptions.RedemptionRefused:
            return None

    pending = []
    for n, emp in enumerate(employees):
        redeem(emp, rng.choice(gift_cards))
        if n % 2 == 0:
            red = redeem(emp, rng.choice(merch))
            if red is not None and red.status == Redemption.Status.PENDING:
                pending.append(red)
        if n % 7 == 0:
            redeem(emp, rng.choice(charity))
    for n, red in enumerate(pending):
        if n % 3 == 0:
            redemptions.approve(org=org, actor=admin, redemption=red, note="Sent to the store")
        elif n % 3 == 1:
            redemptions.decline(
                org=org, actor=admin, redemption=red, reason="Out of this size this quarter; points refunded"
            )
    if employees:
        richest = max(employees, key=lambda e: ledger.wallet_for(org=org, employee=e).balance)
        redeem(richest, dry)  # the pool is empty: the redemption fails and is refunded
    counts = {status: Redemption.objects.filter(status=status).count() for status in Redemption.Status.values}
    return counts
