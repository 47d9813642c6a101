"""The store dashboard: figures equal the feedback app's definitions, filters narrow them, panels
export CSV (formula-safe), bad filters are a 400 naming the parameter, scope holds, query counts
are constant, and the NPS panel shows a new response once the rollup handler has run."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alignment import rollups
from alignment.pages.panels import optional_reverse
from alignment.score_settings import settings_update
from alignment.selectors import Caller, Subject
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback import selectors as fsel
from tests import factories as f
from tests.alignment.dashboard_data import nps_counts, put, today
from tests.learning.gap_data import NOW, GapWorld

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


def store_url(world, code="a-n1"):
    return reverse("alignment_store", kwargs={"location_id": world.a.locations[code].pk})


def panel_url(world, panel, code="a-n1", query=""):
    url = reverse("alignment_store_panel", kwargs={"location_id": world.a.locations[code].pk, "panel": panel})
    return f"{url}?{query}" if query else url


def csv_rows(resp) -> list[dict]:
    assert resp.status_code == 200, resp.content[:300]
    assert resp["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(resp.content.decode())))


def kpi(client, world, measure, query="", code="a-n1") -> dict:
    rows = csv_rows(client.get(panel_url(world, "kpis", code, "format=csv&" + query)))
    return next(r for r in rows if r["measure"] == measure)


@pytest.fixture
def gw(world):
    gw = GapWorld(world, name="acme dash")
    with tenant_context(gw.org):
        rollups.rebuild(gw.org, replace=True)
    return gw


def login(client, world, persona):
    client.force_login(world.users[persona])
    return client


# --- figures ----------------------------------------------------------------------------------


def test_figures_equal_the_feedback_apps_definitions(gw, client):
    """Raw answers → rollup → dashboard equals feedback.selectors on the same answers, to the digit."""
    world = gw.world
    # 1 promoter, 2 detractors of 6: NPS -16.666… → -16.67 (half-up away from zero).
    gw.answers([10, 8, 7, 3, 0, 7], qtype="nps")
    gw.answers([5, 4, 2], qtype="csat")
    gw.answers([6, 3], qtype="ces")
    gw.answers([1, 1, 0], qtype="fcr")
    gw.answers([9, 9], qtype="nps", location="a-n2")  # another store: not in a-n1's figures
    with tenant_context(gw.org):
        rollups.rebuild(gw.org, replace=True)
        membership = m.Membership.objects.get(user=world.users["admin"])
        query = fsel.parse_metric_query({"location": str(world.a.locations["a-n1"].pk)}, gw.org)
        expected = fsel.kpis(organization=gw.org, caller=Caller.of_membership(membership), query=query)
    login(client, world, "manager")
    for metric in ("nps", "csat", "ces", "fcr"):
        row = kpi(client, world, metric)
        assert row["value"] == str(float(expected[metric].value)), metric
        assert int(row["n"]) == expected[metric].n
    assert kpi(client, world, "nps")["value"] == "-16.67"
    assert kpi(client, world, "csat")["value"] == "66.67"
    assert kpi(client, world, "ces")["value"] == "4.5"
    # The page shows the same figure on its tile.
    page = client.get(store_url(world))
    assert page.status_code == 200
    assert b'data-testid="kpi-nps" data-value="-16.67" data-n="6"' in page.content


def test_trend_buckets_by_grain_and_the_csv_has_one_row_per_period_and_metric(world, client):
    a = world.a
    loc = a.locations["a-n1"].pk
    day = today(a.org)
    monday = day - dt.timedelta(days=day.weekday())
    old = monday - dt.timedelta(days=7)
    put(
        a.org,
        [
            {"measure": "nps", "location": loc, "day": monday, **nps_counts([10, 10, 3])},
            {"measure": "nps", "location": loc, "day": old, **nps_counts([0])},
            {"measure": "csat", "location": loc, "day": old, "n": 4, "total": 14, "top": 3, "bottom": 1},
        ],
    )
    login(client, world, "manager")
    rows = csv_rows(client.get(panel_url(world, "nps", query="format=csv&period=30")))
    assert [(r["period_start"], r["metric"], r["value"], r["n"]) for r in rows] == [
        (old.isoformat(), "nps", "-100.0", "1"),
        (old.isoformat(), "csat", "75.0", "4"),
        (monday.isoformat(), "nps", "33.33", "3"),
    ]
    by_day = csv_rows(client.get(panel_url(world, "nps", query="format=csv&period=30&grain=day")))
    assert {r["period_start"] for r in by_day} == {monday.isoformat(), old.isoformat()}
    month = csv_rows(client.get(panel_url(world, "nps", query="format=csv&period=30&grain=month")))
    assert {r["period_start"][-2:] for r in month} == {"01"}
    quarter = csv_rows(client.get(panel_url(world, "nps", query="format=csv&period=30&grain=quarter")))
    starts = {dt.date(d.year, 3 * ((d.month - 1) // 3) + 1, 1).isoformat() for d in (monday, old)}
    assert {r["period_start"] for r in quarter} == starts
    assert sum(int(r["n"]) for r in quarter if r["metric"] == "nps") == 4


def test_filters_narrow_the_figures(world, client):
    a = world.a
    org, loc = a.org, a.locations["a-n1"].pk
    other_channel = f.ChannelFactory(organization=org, code="acme-phone", name="acme phone")
    planned_tp = f.TouchpointFactory(
        organization=org, channel=other_channel, code="acme-call", category=m.InteractionCategory.PLANNED
    )
    segment = f.SegmentFactory(organization=org, name="acme vip")
    long_ago = today(org) - dt.timedelta(days=60)
    put(
        org,
        [
            {
                "measure": "nps",
                "location": loc,
                "channel": a.channel.pk,
                "touchpoint": a.touchpoint.pk,
                "category": "critical",
                **nps_counts([10, 10]),
            },
            {
                "measure": "nps",
                "location": loc,
                "channel": other_channel.pk,
                "touchpoint": planned_tp.pk,
                "segment": segment.pk,
                "category": "planned",
                **nps_counts([0, 0, 0]),
            },
            {"measure": "nps", "location": loc, "day": long_ago, **nps_counts([10])},
            {"measure": "audit", "location": loc, "channel": a.channel.pk, "n": 1, "total": 80},
            {"measure": "points", "location": loc, "employee": a.employees["a-n1"].pk, "n": 1, "total": 25},
        ],
    )
    login(client, world, "manager")

    def nps(query=""):
        row = kpi(client, world, "nps", query)
        return row["value"], row["n"]

    assert nps("period=90") == ("0.0", "6")
    assert nps("period=30") == ("-20.0", "5")
    assert nps(f"channel={a.channel.pk}") == ("100.0", "2")
    assert nps(f"touchpoint={planned_tp.pk}") == ("-100.0", "3")
    assert nps(f"segment={segment.pk}") == ("-100.0", "3")
    assert nps("category=critical") == ("100.0", "2")
    start = (today(org) - dt.timedelta(days=61)).isoformat()
    end = (today(org) - dt.timedelta(days=59)).isoformat()
    assert nps(f"from={start}&to={end}") == ("100.0", "1")
    # Audits have no segment; points no channel: those filters leave them alone, and say so.
    assert kpi(client, world, "audit", f"segment={segment.pk}")["n"] == "1"
    assert kpi(client, world, "audit", f"channel={other_channel.pk}")["n"] == "0"
    assert kpi(client, world, "points", f"channel={other_channel.pk}")["value"] == "25.0"
    fragment = client.get(panel_url(world, "points", query=f"channel={other_channel.pk}"))
    assert b"Not filtered by channel" in fragment.content
    # The filter state travels in the panel and CSV URLs.
    page = client.get(store_url(world) + f"?period=30&channel={a.channel.pk}")
    assert f"panels/nps/?period=30&amp;channel={a.channel.pk}".encode() in page.content
    assert f"panels/nps/?period=30&amp;channel={a.channel.pk}&amp;format=csv".encode() in page.content


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("period=13", "period"),
        ("grain=hour", "grain"),
        ("channel=abc", "channel"),
        ("touchpoint=1;drop", "touchpoint"),
        ("segment=-1", "segment"),
        ("category=urgent", "category"),
        ("from=2026-13-01", "from"),
        ("to=yesterday", "to"),
        ("from=2026-02-01&to=2026-01-01", "to"),
        ("format=xlsx", "format"),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_parameter(world, client, query, param):
    login(client, world, "manager")
    for url in (store_url(world), panel_url(world, "nps"), panel_url(world, "kpis")):
        resp = client.get(f"{url}?{query}")
        assert resp.status_code == 400, (url, query)
        assert f"'{param}'".encode() in resp.content


# --- panels, CSV ------------------------------------------------------------------------------


def test_every_panel_is_a_fragment_with_a_csv_link_and_the_nps_panel_polls(world, client):
    login(client, world, "manager")
    page = client.get(store_url(world))
    assert page.status_code == 200
    for panel in PANELS:
        assert f'data-panel="{panel}"'.encode() in page.content, panel
        resp = client.get(panel_url(world, panel))
        assert resp.status_code == 200, panel
        assert f'id="panel-{panel}"'.encode() in resp.content
        assert b"Download CSV" in resp.content
        assert client.get(panel_url(world, panel, query="format=csv")).status_code == 200
    nps = client.get(panel_url(world, "nps")).content
    assert b'hx-trigger="every 5s"' in nps and b'hx-swap="outerHTML"' in nps
    assert client.get(panel_url(world, "nope")).status_code == 404
    # An htmx filter change gets the body only.
    body = client.get(store_url(world), HTTP_HX_REQUEST="true")
    assert b'data-testid="dashboard-body"' in body.content and b"<html" not in body.content


def test_heatmap_and_matrix_csv_rows_and_formula_escaping(world, client):
    a = world.a
    org, loc = a.org, a.locations["a-n1"].pk
    sneaky = f.StandardFactory(organization=org, code="acme-greet", title='=HYPERLINK("http://x")')
    blind = f.StandardFactory(organization=org, code="acme-blind", title="acme blind")
    day = today(org)
    monday = day - dt.timedelta(days=day.weekday())
    put(
        org,
        [
            # sneaky: customers 90 / audits 40 → hidden strength; blind: customers 30 / audits 95.
            {
                "measure": "std_feedback",
                "location": loc,
                "standard": sneaky.pk,
                "day": monday,
                "n": 5,
                "total": 450,
            },
            {
                "measure": "std_audit",
                "location": loc,
                "standard": sneaky.pk,
                "day": monday,
                "n": 5,
                "total": 200,
            },
            {
                "measure": "std_feedback",
                "location": loc,
                "standard": blind.pk,
                "day": monday,
                "n": 2,
                "total": 60,
            },
            {
                "measure": "std_audit",
                "location": loc,
                "standard": blind.pk,
                "day": monday,
                "n": 1,
                "total": 90,
            },
            {
                "measure": "std_monitoring",
                "location": loc,
                "standard": blind.pk,
                "day": monday,
                "n": 1,
                "total": 100,
            },
        ],
    )
    login(client, world, "manager")
    heat = csv_rows(client.get(panel_url(world, "heatmap", query="format=csv")))
    assert [(r["standard_code"], r["source"], r["points"], r["n"]) for r in heat] == [
        ("acme-blind", "audit", "90.0", "1"),
        ("acme-blind", "feedback", "30.0", "2"),
        ("acme-blind", "monitoring", "100.0", "1"),
        ("acme-greet", "audit", "40.0", "5"),
        ("acme-greet", "feedback", "90.0", "5"),
    ]
    assert {r["week_start"] for r in heat} == {monday.isoformat()}
    assert heat[-1]["standard"] == '\'=HYPERLINK("http://x")'  # escaped, not a formula
    raw = client.get(panel_url(world, "heatmap", query="format=csv")).content.decode()
    assert ",=HYPERLINK" not in raw

    matrix = {
        r["standard_code"]: r for r in csv_rows(client.get(panel_url(world, "matrix", query="format=csv")))
    }
    assert matrix["acme-greet"]["quadrant"] == "hidden_strength"
    assert matrix["acme-greet"]["reliable"] == "yes"
    assert (matrix["acme-blind"]["impression"], matrix["acme-blind"]["execution"]) == ("30.0", "95.0")
    assert matrix["acme-blind"]["quadrant"] == "blind_spot"
    assert matrix["acme-blind"]["reliable"] == "no"  # 2 answers, 2 audits: shown, flagged
    page = client.get(panel_url(world, "matrix"))
    assert b'data-quadrant="blind_spot"' in page.content and b"chart-matrix" in page.content


def test_training_points_categories_and_comparison_panels(world, client):
    a = world.a
    org = a.org
    n1, n2, s1 = (a.locations[c].pk for c in ("a-n1", "a-n2", "a-s1"))
    emp = a.employees["a-n1"].pk
    put(
        org,
        [
            {"measure": "lessons", "location": n1, "employee": emp, "n": 3, "top": 2, "bottom": 1},
            {"measure": "points", "location": n1, "employee": emp, "n": 2, "total": 40},
            {
                "measure": "interactions",
                "location": n1,
                "touchpoint": a.touchpoint.pk,
                "category": "critical",
                "n": 7,
            },
            {
                "measure": "interactions",
                "location": n1,
                "touchpoint": a.touchpoint.pk,
                "category": "planned",
                "n": 2,
            },
            {"measure": "nps", "location": n1, **nps_counts([10, 10])},
            {"measure": "nps", "location": n2, **nps_counts([0, 0])},
            {"measure": "nps", "location": s1, **nps_counts([10, 0, 7, 7])},
        ],
    )
    login(client, world, "manager")
    training = csv_rows(client.get(panel_url(world, "training", query="format=csv")))
    assert [
        (r["employee_id"], r["lessons_completed"], r["on_time"], r["late"], r["on_time_pct"])
        for r in training
    ] == [(str(emp), "3", "2", "1", "66.67")]
    points = csv_rows(client.get(panel_url(world, "points", query="format=csv")))
    assert [(r["employee_id"], r["awards"], r["points"]) for r in points] == [(str(emp), "2", "40")]
    cats = csv_rows(client.get(panel_url(world, "categories", query="format=csv")))
    assert [(r["category"], r["interactions"]) for r in cats] == [("critical", "7"), ("planned", "2")]
    # Each category with the organization's weight; the heaviest raises case priority.
    assert [(r["weight"], r["raises_case_priority"]) for r in cats] == [("2.0", "yes"), ("1.0", "no")]
    comparison = {
        r["measure"]: r for r in csv_rows(client.get(panel_url(world, "comparison", query="format=csv")))
    }
    nps = comparison["nps"]
    assert (nps["store"], nps["store_n"]) == ("100.0", "2")
    assert (nps["region"], nps["region_n"]) == ("0.0", "4")  # north: a-n1 + a-n2
    assert (nps["company"], nps["company_n"]) == ("0.0", "8")


def test_categories_panel_shows_the_organizations_own_weights(world, client):
    """Weights edited in the alignment settings show on every dashboard's categories panel."""
    a = world.a
    put(
        a.org,
        [
            {
                "measure": "interactions",
                "location": a.locations[code].pk,
                "touchpoint": a.touchpoint.pk,
                "category": category,
                "n": 3,
            }
            for code in ("a-n1", "a-s1")
            for category in ("critical", "planned")
        ],
    )
    with tenant_context(a.org):
        settings_update(
            organization=a.org,
            actor=Actor(user_id=world.users["admin"].pk),
            data={"category_weights": {"critical": 1, "stabilizing": 1, "planned": 2.5}},
        )
    login(client, world, "admin")
    urls = (
        panel_url(world, "categories", query="format=csv"),
        reverse("alignment_executive_panel", args=["categories"]) + "?format=csv",
        reverse("alignment_region_panel", args=[a.locations["a-n1"].region_id, "categories"]) + "?format=csv",
    )
    for url in urls:
        cats = {r["category"]: r for r in csv_rows(client.get(url))}
        assert (cats["critical"]["weight"], cats["critical"]["raises_case_priority"]) == ("1.0", "no")
        assert (cats["planned"]["weight"], cats["planned"]["raises_case_priority"]) == ("2.5", "yes")
    fragment = client.get(panel_url(world, "categories")).content.decode()
    figure = json.loads(re.search(r'<script id="chart-categories"[^>]*>(.*?)</script>', fragment, re.S)[1])
    assert sorted(trace["name"] for trace in figure["data"]) == [
        "Critical · weight 1",
        "Planned · weight 2.5 · raises case priority",
    ]


