"""Core journeys in a real browser, on a phone-sized viewport."""

import pytest

from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_store_manager_logs_in_and_sees_only_their_store(world, page):
    login(page, "manager@acme.test", PASSWORD)
    page.wait_for_url("**/")
    assert page.get_by_test_id("kpi-interactions").inner_text() == "1"
    page.click("text=Interactions")
    page.wait_for_url("**/interactions/")
    body = page.content()
    assert "acme-int-a-n1" in body and "acme-int-a-n2" not in body
    options = page.locator("[data-testid=location-filter] option").all_inner_texts()
    assert options == ["All my locations", "Acme a-n1"]
    assert page.locator("text=Users").count() == 0
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/login/")


def test_wrong_password_shows_a_message(world, page):
    login(page, "admin@acme.test", "not-the-password")
    assert page.get_by_role("alert").count() == 1
    assert "/login/" in page.url


def test_admin_filters_interactions_with_htmx(world, page):
    login(page, "admin@acme.test", PASSWORD)
    page.wait_for_url("**/")
    page.goto("/interactions/")
    assert page.get_by_test_id("interaction-total").inner_text() == "3"
    page.select_option("[data-testid=location-filter]", label="Acme a-s1")
    page.wait_for_url("**location=*")
    page.wait_for_function("document.querySelector('[data-testid=interaction-total]').innerText === '1'")
    assert "acme-int-a-s1" in page.content()
