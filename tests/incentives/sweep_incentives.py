"""Org A rows behind the incentives routes (``/api/v1/...``, ``/rewards/...``), one section per area."""

from __future__ import annotations


def _bonus(world) -> None:
    """A closed bonus period with KPIs, a participant and a result (bonus periods, KPIs, participants)."""
    from tests.incentives.bonus_data import sweep_rows

    sweep_rows(world)


def _ledger(world) -> None:
    """A funded budget, an award into a wallet and a hold (accounts, transactions, statement)."""
    import uuid

    from cem.tenancy import tenant_context
    from incentives import ledger
    from tests.incentives.ledger_helpers import funded_budget, rule_on

    org = world.a.org
    emp = world.a.employees["a-n1"]
    with tenant_context(org):
        budget = funded_budget(org, 500, name="acme sweep budget")
        rule = rule_on(org, budget, name="acme sweep rule")
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=40, note="acme award")
        ledger.hold(org=org, employee=emp, points=10, note="acme hold")


def _rewards(world) -> None:
    """A rule with an award and a skip, a recognition, a leaderboard opt-in (rules, skips, budgets,
    recognition feed, leaderboard, the manage pages)."""
    import datetime as dt

    from cem.models import Membership
    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from incentives import ledger, recognition, rewards
    from incentives.models import RewardRule

    org = world.a.org
    emp = world.a.employees["a-n1"]
    with tenant_context(org):
        budget = ledger.budget_create(org=org, name="acme rewards sweep budget")
        ledger.budget_fund(org=org, budget=budget, points=15, note="acme")
        rule = RewardRule.objects.create(
            organization=org,
            name="acme sweep promoter rule",
            trigger="promoter_response",
            recipients="named",
            points=10,
            budget=budget,
            effective_from=dt.date(2020, 1, 1),
        )
        for n in (1, 2):  # the second finds the budget short: a skip
            facts = rewards.Facts(
                kind="response",
                pk=f"sweep-{n}",
                when=rule.created_at,
                label="acme promoter",
                employee_id=emp.pk,
                location_id=emp.current_location_id,
            )
            rewards.apply(org=org, trigger=rule.trigger, facts_list=[facts], rules=[rule])
        ledger.budget_fund(org=org, budget=recognition.recognition_budget(org=org), points=100, note="acme")
        membership = Membership.objects.get(user=world.users["manager"])
        recognition.recognise(
            org=org,
            actor=Actor.system(),
            membership=membership,
            receiver=emp,
            points=5,
            message="acme thanks",
            standard=world.a.standard,
        )
        recognition.leaderboard_opt(org=org, employee=emp, opt_in=True)


def _redemptions(world) -> None:
    """Catalogue items (one limited to a store), a gift-card pool, a fulfilled and a pending redemption."""
    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from incentives import ledger, redemptions
    from incentives.models import CatalogItem, CatalogItemLocation, GiftCardCode

    org = world.a.org
    emp = world.a.employees["a-n1"]
    with tenant_context(org):
        wallet = ledger.wallet_for(org=org, employee=emp)
        ledger.adjust(org=org, account=wallet, points=300, note="acme funds")
        card = CatalogItem.objects.create(
            organization=org, name="acme gift card", kind="gift_card", cost=50, auto_approve=True
        )
        GiftCardCode.objects.create(organization=org, item=card, code="ACME-CODE-1")
        GiftCardCode.objects.create(organization=org, item=card, code="ACME-CODE-2")
        mug = CatalogItem.objects.create(
            organization=org, name="acme mug", kind="merchandise", cost=20, stock=5, description="acme"
        )
        CatalogItemLocation.objects.create(organization=org, item=mug, location=world.a.locations["a-n1"])
        redemptions.redeem(org=org, actor=Actor.system(), employee=emp, item=card)
        redemptions.redeem(org=org, actor=Actor.system(), employee=emp, item=mug)


def populate(world) -> None:
    _bonus(world)
    _ledger(world)
    _rewards(world)
    _redemptions(world)
