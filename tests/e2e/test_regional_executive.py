"""Regional manager (regional@northwind.demo, region Northeast) and executive (exec@northwind.demo):
the ranking of the region's stores, a drill from the ranking into one store's dashboard, and the
complaint review of the same stores' cases. The executive starts from the company dashboard and
drills into the region first; the regional manager lands on the region."""

import pytest

from cem.models import Location, Region
from cem.tenancy import tenant_context

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.mark.parametrize("persona", ["regional", "executive"])
def test_region_ranking_drill_to_a_store_and_complaint_review(demo, journey, persona):
    org = demo.orgs["northwind"]
    with tenant_context(org):
        region = Region.objects.get(code="northeast")
        region_stores = {loc.pk: loc.name for loc in Location.objects.filter(region=region)}
        s001 = Location.objects.get(code="S001")
    page = journey.new_page()
    journey.sign_in(page, f"{'regional' if persona == 'regional' else 'exec'}@northwind.demo")
    page.get_by_role("link", name="Dashboard", exact=True).click()

    if persona == "executive":
        # The company dashboard: every region to drill into.
        page.wait_for_url("**/alignment/executive/**")
        page.locator(
            f"[data-panel=children] [data-testid=drill-child][data-level=region][data-id='{region.pk}']"
        ).get_by_test_id("drill-link").click()
    page.wait_for_url(f"**/alignment/regions/{region.pk}/**")
    journey.assert_no_console_errors()

    # The ranking: the region's stores only, ranked with intervals, the misaligned S001 at the bottom
    # on NPS.
    ranking = page.locator("[data-panel=ranking]")
    ranking.scroll_into_view_if_needed()
    rows = ranking.get_by_test_id("ranking-row")
    ranked = {int(r.get_attribute("data-location")): r.get_attribute("data-rank") for r in rows.all()}
    assert set(ranked) == set(region_stores), (ranked, region_stores)
    ranks = sorted(int(rank) for rank in ranked.values() if rank)
    assert len(ranks) >= len(region_stores) // 2, ranked
    assert ranked[s001.pk] and int(ranked[s001.pk]) == max(ranks), ranking.inner_text()
    journey.screenshot(page, "-ranking")

    # Drill from the ranking into the top-ranked store.
    top = min(ranked, key=lambda pk: int(ranked[pk]) if ranked[pk] else 10**6)
    ranking.locator(f"[data-testid=ranking-row][data-location='{top}'] a").click()
    page.wait_for_url(f"**/alignment/stores/{top}/**")
    assert page.get_by_test_id("store-title").inner_text() == region_stores[top]
    page.locator("[data-panel=kpis]").wait_for()
    journey.assert_no_console_errors()

    # Back to the region, and its complaint review: the same stores' open and recent cases.
    page.go_back()
    page.wait_for_url(f"**/alignment/regions/{region.pk}/**")
    page.get_by_test_id("complaint-review").click()
    page.wait_for_url("**/feedback/cases/review/")
    assert int(page.get_by_test_id("review-active").inner_text()) > 0
    locations = page.get_by_test_id("review-case").evaluate_all(
        "rows => rows.map(r => r.querySelector('[data-label=Location]')?.innerText.trim())"
    )
    assert locations, page.inner_text("main")
    if persona == "regional":
        assert set(locations) <= set(region_stores.values()), locations
    else:
        assert set(locations) - set(region_stores.values()), "the executive sees every region's cases"
    assert page.get_by_test_id("theme-row").count() >= 1
    journey.assert_no_console_errors()
