"""Rewards end to end (issue 7 acceptance): an excellent mystery-shopping audit is published through
the audits services; the rule "audit score ≥ 90 → 100 points to each employee of the location"
pays the store's employee, who sees the points arrive on the portal within seconds, redeems an
auto-approved gift card, sees its code, and finds both movements on the statement."""

import time
from decimal import Decimal

import pytest

from audits import audit_services
from cem.principals import Actor
from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import CatalogItem, GiftCardCode, Redemption, RewardRule
from tests import factories as f
from tests.audits.sweep_forms import GOOD, make_audit, make_form
from tests.browser.conftest import login
from tests.conftest import PASSWORD
from tests.incentives.redemption_helpers import codes, item
from tests.incentives.rewards_helpers import YESTERDAY

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _rule_and_card(world):
    org = world.a.org
    with tenant_context(org):
        budget = ledger.budget_create(org=org, name="Mystery shopping awards")
        ledger.budget_fund(org=org, budget=budget, points=10_000, note="quarter")
        RewardRule.objects.create(
            organization=org,
            name="Excellent mystery shop",
            trigger=RewardRule.Trigger.AUDIT_SCORE,
            recipients=RewardRule.Recipients.LOCATION_EMPLOYEES,
            points=100,
            min_score=Decimal(90),
            budget=budget,
            effective_from=YESTERDAY,
        )
    card = item(org, name="Coffee gift card $5", kind=CatalogItem.Kind.GIFT_CARD, cost=80, auto_approve=True)
    codes(org, card, "COFFEE-7Q2X-19KD", "COFFEE-8R3Y-20LE")
    return card


def _publish_excellent_audit(world):
    org = world.a.org
    other = f.StandardFactory(organization=org, code="journey-other")
    _form, version = make_form(org, world.a.standard, other, name="journey visit form")
    audit = make_audit(org, version, GOOD, location=world.a.locations["a-n1"])
    with tenant_context(org):
        audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
        audit.refresh_from_db()
    return audit


def test_excellent_audit_points_arrive_and_a_gift_card_is_redeemed(world, page):
    card = _rule_and_card(world)
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # The store's employee has the portal open: nothing yet.
    login(page, "employee@acme.test", PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)
    page.goto("/rewards/")
    assert page.get_by_test_id("balance-points").inner_text() == "0"
    assert page.get_by_test_id(f"redeem-{card.pk}").is_disabled()

    # An excellent audit of the store is published (AuditPublished → the rule's handler).
    audit = _publish_excellent_audit(world)
    assert audit.score >= 90
    published = time.monotonic()
    while page.get_by_test_id("balance-points").inner_text() != "100":
        assert time.monotonic() - published < 5, "the points did not arrive within 5 s"
        page.wait_for_timeout(250)
        page.reload()
    arrived = time.monotonic() - published
    assert arrived < 5

    # Redeem the gift card: auto-approved, the code is revealed at once.
    page.get_by_test_id(f"redeem-{card.pk}").click()
    page.get_by_test_id("redemption").wait_for()
    assert "Fulfilled" in page.get_by_test_id("redemption-status").inner_text()
    code = page.get_by_test_id("gift-code").inner_text().strip()
    assert code == "COFFEE-7Q2X-19KD"
    with tenant_context(world.a.org):
        redemption = Redemption.objects.get(item=card)
        assert redemption.status == Redemption.Status.FULFILLED
        assert GiftCardCode.objects.get(redemption=redemption).code == code

    # The statement shows the award and the redemption, and the balance left.
    page.goto("/rewards/statement/")
    statement = page.get_by_test_id("statement").inner_text()
    assert "Excellent mystery shop" in statement and "+100" in statement
    assert "Redeemed: Coffee gift card $5" in statement and "-80" in statement
    page.goto("/rewards/")
    assert page.get_by_test_id("balance-points").inner_text() == "20"
    assert not errors, errors
