"""Executive, region, drill-down, agent, self and trainer dashboards: what each shows, the ranking
with confidence, the drill path, CSV exports (formula-safe), filters in the URL, 400s naming the
parameter, links to the complaint review and the learning analytics, and constant query counts."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from alignment.models import AlignmentScore
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.overview_data import DAY, employee_at, nps, put, team_at


def login(client, world, persona):
    client.force_login(world.users[persona])
    return client


def csv_rows(resp) -> list[dict]:
    assert resp.status_code == 200, resp.content[:300]
    assert resp["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(resp.content.decode())))


def panel(name, panel_key, query="", **kwargs):
    url = reverse(f"{name}_panel", kwargs={**kwargs, "panel": panel_key})
    return f"{url}?{query}" if query else url


@pytest.fixture
def data(world):
    """a-n1: 3 answers (NPS 100); a-n2: 300 (NPS 30); a team with two agents at a-n1."""
    org, t = world.a.org, world.a
    alice = employee_at(world, "a-n1", "Alice acme", role=m.Employee.Role.AGENT)
    bob = employee_at(world, "a-n1", "Bob acme")
    team = team_at(world, "a-n1", "acme floor", alice, bob)
    nps(org, t.locations["a-n1"], employee=alice, n=3, promoters=3, detractors=0)
    nps(org, t.locations["a-n2"], n=300, promoters=150, detractors=60)
    nps(org, t.locations["a-s1"], n=40, promoters=10, detractors=10)
    return {"alice": alice, "bob": bob, "team": team}


# --- executive -------------------------------------------------------------------------------------


def test_executive_ranking_shows_a_small_store_but_does_not_rank_it(world, data, client):
    login(client, world, "executive")
    resp = client.get(reverse("alignment_executive"))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert 'data-testid="panel-ranking"' in body and 'data-testid="panel-children"' in body
    assert 'data-testid="panel-categories"' in body and 'data-testid="chart-ranking"' in body
    rows = csv_rows(client.get(panel("alignment_executive", "ranking", "format=csv")))
    by_name = {r["location"]: r for r in rows}
    assert [r["location"] for r in rows] == ["Acme a-n2", "Acme a-s1", "Acme a-n1"]
    assert by_name["Acme a-n2"]["rank"] == "1" and by_name["Acme a-n2"]["value"] == "30.0"
    small = by_name["Acme a-n1"]
    assert small["rank"] == "" and small["ranked"] == "no" and small["n"] == "3"
    assert small["note"] == "not ranked — n below minimum (3 < 30)"
    assert small["min_sample"] == "30"
    assert float(small["ci95_low"]) < 20 and small["ci95_high"] == "100.0"


def test_executive_links_the_complaint_review_and_the_review_links_back(world, data, client):
    login(client, world, "executive")
    body = client.get(reverse("alignment_executive")).content.decode()
    assert f'href="{reverse("feedback_complaints")}"' in body
    review = client.get(reverse("feedback_complaints")).content.decode()
    assert f'href="{reverse("alignment_executive")}"' in review


def test_ranking_metric_is_in_the_url_and_a_bad_one_is_a_400(world, data, client):
    org, t = world.a.org, world.a
    for store, scores in (("a-n1", 40), ("a-n2", 40)):
        put(org, "audit", location=t.locations[store], n=scores, total=scores * 80, sumsq=scores * 6400)
    login(client, world, "admin")
    resp = client.get(reverse("alignment_executive") + "?metric=audit&period=30")
    body = resp.content.decode()
    # The form keeps the metric when filters change; panel URLs carry both.
    assert 'action="/alignment/executive/?metric=audit"' in body
    assert "metric=audit" in body and "period=30" in body
    rows = csv_rows(client.get(panel("alignment_executive", "ranking", "metric=audit&format=csv")))
    assert {r["metric"] for r in rows} == {"audit"}
    assert [r["rank"] for r in rows] == ["1", "1", ""] and rows[0]["tied"] == "yes"
    fragment = client.get(panel("alignment_executive", "ranking", "metric=audit&period=30"))
    assert fragment.status_code == 200 and b'data-testid="panel-ranking"' in fragment.content
    assert b"metric=audit" in fragment.content and b"format=csv" in fragment.content
    assert b"<html" not in fragment.content  # only the panel: htmx swaps it alone
    bad = client.get(reverse("alignment_executive") + "?metric=revenue")
    assert bad.status_code == 400 and b"metric" in bad.content
    bad = client.get(reverse("alignment_executive") + "?channel=abc")
    assert bad.status_code == 400 and b"channel" in bad.content


def test_filters_narrow_the_ranking(world, data, client):
    org, t = world.a.org, world.a
    other = f.ChannelFactory(organization=org, code="acme-web", name="acme web")
    nps(org, t.locations["a-s1"], n=50, promoters=50, detractors=0, channel=other)
    login(client, world, "admin")
    rows = csv_rows(client.get(panel("alignment_executive", "ranking", f"format=csv&channel={other.pk}")))
    assert (rows[0]["location"], rows[0]["n"]) == ("Acme a-s1", "50")
    assert {r["location"]: r["n"] for r in rows}["Acme a-n2"] == "0"


def test_executive_page_for_a_narrower_scope_goes_where_their_scope_starts(world, client):
    login(client, world, "regional")
    resp = client.get(reverse("alignment_executive"))
    assert resp.status_code == 302 and resp["Location"] == reverse("alignment_home")


def test_csv_cells_are_formula_escaped(world, client):
    org = world.a.org
    loc = f.LocationFactory(
        organization=org, region=world.a.regions["north"], code="acme-evil", name="=HYPERLINK(1)"
    )
    nps(org, loc, n=1, promoters=1, detractors=0)
    login(client, world, "admin")
    rows = csv_rows(client.get(panel("alignment_executive", "ranking", "format=csv")))
    assert "'=HYPERLINK(1)" in {r["location"] for r in rows}


# --- drill-down ------------------------------------------------------------------------------------


def test_admin_drills_from_the_organization_to_an_employee(world, data, client):
    t = world.a
    login(client, world, "admin")
    body = client.get(reverse("alignment_executive")).content.decode()
    north_url = reverse("alignment_region", args=[t.regions["north"].pk])
    assert f'href="{north_url}"' in body

    body = client.get(north_url).content.decode()
    store_url = reverse("alignment_store", kwargs={"location_id": t.locations["a-n1"].pk})
    people_url = reverse("alignment_location_people", args=[t.locations["a-n1"].pk])
    assert f'href="{store_url}"' in body and f'href="{people_url}"' in body
    assert (
        t.locations["a-s1"].name not in body.split('data-testid="panel-children"')[1].split("</article>")[0]
    )
    assert 'data-testid="breadcrumbs"' in body and f'href="{reverse("alignment_executive")}"' in body

    body = client.get(people_url).content.decode()
    team_url = reverse("alignment_team", args=[data["team"].pk])
    assert f'href="{team_url}"' in body

    body = client.get(team_url).content.decode()
    agent_url = reverse("alignment_agent", args=[data["alice"].pk])
    bob_url = reverse("alignment_employee", args=[data["bob"].pk])
    assert f'href="{agent_url}"' in body and f'href="{bob_url}"' in body

    body = client.get(bob_url).content.decode()
    crumbs = body.split('data-testid="breadcrumbs"')[1].split("</nav>")[0]
    for url in (reverse("alignment_executive"), north_url, store_url, team_url):
        assert f'href="{url}"' in crumbs


def test_children_csv_has_the_figures_of_each_child(world, data, client):
    login(client, world, "admin")
    rows = csv_rows(
        client.get(panel("alignment_region", "children", "format=csv", region_id=world.a.regions["north"].pk))
    )
    assert [(r["name"], r["nps"], r["nps_n"]) for r in rows] == [
        ("Acme a-n1", "100.0", "3"),
        ("Acme a-n2", "30.0", "300"),
    ]
    team = csv_rows(client.get(panel("alignment_team", "children", "format=csv", team_id=data["team"].pk)))
    assert [(r["name"], r["nps_n"]) for r in team] == [("Alice acme", "3"), ("Bob acme", "0")]


def test_alignment_scores_show_where_they_exist(world, data, client):
    from django.utils import timezone

    org, t = world.a.org, world.a
    with tenant_context(org):
        AlignmentScore.objects.create(
            organization=org,
            scope="location",
            scope_id=t.locations["a-n2"].pk,
            location=t.locations["a-n2"],
            region=t.regions["north"],
            period="month",
            period_start=DAY.replace(day=1),
            link="overall",
            value=72,
            low=65,
            high=79,
            n=120,
            computed_at=timezone.now(),
        )
    login(client, world, "admin")
    # Monthly scores go with the monthly grain (weekly with weekly, as the scores panel).
    rows = csv_rows(
        client.get(
            panel("alignment_region", "children", "format=csv&grain=month", region_id=t.regions["north"].pk)
        )
    )
    assert {r["name"]: r["alignment_overall"] for r in rows} == {"Acme a-n1": "", "Acme a-n2": "72.0"}
    weekly = csv_rows(
        client.get(panel("alignment_region", "children", "format=csv", region_id=t.regions["north"].pk))
    )
    assert {r["alignment_overall"] for r in weekly} == {""}
    ranked = csv_rows(
        client.get(
            panel("alignment_executive", "ranking", "metric=alignment&format=csv&period=all&grain=month")
        )
    )
    assert (ranked[0]["location"], ranked[0]["rank"], ranked[0]["ci95_low"]) == ("Acme a-n2", "1", "65.0")


def test_quarterly_scores_show_with_the_quarter_grain(world, data, client):
    """Scores are computed per quarter too; the quarter grain shows them (and buckets trends)."""
    import datetime as dt

    from django.utils import timezone

    org, t = world.a.org, world.a
    quarter = dt.date(DAY.year, 3 * ((DAY.month - 1) // 3) + 1, 1)
    with tenant_context(org):
        AlignmentScore.objects.create(
            organization=org,
            scope="location",
            scope_id=t.locations["a-n2"].pk,
            location=t.locations["a-n2"],
            region=t.regions["north"],
            period="quarter",
            period_start=quarter,
            link="overall",
            value=64,
            low=60,
            high=68,
            n=400,
            computed_at=timezone.now(),
        )
    login(client, world, "admin")
    region = t.regions["north"].pk
    rows = csv_rows(
        client.get(
            panel("alignment_region", "children", "format=csv&period=365&grain=quarter", region_id=region)
        )
    )
    assert {r["name"]: r["alignment_overall"] for r in rows} == {"Acme a-n1": "", "Acme a-n2": "64.0"}
    # The quarter holding the period's first day counts, even when it began before it.
    last_week = csv_rows(
        client.get(
            panel("alignment_region", "children", "format=csv&period=7&grain=quarter", region_id=region)
        )
    )
    assert {r["name"]: r["alignment_overall"] for r in last_week}["Acme a-n2"] == "64.0"
    ranked = csv_rows(
        client.get(
            panel("alignment_executive", "ranking", "metric=alignment&format=csv&period=7&grain=quarter")
        )
    )
    assert (ranked[0]["location"], ranked[0]["value"]) == ("Acme a-n2", "64.0")
    monthly = csv_rows(
        client.get(
            panel("alignment_region", "children", "format=csv&period=365&grain=month", region_id=region)
        )
    )
    assert {r["alignment_overall"] for r in monthly} == {""}
    store_scores = csv_rows(
        client.get(
            reverse("alignment_store_panel", args=[t.locations["a-n2"].pk, "scores"])
            + "?format=csv&period=365&grain=quarter"
        )
    )
    assert [(r["period"], r["period_start"], r["value"]) for r in store_scores] == [
        ("quarter", quarter.isoformat(), "64.0")
    ]
    trend = csv_rows(
        client.get(panel("alignment_region", "nps", "format=csv&grain=quarter", region_id=region))
    )
    assert trend and {r["period_start"][5:] for r in trend} <= {"01-01", "04-01", "07-01", "10-01"}
    page = client.get(reverse("alignment_executive") + "?grain=quarter").content.decode()
    assert '<option value="quarter" selected>' in page


# --- agent / employee / me ---------------------------------------------------------------------------


@pytest.fixture
def agent_rows(world, data):
    org, t = world.a.org, world.a
    loc, alice = t.locations["a-n1"], data["alice"]
    put(org, "monitoring", location=loc, employee=alice, n=4, total=340, sumsq=4900 + 6400 + 8100 + 10000)
    put(org, "fcr", location=loc, employee=alice, n=10, total=7, top=7, bottom=3)
    put(org, "ces", location=loc, employee=alice, n=5, total=30, sumsq=184)
    put(org, "lessons", location=loc, employee=alice, n=4, top=2, bottom=1)
    put(org, "lesson_std", location=loc, employee=alice, standard=t.standard, n=2, top=1, bottom=1)
    put(org, "points", location=loc, employee=alice, n=3, total=45)
    # Someone else's rows at the same store must not show.
    put(org, "monitoring", location=loc, employee=data["bob"], n=1, total=10, sumsq=100)
    put(org, "points", location=loc, employee=data["bob"], n=1, total=500)
    return data


def _kpis(client, name, **kwargs) -> dict:
    return {r["measure"]: r for r in csv_rows(client.get(panel(name, "kpis", "format=csv", **kwargs)))}


def test_agent_dashboard_figures_from_constructed_rollup_rows(world, agent_rows, client):
    login(client, world, "admin")
    alice = agent_rows["alice"]
    resp = client.get(reverse("alignment_agent", args=[alice.pk]))
    assert resp.status_code == 200 and b"Agent dashboard" in resp.content
    for key in (
        "kpis",
        "monitoring",
        "standards",
        "fcr_ces",
        "lessons",
        "lessons_by_standard",
        "points",
        "scores",
    ):
        assert f'data-testid="panel-{key}"'.encode() in resp.content
    kpis = _kpis(client, "alignment_agent", employee_id=alice.pk)
    assert (kpis["monitoring"]["value"], kpis["monitoring"]["n"]) == ("85.0", "4")
    assert (kpis["fcr"]["value"], kpis["ces"]["value"]) == ("70.0", "6.0")
    assert (kpis["lessons"]["value"], kpis["lessons_on_time"]["value"]) == ("4.0", "66.67")
    assert kpis["points"]["value"] == "45.0"
    lessons = csv_rows(
        client.get(panel("alignment_agent", "lessons", "format=csv&grain=month", employee_id=alice.pk))
    )
    assert [(r["completed"], r["on_time"], r["late"], r["no_due_date"]) for r in lessons] == [
        ("4", "2", "1", "1")
    ]
    by_std = csv_rows(
        client.get(panel("alignment_agent", "lessons_by_standard", "format=csv", employee_id=alice.pk))
    )
    assert [(r["standard_id"], r["completed"], r["on_time_pct"]) for r in by_std] == [
        (str(world.a.standard.pk), "2", "50.0")
    ]
    points = csv_rows(client.get(panel("alignment_agent", "points", "format=csv", employee_id=alice.pk)))
    assert sum(int(r["points"]) for r in points) == 45
    trend = csv_rows(client.get(panel("alignment_agent", "fcr_ces", "format=csv", employee_id=alice.pk)))
    assert {r["metric"] for r in trend} == {"fcr", "ces"}


def test_employee_self_view_shows_only_their_own_figures(world, agent_rows, client):
    org, t = world.a.org, world.a
    me = t.employees["a-n1"]
    put(org, "monitoring", location=t.locations["a-n1"], employee=me, n=2, total=120, sumsq=7200)
    login(client, world, "employee")
    resp = client.get(reverse("alignment_me"))
    assert resp.status_code == 200 and b"My scores" in resp.content
    assert b"Alice acme" not in resp.content and b"Bob acme" not in resp.content
    kpis = _kpis(client, "alignment_me")
    assert (kpis["monitoring"]["value"], kpis["monitoring"]["n"]) == ("60.0", "2")
    assert kpis["points"]["n"] == "0"
    # Their own employee page works; anyone else's, a team, a store, a region do not.
    assert client.get(reverse("alignment_employee", args=[me.pk])).status_code == 200
    for url in (
        reverse("alignment_employee", args=[agent_rows["alice"].pk]),
        reverse("alignment_agent", args=[agent_rows["bob"].pk]),
        reverse("alignment_team", args=[agent_rows["team"].pk]),
        reverse("alignment_location_people", args=[t.locations["a-n1"].pk]),
        reverse("alignment_region", args=[t.regions["north"].pk]),
    ):
        assert client.get(url).status_code == 404, url


def test_me_without_an_employee_is_a_404(world, client):
    login(client, world, "admin")
    assert client.get(reverse("alignment_me")).status_code == 404


# --- trainer --------------------------------------------------------------------------------------


def test_trainer_dashboard_links_the_learning_analytics(world, client):
    org, t = world.a.org, world.a
    put(
        org,
        "lesson_std",
        location=t.locations["a-n1"],
        employee=t.employees["a-n1"],
        standard=t.standard,
        n=3,
        top=2,
        bottom=1,
    )
    put(org, "lessons", location=t.locations["a-s1"], employee=t.employees["a-s1"], n=5, top=5)
    login(client, world, "trainer")
    # Trainers land on the organization's dashboard (their scope), which leads here.
    landing = client.get(reverse("alignment_executive")).content.decode()
    assert f'href="{reverse("alignment_trainer")}"' in landing
    resp = client.get(reverse("alignment_trainer"))
    assert resp.status_code == 200
    body = resp.content.decode()
    assert f'href="{reverse("learning_analytics")}"' in body
    assert f'href="{reverse("learning_effectiveness")}"' in body
    rows = csv_rows(client.get(panel("alignment_trainer", "by_standard", "format=csv")))
    assert [(r["standard_code"], r["completed"], r["on_time"], r["late"]) for r in rows] == [
        (t.standard.code, "3", "2", "1")
    ]
    by_loc = csv_rows(client.get(panel("alignment_trainer", "by_location", "format=csv")))
    assert [(r["location"], r["completed"], r["on_time_pct"]) for r in by_loc] == [
        ("Acme a-s1", "5", "100.0")
    ]


# --- tenancy and query counts -------------------------------------------------------------------


def test_org_b_gets_404_on_org_a_ids(world, data, client):
    t = world.a
    login(client, world, "outsider")
    for url in (
        reverse("alignment_region", args=[t.regions["north"].pk]),
        reverse("alignment_location_people", args=[t.locations["a-n1"].pk]),
        reverse("alignment_team", args=[data["team"].pk]),
        reverse("alignment_employee", args=[data["alice"].pk]),
        reverse("alignment_agent", args=[data["alice"].pk]),
        panel("alignment_region", "ranking", "format=csv", region_id=t.regions["north"].pk),
    ):
        assert client.get(url).status_code == 404, url
    resp = client.get(reverse("alignment_executive"))
    assert resp.status_code == 200 and b"acme" not in resp.content.lower()
    rows = csv_rows(client.get(panel("alignment_executive", "ranking", "format=csv")))
    assert {r["location"] for r in rows} == {"Beta b-1"}


def _grow(world, count, start):
    org = world.a.org
    for i in range(start, start + count):
        loc = f.LocationFactory(
            organization=org, region=world.a.regions["north"], code=f"acme-grow-{i}", name=f"acme grow {i}"
        )
        emp = f.EmployeeFactory(organization=org, external_id=f"acme-grow-emp-{i}", current_location=loc)
        nps(org, loc, employee=emp, n=40, promoters=20, detractors=5)
        put(org, "audit", location=loc, employee=emp, n=2, total=150, sumsq=11300)


def _count(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx.captured_queries)


def test_pages_and_exports_run_a_constant_number_of_queries(world, data, client, api):
    login(client, world, "admin")
    north = world.a.regions["north"].pk
    urls = [
        reverse("alignment_executive"),
        reverse("alignment_region", args=[north]),
        panel("alignment_executive", "ranking", "format=csv"),
        panel("alignment_region", "children", "format=csv", region_id=north),
        reverse("alignment_trainer"),
        "/api/v1/alignment/rankings/",
        f"/api/v1/alignment/drilldown/?level=region&id={north}",
    ]
    _grow(world, 1, 0)
    before = [_count(client, url) for url in urls]
    _grow(world, 6, 10)
    assert [_count(client, url) for url in urls] == before