def test_store_links_carry_the_filters_and_only_where_the_viewer_may_go(world, client):
    """The region and staff links sit in the swapped body, so they follow a filter change; a
    store manager (whose drill-down starts at the store) gets no dead link to the region."""
    loc = world.a.locations["a-n1"]
    region = reverse("alignment_region", args=[loc.region_id]) + "?period=30&amp;category=critical"
    people = reverse("alignment_location_people", args=[loc.pk]) + "?period=30&amp;category=critical"
    login(client, world, "regional")
    body = client.get(store_url(world) + "?period=30&category=critical", HTTP_HX_REQUEST="true")
    html = body.content.decode()
    assert "<html" not in html and f'href="{region}"' in html and f'href="{people}"' in html
    assert "Last 30 days" in html
    login(client, world, "manager")
    html = client.get(store_url(world) + "?period=30&category=critical").content.decode()
    assert 'data-testid="region-link"' not in html and f'href="{people}"' in html
    assert client.get(reverse("alignment_region", args=[loc.region_id])).status_code == 404


def test_scores_panel_links_how_scores_are_computed(world, client):
    login(client, world, "manager")
    fragment = client.get(panel_url(world, "scores")).content.decode()
    assert f'href="{reverse("alignment_methods")}"' in fragment


def test_open_cases_panel_links_to_the_case(gw, client):
    world = gw.world
    [rid] = gw.answers([2], qtype="nps")
    [other] = gw.answers([2], qtype="nps", location="a-n2")
    cases = {}
    with tenant_context(gw.org):
        for response_id, code in ((rid, "a-n1"), (other, "a-n2")):
            cases[code] = fm.Case.objects.create(
                organization=gw.org,
                response_id=response_id,
                title=f"acme {code} unhappy",
                location=world.a.locations[code],
                sla_due_at=NOW + dt.timedelta(hours=4),
            )
    login(client, world, "manager")
    fragment = client.get(panel_url(world, "cases"))
    assert b"acme a-n1 unhappy" in fragment.content and b"acme a-n2 unhappy" not in fragment.content
    assert reverse("feedback_case", args=[cases["a-n1"].pk]).encode() in fragment.content
    rows = csv_rows(client.get(panel_url(world, "cases", query="format=csv")))
    assert [r["title"] for r in rows] == ["acme a-n1 unhappy"]


