"""Store manager (manager@northwind.demo, store S001 Northwind New York, one of the demo's
misaligned stores): signs in, opens the store dashboard, finds the blind spots on the impression x
execution matrix, opens one of the store's detractor cases from the dashboard, notes the call to
the customer, marks them contacted and resolves the case; nowhere does another store show up."""

import pytest

from cem.models import Location
from cem.tenancy import tenant_context
from feedback.models import Case, CaseNote

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_store_manager_works_a_detractor_case_from_the_store_dashboard(demo, journey):
    org = demo.orgs["northwind"]
    with tenant_context(org):
        store = Location.objects.get(code="S001")
        other_store = Location.objects.get(code="S002")
    page = journey.new_page()

    # Sign in: the dashboard lands on the store.
    journey.sign_in(page, "manager@northwind.demo")
    page.get_by_role("link", name="Dashboard", exact=True).click()
    page.wait_for_url(f"**/alignment/stores/{store.pk}/")
    assert page.get_by_test_id("store-title").inner_text() == store.name
    journey.assert_no_console_errors()

    # The impression x execution matrix: strong audits, weak customer scores — blind spots.
    matrix = page.locator("[data-panel=matrix]")
    matrix.scroll_into_view_if_needed()
    matrix.locator(".js-plotly-plot").wait_for()
    rows = matrix.locator("[data-testid=matrix-table] tr[data-quadrant]")
    quadrants = rows.evaluate_all("rows => rows.map(r => r.dataset.quadrant)")
    assert "blind_spot" in quadrants, matrix.inner_text()
    assert quadrants.count("blind_spot") >= len([q for q in quadrants if q]) / 2, quadrants
    journey.screenshot(page, "-dashboard")

    # An open detractor case from the dashboard's open cases.
    cases_panel = page.locator("[data-panel=cases]")
    first = cases_panel.get_by_test_id("open-case").first
    case_id = int(first.get_attribute("data-case"))
    with tenant_context(org):
        case = Case.objects.select_related("response").get(pk=case_id)
    assert case.location_id == store.pk and case.status in (Case.Status.OPEN, Case.Status.IN_PROGRESS)
    assert "NPS" in first.inner_text()
    first.get_by_role("link").click()
    page.wait_for_url(f"**/feedback/cases/{case_id}/")
    assert page.get_by_test_id("case-answers").get_by_test_id("case-answer").count() >= 1
    journey.assert_no_console_errors()

    # The call to the customer: a note, then "customer contacted".
    note = "Called the customer: apologised for the wait at the till, offered a voucher."
    page.get_by_test_id("note-text").fill(note)
    page.get_by_test_id("note-submit").click()
    page.get_by_test_id("case-note").filter(has_text="Called the customer").wait_for()
    if page.get_by_test_id("case-start").count():
        page.get_by_test_id("case-start").click()
        page.wait_for_selector("[data-testid=case-status]:has-text('In progress')")
    page.get_by_test_id("case-contacted").click()
    page.get_by_test_id("contacted-badge").wait_for()

    # Resolve.
    page.get_by_test_id("resolve-reason").fill(
        "Voucher sent; the till rota now has a second cashier at noon."
    )
    page.get_by_test_id("case-resolve").click()
    page.wait_for_selector("[data-testid=case-status]:has-text('Resolved')")
    assert "second cashier" in page.get_by_test_id("case-outcome").inner_text()
    with tenant_context(org):
        case.refresh_from_db()
        assert case.status == Case.Status.RESOLVED and case.customer_contacted_at is not None
        assert CaseNote.objects.filter(case=case, text=note).exists()
    journey.assert_no_console_errors()

    # No other store: the case list holds S001's cases only, and another store's dashboard and
    # case are 404s.
    page.goto("/feedback/cases/?status=all")
    titles = page.get_by_test_id("case-row").all_inner_texts()
    assert titles and all(store.name in t for t in titles), titles
    options = page.locator("[data-testid=case-location-filter] option").all_inner_texts()
    assert options == ["All my locations", store.name], options
    with tenant_context(org):
        other_case = Case.objects.filter(location=other_store).values_list("pk", flat=True).first()
    for url in (f"/alignment/stores/{other_store.pk}/", f"/feedback/cases/{other_case}/"):
        response = page.goto(url)
        assert response.status == 404, url
    errors = [e for e in journey.console_errors if "404" not in e]  # the 404 documents themselves
    assert not errors, errors
