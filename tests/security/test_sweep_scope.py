"""Cross-SCOPE sweep: inside one organization, a store manager and a regional manager never see
or change rows outside their part of the hierarchy, on any API
route or page that takes an id.

tests/test_scope.py shows the rule on interactions and locations; this walks every router route
and every page whose model declares SCOPE_PATHS, with the rows the cross-tenant sweep puts in
org A (tests/*/sweep_*.py), with both personas moved to the south of org A so those rows
(mostly at store a-n1) are outside their scope. Which rows are outside a persona's
scope is read from the model's SCOPE_PATHS with an ORM filter written here, not from the code
under test.
"""

from __future__ import annotations

import pytest

import tests.test_cross_tenant_sweep as sweep
from cem import models as m
from cem.api.urls import router
from cem.scoping import scope_level
from cem.tenancy import unscoped
from tests import factories as f
from tests.test_cross_tenant_sweep import PUBLIC_TOKEN_PARAMS, sweep_world  # noqa: F401 - fixture

PERSONAS = {"manager": "location", "regional": "region"}
WRITE_METHODS = ("patch", "put", "delete")


def _membership(world, persona):
    with unscoped():
        return m.Membership.objects.select_related("location", "region").get(
            user=world.users[persona], organization=world.a.org
        )


def _outside(model, world, persona, limit=3) -> list[int]:
    """Org A rows of ``model`` outside the persona's scope (None when the model is not scoped)."""
    level = PERSONAS[persona]
    path = (getattr(model, "SCOPE_PATHS", None) or {}).get(level)
    if path is None:
        return []
    membership = _membership(world, persona)
    value = membership.location_id if level == "location" else membership.region_id
    with unscoped():
        rows = model.objects.filter(organization=world.a.org).exclude(**{path: value})
        # Rows with no place in the hierarchy (path is NULL) are not "another store's".
        rows = rows.exclude(**{f"{path}__isnull": True})
        return list(rows.order_by("pk").values_list("pk", flat=True)[:limit])


@pytest.fixture
def scoped_world(sweep_world):  # noqa: F811 - the imported fixture
    world = sweep_world
    sweep._org_a_id = world.a.org.pk
    # The areas' sweep rows sit mostly at store a-n1 (region north): move both personas south
    # (store a-s1, region south), so those rows are the ones out of reach.
    with unscoped():
        m.Membership.objects.filter(user=world.users["manager"], organization=world.a.org).update(
            location=world.a.locations["a-s1"]
        )
        m.Membership.objects.filter(user=world.users["regional"], organization=world.a.org).update(
            region=world.a.regions["south"]
        )
    for code in ("a-n2", "a-s1"):
        f.TeamFactory(organization=world.a.org, name=f"acme-team-{code}", location=world.a.locations[code])
    assert scope_level(_membership(world, "manager").role) == "location"
    return world


def _ids_in(resp) -> set[int]:
    data = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else {}
    rows = data.get("results", data) if isinstance(data, dict) else data
    return {row.get("id") for row in rows if isinstance(row, dict)} if isinstance(rows, list) else set()


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_api_routes_hide_rows_outside_scope(scoped_world, api, persona):
    world = scoped_world
    client = api(world.users[persona])
    before = sweep._fingerprint()
    exercised = []
    for prefix, viewset, _basename in router.registry:
        model = viewset.queryset.model
        outside = _outside(model, world, persona)
        if not outside:
            continue
        base = f"/api/v1/{prefix}/"
        listed = client.get(base)
        assert listed.status_code in (200, 403), (base, listed.status_code)
        if listed.status_code == 200:
            assert not (_ids_in(listed) & set(outside)), f"{base} lists rows outside {persona}'s scope"
        for pk in outside:
            detail = f"{base}{pk}/"
            resp = client.get(detail)
            assert resp.status_code in (403, 404), (persona, detail, resp.status_code)
            for method in WRITE_METHODS:
                resp = getattr(client, method)(detail, {"name": "hijacked"}, format="json")
                assert resp.status_code in (403, 404, 405), (persona, method, detail, resp.status_code)
            for extra in viewset.get_extra_actions():
                if extra.detail and "(?P<" not in extra.url_path:
                    for http_method in extra.mapping:
                        resp = getattr(client, http_method)(f"{detail}{extra.url_path}/", {}, format="json")
                        assert resp.status_code in (403, 404, 405), (
                            persona,
                            detail,
                            extra.url_path,
                            resp.status_code,
                        )
        exercised.append(prefix)
    assert sweep._fingerprint() == before, f"{persona} changed rows outside their scope"
    assert len(exercised) >= 30, exercised


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_pages_hide_rows_outside_scope(scoped_world, client, persona):
    world = scoped_world
    client.force_login(world.users[persona])
    before = sweep._fingerprint()
    exercised = []
    for route, pattern in sweep._page_patterns():
        params = dict(getattr(pattern.pattern, "converters", {}))
        if not params or set(params) <= PUBLIC_TOKEN_PARAMS or route.startswith(("api/", "admin/")):
            continue
        if set(params) - {"pk", "location_id", "region_id", "team_id", "employee_id", "panel"}:
            continue
        model = getattr(getattr(pattern.callback, "view_class", None), "model", None)
        outside = _outside(model, world, persona, limit=1) if model is not None else []
        if not outside or "panel" in params:
            continue
        url = "/" + route
        for name in params:
            url = url.replace(f"<int:{name}>", str(outside[0]))
        for method in ("get", "post"):
            resp = getattr(client, method)(url)
            assert resp.status_code in (403, 404, 405), (persona, method, url, resp.status_code)
        exercised.append(route)
    assert sweep._fingerprint() == before
    assert len(exercised) >= 40, exercised