def test_alignment_scores_panel_shows_the_latest_scores_with_their_explanation(world, client):
    from alignment.models import AlignmentScore

    a = world.a
    loc = a.locations["a-n1"]
    week = today(a.org) - dt.timedelta(days=today(a.org).weekday())
    with tenant_context(a.org):
        for start, value in ((week - dt.timedelta(days=7), 40), (week, 72)):
            AlignmentScore.objects.create(
                organization=a.org,
                scope="location",
                scope_id=loc.pk,
                region=loc.region,
                location=loc,
                period="week",
                period_start=start,
                link="overall",
                value=value,
                low=value - 5,
                high=value + 5,
                n=40,
                missing=["acme standard without lessons"],
                computed_at=NOW,
            )
    login(client, world, "manager")
    rows = csv_rows(client.get(panel_url(world, "scores", query="format=csv")))
    assert [(r["link"], r["value"], r["period_start"], r["missing"]) for r in rows] == [
        ("overall", "72.0", week.isoformat(), "acme standard without lessons")
    ]
    fragment = client.get(panel_url(world, "scores")).content
    assert b'data-link="overall" data-value="72.0"' in fragment
    with tenant_context(a.org):
        score_id = AlignmentScore.objects.get(period_start=week).pk
    explain = optional_reverse("alignment_score_explain", pk=score_id) or optional_reverse(
        "alignment_score_explain", score_id
    )
    if explain:
        assert explain.encode() in fragment


