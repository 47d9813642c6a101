"""Recognition: managers give points with a message (no self-award, per-giver limits, scope),
peers within their monthly allowance when enabled, the scoped feed, the opt-in leaderboard,
org B 404s, bounded queries on the lists."""

from __future__ import annotations

import pytest

from cem import models as m
from cem.tenancy import tenant_context
from incentives import ledger
from incentives import recognition as services
from incentives.models import IncentiveSettings, LedgerTransaction, Recognition

pytestmark = pytest.mark.django_db
URL = "/api/v1/recognitions/"


@pytest.fixture
def funded(world):
    org = world.a.org
    with tenant_context(org):
        budget = services.recognition_budget(org=org)
        ledger.budget_fund(org=org, budget=budget, points=5000, note="recognition")
    return budget


def _settings(world, **kw):
    with tenant_context(world.a.org):
        IncentiveSettings.objects.update_or_create(organization=world.a.org, defaults=kw)


def _give(api, user, receiver, points=20, **kw):
    return api(user).post(
        URL, {"receiver": receiver.pk, "points": points, "message": "Great greeting", **kw}, format="json"
    )


def _balance(world, employee):
    with tenant_context(world.a.org):
        return ledger.wallet_for(org=world.a.org, employee=employee).balance


def test_manager_recognises_someone_in_their_store(world, api, funded):
    emp = world.a.employees["a-n1"]
    resp = _give(api, world.users["manager"], emp, standard=world.a.standard.pk)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["receiver"] == emp.pk and body["points"] == 20 and body["peer"] is False
    assert body["standard"] == world.a.standard.pk
    assert _balance(world, emp) == 20
    with tenant_context(world.a.org):
        tx = LedgerTransaction.objects.get(pk=body["transaction"])
        # The message lives on the recognition alone (no copy in the append-only ledger).
        assert tx.kind == "recognition" and tx.note == ""
        assert tx.statement_note == "Recognition: Great greeting"
        assert (
            m.OutboxEvent.objects.filter(event_type="PointsAwarded", payload__kind="recognition").count() == 1
        )


def test_outside_the_givers_scope_is_refused_naming_the_receiver(world, api, funded):
    resp = _give(api, world.users["manager"], world.a.employees["a-s1"])
    assert resp.status_code == 400 and "receiver" in resp.json()
    regional = _give(api, world.users["regional"], world.a.employees["a-n2"])
    assert regional.status_code == 201
    assert _give(api, world.users["regional"], world.a.employees["a-s1"]).status_code == 400


def test_no_self_award(world, api, funded):
    boss = world.a.employees["a-n1"]
    with tenant_context(world.a.org):
        m.Membership.objects.filter(user=world.users["manager"]).update(employee=boss)
    resp = _give(api, world.users["manager"], boss)
    assert resp.status_code == 400 and resp.json()["receiver"]
    with tenant_context(world.a.org):
        assert not Recognition.objects.exists()


def test_per_recognition_maximum_and_monthly_limit(world, api, funded):
    _settings(world, recognition_max_points=50, manager_monthly_recognition_limit=60)
    emp = world.a.employees["a-n1"]
    too_big = _give(api, world.users["manager"], emp, points=51)
    assert too_big.status_code == 400 and "points" in too_big.json()
    assert _give(api, world.users["manager"], emp, points=50).status_code == 201
    over = _give(api, world.users["manager"], emp, points=20)
    assert over.status_code == 400 and "10 points left" in str(over.json()["points"])
    assert _give(api, world.users["manager"], emp, points=10).status_code == 201
    assert _balance(world, emp) == 60


def test_empty_recognition_budget_is_a_clear_400(world, api):
    resp = _give(api, world.users["manager"], world.a.employees["a-n1"])
    assert resp.status_code == 400 and "budget is empty" in str(resp.json()["points"])


def test_peers_only_when_enabled_within_their_allowance_and_location(world, api, funded):
    colleague = f_employee(world, "a-n1")
    employee = world.users["employee"]
    assert _give(api, employee, colleague).status_code == 403
    _settings(world, peer_recognition_enabled=True, peer_monthly_allowance=30)
    ok = _give(api, employee, colleague, points=20)
    assert ok.status_code == 201 and ok.json()["peer"] is True
    assert _give(api, employee, colleague, points=20).status_code == 400  # 10 left of 30
    assert _give(api, employee, world.a.employees["a-n2"], points=5).status_code == 400  # another store
    assert _give(api, employee, world.a.employees["a-n1"], points=5).status_code == 400  # themselves
    assert _balance(world, colleague) == 20


