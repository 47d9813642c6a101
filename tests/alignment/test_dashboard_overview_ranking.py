"""Location ranking with confidence, and the drill-down org → region → location → team → employee."""

from __future__ import annotations

import pytest
from django.http import Http404

from alignment import drilldown, ranking
from alignment import scope_selectors as sel
from alignment.filters import DashboardFilters
from alignment.models import AlignmentSettings
from cem.tenancy import tenant_context
from tests.alignment.overview_data import caller_of, employee_at, nps, put, team_at

ALL = DashboardFilters(period="all")


# --- the statistics ----------------------------------------------------------------------------


def test_nps_interval_narrows_with_n_and_never_collapses_at_small_n():
    small = ranking.nps_interval(n=3, promoters=3, detractors=0)
    large = ranking.nps_interval(n=300, promoters=150, detractors=30)
    assert small.value == 100 and small.low < 60 and small.high == 100
    assert large.value == 40
    assert 30 < large.low < 40 < large.high < 50
    assert (large.high - large.low) < (small.high - small.low)


def test_wilson_and_mean_intervals_stay_on_the_scale():
    w = ranking.wilson_interval(n=10, hits=10)
    assert w.value == 100 and 60 < w.low < 80 and w.high == 100
    one = ranking.mean_interval(n=1, total=80, sumsq=6400, low=0, high=100)
    assert (one.value, one.low, one.high) == (80, 0, 100)
    # 4 audits of 70, 80, 90, 100: mean 85, s = 12.91, t(3) = 3.18 -> ± 20.5
    est = ranking.mean_interval(n=4, total=340, sumsq=4900 + 6400 + 8100 + 10000, low=0, high=100)
    assert est.value == 85
    assert est.low == pytest.approx(64.46, abs=0.2) and est.high == 100


def test_t_quantile_is_close_to_the_exact_values():
    assert ranking.t_quantile(1) == pytest.approx(12.706, abs=0.01)
    assert ranking.t_quantile(5) == pytest.approx(2.571, abs=0.02)
    assert ranking.t_quantile(30) == pytest.approx(2.042, abs=0.01)


def _row(pk, value, n, low=None, high=None):
    return ranking.RankedRow(
        pk,
        f"loc {pk}",
        1,
        "r",
        value,
        value - 5 if low is None else low,
        value + 5 if high is None else high,
        n,
    )


def test_rank_ties_overlaps_and_the_minimum_sample():
    metric = ranking.RANK_METRICS["nps"]
    rows = [
        _row(1, 50.0, 100),
        _row(2, 50.04, 200),  # the same figure at one decimal: tied with 1, listed first (larger n)
        _row(3, 20.0, 100, 10, 30),  # clear of the others
        _row(4, 90.0, 3),  # too few to rank
        ranking.RankedRow(5, "empty", 1, "r", None, None, None, 0),
    ]
    result = ranking.rank(metric, rows, min_sample=30)
    by_id = {r.location_id: r for r in result.rows}
    assert [r.location_id for r in result.ranked] == [2, 1, 3]
    assert by_id[2].rank == by_id[1].rank == 1 and by_id[1].tied and by_id[2].tied
    assert by_id[3].rank == 3 and not by_id[3].tied
    assert by_id[1].overlaps == [1] and by_id[3].overlaps == []
    assert by_id[4].rank is None and by_id[4].note == "not ranked — n below minimum (3 < 30)"
    assert by_id[5].note == "not ranked — no data"
    assert [r.location_id for r in result.unranked] == [4, 5]


# --- ranking from the rollup, scoped ------------------------------------------------------------


def test_three_responses_are_shown_but_not_ranked_above_three_hundred(world):
    org, t = world.a.org, world.a
    nps(org, t.locations["a-n1"], n=3, promoters=3, detractors=0)  # NPS 100 from 3 answers
    nps(org, t.locations["a-n2"], n=300, promoters=150, detractors=60)  # NPS 30 from 300
    caller = caller_of(world.users["executive"], org)
    with tenant_context(org):
        result = sel.location_ranking(caller, org, ALL, "nps")
    rows = {r.location: r for r in result.rows}
    small, big = rows["Acme a-n1"], rows["Acme a-n2"]
    assert big.rank == 1 and big.value == 30 and big.n == 300
    assert small.rank is None and small.value == 100 and small.n == 3 and "below minimum" in small.note
    assert result.rows.index(big) < result.rows.index(small)
    assert rows["Acme a-s1"].note == "not ranked — no data"
    assert result.min_sample == 30


