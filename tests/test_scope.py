"""Scope narrows down the hierarchy: region → store → own records, in lists, details, filters, counts."""

import pytest

from cem import models as m
from cem.tenancy import tenant_context


def _codes(resp):
    assert resp.status_code == 200, resp.content
    return {row["location"] for row in resp.json()["results"]}


def test_store_manager_sees_only_their_store(world, api):
    client = api(world.users["manager"])
    assert _codes(client.get("/api/v1/interactions/")) == {"a-n1"}

    other = world.a.interactions["a-n2"]
    assert client.get(f"/api/v1/interactions/{other.pk}/").status_code == 404
    own = world.a.interactions["a-n1"]
    assert client.get(f"/api/v1/interactions/{own.pk}/").status_code == 200

    # Filtering on another store's id or code yields nothing rather than its rows.
    other_loc = world.a.locations["a-n2"]
    assert _codes(client.get(f"/api/v1/interactions/?location={other_loc.pk}")) == set()
    assert _codes(client.get("/api/v1/interactions/?location_code=a-n2")) == set()

    stats = client.get("/api/v1/interactions/stats/").json()
    assert stats["total"] == 1
    stats = client.get(f"/api/v1/interactions/stats/?location={other_loc.pk}").json()
    assert stats["total"] == 0

    locations = client.get("/api/v1/locations/").json()
    assert [row["code"] for row in locations["results"]] == ["a-n1"]
    assert locations["count"] == 1
    assert client.get(f"/api/v1/locations/{other_loc.pk}/").status_code == 404


def test_store_manager_page_shows_only_their_store(world, client):
    client.force_login(world.users["manager"])
    html = client.get("/interactions/").content.decode()
    assert "acme-int-a-n1" in html
    assert "acme-int-a-n2" not in html and "acme-int-a-s1" not in html
    # The location filter offers only the manager's store, and the count is theirs.
    assert 'data-testid="interaction-total">1<' in html
    assert "Acme a-n2" not in html
    other = world.a.locations["a-n2"]
    html = client.get(f"/interactions/?location={other.pk}").content.decode()
    assert "acme-int-a-n2" not in html
    home = client.get("/").content.decode()
    assert 'data-testid="kpi-interactions">1<' in home


def test_regional_manager_sees_their_region(world, api):
    client = api(world.users["regional"])
    assert _codes(client.get("/api/v1/interactions/")) == {"a-n1", "a-n2"}
    south = world.a.interactions["a-s1"]
    assert client.get(f"/api/v1/interactions/{south.pk}/").status_code == 404
    assert client.get("/api/v1/interactions/stats/").json()["total"] == 2


def test_employee_sees_only_own_records(world, api):
    client = api(world.users["employee"])
    assert _codes(client.get("/api/v1/interactions/")) == {"a-n1"}
    employees = client.get("/api/v1/employees/").json()["results"]
    assert [e["external_id"] for e in employees] == ["acme-emp-a-n1"]


@pytest.mark.parametrize("persona", ["admin", "executive", "evaluator"])
def test_org_wide_roles_see_everything(world, api, persona):
    assert _codes(api(world.users[persona]).get("/api/v1/interactions/")) == {"a-n1", "a-n2", "a-s1"}


def test_roles_without_permission_are_refused(world, api):
    assert api(world.users["shopper"]).get("/api/v1/interactions/").status_code == 403
    assert api(world.users["manager"]).post("/api/v1/regions/", {"name": "x", "code": "x"}).status_code == 403
    assert api(world.users["executive"]).get("/api/v1/api-keys/").status_code == 403
    assert api(world.users["admin"]).get("/api/v1/api-keys/").status_code == 200


def test_employee_moves_keep_history_attributable(world, api):
    admin = api(world.users["admin"])
    employee = world.a.employees["a-n1"]
    target = world.a.locations["a-s1"]
    resp = admin.post(
        f"/api/v1/employees/{employee.pk}/move/",
        {"location": target.pk, "start_date": "2026-03-01"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    history = admin.get(f"/api/v1/employees/{employee.pk}/assignments/").json()
    assert [(h["location"], h["end_date"]) for h in history] == [
        (target.pk, None),
        (world.a.locations["a-n1"].pk, "2026-03-01"),
    ]
    # The interaction stays at the store where it happened.
    with tenant_context(world.a.org):
        assert m.Interaction.objects.get(external_id="acme-int-a-n1").location.code == "a-n1"
    resp = admin.post(
        f"/api/v1/employees/{employee.pk}/move/",
        {"location": target.pk, "start_date": "2020-01-01"},
        format="json",
    )
    assert resp.status_code == 400 and "start_date" in resp.json()
