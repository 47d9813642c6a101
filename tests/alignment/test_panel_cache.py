"""The store dashboard's panel rows are cached until their store's rollup changes
(alignment.panel_cache): a repeated view reads no rollup, a change shows on the next view, the
viewer's scope and the filters are part of the key, names are read afresh."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alignment import rollup_derived
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.dashboard_data import nps_counts, put, today
from tests.alignment.test_dashboard_store_api import store


def _get(client, url, params=None) -> tuple[dict, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url, params or {})
    assert resp.status_code == 200, resp.content[:300]
    return resp.json(), [q["sql"] for q in ctx.captured_queries]


def _rollup_reads(queries) -> int:
    return sum('FROM "alignment_rollup"' in sql for sql in queries)


def _nps(payload) -> int:
    return next(r for r in payload["rows"] if r["measure"] == "nps")["n"]


@pytest.fixture
def shop(world):
    a = world.a
    n1, n2 = a.locations["a-n1"].pk, a.locations["a-n2"].pk
    put(
        a.org,
        [
            {"measure": "nps", "location": n1, **nps_counts([10, 9, 3])},
            {"measure": "nps", "location": n1, "employee": a.employees["a-n1"].pk, **nps_counts([10])},
            {"measure": "nps", "location": n2, **nps_counts([0])},
        ],
    )
    return world


def test_a_repeated_view_reads_no_rollup_and_a_change_at_the_store_shows_at_once(shop, api):
    world, a = shop, shop.a
    client = api(world.users["manager"])
    url = store(world, panel="kpis")
    cold, cold_queries = _get(client, url)
    warm, warm_queries = _get(client, url)
    assert warm == cold and _nps(cold) == 4
    assert _rollup_reads(cold_queries) == 1 and _rollup_reads(warm_queries) == 0
    assert len(warm_queries) < len(cold_queries)

    put(a.org, [{"measure": "nps", "location": a.locations["a-n1"].pk, **nps_counts([2])}])  # an event
    fresh, queries = _get(client, url)
    assert _nps(fresh) == 5 and _rollup_reads(queries) == 1


def test_another_stores_change_keeps_this_stores_panel_but_reaches_the_comparison(shop, api):
    world, a = shop, shop.a
    client = api(world.users["manager"])
    kpis, comparison = store(world, panel="kpis"), store(world, panel="comparison")
    _get(client, kpis)
    before, _ = _get(client, comparison)
    company = next(r for r in before["rows"] if r["measure"] == "nps")["company_n"]

    put(a.org, [{"measure": "nps", "location": a.locations["a-s1"].pk, **nps_counts([9, 9])}])
    _, queries = _get(client, kpis)
    assert _rollup_reads(queries) == 0  # a-n1's rows did not change
    after, _ = _get(client, comparison)
    assert next(r for r in after["rows"] if r["measure"] == "nps")["company_n"] == company + 2


def test_the_viewers_scope_and_the_filters_are_part_of_the_key(shop, api):
    world, a = shop, shop.a
    url = store(world, panel="kpis")
    assert _nps(_get(api(world.users["manager"]), url)[0]) == 4
    assert _nps(_get(api(world.users["employee"]), url)[0]) == 1  # their own rows only
    old = today(a.org) - dt.timedelta(days=20)
    put(a.org, [{"measure": "nps", "location": a.locations["a-n1"].pk, "day": old, **nps_counts([7])}])
    manager = api(world.users["manager"])
    assert _nps(_get(manager, url, {"period": "7"})[0]) == 4
    assert _nps(_get(manager, url, {"period": "30"})[0]) == 5


def test_standard_names_are_read_afresh_on_a_cached_view(shop, api):
    world, a = shop, shop.a
    with tenant_context(a.org):
        std = f.StandardFactory(organization=a.org, code="acme-greet", title="Greeting")
    put(
        a.org,
        [{"measure": "std_feedback", "location": a.locations["a-n1"].pk, "standard": std.pk, "total": 80}],
    )
    client = api(world.users["manager"])
    for panel in ("heatmap", "matrix"):
        first, _ = _get(client, store(world, panel=panel))
        assert {r["standard"] for r in first["rows"]} == {"Greeting"}
    with tenant_context(a.org):
        m.Standard.objects.filter(pk=std.pk).update(title="Warm greeting")
    for panel in ("heatmap", "matrix"):
        again, queries = _get(client, store(world, panel=panel))
        assert _rollup_reads(queries) == 0
        assert {r["standard"] for r in again["rows"]} == {"Warm greeting"}


def test_the_page_fragment_and_csv_share_the_cache(shop, client):
    from django.urls import reverse

    world, a = shop, shop.a
    client.force_login(world.users["manager"])
    url = reverse("alignment_store_panel", kwargs={"location_id": a.locations["a-n1"].pk, "panel": "kpis"})
    with CaptureQueriesContext(connection) as cold:
        assert client.get(url, {"format": "csv"}).status_code == 200
    with CaptureQueriesContext(connection) as warm:
        body = client.get(url, {"format": "csv"}).content.decode()
    assert _rollup_reads(q["sql"] for q in cold.captured_queries) == 1
    assert _rollup_reads(q["sql"] for q in warm.captured_queries) == 0
    assert "nps,NPS" in body


def test_generations_count_per_location_and_sum_for_the_organization(shop):
    a = shop.a
    n1, s1 = a.locations["a-n1"].pk, a.locations["a-s1"].pk
    with tenant_context(a.org):
        before = (rollup_derived.generation(n1), rollup_derived.generation(s1))
        total = rollup_derived.generation(organization=True)
    put(a.org, [{"measure": "nps", "location": s1, **nps_counts([5])}])
    with tenant_context(a.org):
        assert (rollup_derived.generation(n1), rollup_derived.generation(s1)) == (before[0], before[1] + 1)
        assert rollup_derived.generation(organization=True) == total + 1


def test_month_cover_splits_a_period_into_whole_months_and_edge_days():
    from alignment.selectors import month_cover

    d = dt.date
    assert month_cover(d(2025, 3, 1), d(2025, 5, 31)) == (d(2025, 3, 1), d(2025, 6, 1))  # whole months
    assert month_cover(d(2025, 3, 12), d(2025, 5, 20)) == (d(2025, 4, 1), d(2025, 5, 1))
    assert month_cover(d(2025, 3, 12), d(2025, 3, 20)) == (d(2025, 4, 1), d(2025, 3, 1))  # none whole
    assert month_cover(None, d(2025, 2, 28)) == (None, d(2025, 3, 1))
    assert month_cover(d(2024, 12, 31), None) == (d(2025, 1, 1), None)


def test_region_totals_from_period_sums_equal_the_rollups(world):
    """The comparison's region and company totals read whole months and edge days of PeriodRollup:
    the same sums as the rollup's for every preset, custom range, open end and category filter."""
    import random

    from alignment import selectors as sel
    from alignment.filters import DashboardFilters

    a = world.a
    rng = random.Random(5)
    now = today(a.org)
    places = [a.locations[c].pk for c in ("a-n1", "a-n2", "a-s1")] + [None]
    rows = [
        {
            "measure": rng.choice(["nps", "csat", "ces", "fcr", "audit", "monitoring"]),
            "location": rng.choice(places),
            "day": now - dt.timedelta(days=back),
            "category": rng.choice(["", "critical", "planned"]),
            "n": rng.randint(1, 4),
            "total": rng.randint(0, 40),
            "top": rng.randint(0, 1),
            "bottom": rng.randint(0, 1),
        }
        for back in range(0, 420, 2)
    ]
    put(a.org, rows)
    first_of_month = now.replace(day=1)
    ranges = [{"period": p} for p in ("7", "30", "90", "180", "365", "all")] + [
        {
            "from": (first_of_month - dt.timedelta(days=61)).isoformat(),
            "to": (first_of_month - dt.timedelta(days=1)).isoformat(),
        },
        {"from": (now - dt.timedelta(days=100)).isoformat()},
        {"to": (now - dt.timedelta(days=45)).isoformat()},
        {"from": (now - dt.timedelta(days=12)).isoformat(), "to": (now - dt.timedelta(days=9)).isoformat()},
    ]
    with tenant_context(a.org):
        for params in ranges + [{**r, "category": "critical"} for r in ranges]:
            filters = DashboardFilters.from_params(params, a.org)
            assert sel._in_periods(filters, sel.COMPARISON_MEASURES), params
            expected = sel._rollup_region_totals(filters, sel.COMPARISON_MEASURES)
            assert sel._period_region_totals(filters, sel.COMPARISON_MEASURES) == expected, params
        assert expected  # the ranges hold data
        channel = DashboardFilters.from_params({"channel": "1"}, a.org)
        assert not sel._in_periods(channel, sel.COMPARISON_MEASURES)  # no channel in PeriodRollup
        category = DashboardFilters.from_params({"category": "critical"}, a.org)
        assert not sel._in_periods(category, ["points"])  # points carry no category: not filtered
