"""Reward-rule API and admin pages: CRUD with field errors, skips, budgets with burn, the rules page
("stopped: budget empty"), the editor, funding through the budgets page, charts; org B 404; queries."""

from __future__ import annotations

import pytest

from cem.tenancy import tenant_context
from incentives.models import Account, RewardRule
from tests.incentives.rewards_helpers import H_RESPONSE, YESTERDAY, RewardWorld

pytestmark = pytest.mark.django_db
URL = "/api/v1/reward-rules/"


@pytest.fixture
def rw(world):
    return RewardWorld(world, budget_points=15)


def _body(rw, **kw):
    data = {
        "name": "Promoters",
        "trigger": "promoter_response",
        "recipients": "named",
        "points": 10,
        "budget": rw.budget.pk,
        "effective_from": YESTERDAY.isoformat(),
    }
    data.update(kw)
    return data


def test_crud_and_field_errors(world, api, rw):
    client = api(world.users["admin"])
    made = client.post(URL, _body(rw, critical_multiplier="2"), format="json")
    assert made.status_code == 201, made.content
    assert made.json()["status"] == "active" and made.json()["budget_balance"] == 15
    bad = client.post(
        URL,
        _body(rw, name="bad", trigger="lesson_completed", channel=world.a.channel.pk, min_score="3"),
        format="json",
    )
    assert bad.status_code == 400 and {"recipients", "channel", "min_score"} <= set(bad.json())
    assert client.post(
        URL, _body(rw, name="x", trigger="audit_score", recipients="location"), format="json"
    ).json()["min_score"]
    assert "employee_role" in client.post(URL, _body(rw, name="y", employee_role="ceo"), format="json").json()
    dates = client.post(URL, _body(rw, name="z", effective_until="2000-01-01"), format="json")
    assert dates.status_code == 400 and "effective_until" in dates.json()
    rid = made.json()["id"]
    assert client.patch(f"{URL}{rid}/", {"points": 15}, format="json").json()["points"] == 15
    assert client.patch(f"{URL}{rid}/", {"recipients": "learner"}, format="json").status_code == 400
    # Org B's budget is not a choice; org B cannot see or change the rule.
    with tenant_context(world.b.org):
        from incentives import ledger

        b_budget = ledger.budget_create(org=world.b.org, name="beta budget")
    assert "budget" in client.post(URL, _body(rw, name="b", budget=b_budget.pk), format="json").json()
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{URL}{rid}/").status_code == 404
    assert outsider.patch(f"{URL}{rid}/", {"points": 1}, format="json").status_code == 404
    # Managers may not write rules.
    assert api(world.users["manager"]).post(URL, _body(rw, name="m"), format="json").status_code == 403
    assert client.delete(f"{URL}{rid}/").status_code == 204


def test_rule_with_awards_cannot_be_deleted(world, api, rw):
    rule = rw.rule()
    rw.run(rw.response_event([rw.respond(nps=10)]), H_RESPONSE)
    resp = api(world.users["admin"]).delete(f"{URL}{rule.pk}/")
    assert resp.status_code == 400 and "active" in resp.json()


def test_budget_empty_shows_on_the_rules_page_api_and_skips(world, api, rw):
    rw.rule(name="promoters", points=10)
    rw.run(rw.response_event([rw.respond(nps=10), rw.respond(nps=10)]), H_RESPONSE)
    client = api(world.users["admin"])
    page = client.get("/rewards/manage/rules/")
    assert page.status_code == 200 and "stopped: budget empty" in page.content.decode()
    assert client.get(URL).json()["results"][0]["status"] == "stopped: budget empty"
    [skip] = client.get("/api/v1/reward-skips/").json()["results"]
    assert skip["reason"] == "budget empty" and skip["rule_name"] == "promoters"
    [budget] = [b for b in client.get("/api/v1/reward-budgets/").json()["results"] if b["id"] == rw.budget.pk]
    assert budget["balance"] == 5 and budget["drawn_30d"] == 10 and budget["funded_total"] == 15
    assert budget["rules"] == 1 and budget["days_left"] == 15


def _page_client(client, user):
    client.force_login(user)
    return client


def test_rule_editor_creates_and_shows_field_errors(world, api, rw, client):
    client = _page_client(client, world.users["admin"])
    assert client.get("/rewards/manage/rules/new/").status_code == 200
    data = {
        "name": "Audits",
        "trigger": "audit_score",
        "recipients": "location",
        "points": "100",
        "budget": rw.budget.pk,
        "critical_multiplier": "1",
        "cap_period": "month",
        "effective_from": YESTERDAY.isoformat(),
        "active": "on",
    }
    missing = client.post("/rewards/manage/rules/new/", data)
    assert missing.status_code == 200 and "needs a minimum score" in missing.content.decode()
    done = client.post("/rewards/manage/rules/new/", {**data, "min_score": "90"})
    assert done.status_code == 302
    with tenant_context(world.a.org):
        rule = RewardRule.objects.get(name="Audits")
    assert client.get(f"/rewards/manage/rules/{rule.pk}/").status_code == 200
    assert api(world.users["outsider"]).get(f"/rewards/manage/rules/{rule.pk}/").status_code == 404


def test_budgets_page_funds_through_the_ledger(world, api, rw, client):
    client = _page_client(client, world.users["admin"])
    assert client.get("/rewards/manage/budgets/").status_code == 200
    assert (
        client.post(
            f"/rewards/manage/budgets/{rw.budget.pk}/fund/", {"points": "100", "note": "Q3"}
        ).status_code
        == 302
    )
    with tenant_context(world.a.org):
        assert Account.objects.get(pk=rw.budget.pk).balance == 115
    assert client.post("/rewards/manage/budgets/", {"name": "Store budget"}).status_code == 302
    with tenant_context(world.a.org):
        assert Account.objects.filter(kind="budget", name="Store budget").exists()
    assert (
        api(world.users["outsider"])
        .post(f"/rewards/manage/budgets/{rw.budget.pk}/fund/", {"points": "100"})
        .status_code
        == 404
    )
    assert api(world.users["manager"]).get("/rewards/manage/budgets/").status_code == 403


def test_charts_page_ships_figures_as_json(world, api, rw):
    rw.rule(name="promoters", points=10)
    rw.run(rw.response_event([rw.respond(nps=10)]), H_RESPONSE)
    page = api(world.users["admin"]).get("/rewards/manage/charts/")
    html = page.content.decode()
    assert page.status_code == 200
    for chart in ("chart-rule", "chart-location", "chart-burn"):
        assert f'id="{chart}" type="application/json"' in html
    assert "promoters" in html and "<script>" not in html


def test_list_query_counts(world, api, rw, django_assert_max_num_queries):
    for i in range(4):
        rw.rule(name=f"rule {i}")
    rw.run(rw.response_event([rw.respond(nps=10), rw.respond(nps=10)]), H_RESPONSE)
    client = api(world.users["admin"])
    for url, n in (
        (URL, 8),
        ("/api/v1/reward-skips/", 8),
        ("/api/v1/reward-budgets/", 8),
        ("/rewards/manage/rules/", 12),
        ("/rewards/manage/budgets/", 12),
        ("/rewards/manage/charts/", 12),
    ):
        with django_assert_max_num_queries(n):
            assert client.get(url).status_code == 200, url