def test_minimum_sample_comes_from_the_organization_settings(world):
    org, t = world.a.org, world.a
    with tenant_context(org):
        AlignmentSettings.objects.create(organization=org, min_sample=2)
    nps(org, t.locations["a-n1"], n=3, promoters=3, detractors=0)
    nps(org, t.locations["a-n2"], n=300, promoters=150, detractors=60)
    with tenant_context(org):
        result = sel.location_ranking(caller_of(world.users["admin"], org), org, ALL, "nps")
    assert [r.location for r in result.ranked] == ["Acme a-n1", "Acme a-n2"]
    # Ranked first on 3 answers, but its interval (14…100) covers the second's (22…38): level.
    first, second = result.ranked
    assert first.overlaps == [2] and second.overlaps == [1]
    assert first.low < 20 and 20 < second.low < second.high < 40


def test_audit_ranking_uses_means_with_a_t_interval(world):
    org, t = world.a.org, world.a
    with tenant_context(org):
        AlignmentSettings.objects.create(organization=org, min_sample=2)
    scores = (80, 85, 90, 85, 85)  # mean 85, s = 3.54, t(4) = 2.78 -> 85 ± 4.4
    put(org, "audit", location=t.locations["a-n1"], n=5, total=sum(scores), sumsq=sum(x * x for x in scores))
    put(org, "audit", location=t.locations["a-s1"], n=5, total=300, sumsq=5 * 60**2)
    put(org, "audit", location=t.locations["a-n2"], n=2, total=170, sumsq=80**2 + 90**2)
    with tenant_context(org):
        result = sel.location_ranking(caller_of(world.users["admin"], org), org, ALL, "audit")
    first, second, third = result.ranked
    assert (first.location, first.value, third.value) == ("Acme a-n1", 85, 60)
    assert first.low == pytest.approx(80.6, abs=0.1) and first.high == pytest.approx(89.4, abs=0.1)
    assert third.low == third.high == 60  # no spread between equal audits
    # Two audits of 80 and 90 also average 85 (tied), but t(1) = 12.7 makes them 85 ± 63.5.
    assert second.rank == 1 and second.tied and second.low < 30
    assert first.overlaps == [1] and second.overlaps == [1, 3] and third.overlaps == [1]


def test_regional_manager_ranks_only_their_region(world):
    org, t = world.a.org, world.a
    for store in ("a-n1", "a-n2", "a-s1"):
        nps(org, t.locations[store], n=40, promoters=20, detractors=5)
    with tenant_context(org):
        result = sel.location_ranking(caller_of(world.users["regional"], org), org, ALL, "nps")
    assert {r.location for r in result.rows} == {"Acme a-n1", "Acme a-n2"}


def test_store_manager_ranking_is_their_store_alone(world):
    org, t = world.a.org, world.a
    for store in ("a-n1", "a-n2", "a-s1"):
        nps(org, t.locations[store], n=40, promoters=20, detractors=5)
    with tenant_context(org):
        result = sel.location_ranking(caller_of(world.users["manager"], org), org, ALL, "nps")
    assert [r.location for r in result.rows] == ["Acme a-n1"]


# --- drill-down --------------------------------------------------------------------------------


@pytest.fixture
def tree(world):
    """Two team members and one loose employee at a-n1, figures on every level."""
    org, t = world.a.org, world.a
    alice = employee_at(world, "a-n1", "Alice acme")
    bob = employee_at(world, "a-n1", "Bob acme")
    team = team_at(world, "a-n1", "acme floor", alice, bob)
    nps(org, t.locations["a-n1"], employee=alice, n=10, promoters=8, detractors=1)  # 70
    nps(org, t.locations["a-n1"], employee=bob, n=10, promoters=2, detractors=4)  # -20
    nps(org, t.locations["a-n1"], employee=t.employees["a-n1"], n=5, promoters=5, detractors=0)
    nps(org, t.locations["a-n2"], n=20, promoters=10, detractors=10)
    nps(org, t.locations["a-s1"], n=4, promoters=0, detractors=4)
    put(org, "points", location=t.locations["a-n1"], employee=alice, n=2, total=30)
    put(org, "lessons", location=t.locations["a-n1"], employee=alice, n=3, top=2, bottom=1)
    return {"alice": alice, "bob": bob, "team": team}