# --- scope --------------------------------------------------------------------------------------


def test_a_store_manager_sees_only_their_store(world, client):
    a = world.a
    put(a.org, [{"measure": "nps", "location": a.locations["a-n2"].pk, **nps_counts([10])}])
    login(client, world, "manager")
    assert client.get(store_url(world, "a-n1")).status_code == 200
    for code in ("a-n2", "a-s1"):
        assert client.get(store_url(world, code)).status_code == 404
        for panel in PANELS:
            assert client.get(panel_url(world, panel, code)).status_code == 404
            assert client.get(panel_url(world, panel, code, "format=csv")).status_code == 404
    # Their own store's figures carry nothing of a-n2.
    assert kpi(client, world, "nps")["n"] == "0"


def test_a_regional_manager_sees_their_regions_stores_only(world, client):
    login(client, world, "regional")
    for code in ("a-n1", "a-n2"):
        assert client.get(store_url(world, code)).status_code == 200
        assert client.get(panel_url(world, "nps", code, "format=csv")).status_code == 200
    assert client.get(store_url(world, "a-s1")).status_code == 404
    assert client.get(panel_url(world, "kpis", "a-s1", "format=csv")).status_code == 404


def test_an_employee_sees_their_own_rows_only(world, client):
    a = world.a
    loc = a.locations["a-n1"].pk
    mine, colleague = (
        a.employees["a-n1"],
        f.EmployeeFactory(organization=a.org, current_location=a.locations["a-n1"]),
    )
    put(
        a.org,
        [
            {"measure": "nps", "location": loc, "employee": mine.pk, **nps_counts([10])},
            {"measure": "nps", "location": loc, "employee": colleague.pk, **nps_counts([0, 0])},
            {"measure": "points", "location": loc, "employee": colleague.pk, "n": 1, "total": 99},
        ],
    )
    login(client, world, "employee")
    assert kpi(client, world, "nps")["n"] == "1"
    assert csv_rows(client.get(panel_url(world, "points", query="format=csv"))) == []
    assert client.get(store_url(world, "a-n2")).status_code == 404


