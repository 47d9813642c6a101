"""The rollup read API and the store dashboard's data endpoints: filters, 400s naming the
parameter, the page's figures, scope, constant query counts, OpenAPI."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests import factories as f
from tests.alignment.dashboard_data import nps_counts, put, today

LIST = "/api/v1/rollups/"
SUMMARY = "/api/v1/rollups/summary/"
PANELS = (
    "kpis",
    "nps",
    "audit",
    "heatmap",
    "matrix",
    "cases",
    "training",
    "points",
    "scores",
    "comparison",
    "categories",
)


def store(world, code="a-n1", panel=""):
    url = f"/api/v1/alignment/dashboard/stores/{world.a.locations[code].pk}/"
    return f"{url}{panel}/" if panel else url


@pytest.fixture
def data(world):
    a = world.a
    org = a.org
    n1, n2, s1 = (a.locations[c].pk for c in ("a-n1", "a-n2", "a-s1"))
    old = today(org) - dt.timedelta(days=40)
    put(
        org,
        [
            {"measure": "nps", "location": n1, "category": "critical", **nps_counts([10, 9, 3])},
            {"measure": "nps", "location": n1, "day": old, "category": "planned", **nps_counts([0])},
            {"measure": "csat", "location": n1, "n": 2, "total": 9, "top": 2},
            {"measure": "nps", "location": n2, **nps_counts([10])},
            {"measure": "nps", "location": s1, **nps_counts([0, 0])},
            {"measure": "audit", "location": n1, "n": 2, "total": 150},
        ],
    )
    return world


def _results(resp):
    assert resp.status_code == 200, resp.content[:300]
    return resp.json()["results"]


def test_list_filters_and_scope(data, api):
    world = data
    a = world.a
    admin = api(world.users["admin"])
    rows = _results(admin.get(LIST))
    assert len(rows) == 6
    assert {r["measure"] for r in _results(admin.get(LIST, {"measure": "nps"}))} == {"nps"}
    n1 = a.locations["a-n1"].pk
    assert len(_results(admin.get(LIST, {"location": n1}))) == 4
    assert len(_results(admin.get(LIST, {"location": n1, "category": "planned"}))) == 1
    since = (today(a.org) - dt.timedelta(days=7)).isoformat()
    assert len(_results(admin.get(LIST, {"location": n1, "from": since}))) == 3
    until = (today(a.org) - dt.timedelta(days=39)).isoformat()
    assert [r["n"] for r in _results(admin.get(LIST, {"to": until}))] == [1]
    page = admin.get(LIST, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]

    manager = api(world.users["manager"])
    assert {r["location"] for r in _results(manager.get(LIST))} == {n1}
    regional = api(world.users["regional"])
    assert {r["location"] for r in _results(regional.get(LIST))} == {n1, a.locations["a-n2"].pk}
    outsider = api(world.users["outsider"])
    assert _results(outsider.get(LIST)) == []
    assert outsider.get(f"{LIST}{rows[0]['id']}/").status_code == 404
    assert api(key=world.b.api_key).get(f"{LIST}{rows[0]['id']}/").status_code == 404


@pytest.mark.parametrize(
    ("url", "params", "param"),
    [
        (LIST, {"location": "abc"}, "location"),
        (LIST, {"from": "2026-99-01"}, "from"),
        (LIST, {"category": "urgent"}, "category"),
        (LIST, {"measure": "vibes"}, "measure"),
        (SUMMARY, {"measure": "vibes"}, "measure"),
        (SUMMARY, {"measure": "nps", "group_by": "colour"}, "group_by"),
        (SUMMARY, {"measure": "nps", "group_by": "week,month"}, "group_by"),
        (SUMMARY, {"measure": "nps", "group_by": "month,quarter"}, "group_by"),
        (SUMMARY, {"measure": "nps", "period": "13"}, "period"),
        (SUMMARY, {"measure": "nps", "location": "x"}, "location"),
        ("store:nps", {"grain": "hour"}, "grain"),
        ("store:kpis", {"channel": "one"}, "channel"),
        ("store:kpis", {"from": "2026-02-01", "to": "2026-01-01"}, "to"),
    ],
)
def test_bad_parameters_are_400_naming_them(data, api, url, params, param):
    if url.startswith("store:"):
        url = store(data, panel=url.split(":")[1])
    resp = api(data.users["admin"]).get(url, params)
    assert resp.status_code == 400, resp.content
    assert param in resp.json(), resp.json()


def test_summary_groups_with_the_feedback_definitions(data, api):
    world = data
    a = world.a
    admin = api(world.users["admin"])
    rows = _results(admin.get(SUMMARY, {"measure": "nps", "group_by": "location"}))
    by_loc = {r["location"]: r for r in rows}
    n1 = by_loc[a.locations["a-n1"].pk]
    assert (n1["n"], n1["top"], n1["bottom"], n1["value"]) == (4, 2, 2, 0.0)
    assert by_loc[a.locations["a-s1"].pk]["value"] == -100.0
    north = _results(admin.get(SUMMARY, {"measure": "nps", "region": a.regions["north"].pk}))
    assert [(r["n"], r["value"]) for r in north] == [(5, 20.0)]
    weekly = _results(admin.get(SUMMARY, {"measure": "nps,csat", "group_by": "week", "period": "30"}))
    assert {r["measure"] for r in weekly} == {"nps", "csat"}
    assert all(dt.date.fromisoformat(r["week"]).weekday() == 0 for r in weekly)
    quarterly = _results(admin.get(SUMMARY, {"measure": "nps", "group_by": "quarter", "period": "all"}))
    assert sum(r["n"] for r in quarterly) == sum(r["n"] for r in rows)
    assert {r["quarter"][5:] for r in quarterly} <= {"01-01", "04-01", "07-01", "10-01"}
    # Scoped: the store manager's summary is their store's.
    mine = _results(api(world.users["manager"]).get(SUMMARY, {"measure": "nps"}))
    assert [(r["n"], r["value"]) for r in mine] == [(4, 0.0)]
    assert (
        _results(api(world.users["outsider"]).get(SUMMARY, {"measure": "nps"}))
        == [{"measure": "nps", "n": 0, "total": "0.0000", "top": 0, "bottom": 0, "value": None}]
        or _results(api(world.users["outsider"]).get(SUMMARY, {"measure": "nps"})) == []
    )


def test_store_panels_return_the_pages_rows(data, api, client):
    world = data
    client.force_login(world.users["manager"])
    admin = api(world.users["manager"])
    index = admin.get(store(world))
    assert index.status_code == 200
    assert [p["key"] for p in index.json()["panels"]] == list(PANELS)
    for panel in PANELS:
        resp = admin.get(store(world, panel=panel), {"period": "30"})
        assert resp.status_code == 200, (panel, resp.content[:200])
        body = resp.json()
        assert body["panel"] == panel and body["filters"] == {"period": "30"}
        page_csv = client.get(
            f"/alignment/stores/{world.a.locations['a-n1'].pk}/panels/{panel}/?period=30&format=csv"
        )
        reader = csv.reader(io.StringIO(page_csv.content.decode()))
        next(reader)
        assert len(list(reader)) == len(body["rows"]), panel
    kpis = {r["measure"]: r for r in admin.get(store(world, panel="kpis")).json()["rows"]}
    assert (kpis["nps"]["value"], kpis["nps"]["n"]) == (0.0, 4)
    assert (kpis["audit"]["value"], kpis["audit"]["n"]) == (75.0, 2)
    narrowed = {
        r["measure"]: r
        for r in admin.get(store(world, panel="kpis"), {"category": "critical"}).json()["rows"]
    }
    assert (narrowed["nps"]["value"], narrowed["nps"]["n"]) == (33.33, 3)
    assert admin.get(store(world, panel="nope")).status_code == 404


def test_store_endpoints_respect_scope(data, api):
    world = data
    manager = api(world.users["manager"])
    assert [s["code"] for s in manager.get("/api/v1/alignment/dashboard/stores/").json()] == ["a-n1"]
    for code in ("a-n2", "a-s1"):
        assert manager.get(store(world, code)).status_code == 404
        assert manager.get(store(world, code, "nps")).status_code == 404
    regional = api(world.users["regional"])
    assert regional.get(store(world, "a-n2", "nps")).status_code == 200
    assert regional.get(store(world, "a-s1", "nps")).status_code == 404
    for client in (api(world.users["outsider"]), api(key=world.b.api_key)):
        assert client.get(store(world, "a-n1", "kpis")).status_code == 404
        assert b"acme" not in client.get("/api/v1/alignment/dashboard/stores/").content.lower()
    integrator = api(key=world.a.api_key)
    rows = integrator.get(store(world, "a-s1", "kpis")).json()["rows"]
    assert next(r for r in rows if r["measure"] == "nps")["value"] == -100.0


def _count(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url, params or {})
    assert resp.status_code == 200, (url, resp.content[:200])
    return len(ctx.captured_queries)


def _grow(world, k):
    a = world.a
    rows = []
    for i in range(k):
        emp = f.EmployeeFactory(organization=a.org, current_location=a.locations["a-n1"])
        std = f.StandardFactory(organization=a.org)
        day = today(a.org) - dt.timedelta(days=i * 8)
        loc = a.locations["a-n1"].pk
        rows += [
            {"measure": "nps", "location": loc, "employee": emp.pk, "day": day, **nps_counts([9, 2])},
            {"measure": "std_feedback", "location": loc, "standard": std.pk, "day": day, "n": 1, "total": 50},
            {"measure": "points", "location": loc, "employee": emp.pk, "day": day, "n": 1, "total": 5},
            {"measure": "lessons", "location": loc, "employee": emp.pk, "day": day, "n": 1, "top": 1},
        ]
    put(a.org, rows)


def test_query_counts_are_constant(data, api, monkeypatch):
    world = data
    # The comparison's organization totals are cached; counted here on every request.
    monkeypatch.setattr("alignment.selectors.COMPARISON_CACHE_SECONDS", 0)
    _grow(world, 1)  # every panel has rows to name (an empty panel skips its name look-up)
    for client in (api(world.users["manager"]), api(key=world.a.api_key)):
        urls = [LIST, SUMMARY, *(store(world, panel=p) for p in PANELS)]
        # Warm-up before each round: an API key's first use after a write re-reads the key.
        client.get(store(world))
        before = {u: _count(client, u) for u in urls}
        _grow(world, 5)
        client.get(store(world))
        after = {u: _count(client, u) for u in urls}
        assert after == before
        # The store panels the benchmark times: the API overhead plus one or two rollup queries.
        base = _count(client, store(world, panel="kpis"))
        assert _count(client, store(world, panel="nps")) == base
        assert _count(client, store(world, panel="heatmap")) <= base + 1


def test_openapi_documents_the_routes(api, world):
    schema = api(world.users["admin"]).get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert "/api/v1/rollups/" in paths and "/api/v1/rollups/summary/" in paths
    assert "/api/v1/alignment/dashboard/stores/{id}/{panel}/" in paths