def _drill(world, persona, level, pk):
    org = world.a.org
    with tenant_context(org):
        return drilldown.drill(caller_of(world.users[persona], org), org, ALL, level, pk)


def test_admin_drills_org_region_location_team_employee(world, tree):
    t = world.a
    org_level = _drill(world, "admin", "organization", 0)
    assert [c.name for c in org_level.children] == ["north", "south"]
    north = next(c for c in org_level.children if c.name == "north")
    assert north.figures["nps"]["n"] == 45  # 10 + 10 + 5 + 20
    assert org_level.node.figures["nps"]["n"] == 49

    region = _drill(world, "admin", "region", north.id)
    assert [c.name for c in region.children] == ["Acme a-n1", "Acme a-n2"]
    assert [b.level for b in region.breadcrumbs] == ["organization"]

    location = _drill(world, "admin", "location", t.locations["a-n1"].pk)
    assert (location.children[0].level, location.children[0].name) == ("team", "acme floor")
    assert ("employee", t.employees["a-n1"].name) in [(c.level, c.name) for c in location.children]
    team_node = location.children[0]
    assert team_node.figures["nps"] == {
        "value": 25.0,
        "n": 20,
        "low": team_node.figures["nps"]["low"],
        "high": team_node.figures["nps"]["high"],
    }

    team = _drill(world, "admin", "team", tree["team"].pk)
    assert [c.name for c in team.children] == ["Alice acme", "Bob acme"]
    assert [b.level for b in team.breadcrumbs] == ["organization", "region", "location"]

    alice = _drill(world, "admin", "employee", tree["alice"].pk)
    assert alice.children == []
    assert [b.name for b in alice.breadcrumbs] == ["Acme", "north", "Acme a-n1", "acme floor"]
    assert alice.node.figures["nps"]["value"] == 70.0
    assert alice.node.figures["points"] == {"awards": 2, "total": 30}
    assert alice.node.figures["lessons"]["on_time_rate"] == 66.67


def test_regional_manager_starts_at_their_region_and_cannot_go_above_or_sideways(world, tree):
    t = world.a
    north, south = t.regions["north"], t.regions["south"]
    with tenant_context(t.org):
        assert drilldown.start(caller_of(world.users["regional"], t.org), t.org) == ("region", north.pk)
    with pytest.raises(Http404):
        _drill(world, "regional", "organization", 0)
    with pytest.raises(Http404):
        _drill(world, "regional", "region", south.pk)
    with pytest.raises(Http404):
        _drill(world, "regional", "location", t.locations["a-s1"].pk)
    region = _drill(world, "regional", "region", north.pk)
    assert region.breadcrumbs == []
    assert [c.name for c in region.children] == ["Acme a-n1", "Acme a-n2"]
    alice = _drill(world, "regional", "employee", tree["alice"].pk)
    assert [b.name for b in alice.breadcrumbs] == ["north", "Acme a-n1", "acme floor"]


def test_store_manager_starts_at_their_store_only(world, tree):
    t = world.a
    for level, pk in (
        ("organization", 0),
        ("region", t.regions["north"].pk),
        ("location", t.locations["a-n2"].pk),
        ("employee", t.employees["a-n2"].pk),
    ):
        with pytest.raises(Http404):
            _drill(world, "manager", level, pk)
    store = _drill(world, "manager", "location", t.locations["a-n1"].pk)
    assert store.breadcrumbs == []
    assert store.node.figures["nps"]["n"] == 25
    team = _drill(world, "manager", "team", tree["team"].pk)
    assert [b.name for b in team.breadcrumbs] == ["Acme a-n1"]


def test_employee_sees_only_themselves(world, tree):
    t = world.a
    me = _drill(world, "employee", "employee", t.employees["a-n1"].pk)
    assert me.node.figures["nps"] == {
        "value": 100.0,
        "n": 5,
        "low": me.node.figures["nps"]["low"],
        "high": 100.0,
    }
    for level, pk in (
        ("location", t.locations["a-n1"].pk),
        ("employee", tree["alice"].pk),
        ("team", tree["team"].pk),
    ):
        with pytest.raises(Http404):
            _drill(world, "employee", level, pk)


def test_other_tenants_ids_are_not_found(world, tree):
    b = world.b
    for level, pk in (
        ("region", b.regions["main"].pk),
        ("location", b.locations["b-1"].pk),
        ("employee", b.employees["b-1"].pk),
    ):
        with pytest.raises(Http404):
            _drill(world, "admin", level, pk)
