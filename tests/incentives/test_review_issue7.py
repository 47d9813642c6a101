"""Issue 7 review: the gaps closed after reading the issue line by line — a response erased (GDPR)
or struck out as fraud reverses what it earned, the expiry beat entry is live in the settings, and
every incentives route is in the OpenAPI document, and employees see their store's opt-in
leaderboard on the recognition page."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings

from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import Account, LedgerTransaction
from incentives.models import RewardRule as RR
from tests.incentives.rewards_helpers import H_RESPONSE, RewardWorld, ledger_check

pytestmark = pytest.mark.django_db
H_ERASED = "incentives.reverse_after_response_erased"


@pytest.fixture
def rw(world):
    return RewardWorld(world)


def test_response_erased_reverses_its_awards_once_and_writes_off_what_was_spent(rw):
    rw.rule(name="promoter", points=10)
    rw.rule(name="whole store", recipients=RR.Recipients.LOCATION_EMPLOYEES, points=4)
    emp = rw.t.employees["a-n1"]
    colleague = rw.employee()
    rid, kept = rw.respond(nps=10), rw.respond(nps=10)
    rw.run(rw.response_event([rid, kept]), H_RESPONSE)
    assert rw.balance(emp) == 28 and rw.balance(colleague) == 8
    with tenant_context(rw.org):
        ledger.hold(org=rw.org, employee=colleague, points=8, note="spent on a mug")

    erased = rw.event("ResponseErased", response_ids=[rid], reason="erased at the customer's request (GDPR)")
    assert rw.run(erased, H_ERASED)
    # A second event about the same response (or a redelivery) finds nothing left to reverse.
    assert rw.run(rw.event("ResponseErased", response_ids=[rid]), H_ERASED)

    with tenant_context(rw.org):
        reversals = list(LedgerTransaction.objects.filter(kind="reversal").order_by("pk"))
        assert len(reversals) == 3
        assert all(r.note.startswith(f"Response #{rid} erased") and r.reverses_id for r in reversals)
        assert {r.reverses.event_id for r in reversals} == {reversals[0].reverses.event_id}
        write_off = Account.objects.get(kind=Account.Kind.WRITE_OFF)
        assert write_off.balance == -4  # the colleague's 4 points of this response were already spent
    # The other response's awards stand; the colleague's wallet never goes negative (no debt allowed).
    assert rw.balance(emp) == 14 and rw.balance(colleague) == 0
    assert ledger_check()[0] == 0


def test_points_expiry_is_on_the_beat_schedule_daily():
    entry = settings.CELERY_BEAT_SCHEDULE["incentives-points-expire"]
    assert entry["task"] == "incentives.points_expire_dispatch"
    assert entry["schedule"] == dt.timedelta(days=1)


def test_openapi_lists_every_incentives_route(client):
    text = client.get("/api/schema/").content.decode()
    for route in (
        "/api/v1/points-accounts/",
        "/api/v1/points-accounts/{id}/fund/",
        "/api/v1/points-accounts/{id}/adjust/",
        "/api/v1/points-transactions/",
        "/api/v1/points-transactions/{id}/reverse/",
        "/api/v1/points-statement/",
        "/api/v1/reward-rules/",
        "/api/v1/reward-skips/",
        "/api/v1/reward-budgets/",
        "/api/v1/incentive-settings/",
        "/api/v1/recognitions/",
        "/api/v1/leaderboard/",
        "/api/v1/leaderboard/opt-in/",
        "/api/v1/catalog-items/",
        "/api/v1/catalog-items/{id}/image/",
        "/api/v1/gift-card-codes/",
        "/api/v1/gift-card-codes/counts/",
        "/api/v1/redemptions/",
        "/api/v1/redemptions/{id}/approve/",
        "/api/v1/redemptions/{id}/decline/",
        "/api/v1/bonus-periods/",
        "/api/v1/bonus-periods/{id}/preview/",
        "/api/v1/bonus-periods/{id}/close/",
        "/api/v1/bonus-periods/{id}/approve/",
        "/api/v1/bonus-periods/{id}/export/",
        "/api/v1/bonus-periods/{id}/add-managers/",
        "/api/v1/bonus-kpis/",
        "/api/v1/bonus-participants/",
        "/api/v1/bonus-participants/{id}/scorecard/",
    ):
        assert f"{route}:" in text, route


def test_recognition_page_shows_the_store_leaderboard_and_the_employee_opts_in_and_out(
    world, api, client, django_assert_max_num_queries
):
    from incentives import recognition
    from incentives.models import IncentiveSettings

    org, me = world.a.org, world.a.employees["a-n1"]
    with tenant_context(org):
        ledger.budget_fund(org=org, budget=recognition.recognition_budget(org=org), points=500, note="r")
    given = api(world.users["manager"]).post(
        "/api/v1/recognitions/", {"receiver": me.pk, "points": 30, "message": "Great greeting"}, format="json"
    )
    assert given.status_code == 201
    client.force_login(world.users["employee"])
    url = "/rewards/manage/recognition/"

    # Leaderboards off (the default): no board, and opting in is refused.
    assert 'data-testid="leaderboard"' not in client.get(url).content.decode()
    assert client.post(url, {"leaderboard": "in"}).status_code == 403

    with tenant_context(org):
        IncentiveSettings.objects.update_or_create(organization=org, defaults={"leaderboard_enabled": True})
    html = client.get(url).content.decode()
    assert "Nobody has chosen to be shown yet." in html and 'value="in"' in html

    assert client.post(url, {"leaderboard": "in"}).status_code == 302
    with django_assert_max_num_queries(18):
        html = client.get(url).content.decode()
    assert f"{me.name} · 30 points" in html and 'value="out"' in html
    # Opting out takes the employee off the board again.
    assert client.post(url, {"leaderboard": "out"}).status_code == 302
    assert f"{me.name} · 30 points" not in client.get(url).content.decode()
    # The admin has no store of their own: no board.
    client.force_login(world.users["admin"])
    assert 'data-testid="leaderboard"' not in client.get(url).content.decode()


def test_portal_statement_is_always_the_employees_own(world, client):
    org = world.a.org
    me, other = world.a.employees["a-n1"], world.a.employees["a-n2"]
    with tenant_context(org):
        for who, note in ((me, "mine-note"), (other, "theirs-note")):
            ledger.adjust(org=org, account=ledger.wallet_for(org=org, employee=who), points=40, note=note)
    client.force_login(world.users["employee"])
    for url in ("/rewards/", "/rewards/statement/", f"/rewards/statement/?employee={other.pk}"):
        html = client.get(url).content.decode()
        assert "mine-note" in html and "theirs-note" not in html, url


def test_admin_sets_expiry_debt_and_recognition_settings_on_a_page(world, client):
    import uuid

    from django.utils import timezone

    from cem.models import AuditLog
    from incentives.models import IncentiveSettings, PointsLot
    from tests.incentives.ledger_helpers import funded_budget, rule_on

    org, emp = world.a.org, world.a.employees["a-n1"]
    url = "/rewards/manage/settings/"
    client.force_login(world.users["admin"])
    assert 'name="points_expire_months"' in client.get(url).content.decode()
    form = {
        "points_expire_months": "6",
        "allow_debt": "on",
        "recognition_max_points": "50",
        "manager_monthly_recognition_limit": "800",
        "peer_recognition_enabled": "on",
        "peer_monthly_allowance": "40",
        "leaderboard_enabled": "on",
    }
    assert client.post(url, {**form, "peer_monthly_allowance": "-1"}).status_code == 200  # field error
    assert client.post(url, form).status_code == 302
    with tenant_context(org):
        row = IncentiveSettings.objects.get()
        assert (row.points_expire_months, row.allow_debt, row.peer_monthly_allowance) == (6, True, 40)
        assert row.leaderboard_enabled and row.peer_recognition_enabled and row.recognition_max_points == 50
        assert AuditLog.objects.filter(object_type__icontains="incentivesettings", action="update").exists()
        # Points earned from now on expire after the configured months.
        rule = rule_on(org, funded_budget(org))
        ledger.award(org=org, rule=rule, event_id=uuid.uuid4(), employee=emp, points=10)
        lot = PointsLot.objects.get()
        days = (lot.expires_at - timezone.now()).days
        assert 178 <= days <= 185, days

    # Empty means never.
    assert client.post(url, {**form, "points_expire_months": ""}).status_code == 302
    with tenant_context(org):
        assert IncentiveSettings.objects.get().points_expire_months is None

    # Executives read the settings; they cannot change them; employees do not see them.
    client.force_login(world.users["executive"])
    assert "disabled" in client.get(url).content.decode()
    assert client.post(url, form).status_code == 403
    client.force_login(world.users["employee"])
    assert client.get(url).status_code == 403


def test_incentive_settings_api(world, api, django_assert_max_num_queries):
    url = "/api/v1/incentive-settings/"
    admin = api(world.users["admin"])
    with django_assert_max_num_queries(10):
        rows = admin.get(url).json()["results"]
    assert len(rows) == 1 and rows[0]["points_expire_months"] == 12 and rows[0]["allow_debt"] is False
    detail = f"{url}{rows[0]['id']}/"
    bad = admin.patch(detail, {"peer_monthly_allowance": -5}, format="json")
    assert bad.status_code == 400 and "peer_monthly_allowance" in bad.json()
    ok = admin.patch(detail, {"points_expire_months": None, "allow_debt": True}, format="json")
    assert ok.status_code == 200 and ok.json()["points_expire_months"] is None
    with tenant_context(world.a.org):
        assert ledger.incentive_settings(org=world.a.org).allow_debt is True
    # Executives read but cannot change; employees cannot read; org B never sees org A's row.
    executive = api(world.users["executive"])
    assert executive.get(detail).status_code == 200
    assert executive.patch(detail, {"allow_debt": False}, format="json").status_code == 403
    assert api(world.users["employee"]).get(url).status_code == 403
    assert api(world.users["outsider"]).get(detail).status_code == 404
    assert admin.post(url, {}, format="json").status_code == 405
