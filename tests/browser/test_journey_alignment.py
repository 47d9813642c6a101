"""Issue 8 acceptance, in headless chromium.

Who does what:

- the **store manager** (manager@acme.test, store a-n1) opens the dashboards (``/alignment/``
  lands on their store), changes the period filter (the URL carries it), opens the impression x
  execution matrix (the store's standard is a blind spot: customers rate it poorly while the
  audit finds it well executed), exports the matrix data as CSV, and drills from the store to
  one of its employees; then a new detractor response is POSTed through the responses API with
  the integrator's key, and within seconds the store's NPS panel shows it — the panel polls its
  own fragment (htmx, every 5 s); the page itself is not reloaded (a marker set on ``window``
  and the page title element outside the panel survive);
- the **regional manager** (regional@acme.test, region north) does the drill-down from the
  region: a store manager's scope stops at their store (the region page is a 404 for them), so
  the region → store → employee path is the regional manager's.

The history behind the figures goes through the real services and the event spine (eager Celery
in tests): responses via the API, an audit via ``audit_publish``; the alignment handlers keep the
rollup the dashboards read. No page logs a console error.
"""

import csv
import datetime as dt
import json
import time

import pytest
from django.utils import timezone

from audits import audit_services
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests.audits.sweep_forms import GOOD, make_audit, make_form
from tests.browser.conftest import login
from tests.browser.test_journey_learning import Console
from tests.conftest import PASSWORD
from tests.factories import StandardFactory
from tests.feedback.conftest import make_survey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _history(world, api):
    """Two promoters who rated the standard poorly, and an excellent audit on it, at a-n1."""
    org, store = world.a.org, world.a.locations["a-n1"]
    survey, _version, _ = make_survey(
        org, name="Store visit", touchpoint=world.a.touchpoint, standard=world.a.standard
    )
    integrator = api(key=world.a.api_key)
    two_days_ago = timezone.now() - dt.timedelta(days=2)
    for n in range(2):
        resp = integrator.post(
            "/api/v1/responses/",
            {
                "survey": survey.pk,
                "answers": {"nps": 10, "csat": 2},
                "interaction": "acme-int-a-n1",
                "external_id": f"acme-history-{n}",
                "submitted_at": (two_days_ago + dt.timedelta(minutes=n)).isoformat(),
            },
            format="json",
        )
        assert resp.status_code == 201, resp.content
    other = StandardFactory(organization=org, code="acme-checkout", title="Acme checkout")
    _form, version = make_form(org, world.a.standard, other, name="acme store visit")
    audit = make_audit(org, version, GOOD, location=store, employee=world.a.employees["a-n1"])
    with tenant_context(org):
        audit_services.audit_publish(organization=org, actor=Actor.system(), audit=audit)
    return survey, integrator


def _sign_in(page, email):
    page.context.clear_cookies()
    login(page, email, PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)


def _figure(page, panel: str) -> str:
    """The JSON of a panel's plotly figure as the server sent it ('' when it has none)."""
    return page.evaluate(
        """(panel) => {
            const el = document.querySelector(`[data-panel="${panel}"] script[type="application/json"]`);
            return el ? el.textContent : "";
        }""",
        panel,
    )


def _nps_answers(figure_json: str) -> tuple[int, float]:
    """(answers, lowest weekly NPS) of the NPS line in the trend panel's figure."""
    [nps] = [t for t in json.loads(figure_json)["data"] if t.get("name") == "NPS"]
    return sum(nps["customdata"]), min(nps["y"])