def f_employee(world, location):
    from tests import factories as f

    return f.EmployeeFactory(
        organization=world.a.org,
        external_id=f"acme-peer-{location}",
        current_location=world.a.locations[location],
    )


def test_feed_is_scope_limited(world, api, funded):
    _give(api, world.users["manager"], world.a.employees["a-n1"])
    _give(api, world.users["admin"], world.a.employees["a-s1"])
    ids = lambda user: {r["receiver"] for r in api(user).get(URL).json()["results"]}  # noqa: E731
    assert ids(world.users["admin"]) == {world.a.employees["a-n1"].pk, world.a.employees["a-s1"].pk}
    assert ids(world.users["manager"]) == {world.a.employees["a-n1"].pk}
    assert ids(world.users["employee"]) == {world.a.employees["a-n1"].pk}
    assert ids(world.users["regional"]) == {world.a.employees["a-n1"].pk}
    page = api(world.users["manager"]).get("/rewards/manage/recognition/")
    assert page.status_code == 200 and "Great greeting" in page.content.decode()


def test_leaderboard_shows_only_opted_in_employees(world, api, funded):
    _settings(world, leaderboard_enabled=True)
    me = world.a.employees["a-n1"]
    shy = f_employee(world, "a-n1")
    _give(api, world.users["manager"], me, points=30)
    _give(api, world.users["manager"], shy, points=50)
    client = api(world.users["employee"])
    assert client.get("/api/v1/leaderboard/").json()["rows"] == []
    assert client.post("/api/v1/leaderboard/opt-in/", {"opt_in": True}, format="json").status_code == 200
    board = client.get("/api/v1/leaderboard/").json()
    assert board["enabled"] is True and board["location"] == world.a.locations["a-n1"].pk
    assert [(r["employee"], r["points"], r["rank"]) for r in board["rows"]] == [(me.pk, 30, 1)]
    # Another store's board is not the employee's to see; the admin sees any.
    other = world.a.locations["a-n2"].pk
    assert client.get(f"/api/v1/leaderboard/?location={other}").status_code == 404
    assert api(world.users["admin"]).get(f"/api/v1/leaderboard/?location={other}").status_code == 200
    client.post("/api/v1/leaderboard/opt-in/", {"opt_in": False}, format="json")
    assert client.get("/api/v1/leaderboard/").json()["rows"] == []


def test_leaderboard_switched_off_shows_nothing(world, api, funded):
    client = api(world.users["employee"])
    client.post("/api/v1/leaderboard/opt-in/", {"opt_in": True}, format="json")
    assert client.get("/api/v1/leaderboard/").json() == {
        "enabled": False,
        "location": world.a.locations["a-n1"].pk,
        "location_name": world.a.locations["a-n1"].name,
        "rows": [],
    }


def test_org_b_gets_404_and_cannot_recognise_org_a(world, api, funded):
    resp = _give(api, world.users["manager"], world.a.employees["a-n1"])
    rid = resp.json()["id"]
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{URL}{rid}/").status_code == 404
    assert outsider.get(URL).json()["results"] == []
    assert _give(api, world.users["outsider"], world.a.employees["a-n1"]).status_code == 400
    assert outsider.get(f"/api/v1/leaderboard/?location={world.a.locations['a-n1'].pk}").status_code == 404


def test_feed_query_count_is_bounded(world, api, funded, django_assert_max_num_queries):
    for store in ("a-n1", "a-n2", "a-s1"):
        _give(api, world.users["admin"], world.a.employees[store])
    client = api(world.users["admin"])
    with django_assert_max_num_queries(12):
        assert len(client.get(URL).json()["results"]) == 3
    with django_assert_max_num_queries(14):
        assert client.get("/rewards/manage/recognition/").status_code == 200


def test_leaderboard_without_a_store_of_ones_own_is_an_empty_board(world, api):
    resp = api(world.users["admin"]).get("/api/v1/leaderboard/")
    assert resp.status_code == 200
    assert resp.json()["location"] is None and resp.json()["rows"] == []
