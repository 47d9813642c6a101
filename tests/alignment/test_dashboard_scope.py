"""Scope of the dashboards: a store manager's dashboards, drill-down and exports show only their
store; a regional manager's only their region; ids outside the scope are 404s (pages, panels,
CSVs and the API alike)."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from tests.alignment.overview_data import employee_at, nps, put, team_at

STORES = ("a-n1", "a-n2", "a-s1")


def csv_rows(resp) -> list[dict]:
    assert resp.status_code == 200, resp.content[:300]
    return list(csv.DictReader(io.StringIO(resp.content.decode())))


def panel(name, key, query="format=csv", **kwargs):
    return reverse(f"{name}_panel", kwargs={**kwargs, "panel": key}) + (f"?{query}" if query else "")


@pytest.fixture
def everywhere(world):
    """Figures, a team and a teamed employee at every store."""
    org, t = world.a.org, world.a
    out = {}
    for store in STORES:
        person = employee_at(world, store, f"Staff {store} acme")
        team = team_at(world, store, f"acme team {store}", person)
        nps(org, t.locations[store], employee=person, n=40, promoters=20, detractors=4)
        put(org, "audit", location=t.locations[store], employee=person, n=3, total=240, sumsq=19200)
        put(org, "lessons", location=t.locations[store], employee=person, n=2, top=1, bottom=1)
        put(org, "lesson_std", location=t.locations[store], employee=person, standard=t.standard, n=1, top=1)
        put(org, "points", location=t.locations[store], employee=person, n=1, total=25)
        out[store] = {"person": person, "team": team}
    return out


def _names(rows, key) -> set[str]:
    return {r[key] for r in rows}


def _all_ids(world, everywhere, store):
    t = world.a
    return {
        "location": t.locations[store].pk,
        "team": everywhere[store]["team"].pk,
        "employee": everywhere[store]["person"].pk,
    }


def _store_urls(world, everywhere, store) -> list[str]:
    ids = _all_ids(world, everywhere, store)
    return [
        reverse("alignment_location_people", args=[ids["location"]]),
        panel("alignment_location_people", "children", location_id=ids["location"]),
        reverse("alignment_team", args=[ids["team"]]),
        panel("alignment_team", "kpis", team_id=ids["team"]),
        reverse("alignment_employee", args=[ids["employee"]]),
        reverse("alignment_agent", args=[ids["employee"]]),
        panel("alignment_employee", "points", employee_id=ids["employee"]),
        f"/api/v1/alignment/drilldown/?level=location&id={ids['location']}",
        f"/api/v1/alignment/drilldown/?level=team&id={ids['team']}",
        f"/api/v1/alignment/drilldown/?level=employee&id={ids['employee']}",
    ]


# --- store manager (a-n1) ----------------------------------------------------------------------


def test_store_manager_sees_only_their_store_everywhere(world, everywhere, client, api):
    t = world.a
    client.force_login(world.users["manager"])
    own = t.locations["a-n1"].name

    # The organization and region levels are above them.
    assert client.get(reverse("alignment_executive")).status_code == 302
    for region in ("north", "south"):
        assert client.get(reverse("alignment_region", args=[t.regions[region].pk])).status_code == 404
        assert (
            client.get(panel("alignment_region", "ranking", region_id=t.regions[region].pk)).status_code
            == 404
        )

    # Their store, its team and people: reachable, and only theirs.
    for url in _store_urls(world, everywhere, "a-n1"):
        assert client.get(url).status_code == 200, url
    people = csv_rows(
        client.get(panel("alignment_location_people", "children", location_id=t.locations["a-n1"].pk))
    )
    assert _names(people, "name") == {"acme team a-n1", t.employees["a-n1"].name}
    points = csv_rows(
        client.get(panel("alignment_location_people", "points", location_id=t.locations["a-n1"].pk))
    )
    assert _names(points, "employee") == {"Staff a-n1 acme"}

    # Every other store's ids: 404 on pages, panels, CSVs and the API.
    for store in ("a-n2", "a-s1"):
        for url in _store_urls(world, everywhere, store):
            target = api(world.users["manager"]) if url.startswith("/api/") else client
            assert target.get(url).status_code == 404, url

    # Exports and API readers that list many: only a-n1.
    trainer = csv_rows(client.get(panel("alignment_trainer", "by_location")))
    assert _names(trainer, "location") == {own}
    by_std = csv_rows(client.get(panel("alignment_trainer", "by_standard")))
    assert [r["completed"] for r in by_std] == ["1"]
    session = api(world.users["manager"])
    ranking = session.get("/api/v1/alignment/rankings/").json()
    assert [r["location"] for r in ranking["results"]] == [own]
    start = session.get("/api/v1/alignment/drilldown/").json()
    assert (start["level"], start["id"], start["breadcrumbs"]) == ("location", t.locations["a-n1"].pk, [])
    assert session.get("/api/v1/alignment/drilldown/?level=organization").status_code == 404
    assert (
        session.get(f"/api/v1/alignment/drilldown/?level=region&id={t.regions['north'].pk}").status_code
        == 404
    )


# --- regional manager (north) -----------------------------------------------------------------------


def test_regional_manager_sees_only_their_region(world, everywhere, client, api):
    t = world.a
    north, south = t.regions["north"], t.regions["south"]
    client.force_login(world.users["regional"])
    north_names = {t.locations["a-n1"].name, t.locations["a-n2"].name}

    resp = client.get(reverse("alignment_region", args=[north.pk]))
    assert resp.status_code == 200
    assert t.locations["a-s1"].name.encode() not in resp.content
    ranking = csv_rows(client.get(panel("alignment_region", "ranking", region_id=north.pk)))
    assert _names(ranking, "location") == north_names
    children = csv_rows(client.get(panel("alignment_region", "children", region_id=north.pk)))
    assert _names(children, "name") == north_names
    kpis = {
        r["measure"]: r for r in csv_rows(client.get(panel("alignment_region", "kpis", region_id=north.pk)))
    }
    assert kpis["nps"]["n"] == "80"

    assert client.get(reverse("alignment_region", args=[south.pk])).status_code == 404
    assert client.get(panel("alignment_region", "children", region_id=south.pk)).status_code == 404
    for store in ("a-n1", "a-n2"):
        for url in _store_urls(world, everywhere, store):
            target = api(world.users["regional"]) if url.startswith("/api/") else client
            assert target.get(url).status_code == 200, url
    session = api(world.users["regional"])
    for url in _store_urls(world, everywhere, "a-s1"):
        assert (session if url.startswith("/api/") else client).get(url).status_code == 404, url

    trainer = csv_rows(client.get(panel("alignment_trainer", "by_location")))
    assert _names(trainer, "location") == north_names
    api_ranking = session.get("/api/v1/alignment/rankings/").json()
    assert {r["location"] for r in api_ranking["results"]} == north_names
    assert session.get(f"/api/v1/alignment/rankings/?region={south.pk}").json()["results"] == []
    start = session.get("/api/v1/alignment/drilldown/").json()
    assert (start["level"], start["id"]) == ("region", north.pk)
    assert {c["name"] for c in start["children"]} == north_names
    assert session.get("/api/v1/alignment/drilldown/?level=organization").status_code == 404
    assert session.get(f"/api/v1/alignment/drilldown/?level=region&id={south.pk}").status_code == 404


def test_executive_and_api_key_see_the_whole_organization(world, everywhere, client, api):
    t = world.a
    client.force_login(world.users["executive"])
    rows = csv_rows(client.get(panel("alignment_executive", "ranking")))
    assert _names(rows, "location") == {t.locations[s].name for s in STORES}
    start = api(key=t.api_key).get("/api/v1/alignment/drilldown/").json()
    assert (start["level"], [c["name"] for c in start["children"]]) == ("organization", ["north", "south"])


def test_bad_api_parameters_are_400s_naming_them(world, api):
    session = api(world.users["admin"])
    resp = session.get("/api/v1/alignment/rankings/?metric=x")
    assert resp.status_code == 400 and "metric" in resp.json()
    resp = session.get("/api/v1/alignment/drilldown/?level=planet")
    assert resp.status_code == 400 and "level" in resp.json()
    resp = session.get("/api/v1/alignment/drilldown/?level=region")
    assert resp.status_code == 400 and "id" in resp.json()
    resp = session.get("/api/v1/alignment/drilldown/?level=region&id=x1")
    assert resp.status_code == 400 and "id" in resp.json()
    resp = session.get("/api/v1/alignment/rankings/?period=forever")
    assert resp.status_code == 400 and "period" in resp.json()


def test_org_b_api_sees_none_of_org_a(world, everywhere, api):
    t = world.a
    b = api(world.users["outsider"])
    assert {r["location"] for r in b.get("/api/v1/alignment/rankings/").json()["results"]} == {"Beta b-1"}
    for level, pk in (
        ("region", t.regions["north"].pk),
        ("location", t.locations["a-n1"].pk),
        ("team", everywhere["a-n1"]["team"].pk),
    ):
        assert b.get(f"/api/v1/alignment/drilldown/?level={level}&id={pk}").status_code == 404


def test_openapi_documents_the_endpoints(world, api):
    schema = api(world.users["admin"]).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/alignment/rankings/" in paths and "/api/v1/alignment/drilldown/" in paths
    params = {p["name"] for p in paths["/api/v1/alignment/drilldown/"]["get"]["parameters"]}
    assert {"level", "id", "period", "channel", "category"} <= params