def test_org_b_sees_nothing_of_org_a(world, client):
    login(client, world, "outsider")
    for code in ("a-n1", "a-s1"):
        assert client.get(store_url(world, code)).status_code == 404
        assert client.get(panel_url(world, "nps", code, "format=csv")).status_code == 404


def test_home_sends_each_viewer_where_their_scope_starts(world, client):
    a = world.a
    login(client, world, "manager")
    resp = client.get(reverse("alignment_home"))
    assert resp.status_code == 302 and resp["Location"] == store_url(world, "a-n1")

    login(client, world, "employee")
    resp = client.get(reverse("alignment_home"))
    assert resp.status_code == 302
    assert resp["Location"] == (optional_reverse("alignment_me") or store_url(world, "a-n1"))

    for persona, target in (("regional", "alignment_region"), ("admin", "alignment_executive")):
        login(client, world, persona)
        resp = client.get(reverse("alignment_home"))
        if optional_reverse(target) or (
            target == "alignment_region" and optional_reverse(target, a.regions["north"].pk)
        ):
            assert resp.status_code == 302, persona
        else:
            assert resp.status_code == 200
            names = [s for s in ("a-n1", "a-n2", "a-s1") if store_url(world, s).encode() in resp.content]
            assert names == (["a-n1", "a-n2"] if persona == "regional" else ["a-n1", "a-n2", "a-s1"])

    login(client, world, "shopper")  # no alignment.view
    assert client.get(reverse("alignment_home")).status_code == 403


