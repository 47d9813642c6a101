"""The points API: who sees which wallet, funding, adjustments and reversals by admins."""

from __future__ import annotations

import uuid

import pytest

from cem.models import AuditLog
from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import Account, LedgerTransaction
from tests.incentives.ledger_helpers import funded_budget, ledger_check, rule_on


@pytest.fixture
def points(world):
    """n1 (the employee persona) has 100 points and spent 30; n2 and s1 have 50 each."""
    org = world.a.org
    with tenant_context(org):
        budget = funded_budget(org, 10_000, name="acme api budget")
        rule = rule_on(org, budget, name="acme api rule")
        emps = world.a.employees
        awards = {
            code: ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emps[code], points=p)
            for code, p in (("a-n1", 100), ("a-n2", 50), ("a-s1", 50))
        }
        ledger.hold(org=org, employee=emps["a-n1"], points=30, note="acme coffee card")
        wallets = {code: ledger.wallet_for(org=org, employee=emps[code]) for code in emps}
    return {"budget": budget, "rule": rule, "awards": awards, "wallets": wallets}


def test_employee_sees_only_their_own_wallet_and_statement(world, api, points):
    client = api(world.users["employee"])
    wallets = client.get("/api/v1/points-accounts/").json()["results"]
    assert [(w["id"], w["balance"]) for w in wallets] == [(points["wallets"]["a-n1"].pk, 70)]
    assert client.get(f"/api/v1/points-accounts/{points['wallets']['a-n2'].pk}/").status_code == 404
    assert client.get(f"/api/v1/points-accounts/{points['budget'].pk}/").status_code == 404

    st = client.get("/api/v1/points-statement/").json()
    assert st["balance"] == 70 and st["employee"] == world.a.employees["a-n1"].pk
    assert [(r["amount"], r["note"]) for r in st["results"]] == [
        (-30, "acme coffee card"),
        (100, "acme api rule"),
    ]
    other = world.a.employees["a-n2"].pk
    assert client.get(f"/api/v1/points-statement/?employee={other}").status_code == 404

    txs = client.get("/api/v1/points-transactions/").json()["results"]
    assert {t["kind"] for t in txs} == {"award", "hold"}
    # Their side of each movement only: no budget balances.
    assert all(e["account"] == points["wallets"]["a-n1"].pk for t in txs for e in t["entries"])
    assert client.get(f"/api/v1/points-transactions/{points['awards']['a-n2'].pk}/").status_code == 404


def test_manager_sees_their_people(world, api, points):
    store = api(world.users["manager"])  # a-n1
    ids = {w["id"] for w in store.get("/api/v1/points-accounts/").json()["results"]}
    assert ids == {points["wallets"]["a-n1"].pk}
    n1 = world.a.employees["a-n1"].pk
    assert store.get(f"/api/v1/points-statement/?employee={n1}").json()["balance"] == 70
    assert store.get(f"/api/v1/points-statement/?employee={world.a.employees['a-s1'].pk}").status_code == 404
    regional = api(world.users["regional"])  # north: a-n1, a-n2
    ids = {w["id"] for w in regional.get("/api/v1/points-accounts/").json()["results"]}
    assert ids == {points["wallets"]["a-n1"].pk, points["wallets"]["a-n2"].pk}
    # Managers read; they do not move points.
    resp = store.post(f"/api/v1/points-transactions/{points['awards']['a-n1'].pk}/reverse/", {"note": "x"})
    assert resp.status_code == 403
    assert store.get("/api/v1/points-statement/?employee=abc").json() == {"employee": ["A whole number."]}


def test_org_b_sees_nothing_of_org_a(world, api, points):
    client = api(world.users["outsider"])
    assert client.get("/api/v1/points-accounts/").json()["results"] == []
    assert client.get(f"/api/v1/points-accounts/{points['budget'].pk}/").status_code == 404
    assert client.get(f"/api/v1/points-transactions/{points['awards']['a-n1'].pk}/").status_code == 404
    resp = client.get(f"/api/v1/points-statement/?employee={world.a.employees['a-n1'].pk}")
    assert resp.status_code == 404
    resp = client.post(f"/api/v1/points-accounts/{points['budget'].pk}/fund/", {"points": 5}, format="json")
    assert resp.status_code == 404


def test_admin_funds_a_budget_with_idempotency_key(world, api, points):
    client = api(world.users["admin"])
    url = f"/api/v1/points-accounts/{points['budget'].pk}/fund/"
    body = {"points": 500, "note": "Q3"}
    first = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="fund-1")
    assert first.status_code == 201, first.content
    again = client.post(url, body, format="json", HTTP_IDEMPOTENCY_KEY="fund-1")
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert {e["amount"] for e in first.json()["entries"]} == {-500, 500}
    with tenant_context(world.a.org):
        assert Account.objects.get(pk=points["budget"].pk).balance == 10_000 - 200 + 500
        assert AuditLog.objects.filter(action="points.fund").count() == 1
    assert client.post(url, {"points": 0}, format="json").json().keys() == {"points"}
    wallet = points["wallets"]["a-n1"].pk
    resp = client.post(f"/api/v1/points-accounts/{wallet}/fund/", {"points": 5}, format="json")
    assert resp.status_code == 400 and "account" in resp.json()


