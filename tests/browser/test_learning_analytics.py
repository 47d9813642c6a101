"""Trainer analytics in a real browser: the plotly charts draw under the page's CSP (no inline
script), a filter change swaps the figures and lands in the URL, and the effectiveness page flags
the ineffective lesson with its interval chart."""

import pytest

from tests.browser.conftest import login
from tests.conftest import PASSWORD
from tests.learning.test_analytics import Data, _effects

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_trainer_reads_analytics_and_effectiveness(world, page):
    data = Data(world)
    _effects(world)
    errors = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login(page, world.users["trainer"].username, PASSWORD)
    page.wait_for_url("**/")
    page.click('nav a[href="/learning/analytics/"]')
    page.wait_for_url("**/learning/analytics/")
    # plotly drew the charts from their JSON (an svg inside each chart box).
    page.wait_for_selector('[data-testid="chart-most-sent"] svg.main-svg')
    page.wait_for_selector('[data-testid="chart-quiz"] svg.main-svg')
    assert page.get_attribute('[data-testid="kpi-sent"]', "data-value") == "6"
    assert page.locator('[data-testid="lesson-row"]').first.get_attribute("data-lesson") == str(data.l1.pk)

    page.select_option('select[name="location"]', str(data.loc["a-s1"].pk))
    page.wait_for_url(f"**location={data.loc['a-s1'].pk}**")
    page.wait_for_selector('[data-testid="kpi-sent"][data-value="1"]')
    page.wait_for_selector('[data-testid="chart-most-sent"] svg.main-svg')

    page.click('[data-testid="effectiveness-link"]')
    page.wait_for_url("**/learning/analytics/effectiveness/")
    assert "acme flat lesson" in page.inner_text('[data-testid="ineffective-flag"]')
    page.wait_for_selector('[data-testid="chart-effects"] svg.main-svg')
    assert page.locator('[data-testid="effect-row"]').first.get_attribute("data-verdict") == "ineffective"
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