# --- query counts -------------------------------------------------------------------------------


def _panel_queries(client, world) -> dict[str, int]:
    counts = {}
    for panel in PANELS:
        for query in ("", "format=csv"):
            cache.clear()  # the comparison's organization totals are cached: count them each time
            with CaptureQueriesContext(connection) as ctx:
                resp = client.get(panel_url(world, panel, query=query))
            assert resp.status_code == 200
            counts[(panel, query)] = len(ctx.captured_queries)
    return counts


def _grow(world, k: int) -> None:
    a = world.a
    org, loc = a.org, a.locations["a-n1"]
    rows = []
    for i in range(k):
        emp = f.EmployeeFactory(organization=org, current_location=loc)
        std = f.StandardFactory(organization=org)
        tp = f.TouchpointFactory(organization=org, channel=a.channel)
        day = today(org) - dt.timedelta(days=i * 8)
        rows += [
            {"measure": "nps", "location": loc.pk, "employee": emp.pk, "day": day, **nps_counts([10, 3])},
            {"measure": "audit", "location": loc.pk, "employee": emp.pk, "day": day, "n": 1, "total": 70},
            {
                "measure": "std_feedback",
                "location": loc.pk,
                "standard": std.pk,
                "day": day,
                "n": 2,
                "total": 150,
            },
            {"measure": "std_audit", "location": loc.pk, "standard": std.pk, "day": day, "n": 1, "total": 60},
            {"measure": "lessons", "location": loc.pk, "employee": emp.pk, "day": day, "n": 1, "top": 1},
            {"measure": "points", "location": loc.pk, "employee": emp.pk, "day": day, "n": 1, "total": 10},
            {
                "measure": "interactions",
                "location": loc.pk,
                "touchpoint": tp.pk,
                "category": "critical",
                "day": day,
            },
        ]
    put(org, rows)


