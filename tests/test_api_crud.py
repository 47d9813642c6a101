"""CRUD through the API: services write, the audit log records, bad input is a 4xx naming the field."""

import pytest

from cem import models as m
from cem.tenancy import tenant_context


def _audit(world, action, object_type):
    with tenant_context(world.a.org):
        return list(m.AuditLog.objects.filter(action=action, object_type=object_type))


def test_region_location_team_lifecycle(world, api):
    client = api(world.users["admin"])
    region = client.post(
        "/api/v1/regions/", {"name": "West", "code": "west"}, format="json", HTTP_X_REQUEST_ID="req-42"
    )
    assert region.status_code == 201, region.content
    [entry] = _audit(world, "create", "cem.Region")
    assert entry.request_id == "req-42" and entry.actor_user_id == world.users["admin"].pk
    assert entry.changes["after"]["code"] == "west"

    loc = client.post(
        "/api/v1/locations/",
        {
            "region": region.json()["id"],
            "name": "West 1",
            "code": "w1",
            "kind": "store",
            "latitude": "40.7128",
            "longitude": "-74.0060",
        },
        format="json",
    )
    assert loc.status_code == 201, loc.content
    team = client.post("/api/v1/teams/", {"location": loc.json()["id"], "name": "Floor"}, format="json")
    assert team.status_code == 201

    patched = client.patch(f"/api/v1/locations/{loc.json()['id']}/", {"name": "West One"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "West One"
    [update] = _audit(world, "update", "cem.Location")
    assert update.changes == {"name": {"before": "West 1", "after": "West One"}}

    # A region still holding locations cannot be deleted: 409 and nothing lost.
    resp = client.delete(f"/api/v1/regions/{region.json()['id']}/")
    assert resp.status_code == 409 and "Location" in resp.json()["referenced_by"]
    assert client.get(f"/api/v1/regions/{region.json()['id']}/").status_code == 200
    assert client.delete(f"/api/v1/teams/{team.json()['id']}/").status_code == 204
    assert _audit(world, "delete", "cem.Team")


@pytest.mark.parametrize(
    ("url", "payload", "field"),
    [
        ("/api/v1/regions/", {"name": "x", "code": "has spaces"}, "code"),
        ("/api/v1/regions/", {"name": "Dup", "code": "acme-north"}, "code"),
        ("/api/v1/locations/", {"name": "x", "code": "x", "latitude": "123"}, "latitude"),
        ("/api/v1/locations/", {"name": "x", "code": "x", "region": 999999}, "region"),
        ("/api/v1/locations/", {"name": "x", "code": "x", "kind": "castle"}, "kind"),
        ("/api/v1/touchpoints/", {"code": "t", "name": "t", "category": "urgent"}, "category"),
        ("/api/v1/expectations/", {"name": "x", "importance": 9}, "importance"),
        ("/api/v1/segments/", {"name": "s", "rule": [{"field": "x", "op": "like", "value": 1}]}, "rule"),
        ("/api/v1/organization/", None, None),
    ],
)
def test_bad_input_names_the_field(world, api, url, payload, field):
    client = api(world.users["admin"])
    if payload is None:
        org_url = f"{url}{world.a.org.pk}/"
        resp = client.patch(org_url, {"time_zone": "Mars/Olympus"}, format="json")
        assert resp.status_code == 400 and "time_zone" in resp.json()
        return
    resp = client.post(url, payload, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()


def test_organization_settings(world, api):
    client = api(world.users["admin"])
    listing = client.get("/api/v1/organization/").json()
    assert [o["slug"] for o in listing["results"]] == ["acme"]
    resp = client.patch(
        f"/api/v1/organization/{world.a.org.pk}/",
        {
            "time_zone": "Europe/Paris",
            "settings": {"contact_rules": {"max_invitations_per_customer_days": 14}},
        },
        format="json",
    )
    assert resp.status_code == 200 and resp.json()["time_zone"] == "Europe/Paris"
    assert (
        api(world.users["manager"])
        .patch(f"/api/v1/organization/{world.a.org.pk}/", {"name": "x"}, format="json")
        .status_code
        == 403
    )


def test_standards_point_at_the_backbone(world, api):
    client = api(world.users["trainer"])
    skill = client.post("/api/v1/skill-categories/", {"name": "Greeting"}, format="json").json()
    expectation = client.post(
        "/api/v1/expectations/", {"name": "Acknowledged quickly", "importance": 5}, format="json"
    ).json()
    brand = client.post("/api/v1/brand-messages/", {"title": "We notice you"}, format="json").json()
    resp = client.post(
        "/api/v1/standards/",
        {
            "code": "greet-30s",
            "title": "Greet within 30 s",
            "skill_category": skill["id"],
            "expectation": expectation["id"],
            "brand_message": brand["id"],
            "category": "critical",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    found = client.get(f"/api/v1/standards/?skill_category={skill['id']}").json()["results"]
    assert [s["code"] for s in found] == ["greet-30s"]


def test_memberships_via_api(world, api):
    client = api(world.users["admin"])
    resp = client.post(
        "/api/v1/memberships/", {"email": "New.Manager@Acme.test", "role": "store_manager"}, format="json"
    )
    assert resp.status_code == 400 and "location" in resp.json()
    resp = client.post(
        "/api/v1/memberships/",
        {
            "email": "New.Manager@Acme.test",
            "role": "store_manager",
            "location": world.a.locations["a-s1"].pk,
            "password": "a-long-enough-passphrase",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["email"] == "new.manager@acme.test"
    resp = client.post(
        "/api/v1/memberships/", {"email": "new.manager@acme.test", "role": "executive"}, format="json"
    )
    assert resp.status_code == 400 and "email" in resp.json()
    resp = client.post(
        "/api/v1/memberships/",
        {"email": "weak@acme.test", "role": "executive", "password": "123"},
        format="json",
    )
    assert resp.status_code == 400 and "password" in resp.json()
    # The new manager is scoped to their store straight away.
    from django.contrib.auth import get_user_model

    manager = get_user_model().objects.get(username="new.manager@acme.test")
    rows = api(manager).get("/api/v1/interactions/").json()["results"]
    assert {r["location"] for r in rows} == {"a-s1"}


def test_employee_create_with_location(world, api):
    client = api(world.users["admin"])
    resp = client.post(
        "/api/v1/employees/",
        {
            "name": "Dana",
            "external_id": "E-NEW",
            "role": "associate",
            "location": world.a.locations["a-n2"].pk,
            "start_date": "2026-01-05",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["current_location"] == world.a.locations["a-n2"].pk
    history = client.get(f"/api/v1/employees/{resp.json()['id']}/assignments/").json()
    assert [(h["start_date"], h["end_date"]) for h in history] == [("2026-01-05", None)]
    dup = client.post("/api/v1/employees/", {"name": "Dana 2", "external_id": "E-NEW"}, format="json")
    assert dup.status_code == 400


def test_events_and_audit_log_are_read_only(world, api):
    client = api(world.users["admin"])
    assert client.post("/api/v1/audit-log/", {}, format="json").status_code in (403, 405)
    assert client.post("/api/v1/events/", {}, format="json").status_code in (403, 405)
    row = client.get("/api/v1/audit-log/").json()["results"][0]
    assert client.delete(f"/api/v1/audit-log/{row['id']}/").status_code in (403, 405)
    api(key=world.a.api_key).post(
        "/api/v1/interactions/",
        {
            "external_id": "ev-1",
            "occurred_at": "2026-01-01T00:00:00Z",
            "location": "a-n1",
            "touchpoint": "checkout",
        },
        format="json",
    )
    events = client.get("/api/v1/events/?event_type=InteractionRecorded").json()["results"]
    assert len(events) == 1 and events[0]["completed_at"] is None
    log = client.get("/api/v1/audit-log/?action=interactions.ingest").json()["results"]
    assert log[0]["actor_api_key"] == world.a.api_key_obj.pk
