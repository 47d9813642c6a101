"""Journey maps over the API and in the browser pages: CRUD with nested steps, reorder, single
steps, expected vs actual; 4xx naming the field; other tenants' ids 404; permissions; query
counts that do not grow with rows; the pages (list, detail with chart and badges, htmx step
operations, create/edit/delete)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alignment import journeys as svc
from alignment.models import JourneyMap, JourneyStep, Measure
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.driver_data import rollup_points


@pytest.fixture
def tps(world):
    org, channel = world.a.org, world.a.channel
    return [
        world.a.touchpoint,
        f.TouchpointFactory(
            organization=org, channel=channel, code="acme-api-greet", name="Acme api greeting"
        ),
        f.TouchpointFactory(organization=org, channel=channel, code="acme-api-pay", name="Acme api pay"),
    ]


@pytest.fixture
def expectation(world):
    return f.ExpectationFactory(organization=world.a.org, name="acme api expectation", importance=5)


def journey(world, tps, *, name="acme api journey", segment=None):
    with tenant_context(world.a.org):
        return svc.journey_create(
            organization=world.a.org,
            actor=Actor.system(),
            data={"name": name, "segment": segment, "steps": [{"touchpoint": tp} for tp in tps]},
        )


def steps_of(world, j):
    with tenant_context(world.a.org):
        return list(
            JourneyStep.objects.filter(journey=j).order_by("position").values_list("pk", "touchpoint_id")
        )


# --- API --------------------------------------------------------------------------------------------


def test_create_with_nested_steps_and_read_back(world, api, tps, expectation):
    segment = f.SegmentFactory(organization=world.a.org, name="acme api segment")
    client = api(world.users["admin"])
    resp = client.post(
        "/api/v1/journey-maps/",
        {
            "name": "acme api new",
            "segment": segment.pk,
            "description": "acme",
            "steps": [
                {"touchpoint": tps[1].pk, "expectation": expectation.pk, "note": "first"},
                {"touchpoint": tps[0].pk},
            ],
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["segment_name"] == "acme api segment"
    assert [(s["position"], s["touchpoint"], s["category"]) for s in body["steps"]] == [
        (1, tps[1].pk, tps[1].category),
        (2, tps[0].pk, "critical"),
    ]
    assert body["steps"][0]["expectation_name"] == "acme api expectation"
    assert client.get(f"/api/v1/journey-maps/{body['id']}/").json() == body


def test_update_with_steps_replaces_them_and_patch_without_keeps_them(world, api, tps):
    j = journey(world, tps)
    client = api(world.users["admin"])
    resp = client.patch(f"/api/v1/journey-maps/{j.pk}/", {"description": "acme changed"}, format="json")
    assert resp.status_code == 200 and len(resp.json()["steps"]) == 3
    resp = client.patch(
        f"/api/v1/journey-maps/{j.pk}/",
        {"steps": [{"touchpoint": tps[2].pk}, {"touchpoint": tps[0].pk}]},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    assert [s["touchpoint"] for s in resp.json()["steps"]] == [tps[2].pk, tps[0].pk]


def test_reorder_action(world, api, tps):
    j = journey(world, tps)
    a, b, c = (pk for pk, _ in steps_of(world, j))
    client = api(world.users["admin"])
    resp = client.post(f"/api/v1/journey-maps/{j.pk}/reorder/", {"steps": [b, c, a]}, format="json")
    assert resp.status_code == 200, resp.content
    assert [(s["id"], s["position"]) for s in resp.json()["steps"]] == [(b, 1), (c, 2), (a, 3)]
    resp = client.post(f"/api/v1/journey-maps/{j.pk}/reorder/", {"steps": [b, c]}, format="json")
    assert resp.status_code == 400 and "steps" in resp.json()
    assert [pk for pk, _ in steps_of(world, j)] == [b, c, a]  # nothing lost
    # Idempotency-Key replays the first answer.
    headers = {"HTTP_IDEMPOTENCY_KEY": "acme-reorder-1"}
    first = client.post(
        f"/api/v1/journey-maps/{j.pk}/reorder/", {"steps": [a, b, c]}, format="json", **headers
    )
    again = client.post(
        f"/api/v1/journey-maps/{j.pk}/reorder/", {"steps": [a, b, c]}, format="json", **headers
    )
    assert first.status_code == again.status_code == 200 and again["Idempotent-Replayed"] == "true"


def test_single_steps_add_change_remove(world, api, tps, expectation):
    j = journey(world, tps[:2])
    client = api(world.users["admin"])
    resp = client.post(
        "/api/v1/journey-steps/",
        {"journey": j.pk, "touchpoint": tps[2].pk, "position": 1, "note": "acme first"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    new = resp.json()["id"]
    assert steps_of(world, j)[0] == (new, tps[2].pk)
    resp = client.patch(f"/api/v1/journey-steps/{new}/", {"expectation": expectation.pk}, format="json")
    assert resp.status_code == 200 and resp.json()["expectation"] == expectation.pk
    resp = client.patch(f"/api/v1/journey-steps/{new}/", {"position": 3}, format="json")
    assert resp.status_code == 400 and "position" in resp.json()
    assert client.delete(f"/api/v1/journey-steps/{new}/").status_code == 204
    assert [tp for _, tp in steps_of(world, j)] == [tps[0].pk, tps[1].pk]
    resp = client.get(f"/api/v1/journey-steps/?journey={j.pk}")
    assert [s["position"] for s in resp.json()["results"]] == [1, 2]


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/api/v1/journey-maps/", {"description": "no name"}, "name"),
        ("/api/v1/journey-maps/", {"name": "acme api journey"}, "name"),  # taken
        ("/api/v1/journey-maps/", {"name": "acme x", "segment": 999999}, "segment"),
        ("/api/v1/journey-maps/", {"name": "acme x", "steps": [{"note": "no touchpoint"}]}, "steps"),
        ("/api/v1/journey-maps/", {"name": "acme x", "steps": "checkout"}, "steps"),
        ("/api/v1/journey-steps/", {"touchpoint": 1}, "journey"),
        ("/api/v1/journey-steps/", {"journey": "JOURNEY", "touchpoint": "TP0", "position": 0}, "position"),
        ("/api/v1/journey-steps/", {"journey": "JOURNEY", "touchpoint": "TP0", "position": 7}, "position"),
        (
            "/api/v1/journey-steps/",
            {"journey": "JOURNEY", "touchpoint": "TP0"},
            "touchpoint",
        ),  # already on it
    ],
)
def test_bad_input_is_a_400_naming_the_field(world, api, tps, path, payload, field):
    j = journey(world, tps)
    payload = {k: (j.pk if v == "JOURNEY" else tps[0].pk if v == "TP0" else v) for k, v in payload.items()}
    before = steps_of(world, j)
    resp = api(world.users["admin"]).post(path, payload, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()
    assert steps_of(world, j) == before
    with tenant_context(world.a.org):
        assert JourneyMap.objects.count() == 1


def test_duplicate_touchpoints_in_nested_steps_are_refused(world, api, tps):
    resp = api(world.users["admin"]).post(
        "/api/v1/journey-maps/",
        {"name": "acme dup", "steps": [{"touchpoint": tps[0].pk}, {"touchpoint": tps[0].pk}]},
        format="json",
    )
    assert resp.status_code == 400 and "steps" in resp.json()


def test_experience_endpoint(world, api, tps, expectation):
    j = journey(world, tps[:1])
    with tenant_context(world.a.org):
        step = JourneyStep.objects.get(journey=j)
        svc.step_update(
            organization=world.a.org, actor=Actor.system(), step=step, data={"expectation": expectation}
        )
    std = f.StandardFactory(organization=world.a.org, code="acme-api-std", expectation=expectation)
    rollup_points(
        world.a.org,
        touchpoint=tps[0],
        measure=Measure.STD_FEEDBACK,
        standard=std,
        location=world.a.locations["a-n1"],
        values=[70] * 12,
    )
    client = api(world.users["admin"])
    resp = client.get(f"/api/v1/journey-maps/{j.pk}/experience/?period=30")
    assert resp.status_code == 200, resp.content
    [row] = resp.json()["steps"]
    assert (row["expected"], row["actual"], row["gap"], row["status"]) == (100.0, 70.0, 30.0, "large_gap")
    assert resp.json()["period_start"] is not None
    assert client.get(f"/api/v1/journey-maps/{j.pk}/experience/?period=nine").json().keys() == {"period"}
    assert "location" in client.get(f"/api/v1/journey-maps/{j.pk}/experience/?location=x").json()
    # The store manager of a-n1 may not pick another store.
    manager = api(world.users["manager"])
    other = world.a.locations["a-s1"].pk
    assert manager.get(f"/api/v1/journey-maps/{j.pk}/experience/?location={other}").status_code == 404
    assert manager.get(f"/api/v1/journey-maps/{j.pk}/experience/").json()["steps"][0]["n"] == 12


def test_org_b_gets_404_for_org_a_journeys(world, api, tps):
    j = journey(world, tps)
    step_id = steps_of(world, j)[0][0]
    for client in (api(world.users["outsider"]), api(key=world.b.api_key)):
        assert client.get(f"/api/v1/journey-maps/{j.pk}/").status_code == 404
        assert client.get(f"/api/v1/journey-maps/{j.pk}/experience/").status_code == 404
        assert (
            client.post(f"/api/v1/journey-maps/{j.pk}/reorder/", {"steps": []}, format="json").status_code
            == 404
        )
        assert client.delete(f"/api/v1/journey-steps/{step_id}/").status_code == 404
        assert client.get("/api/v1/journey-maps/").json()["results"] == []
        # Posting A's ids from B is a 400, nothing written.
        resp = client.post(
            "/api/v1/journey-steps/", {"journey": j.pk, "touchpoint": tps[0].pk}, format="json"
        )
        assert resp.status_code == 400
    assert len(steps_of(world, j)) == 3


def test_roles(world, api, tps):
    j = journey(world, tps)
    assert api(world.users["executive"]).get("/api/v1/journey-maps/").status_code == 200
    assert api(world.users["manager"]).get(f"/api/v1/journey-maps/{j.pk}/").status_code == 200
    resp = api(world.users["executive"]).patch(f"/api/v1/journey-maps/{j.pk}/", {"name": "x"}, format="json")
    assert resp.status_code == 403
    assert (
        api(world.users["manager"]).post("/api/v1/journey-maps/", {"name": "x"}, format="json").status_code
        == 403
    )
    assert api(world.users["employee"]).get("/api/v1/journey-maps/").status_code == 403
    assert api(world.users["trainer"]).get("/api/v1/journey-maps/").status_code == 403
    # The integrator key (business_data: all) may write.
    resp = api(key=world.a.api_key).post("/api/v1/journey-maps/", {"name": "acme by key"}, format="json")
    assert resp.status_code == 201


def _count(client, url):
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx)


def test_list_endpoints_and_pages_do_not_grow_queries_with_rows(world, api, client, tps):
    admin = api(world.users["admin"])
    client.force_login(world.users["admin"])
    journey(world, tps, name="acme q 0")
    urls = ["/api/v1/journey-maps/", "/api/v1/journey-steps/"]
    before = [_count(admin, u) for u in urls] + [_count(client, "/alignment/journeys/")]
    for i in range(1, 6):
        journey(world, tps, name=f"acme q {i}")
    after = [_count(admin, u) for u in urls] + [_count(client, "/alignment/journeys/")]
    assert after == before


# --- pages ------------------------------------------------------------------------------------------


def test_list_and_detail_pages(world, client, tps, expectation):
    segment = f.SegmentFactory(organization=world.a.org, name="acme page segment")
    j = journey(world, tps, segment=segment)
    with tenant_context(world.a.org):
        step = JourneyStep.objects.get(journey=j, position=1)
        svc.step_update(
            organization=world.a.org, actor=Actor.system(), step=step, data={"expectation": expectation}
        )
    rollup_points(
        world.a.org, touchpoint=tps[0], measure=Measure.CSAT, segment=segment, values=[2] * 20
    )  # 25 vs expected 100
    client.force_login(world.users["executive"])
    resp = client.get("/alignment/journeys/")
    assert (
        resp.status_code == 200
        and b"acme api journey" in resp.content
        and b"acme page segment" in resp.content
    )
    assert b'data-testid="journey-new"' not in resp.content  # executives read only
    resp = client.get(f"/alignment/journeys/{j.pk}/")
    body = resp.content.decode()
    assert resp.status_code == 200
    assert 'data-testid="chart-journey"' in body and 'data-testid="gap-alert"' in body
    assert 'data-testid="gap-flag"' in body and 'class="badge critical" data-testid="category-badge"' in body
    assert 'data-testid="step-up-2"' not in body  # no editing for executives
    csv = client.get(f"/alignment/journeys/{j.pk}/?format=csv")
    assert csv["Content-Type"].startswith("text/csv") and "Falls short" in csv.content.decode()
    assert client.get(f"/alignment/journeys/{j.pk}/?period=bogus").status_code == 400
    assert b"period" in client.get(f"/alignment/journeys/{j.pk}/?period=bogus").content
    assert client.get(f"/alignment/journeys/{j.pk}/?location=abc").status_code == 400


def test_nav_entry(world, client):
    client.force_login(world.users["manager"])
    assert b'href="/alignment/journeys/"' in client.get("/alignment/journeys/").content
    client.force_login(world.users["trainer"])
    assert client.get("/alignment/journeys/").status_code == 403


def test_step_operations_through_htmx(world, client, tps):
    j = journey(world, tps[:2])
    a, b = (pk for pk, _ in steps_of(world, j))
    client.force_login(world.users["admin"])
    url = f"/alignment/journeys/{j.pk}/steps/"
    resp = client.post(url, {"op": f"down-{a}"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and 'data-testid="journey-steps"' in resp.content.decode()
    assert [pk for pk, _ in steps_of(world, j)] == [b, a]
    resp = client.post(
        url, {"op": "add", "touchpoint": tps[2].pk, "note": "acme added"}, HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 200 and "acme added" in resp.content.decode()
    c = steps_of(world, j)[2][0]
    resp = client.post(url, {"op": f"up-{c}"})  # without htmx: redirect back
    assert resp.status_code == 302
    assert [pk for pk, _ in steps_of(world, j)] == [b, c, a]
    client.post(url, {"op": f"remove-{b}"}, HTTP_HX_REQUEST="true")
    assert [pk for pk, _ in steps_of(world, j)] == [c, a]
    # Bad input: the field is named; nothing stored is lost.
    resp = client.post(url, {"op": "add", "touchpoint": tps[0].pk})
    assert resp.status_code == 400 and "already on this journey" in resp.content.decode()
    resp = client.post(url, {"op": "add"}, HTTP_HX_REQUEST="true")
    assert 'data-testid="error-touchpoint"' in resp.content.decode()
    assert client.post(url, {"op": "sideways-1"}).status_code == 400
    assert client.post(url, {"op": "up-999999"}).status_code == 400
    assert [pk for pk, _ in steps_of(world, j)] == [c, a]
    # Executives may not edit.
    client.force_login(world.users["executive"])
    assert client.post(url, {"op": f"up-{a}"}).status_code == 403


def test_create_edit_delete_pages(world, client, tps):
    client.force_login(world.users["admin"])
    resp = client.post("/alignment/journeys/new/", {"name": "acme page new", "description": "acme"})
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        j = JourneyMap.objects.get(name="acme page new")
    assert resp["Location"] == f"/alignment/journeys/{j.pk}/"
    resp = client.post("/alignment/journeys/new/", {"name": "ACME page new"})
    assert resp.status_code == 200 and 'data-testid="error-name"' in resp.content.decode()
    resp = client.post(f"/alignment/journeys/{j.pk}/edit/", {"name": "acme page renamed"})
    assert resp.status_code == 302
    assert client.get(f"/alignment/journeys/{j.pk}/edit/").status_code == 200
    assert client.post(f"/alignment/journeys/{j.pk}/delete/").status_code == 302
    with tenant_context(world.a.org):
        assert not JourneyMap.objects.exists()
        assert m.AuditLog.objects.filter(action__startswith="journey_map.").count() == 3


def test_org_b_pages_404(world, client, tps):
    j = journey(world, tps)
    client.force_login(world.users["outsider"])
    for url in (f"/alignment/journeys/{j.pk}/", f"/alignment/journeys/{j.pk}/edit/"):
        assert client.get(url).status_code == 404
    assert client.post(f"/alignment/journeys/{j.pk}/steps/", {"op": "add"}).status_code == 404
    assert client.post(f"/alignment/journeys/{j.pk}/delete/").status_code == 404
    assert b"acme" not in client.get("/alignment/journeys/").content.lower()
    assert len(steps_of(world, j)) == 3


def test_detail_page_queries_do_not_grow_with_steps(world, client):
    org, channel = world.a.org, world.a.channel
    many = [
        f.TouchpointFactory(organization=org, channel=channel, code=f"acme-q-{i}", name=f"Acme q {i}")
        for i in range(6)
    ]
    small, big = journey(world, many[:1], name="acme small"), journey(world, many, name="acme big")
    client.force_login(world.users["admin"])  # with the editing forms
    assert _count(client, f"/alignment/journeys/{big.pk}/") == _count(
        client, f"/alignment/journeys/{small.pk}/"
    )


def test_step_expectation_and_note_are_edited_in_place(world, client, tps, expectation):
    j = journey(world, tps[:2])
    first = steps_of(world, j)[0][0]
    client.force_login(world.users["admin"])
    url = f"/alignment/journeys/{j.pk}/steps/"
    resp = client.post(
        url,
        {"op": f"save-{first}", f"s{first}-expectation": expectation.pk, f"s{first}-note": "acme noted"},
        HTTP_HX_REQUEST="true",
    )
    assert resp.status_code == 200 and "acme noted" in resp.content.decode()
    with tenant_context(world.a.org):
        step = JourneyStep.objects.get(pk=first)
    assert (step.expectation_id, step.note, step.position) == (expectation.pk, "acme noted", 1)
    other = f.ExpectationFactory(organization=world.b.org, name="beta expectation")
    resp = client.post(url, {"op": f"save-{first}", f"s{first}-expectation": other.pk})
    assert resp.status_code == 400 and "expectation" in resp.content.decode()
    with tenant_context(world.a.org):
        assert JourneyStep.objects.get(pk=first).expectation_id == expectation.pk
