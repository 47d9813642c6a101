"""Employee (employee@northwind.demo, an associate at S001) on a phone: My learning shows the lesson
the store manager assigned, with the reason in plain words; they read it, pass its quiz at the
first try, find the points for it (lesson completed + quiz passed first try) in their wallet,
redeem a gift card and see every movement on their statement."""

import pytest

from cem.models import Membership
from cem.tenancy import tenant_context
from incentives.models import CatalogItem, Redemption
from learning.models import Assignment, Quiz
from tests.e2e.conftest import PHONE, answer_quiz, digits

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

REASON = 'Assigned by your store manager: customers mention being asked "Can I help you?".'


def test_employee_learns_passes_the_quiz_and_spends_the_points(demo, journey):
    org = demo.orgs["northwind"]
    with tenant_context(org):
        employee = Membership.objects.get(user__username="employee@northwind.demo").employee
        assignment = Assignment.objects.select_related("lesson").get(employee=employee, reason=REASON)
        quiz = Quiz.objects.get(lesson=assignment.lesson)
    assert assignment.status == Assignment.Status.ASSIGNED
    page = journey.new_page(PHONE)
    journey.sign_in(page, "employee@northwind.demo")

    # The wallet before.
    page.goto("/rewards/")
    balance_before = digits(page.get_by_test_id("balance-points").inner_text())

    # My learning: the store manager's lesson, with its reason.
    page.get_by_role("link", name="My learning").first.click()
    page.wait_for_url("**/learning/")
    card = page.get_by_test_id(f"assignment-{assignment.pk}")
    assert assignment.lesson.title in card.inner_text()
    assert card.get_by_test_id("reason").inner_text() == REASON
    journey.assert_no_console_errors()

    # Read it; it ends with the quiz.
    card.get_by_test_id(f"open-{assignment.pk}").click()
    page.wait_for_url(f"**/learning/assignments/{assignment.pk}/")
    assert page.get_by_test_id("reason").inner_text() == REASON
    assert page.get_by_test_id("lesson-title").inner_text() == assignment.lesson.title
    page.get_by_test_id("complete").scroll_into_view_if_needed()
    page.get_by_test_id("complete").click()
    page.wait_for_url(f"**/learning/quizzes/{quiz.pk}/")
    page.get_by_test_id("start-attempt").click()
    page.wait_for_url("**/learning/attempts/*/")
    answer_quiz(page, quiz)
    journey.screenshot(page, "-quiz")
    page.get_by_test_id("submit-attempt").click()
    page.wait_for_selector("[data-testid=result-verdict]:has-text('Passed')")
    assert "100 %" in page.get_by_test_id("result-verdict").inner_text()
    with tenant_context(org):
        assignment.refresh_from_db()
    assert assignment.status == Assignment.Status.COMPLETED
    journey.assert_no_console_errors()

    # The points: 5 for the lesson, 10 for the quiz at the first try (the demo's reward rules).
    page.goto("/rewards/")
    balance = digits(page.get_by_test_id("balance-points").inner_text())
    assert balance == balance_before + 15, (balance_before, balance)

    # Redeem the cheapest gift card they can afford that is handed out at once.
    items = page.get_by_test_id("catalogue").locator("[data-testid^=redeem-]:not([disabled])")
    assert items.count(), page.get_by_test_id("catalogue").inner_text()
    with tenant_context(org):
        affordable = {
            f"redeem-{i.pk}": i
            for i in CatalogItem.objects.filter(
                active=True, auto_approve=True, kind=CatalogItem.Kind.GIFT_CARD, cost__lte=balance
            )
        }
    offered = [t for t in items.evaluate_all("els => els.map(e => e.dataset.testid)") if t in affordable]
    assert offered, "no affordable gift card is offered"
    item = min((affordable[t] for t in offered), key=lambda i: i.cost)
    page.get_by_test_id(f"redeem-{item.pk}").click()
    page.wait_for_url("**/rewards/redemptions/*/")
    assert page.get_by_test_id("redemption-status").inner_text() == "Fulfilled"
    code = page.get_by_test_id("gift-code").inner_text().strip()
    assert code
    with tenant_context(org):
        redemption = Redemption.objects.filter(employee=employee, item=item).latest("pk")
    assert redemption.status == Redemption.Status.FULFILLED
    journey.assert_no_console_errors()

    # The statement: both awards and the redemption; the balance left.
    page.goto("/rewards/statement/")
    statement = page.get_by_test_id("statement").inner_text()
    assert "+5" in statement and "+10" in statement, statement[:800]
    assert f"Redeemed: {item.name}" in statement and f"-{item.cost}" in statement
    journey.screenshot(page, "-statement")
    page.goto("/rewards/")
    assert digits(page.get_by_test_id("balance-points").inner_text()) == balance - item.cost
    journey.assert_no_console_errors()
