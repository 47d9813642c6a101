"""An admin builds an audit form with two items in a real browser (htmx adds the rows)."""

import pytest

from audits.models import AuditForm, FormItem
from cem.tenancy import tenant_context
from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_builds_a_form_with_two_items(world, page):
    with tenant_context(world.a.org):
        standard_id = str(world.a.standard.pk)
    login(page, "admin@acme.test", PASSWORD)
    page.wait_for_url("**/")
    page.get_by_role("link", name="Forms", exact=True).click()
    page.wait_for_url("**/audits/forms/")
    page.get_by_test_id("create-form").click()
    page.fill("input[name=name]", "Store visit")
    page.check("input[name=critical_policy][value=cap]")
    page.fill("input[name=critical_cap]", "50")
    page.get_by_test_id("submit").click()
    page.wait_for_url("**/structure/")

    page.fill("input[name=s-0-key]", "greeting")
    page.fill("input[name=s-0-title_en]", "Greeting")
    page.get_by_test_id("add-item-0").click()
    page.wait_for_selector("input[name=i-0-key]")
    page.fill("input[name=i-0-key]", "greeted")
    page.fill("textarea[name=i-0-text_en]", "Greeted within 30 seconds?")
    page.select_option("select[name=i-0-standard]", standard_id)
    page.check("input[name=i-0-critical]")
    page.get_by_test_id("add-item-0").click()
    page.wait_for_selector("input[name=i-1-key]")
    # The first row kept what was typed across the swap.
    assert page.input_value("input[name=i-0-key]") == "greeted"
    page.fill("input[name=i-1-key]", "clean")
    page.select_option("select[name=i-1-type]", "yes_no_na")
    page.fill("textarea[name=i-1-text_en]", "Store clean?")
    page.fill("input[name=i-1-weight]", "2")
    page.select_option("select[name=i-1-standard]", standard_id)
    page.get_by_test_id("publish").click()
    page.wait_for_url("**/audits/forms/*/")
    assert "Published version 1." in page.content()
    assert page.get_by_test_id("item-row").count() == 4  # current version + its history entry

    with tenant_context(world.a.org):
        form = AuditForm.objects.get(name="Store visit")
        items = {i.key: i for i in FormItem.objects.filter(version__form=form)}
    assert (form.critical_policy, str(form.critical_cap)) == ("cap", "50.00")
    assert items["greeted"].critical and items["clean"].type == "yes_no_na"
    assert str(items["clean"].weight) == "2.00"