def test_store_manager_dashboard_matrix_csv_live_nps_and_regional_drill_down(world, page, api):
    survey, integrator = _history(world, api)
    store, employee = world.a.locations["a-n1"], world.a.employees["a-n1"]
    console = Console(page)

    # The store manager lands on their store's dashboard.
    _sign_in(page, "manager@acme.test")
    page.goto("/alignment/")
    page.wait_for_url(f"**/alignment/stores/{store.pk}/")
    assert page.get_by_test_id("store-title").inner_text() == store.name
    body = page.get_by_test_id("dashboard-body")
    assert body.get_attribute("data-query") == ""
    console.assert_clean()

    # The period filter: the body is swapped in place and the URL carries the filter.
    page.get_by_test_id("filter-period").select_option("30")
    page.wait_for_url("**period=30**")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=dashboard-body]').dataset.query === 'period=30'"
    )
    console.assert_clean()

    # The impression x execution matrix: the store's standard is a blind spot (customers 25/100,
    # the audit 100/100), drawn by plotly and listed in its table.
    matrix = page.locator("[data-panel=matrix]")
    matrix.scroll_into_view_if_needed()
    row = matrix.locator(f"[data-testid=matrix-table] tr[data-standard='{world.a.standard.pk}']")
    assert row.get_attribute("data-quadrant") == "blind_spot", matrix.inner_text()
    assert "Blind spot" in row.inner_text()
    matrix.locator(".js-plotly-plot").wait_for()
    console.assert_clean()

    # Its data as CSV: the header the panel declares and the standard's row.
    with page.expect_download() as download_info:
        matrix.locator("a.panel-csv").click()
    download = download_info.value
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), newline="", encoding="utf-8-sig") as fh:
        table = list(csv.reader(fh))
    assert table[0] == [
        "standard_code",
        "standard",
        "impression",
        "impression_n",
        "execution",
        "execution_n",
        "quadrant",
        "reliable",
    ]
    [standard_row] = [r for r in table[1:] if r[0] == world.a.standard.code]
    assert standard_row[6] == "blind_spot" and float(standard_row[2]) == 25.0

    # A detractor arrives through the API; the NPS panel (polling its own fragment) shows it
    # within seconds while the page stays the same document.
    page.evaluate(
        "() => { window.__marker = 1; window.__title = document.querySelector('[data-testid=store-title]'); }"
    )
    before = _figure(page, "nps")
    assert before, "the NPS panel has a chart"
    posted = time.monotonic()
    resp = integrator.post(
        "/api/v1/responses/",
        {
            "survey": survey.pk,
            "answers": {"nps": 0, "comment": "Nobody helped me at all."},
            "interaction": "acme-int-a-n1",
            "external_id": "acme-live-detractor",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    page.wait_for_function(
        """(before) => {
            const el = document.querySelector('[data-panel="nps"] script[type="application/json"]');
            return el && el.textContent !== before;
        }""",
        arg=before,
        timeout=12_000,
    )
    assert time.monotonic() - posted < 12
    (n_before, low_before), (n_after, low_after) = _nps_answers(before), _nps_answers(_figure(page, "nps"))
    assert (n_before, n_after) == (2, 3) and low_after < low_before
    assert page.evaluate(
        "() => window.__marker === 1 && "
        "window.__title === document.querySelector('[data-testid=store-title]')"
    ), "the page was reloaded"
    page.locator("[data-panel=nps] .js-plotly-plot").wait_for()
    console.assert_clean()

    # From the store to one of its employees (the store manager's scope starts at the store).
    page.get_by_test_id("people-link").click()
    page.wait_for_url(f"**/alignment/locations/{store.pk}/people/**")
    page.locator(f"[data-testid=drill-child][data-level=employee][data-id='{employee.pk}']").get_by_test_id(
        "drill-link"
    ).click()
    page.wait_for_url(f"**/alignment/employees/{employee.pk}/**")
    assert employee.name in page.get_by_test_id("overview-title").inner_text()
    console.assert_clean()
    # The region is above a store manager's scope.
    response = page.goto(f"/alignment/regions/{store.region_id}/")
    assert response.status == 404
    assert all("404" in error for error in console.errors), console.errors  # the 404 document itself
    console.errors.clear()

    # The regional manager drills region → store → employee.
    _sign_in(page, "regional@acme.test")
    page.goto("/alignment/")
    page.wait_for_url(f"**/alignment/regions/{store.region_id}/")
    children = page.locator("[data-panel=children]")
    children.locator(f"[data-testid=drill-child][data-level=location][data-id='{store.pk}']").get_by_test_id(
        "drill-link"
    ).click()
    page.wait_for_url(f"**/alignment/stores/{store.pk}/**")
    assert page.get_by_test_id("store-title").inner_text() == store.name
    page.get_by_test_id("people-link").click()
    page.wait_for_url(f"**/alignment/locations/{store.pk}/people/**")
    page.locator(f"[data-testid=drill-child][data-level=employee][data-id='{employee.pk}']").get_by_test_id(
        "drill-link"
    ).click()
    page.wait_for_url(f"**/alignment/employees/{employee.pk}/**")
    assert employee.name in page.get_by_test_id("overview-title").inner_text()
    console.assert_clean()
