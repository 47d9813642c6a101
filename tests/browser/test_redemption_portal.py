"""The rewards portal on a phone: an employee with points redeems an auto-approved gift card
(a double tap spends once), sees the code, and the statement shows the points in and out; a
merchandise item waits for the admin, who approves it on the approvals page."""

import pytest

from cem.tenancy import tenant_context
from incentives.models import CatalogItem, Redemption
from tests.browser.conftest import login
from tests.conftest import PASSWORD
from tests.incentives.redemption_helpers import balance, codes, fund, item

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_employee_redeems_a_gift_card_on_a_phone(world, page):
    org, emp = world.a.org, world.a.employees["a-n1"]
    fund(org, emp, 300)
    card = item(org, name="Coffee gift card", kind=CatalogItem.Kind.GIFT_CARD, cost=120, auto_approve=True)
    codes(org, card, "JAVA-7781-XQ")
    mug = item(org, name="Team mug", cost=60, stock=2)

    login(page, "employee@acme.test", PASSWORD)
    page.goto("/rewards/")
    assert page.get_by_test_id("balance-points").inner_text() == "300"
    assert page.get_by_test_id(f"item-{card.pk}").is_visible()
    page.get_by_test_id(f"redeem-{card.pk}").dblclick()
    page.wait_for_url("**/rewards/redemptions/*/")
    assert page.get_by_test_id("gift-code").inner_text() == "JAVA-7781-XQ"
    assert page.get_by_test_id("redemption-status").inner_text() == "Fulfilled"
    with tenant_context(org):
        assert Redemption.objects.filter(employee=emp).count() == 1
    assert balance(org, emp) == 180

    page.goto("/rewards/statement/")
    statement = page.get_by_test_id("statement").inner_text()
    assert "Redeemed: Coffee gift card" in statement and "-120" in statement
    assert "test funds" in statement and "+300" in statement

    page.goto("/rewards/")
    page.get_by_test_id(f"redeem-{mug.pk}").click()
    page.wait_for_url("**/rewards/redemptions/*/")
    assert page.get_by_test_id("redemption-status").inner_text() == "Awaiting approval"

    page.context.clear_cookies()
    login(page, "admin@acme.test", PASSWORD)
    page.goto("/rewards/manage/approvals/")
    with tenant_context(org):
        pending = Redemption.objects.get(item=mug)
    page.get_by_test_id(f"approve-{pending.pk}").click()
    page.wait_for_url("**/rewards/manage/approvals/")
    assert "Approved: Team mug" in page.content()
    with tenant_context(org):
        assert Redemption.objects.get(pk=pending.pk).status == Redemption.Status.FULFILLED