def test_admin_creates_a_budget(world, api):
    client = api(world.users["admin"])
    resp = client.post(
        "/api/v1/points-accounts/",
        {"name": "acme north budget", "location": world.a.locations["a-n1"].pk, "points": 300},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["balance"] == 300 and resp.json()["kind"] == "budget"
    again = client.post("/api/v1/points-accounts/", {"name": "acme north budget"}, format="json")
    assert again.status_code == 400 and "name" in again.json()
    smuggled = client.post(
        "/api/v1/points-accounts/", {"name": "x", "location": world.b.locations["b-1"].pk}, format="json"
    )
    assert smuggled.status_code == 400 and "location" in smuggled.json()


def test_admin_adjusts_with_a_required_note(world, api, points):
    client = api(world.users["admin"])
    wallet = points["wallets"]["a-n2"].pk
    url = f"/api/v1/points-accounts/{wallet}/adjust/"
    assert client.post(url, {"points": 5}, format="json").json().keys() == {"note"}
    assert client.post(url, {"points": 5, "note": "  "}, format="json").json().keys() == {"note"}
    resp = client.post(url, {"points": -60, "note": "too much"}, format="json")
    assert resp.status_code == 409 and "points" in resp.json()
    resp = client.post(url, {"points": -20, "note": "double award"}, format="json")
    assert resp.status_code == 201 and resp.json()["note"] == "double award"
    assert client.get(f"/api/v1/points-accounts/{wallet}/").json()["balance"] == 30
    with tenant_context(world.a.org):
        assert AuditLog.objects.get(action="points.adjust").changes["points"] == -20


def test_admin_reverses_an_award(world, api, points):
    client = api(world.users["admin"])
    award = points["awards"]["a-n1"]  # 100 awarded, 30 on hold: 30 written off
    url = f"/api/v1/points-transactions/{award.pk}/reverse/"
    assert client.post(url, {}, format="json").json().keys() == {"note"}
    resp = client.post(url, {"note": "audit rescored"}, format="json")
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["reverses"] == award.pk and body["kind"] == "reversal" and "written off" in body["note"]
    assert client.post(url, {"note": "again"}, format="json").status_code == 200
    detail = client.get(f"/api/v1/points-transactions/{award.pk}/").json()
    assert detail["reversed_by"] == body["id"]
    hold = client.get("/api/v1/points-transactions/?kind=hold").json()["results"][0]
    resp = client.post(f"/api/v1/points-transactions/{hold['id']}/reverse/", {"note": "x"}, format="json")
    assert resp.status_code == 400 and "transaction" in resp.json()
    with tenant_context(world.a.org):
        assert AuditLog.objects.filter(action="points.reverse").count() == 1
    assert ledger_check()[0] == 0


def test_transaction_filters(world, api, points):
    client = api(world.users["admin"])
    n1 = world.a.employees["a-n1"].pk
    got = client.get(f"/api/v1/points-transactions/?employee={n1}").json()["results"]
    assert {t["kind"] for t in got} == {"award", "hold"}
    got = client.get(f"/api/v1/points-transactions/?account={points['budget'].pk}").json()["results"]
    assert {t["kind"] for t in got} == {"award", "fund"}
    assert client.get("/api/v1/points-transactions/?kind=nope").status_code == 400
    got = client.get(f"/api/v1/points-transactions/?rule={points['rule'].pk}&kind=award").json()["count"]
    assert got == 3


def test_list_query_counts(world, api, points, django_assert_max_num_queries):
    with tenant_context(world.a.org):
        rule = points["rule"]
        for _ in range(20):
            ledger.award(
                org=world.a.org,
                rule=rule,
                event_id=uuid.uuid4(),
                employee=world.a.employees["a-n2"],
                points=1,
            )
        assert LedgerTransaction.objects.count() > 20
    admin = api(world.users["admin"])
    employee = api(world.users["employee"])
    for client, url in (
        (admin, "/api/v1/points-accounts/"),
        (admin, "/api/v1/points-transactions/"),
        (employee, "/api/v1/points-transactions/"),
        (employee, "/api/v1/points-statement/"),
        (admin, f"/api/v1/points-statement/?employee={world.a.employees['a-n2'].pk}"),
    ):
        with django_assert_max_num_queries(12):
            assert client.get(url).status_code == 200