def test_panels_run_a_constant_number_of_queries(world, client):
    login(client, world, "manager")
    _grow(world, 1)
    small = _panel_queries(client, world)
    _grow(world, 6)
    assert _panel_queries(client, world) == small
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        client.get(store_url(world))
    page = len(ctx.captured_queries)
    _grow(world, 3)
    cache.clear()
    with CaptureQueriesContext(connection) as ctx:
        client.get(store_url(world))
    assert len(ctx.captured_queries) == page


# --- live update ----------------------------------------------------------------------------------


def test_the_nps_panel_shows_a_new_detractor_once_the_rollup_handler_has_run(world, client, api):
    from cem import outbox
    from tests.feedback.conftest import make_survey

    a = world.a
    survey, _version, _questions = make_survey(a.org, name="acme live survey", touchpoint=a.touchpoint)
    login(client, world, "manager")
    before = csv_rows(client.get(panel_url(world, "kpis", query="format=csv")))
    assert next(r for r in before if r["measure"] == "nps")["n"] == "0"

    resp = api(key=a.api_key).post(
        "/api/v1/responses/",
        {
            "survey": survey.pk,
            "answers": {"nps": 2},
            "interaction": "acme-int-a-n1",
            "external_id": "acme-live-1",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    with tenant_context(a.org):
        event = m.OutboxEvent.objects.filter(event_type="ResponseReceived").latest("pk")
        assert outbox.run_handler(event.pk, "alignment.rollup_response") is True

    fragment = client.get(panel_url(world, "nps"))
    assert fragment.status_code == 200 and b"chart-nps" in fragment.content
    rows = csv_rows(client.get(panel_url(world, "nps", query="format=csv")))
    assert [(r["metric"], r["value"], r["n"]) for r in rows] == [("nps", "-100.0", "1")]


def test_selectors_are_reusable_outside_a_request(world):
    """H3's dashboards call the selectors directly: a Subject with no scope reads the org."""
    from alignment import selectors as sel
    from alignment.filters import DashboardFilters

    a = world.a
    put(a.org, [{"measure": "nps", "location": a.locations["a-s1"].pk, **nps_counts([10, 0, 9])}])
    with tenant_context(a.org):
        membership = m.Membership.objects.get(user=world.users["executive"])
        caller = Caller.of_membership(membership)
        filters = DashboardFilters.from_params({}, a.org)
        tiles = {t["measure"]: t for t in sel.kpi_tiles(caller, filters, Subject())}
        north = {
            t["measure"]: t for t in sel.kpi_tiles(caller, filters, Subject(region=a.regions["north"].pk))
        }
    assert (tiles["nps"]["value"], tiles["nps"]["n"]) == (33.33, 3)
    assert north["nps"]["n"] == 0


def test_region_and_company_totals_are_read_once_per_filter_state(world, client):
    """The organization-wide scan behind the comparison is shared by every store for a minute."""
    a = world.a
    put(a.org, [{"measure": "nps", "location": a.locations["a-s1"].pk, **nps_counts([0])}])
    login(client, world, "regional")
    url = panel_url(world, "comparison", query="format=csv")
    with CaptureQueriesContext(connection) as first:
        rows = csv_rows(client.get(url))
    with CaptureQueriesContext(connection) as second:
        assert csv_rows(client.get(panel_url(world, "comparison", "a-n2", "format=csv"))) == rows
    assert len(second.captured_queries) == len(first.captured_queries) - 1
    nps = next(r for r in rows if r["measure"] == "nps")
    assert (nps["region_n"], nps["company"], nps["company_n"]) == ("0", "-100.0", "1")
    # Another filter state is its own entry.
    other = csv_rows(client.get(panel_url(world, "comparison", query="format=csv&period=7")))
    assert next(r for r in other if r["measure"] == "nps")["company_n"] == "1"
