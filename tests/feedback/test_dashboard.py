"""The feedback dashboard: same numbers as the API, scoped, charts without inline script, bounded queries."""

import datetime as dt
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.feedback.metric_data import NOW, Spec, bulk_answers, scores

URL = "/feedback/"


@pytest.fixture
def data(sw):
    bulk_answers(sw, scores("nps", [3, 3, 7, 10, 10, 10, 10, 10, 10, 10], location="a-n1"))
    bulk_answers(sw, scores("nps", [1, 7, 7, 8, 9, 10], location="a-n2"))
    bulk_answers(sw, scores("nps", [0], location="a-s1", when=NOW - dt.timedelta(days=200)))
    bulk_answers(sw, scores("csat", [1, 2, 3, 4, 5], location="a-n1"))
    bulk_answers(sw, scores("ces", [1, 2, 7], location="a-s1"))
    bulk_answers(
        sw,
        [
            Spec(
                "text", location="a-n1", extra={"text": "rude", "sentiment": "negative", "topics": ["rude"]}
            ),
            Spec(
                "text", location="a-n1", extra={"text": "slow", "sentiment": "negative", "topics": ["wait"]}
            ),
            Spec(
                "text", location="a-n2", extra={"text": "great", "sentiment": "positive", "topics": ["staff"]}
            ),
        ],
    )
    return sw


def _page(client, **params):
    resp = client.get(URL, params)
    assert resp.status_code == 200, resp.status_code
    return resp.content.decode()


def _table(html: str) -> dict:
    rows = re.findall(r'<tr data-location="(\d*)" data-value="([^"]*)" data-n="(\d+)"', html)
    return {int(loc) if loc else None: (float(v) if v else None, int(n)) for loc, v, n in rows}


def _kpi(html: str, key: str):
    value, n = re.search(rf'data-testid="kpi-{key}" data-value="([^"]*)" data-n="(\d+)"', html).groups()
    return (float(value) if value else None, int(n))


def _api_by_location(api_client, **params) -> dict:
    body = api_client.get("/api/v1/metrics/", {"metric": "nps", "group_by": "location", **params}).json()
    return {r["group"]["location"]: (r["value"], r["n"]) for r in body["results"]}


def _from(html: str) -> str:
    return re.search(r'data-testid="kpis" data-from="([^"]*)"', html).group(1)


@pytest.mark.parametrize("persona", ["admin", "regional", "manager"])
def test_page_and_api_show_the_same_numbers(data, client, api, persona):
    user = data.world.users[persona]
    client.force_login(user)
    api_client = api(user)
    html = _page(client)
    start = _from(html)
    assert start  # default period is bounded
    assert _table(html) == _api_by_location(api_client, **{"from": start})
    all_time = _page(client, period="all")
    assert _from(all_time) == ""
    assert _table(all_time) == _api_by_location(api_client)
    for key in ("nps", "csat", "ces", "fcr"):
        body = api_client.get("/api/v1/metrics/", {"metric": key, "from": start}).json()
        [overall] = body["results"]
        assert _kpi(html, key) == (overall["value"], overall["n"]), key


def test_values_and_scope(data, client):
    a = data.world.a
    client.force_login(data.world.users["admin"])
    html = _page(client)
    assert _table(html) == {a.locations["a-n1"].pk: (50.0, 10), a.locations["a-n2"].pk: (16.67, 6)}
    assert _kpi(html, "csat") == (40.0, 5)
    assert _kpi(html, "fcr") == (None, 0)  # no answers: null, shown as a dash, never 0
    # The old a-s1 detractor only counts over all time.
    assert _table(_page(client, period="all"))[a.locations["a-s1"].pk] == (-100.0, 1)

    client.force_login(data.world.users["manager"])
    html = _page(client, period="all")
    assert _table(html) == {a.locations["a-n1"].pk: (50.0, 10)}
    assert "Acme a-n2" not in html and "Acme a-s1" not in html
    # Filtering by another store's id does not widen the scope.
    assert _table(_page(client, location=str(a.locations["a-n2"].pk))) == {}


def test_filters_survey_and_location(data, client):
    a = data.world.a
    client.force_login(data.world.users["admin"])
    only = _page(client, location=str(a.locations["a-n2"].pk))
    assert _table(only) == {a.locations["a-n2"].pk: (16.67, 6)}
    assert _table(_page(client, survey=str(data.survey.pk))) == _table(_page(client))
    assert _table(_page(client, survey=str(data.survey_b.pk))) == {}  # org B's survey id: nothing
    bad = _page(client, location="abc")
    assert "Expected an id" in bad and _table(bad) == _table(_page(client))


def test_outsider_sees_nothing_of_org_a(data, client):
    client.force_login(data.world.users["outsider"])
    html = _page(client, period="all")
    assert "acme" not in html.lower()
    assert _table(html) == {}
    assert _kpi(html, "nps") == (None, 0)


def test_charts_are_json_drawn_by_a_static_script(data, client):
    client.force_login(data.world.users["admin"])
    html = _page(client)
    assert 'data-chart="chart-sentiment"' in html and 'data-chart="chart-topics"' in html
    assert '<script id="chart-sentiment" type="application/json">' in html
    # No inline executable script: every <script> is either a static file or JSON data.
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag
    assert "/static/vendor/plotly-4.1.1.min.js" in html and "/static/feedback/charts.js" in html
    assert "cdn" not in html.lower()
    static = settings.BASE_DIR / "static"
    assert (static / "vendor" / "plotly-4.1.1.min.js").stat().st_size > 1_000_000
    assert (static / "feedback" / "charts.js").exists()
    topics = re.search(r'<script id="chart-topics" type="application/json">(.*?)</script>', html).group(1)
    assert '"rude"' in topics and '"wait"' in topics and "Acme a-n1" in topics


def test_htmx_swap_returns_only_the_body(data, client):
    client.force_login(data.world.users["admin"])
    resp = client.get(URL, {"period": "all"}, HTTP_HX_REQUEST="true")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "<html" not in html and 'data-testid="nps-by-location"' in html


def test_query_count_is_bounded(data, client, django_assert_max_num_queries):
    client.force_login(data.world.users["admin"])
    _page(client)  # warm caches (session, content types)
    with CaptureQueriesContext(connection) as small:
        _page(client)
    bulk_answers(data, scores("nps", list(range(11)) * 20, location="a-s1"))
    bulk_answers(
        data,
        [Spec("text", location="a-s1", extra={"text": "x", "sentiment": "neutral", "topics": ["price"]})]
        * 30,
    )
    with django_assert_max_num_queries(len(small)):
        _page(client)
    with django_assert_max_num_queries(15):
        _page(client, period="all")


def test_shopper_cannot_open_the_dashboard(sw, client):
    client.force_login(sw.world.users["shopper"])
    assert client.get(URL).status_code == 403


def test_open_cases_panel_only_for_roles_that_work_cases(sw, client):
    client.force_login(sw.world.users["manager"])
    assert 'data-testid="open-cases"' in client.get("/feedback/").content.decode()
    client.force_login(sw.world.users["employee"])
    assert 'data-testid="open-cases"' not in client.get("/feedback/").content.decode()
