"""Manager bonus periods: a scorecard from known inputs gives a known payout; insufficient data is
left out with the weights renormalised; the live preview names the KPI holding the score back;
close → approve (org admins only) → payroll CSV; managers see only their own scorecard."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback.metrics import Metric
from incentives import bonus, ledger
from incentives.models import BonusKpi, BonusPeriod, BonusResult
from tests import factories as f
from tests.incentives import bonus_data as bd

K = BonusKpi.Kpi
D = Decimal
PERIODS = "/api/v1/bonus-periods/"
PARTICIPANTS = "/api/v1/bonus-participants/"

# (kpi, weight, floor, target, min_sample)
SCORECARD = [
    (K.NPS, 30, 0, 50, 5),
    (K.CSAT, 20, 50, 90, 5),
    (K.AUDIT_SCORE, 25, 60, 100, 2),
    (K.MONITORING_SCORE, 10, 60, 100, 3),
    (K.TRAINING_ON_TIME, 15, 0, 100, 4),
    (K.CASES_IN_SLA, 10, 0, 100, 2),
    (K.ALIGNMENT, 10, 0, 80, 1),
]


def _store_inputs(world, store="a-n1", *, mid):
    t = world.a
    # NPS: 6 promoters, 2 passives, 2 detractors → 40 (n 10). One detractor before the period.
    bd.answers(t, store, "nps", [9, 10, 9, 10, 9, 10, 7, 8, 3, 6], when=mid)
    bd.answers(t, store, "nps", [0], when=mid - dt.timedelta(days=200))
    # CSAT: 8 of 10 in the top two boxes → 80.
    bd.answers(t, store, "csat", [5, 5, 4, 4, 5, 4, 5, 4, 2, 1], when=mid)
    # Audits 90 and 80 → 85 (n 2); one evaluation only (monitoring needs 3).
    bd.audits(t, store, [90, 80], when=mid)
    bd.audits(t, store, [40], when=mid, evaluation=True)
    # Training: 3 on time, 1 open past its due date → 75 % (the withdrawn one does not count).
    bd.training(t, store, due=mid, on_time=3, overdue=1, withdrawn=1)
    # Cases: 1 of 2 resolved within SLA → 50 %. (Their responses add two 0 NPS answers: see below.)
    return t


@pytest.fixture
def closed_world(world):
    starts, ends, mid = bd.past_window()
    period = bd.make_period(
        world.a.org,
        name="acme Q bonus",
        starts_on=starts,
        ends_on=ends,
        kpis=SCORECARD,
        payout_threshold=D(50),
        payout_cap_percent=D(150),
        points_per_score_point=10,
    )
    _store_inputs(world, mid=mid)
    manager = bd.add_participant(world.a.org, period, world.users["manager"], target_bonus="1000.00")
    regional = bd.add_participant(world.a.org, period, world.users["regional"], target_bonus="2000.00")
    return period, manager, regional, mid


def _lines(card):
    return {line.kpi: line for line in card.lines}


def test_scorecard_with_known_inputs_gives_known_payout(closed_world, world, django_assert_max_num_queries):
    period, manager, _regional, _mid = closed_world
    # One grouped query per sourced KPI and scope kind, whatever the number of participants.
    with tenant_context(world.a.org), django_assert_max_num_queries(20):
        cards = {c.participant.pk: c for c in bonus.scorecards(period=period)}
    card = cards[manager.pk]
    lines = _lines(card)
    assert (lines[K.NPS].value, lines[K.NPS].n, lines[K.NPS].score) == (D("40.00"), 10, D("80.00"))
    assert (lines[K.CSAT].value, lines[K.CSAT].n, lines[K.CSAT].score) == (D("80.00"), 10, D("75.00"))
    assert (lines[K.AUDIT_SCORE].value, lines[K.AUDIT_SCORE].n, lines[K.AUDIT_SCORE].score) == (
        D("85.00"),
        2,
        D("62.50"),
    )
    assert (lines[K.TRAINING_ON_TIME].value, lines[K.TRAINING_ON_TIME].n) == (D("75.00"), 4)
    assert lines[K.TRAINING_ON_TIME].score == D("75.00")
    # No cases were built: 0 of the 2 needed.
    assert lines[K.CASES_IN_SLA].status == bonus.INSUFFICIENT
    assert lines[K.CASES_IN_SLA].note == "insufficient data (0 of 2)"
    assert lines[K.MONITORING_SCORE].status == bonus.INSUFFICIENT
    assert (lines[K.MONITORING_SCORE].n, lines[K.MONITORING_SCORE].note) == (1, "insufficient data (1 of 3)")
    # Alignment has no source yet: "no data yet", never 0.
    assert lines[K.ALIGNMENT].status == bonus.NO_SOURCE
    assert lines[K.ALIGNMENT].value is None and lines[K.ALIGNMENT].score is None
    assert lines[K.ALIGNMENT].note == "no data yet"
    # Renormalised over NPS 30, CSAT 20, audit 25, training 15 (= 90):
    assert lines[K.NPS].effective_weight == D("33.33")
    assert lines[K.AUDIT_SCORE].effective_weight == D("27.78")
    # (30·80 + 20·75 + 25·62.5 + 15·75) / 90 = 6587.5 / 90 = 73.194…
    assert card.score == D("73.19")
    assert card.payout_percent == D("73.19")
    assert card.payout_amount == D("731.90")
    assert card.points == 732
    # The audit score loses the most weighted points: 25/90 · 37.5 = 10.42.
    assert card.holding_back.kpi == K.AUDIT_SCORE
    assert lines[K.AUDIT_SCORE].gap == D("10.42")


def test_cases_within_sla_count_and_every_sourced_kpi_scores(closed_world, world):
    period, manager, _regional, mid = closed_world
    bd.cases(world.a, "a-n1", due=mid, in_sla=1, late=1)
    with tenant_context(world.a.org):
        card = bonus.scorecards(period=period, participants=[manager])[0]
    lines = _lines(card)
    assert (lines[K.CASES_IN_SLA].value, lines[K.CASES_IN_SLA].n, lines[K.CASES_IN_SLA].score) == (
        D("50.00"),
        2,
        D("50.00"),
    )
    # The cases' two 0 answers join the NPS: 6 promoters, 4 detractors of 12 → 16.67 → 33.34.
    assert (lines[K.NPS].value, lines[K.NPS].n, lines[K.NPS].score) == (D("16.67"), 12, D("33.34"))
    # Weights 30+20+25+15+10 = 100 (monitoring and alignment out):
    # (30·33.34 + 20·75 + 25·62.5 + 15·75 + 10·50) / 100 = 56.877 → 56.88
    assert card.score == D("56.88")
    assert card.holding_back.kpi == K.NPS  # 30 % of 66.66 = 20.0 points lost


def test_regional_manager_is_scored_on_the_whole_region(closed_world, world):
    period, _manager, regional, mid = closed_world
    # a-n2 is in the north region too; a-s1 (south) is not.
    bd.answers(world.a, "a-n2", "nps", [0, 0], when=mid)
    bd.answers(world.a, "a-s1", "nps", [10] * 5, when=mid)
    with tenant_context(world.a.org):
        card = bonus.scorecards(period=period, participants=[regional])[0]
    nps = _lines(card)[K.NPS]
    # 6 promoters, 4 detractors of 12 across a-n1 and a-n2.
    assert (nps.value, nps.n) == (D("16.67"), 12)


def test_cap_and_threshold():
    period = BonusPeriod(payout_threshold=D(50), payout_cap_percent=D(60), points_per_score_point=0)
    kpis = [BonusKpi(kpi=K.NPS, weight=D(1), floor=D(0), target=D(50), min_sample=1)]
    card = bonus.scorecard(kpis, {K.NPS: Metric(D(40), 10)}, period=period, target_bonus=D(1000))
    assert (
        card.score == D("80.00") and card.payout_percent == D("60.00") and card.payout_amount == D("600.00")
    )
    assert card.points == 0
    period.payout_threshold = D(85)
    card = bonus.scorecard(kpis, {K.NPS: Metric(D(40), 10)}, period=period, target_bonus=D(1000))
    assert card.score == D("80.00") and card.payout_percent == 0 and card.payout_amount == 0
    # Clamped: above target scores 100, below floor 0; a target under the floor means lower is better.
    assert bonus.normalise(D(70), floor=D(0), target=D(50)) == 100
    assert bonus.normalise(D(-20), floor=D(0), target=D(50)) == 0
    assert bonus.normalise(D(30), floor=D(60), target=D(20)) == D("75.00")


def test_all_kpis_missing_means_no_score_and_no_payout():
    period = BonusPeriod(payout_threshold=D(0), payout_cap_percent=D(150), points_per_score_point=5)
    kpis = [
        BonusKpi(kpi=K.NPS, weight=D(50), floor=D(0), target=D(50), min_sample=30),
        BonusKpi(kpi=K.SALES_VS_TARGET, weight=D(50), floor=D(80), target=D(100), min_sample=1),
    ]
    card = bonus.scorecard(
        kpis, {K.NPS: Metric(D(40), 29), K.SALES_VS_TARGET: None}, period=period, target_bonus=D(1000)
    )
    assert card.score is None and card.payout_percent == 0 and card.payout_amount == 0 and card.points == 0
    assert [line.note for line in card.lines] == ["insufficient data (29 of 30)", "no data yet"]
    assert card.holding_back is None


def test_live_preview_names_the_kpi_holding_it_back(world, api):
    today = timezone.now().date()
    period = bd.make_period(
        world.a.org,
        name="acme open bonus",
        starts_on=today - dt.timedelta(days=20),
        ends_on=today + dt.timedelta(days=70),
        kpis=[(K.NPS, 50, 0, 50, 2), (K.CSAT, 50, 50, 90, 2)],
    )
    bd.add_participant(world.a.org, period, world.users["manager"])
    now = timezone.now() - dt.timedelta(hours=1)
    bd.answers(world.a, "a-n1", "nps", [10, 10, 9, 9], when=now)  # 100 → score 100
    bd.answers(world.a, "a-n1", "csat", [5, 2, 1, 2], when=now)  # 25 → below the floor: 0
    resp = api(world.users["manager"]).get(f"{PERIODS}{period.pk}/preview/")
    assert resp.status_code == 200, resp.content
    (card,) = resp.json()["scorecards"]
    assert card["score"] == 50.0 and card["payout_percent"] == 50.0 and card["payout_amount"] == 500.0
    assert card["holding_back"] == "csat" and card["holding_back_label"] == "CSAT"
    page = api(world.users["manager"]).get("/rewards/bonus/mine/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Held back most by" in body and "CSAT" in body
    # An open period cannot be closed before it ends.
    resp = api(world.users["admin"]).post(f"{PERIODS}{period.pk}/close/")
    assert resp.status_code == 400 and "period" in resp.json()


def test_close_approve_export(closed_world, world, api):
    period, manager, _regional, _mid = closed_world
    with tenant_context(world.a.org):
        user = world.users["manager"]
        user.first_name, user.last_name = "=HYPERLINK(1)", "Store"
        user.save()
        m.Employee.objects.filter(pk=world.a.employees["a-n1"].pk).update(external_id="E-001")
        m.Membership.objects.filter(user=user).update(employee=world.a.employees["a-n1"])
        manager.employee = world.a.employees["a-n1"]
        manager.save()
    admin = api(world.users["admin"])
    # Nothing to approve or export before closing.
    assert admin.post(f"{PERIODS}{period.pk}/approve/").status_code == 400
    assert admin.post(f"{PERIODS}{period.pk}/export/").status_code == 400
    assert api(world.users["manager"]).post(f"{PERIODS}{period.pk}/close/").status_code == 403

    resp = admin.post(f"{PERIODS}{period.pk}/close/")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "closed"
    with tenant_context(world.a.org):
        result = BonusResult.objects.get(participant=manager)
        assert result.score == D("73.19") and result.payout_amount == D("731.90") and result.points == 732
        assert {k["kpi"]: k["status"] for k in result.kpi_scores}["alignment"] == "no_data_yet"
        assert m.OutboxEvent.objects.filter(event_type="BonusPeriodClosed").count() == 1
        assert m.AuditLog.objects.filter(action="bonus_period.close").count() == 1
    # A closed period's scorecard is frozen.
    assert (
        admin.post(
            "/api/v1/bonus-kpis/",
            {"period": period.pk, "kpi": "retention", "weight": 1, "target": 90},
            format="json",
        ).status_code
        == 400
    )

    # Approval: org admins only.
    assert api(world.users["executive"]).post(f"{PERIODS}{period.pk}/approve/").status_code == 403
    assert api(world.users["manager"]).post(f"{PERIODS}{period.pk}/approve/").status_code == 403
    assert api(key=world.a.api_key).post(f"{PERIODS}{period.pk}/approve/").status_code == 403
    assert admin.post(f"{PERIODS}{period.pk}/export/").status_code == 400  # not approved yet
    # The 732 points go to the store manager's wallet at approval: the bonus budget must hold them.
    resp = admin.post(f"{PERIODS}{period.pk}/approve/")
    assert resp.status_code == 400 and "points" in resp.json(), resp.content
    with tenant_context(world.a.org):
        budget = ledger.budget_create(org=world.a.org, name=bonus.BONUS_BUDGET)
        ledger.budget_fund(org=world.a.org, budget=budget, points=700)
    resp = admin.post(f"{PERIODS}{period.pk}/approve/")
    assert resp.status_code == 400 and "700 points" in str(resp.json()["points"]), resp.content
    with tenant_context(world.a.org):
        assert BonusPeriod.objects.get(pk=period.pk).status == BonusPeriod.Status.CLOSED
        ledger.budget_fund(org=world.a.org, budget=budget, points=300)
    resp = admin.post(f"{PERIODS}{period.pk}/approve/")
    assert resp.status_code == 200, resp.content
    with tenant_context(world.a.org):
        wallet = ledger.wallet_for(org=world.a.org, employee=world.a.employees["a-n1"])
        assert wallet.balance == 732
        budget.refresh_from_db()
        assert budget.balance == 268
        assert m.OutboxEvent.objects.filter(event_type="PointsAwarded").count() == 1
    # Approving again changes nothing (and pays nothing twice).
    assert admin.post(f"{PERIODS}{period.pk}/approve/").status_code == 200
    with tenant_context(world.a.org):
        assert ledger.wallet_for(org=world.a.org, employee=world.a.employees["a-n1"]).balance == 732
    assert resp.json()["status"] == "approved" and resp.json()["approved_by"] == world.users["admin"].pk
    assert admin.post(f"{PERIODS}{period.pk}/close/").status_code == 400  # final

    resp = admin.post(f"{PERIODS}{period.pk}/export/")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.content.decode())))
    assert rows[0] == list(bonus.CSV_COLUMNS)
    by_email = {r[2]: r for r in rows[1:]}
    mine = by_email["manager@acme.test"]
    assert mine[1] == "'=HYPERLINK(1) Store"  # formula escaped
    assert mine[3:] == ["E-001", "location a-n1", "1000.00", "73.19", "73.19", "731.90", "EUR", "732"]
    assert by_email["regional@acme.test"][4] == "region acme-north"
    with tenant_context(world.a.org):
        assert not BonusResult.objects.filter(participant__period=period, exported_at__isnull=True).exists()
        assert m.AuditLog.objects.filter(action="bonus_period.approve").count() == 1
        assert m.AuditLog.objects.filter(action="bonus_period.export").count() == 1


def test_approval_requires_an_org_admin_in_the_service(closed_world, world):
    period, *_ = closed_world
    with tenant_context(world.a.org):
        bonus.period_close(organization=world.a.org, actor=Actor.system(), period=period)
        with pytest.raises(bonus.PermissionDenied):
            bonus.period_approve(
                organization=world.a.org, actor=Actor(user_id=world.users["executive"].pk), period=period
            )
        bonus.period_approve(
            organization=world.a.org, actor=Actor(user_id=world.users["admin"].pk), period=period
        )
        period.refresh_from_db()
        assert period.status == BonusPeriod.Status.APPROVED


def test_a_manager_sees_only_their_own_scorecard(closed_world, world, api):
    period, manager, regional, _mid = closed_world
    client = api(world.users["manager"])
    listed = client.get(PARTICIPANTS).json()["results"]
    assert [p["id"] for p in listed] == [manager.pk]
    assert client.get(f"{PARTICIPANTS}{regional.pk}/").status_code == 404
    assert client.get(f"{PARTICIPANTS}{regional.pk}/scorecard/").status_code == 404
    card = client.get(f"{PARTICIPANTS}{manager.pk}/scorecard/").json()["scorecard"]
    assert card["score"] == 73.19
    preview = client.get(f"{PERIODS}{period.pk}/preview/").json()["scorecards"]
    assert [c["participant"] for c in preview] == [manager.pk]
    # The regional manager sees theirs, not the store manager's; the executive sees both.
    assert [p["id"] for p in api(world.users["regional"]).get(PARTICIPANTS).json()["results"]] == [
        regional.pk
    ]
    assert len(api(world.users["executive"]).get(PARTICIPANTS).json()["results"]) == 2
    # Managers cannot change anything; employees have no bonus access.
    assert (
        client.patch(f"{PARTICIPANTS}{manager.pk}/", {"target_bonus": "9999"}, format="json").status_code
        == 403
    )
    # An employee in no period sees none (see test_an_ordinary_employee_sees_no_bonus_periods).
    assert api(world.users["employee"]).get(PERIODS).json()["results"] == []
    # Someone in no period sees no period.
    with tenant_context(world.a.org):
        other = m.Membership.objects.get(user=world.users["regional"])
    other_period = bd.make_period(
        world.a.org, name="acme other", starts_on=period.starts_on, ends_on=period.ends_on
    )
    assert other_period.pk not in [p["id"] for p in client.get(PERIODS).json()["results"]]
    assert other.role == m.Role.REGIONAL_MANAGER
    # Pages: the period page shows only their own row.
    page = client.get(f"/rewards/bonus/{period.pk}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "manager@acme.test" in body and "regional@acme.test" not in body
    assert 'data-testid="close"' not in body


def test_org_b_sees_nothing(closed_world, world, api):
    period, manager, _regional, _mid = closed_world
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{PERIODS}{period.pk}/").status_code == 404
    assert outsider.get(f"{PERIODS}{period.pk}/preview/").status_code == 404
    assert outsider.post(f"{PERIODS}{period.pk}/close/").status_code == 404
    assert outsider.get(f"{PARTICIPANTS}{manager.pk}/scorecard/").status_code == 404
    assert outsider.get(PERIODS).json()["results"] == []
    assert outsider.get(f"/rewards/bonus/{period.pk}/").status_code == 404


def test_admin_defines_a_period_through_the_api(world, api):
    admin = api(world.users["admin"])
    resp = admin.post(
        PERIODS,
        {"name": "Q3", "starts_on": "2026-07-01", "ends_on": "2026-06-30"},
        format="json",
    )
    assert resp.status_code == 400 and "ends_on" in resp.json()
    resp = admin.post(
        PERIODS, {"name": "Q3", "starts_on": "2026-07-01", "ends_on": "2026-09-30"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    pid = resp.json()["id"]
    resp = admin.post(
        "/api/v1/bonus-kpis/",
        {"period": pid, "kpi": "nps", "weight": 40, "target": 50, "floor": 50},
        format="json",
    )
    assert resp.status_code == 400 and "target" in resp.json()
    resp = admin.post(
        "/api/v1/bonus-kpis/", {"period": pid, "kpi": "nps", "weight": 40, "target": 50}, format="json"
    )
    assert resp.status_code == 201, resp.content
    with tenant_context(world.a.org):
        store = m.Membership.objects.get(user=world.users["manager"])
        employee = m.Membership.objects.get(user=world.users["employee"])
    resp = admin.post(
        PARTICIPANTS, {"period": pid, "membership": employee.pk, "target_bonus": "500"}, format="json"
    )
    assert resp.status_code == 400 and "membership" in resp.json()
    resp = admin.post(
        PARTICIPANTS, {"period": pid, "membership": store.pk, "target_bonus": "1500"}, format="json"
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["location"] == world.a.locations["a-n1"].pk and body["region"] is None
    assert body["currency"] == "USD" and body["result"] is None
    resp = admin.post(f"{PERIODS}{pid}/add-managers/", {"target_bonus": "3000"}, format="json")
    assert resp.status_code == 200 and len(resp.json()["added"]) == 1  # the regional manager
    detail = admin.get(f"{PERIODS}{pid}/").json()
    assert detail["participant_count"] == 2 and [k["kpi"] for k in detail["kpis"]] == ["nps"]


def test_list_query_counts(closed_world, world, api, django_assert_max_num_queries):
    period, *_ = closed_world
    for i in range(5):
        bd.make_period(
            world.a.org,
            name=f"acme extra {i}",
            starts_on=period.starts_on,
            ends_on=period.ends_on,
            kpis=SCORECARD[:3],
        )
    admin = api(world.users["admin"])
    admin.get(PERIODS)  # warm the session
    with django_assert_max_num_queries(12):
        assert len(admin.get(PERIODS).json()["results"]) == 6
    with django_assert_max_num_queries(12):
        assert len(admin.get(PARTICIPANTS).json()["results"]) == 2
    with django_assert_max_num_queries(12):
        admin.get("/api/v1/bonus-kpis/")
    with django_assert_max_num_queries(14):
        assert admin.get("/rewards/bonus/").status_code == 200
    with django_assert_max_num_queries(30):
        assert admin.get(f"/rewards/bonus/{period.pk}/").status_code == 200


def test_admin_pages_define_close_approve_and_export(closed_world, world, client):
    period, manager, _regional, _mid = closed_world
    client.force_login(world.users["admin"])
    page = client.get(f"/rewards/bonus/{period.pk}/")
    body = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="chart-contributions"' in body and 'data-testid="close"' in body
    assert "Insufficient data (1 of 3)" in body and "No data yet — left out" in body
    assert "Audit score" in body  # holds the store manager back most

    resp = client.post(
        "/rewards/bonus/new/",
        {"name": "acme page period", "starts_on": "2026-01-01", "ends_on": "2026-03-31"},
    )
    with tenant_context(world.a.org):
        created = BonusPeriod.objects.get(name="acme page period")
    assert resp.status_code == 302 and resp["Location"] == f"/rewards/bonus/{created.pk}/"
    client.post(
        f"/rewards/bonus/{created.pk}/kpis/",
        {"kpi": "nps", "weight": "60", "target": "50", "min_sample": "5"},
    )
    resp = client.post(f"/rewards/bonus/{created.pk}/kpis/", {"kpi": "csat", "weight": "40", "target": "0"})
    assert resp.status_code == 302
    client.post(f"/rewards/bonus/{created.pk}/managers/", {"target_bonus": "1200", "currency": "eur"})
    with tenant_context(world.a.org):
        assert list(created.kpis.values_list("kpi", flat=True)) == ["nps"]  # target = floor refused
        assert sorted(created.participants.values_list("currency", "target_bonus")) == [
            ("EUR", D("1200.00")),
            ("EUR", D("1200.00")),
        ]
    page = client.get(f"/rewards/bonus/{created.pk}/").content.decode()
    assert "target: The target must differ from the floor" in page

    assert client.post(f"/rewards/bonus/{period.pk}/close/").status_code == 302
    assert client.post(f"/rewards/bonus/{period.pk}/approve/").status_code == 302
    resp = client.post(f"/rewards/bonus/{period.pk}/export/")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    assert "manager@acme.test" in resp.content.decode()
    with tenant_context(world.a.org):
        period.refresh_from_db()
        assert period.status == BonusPeriod.Status.APPROVED
        assert BonusResult.objects.get(participant=manager).exported_at is not None
    # Executives read every scorecard but cannot act.
    client.force_login(world.users["executive"])
    assert client.post(f"/rewards/bonus/{period.pk}/close/").status_code == 403
    body = client.get(f"/rewards/bonus/{period.pk}/").content.decode()
    assert "regional@acme.test" in body and 'data-testid="export"' not in body


def test_demo_seed_makes_a_closed_and_an_open_period(world, api):
    from incentives.bonus_demo import seed_bonus

    now = timezone.now()
    bd.answers(world.a, "a-n1", "nps", [10] * 40, when=now - dt.timedelta(days=100))
    with tenant_context(world.a.org):
        counts = seed_bonus(world.a.org, actor=Actor.system(), now=now)
        periods = list(BonusPeriod.objects.order_by("starts_on"))
        assert [p.status for p in periods] == [BonusPeriod.Status.APPROVED, BonusPeriod.Status.OPEN]
        assert counts["bonus participants"] == 2  # the store and the regional manager
        assert BonusResult.objects.filter(participant__period=periods[0]).count() == 2
    resp = api(world.users["manager"]).get(f"{PERIODS}{periods[1].pk}/preview/")
    assert resp.status_code == 200 and len(resp.json()["scorecards"]) == 1


# --- supervisors: scored on their team --------------------------------------------------------------

# (kpi, weight, floor, target, min_sample)
TEAM_SCORECARD = [
    (K.NPS, 40, 0, 50, 2),
    (K.AUDIT_SCORE, 30, 60, 100, 2),
    (K.TRAINING_ON_TIME, 30, 0, 100, 2),
    (K.CSAT, 10, 50, 90, 1),
    (K.CASES_IN_SLA, 10, 0, 100, 1),
    (K.ALIGNMENT, 10, 0, 80, 1),
]


@pytest.fixture
def team_world(world):
    """A team at a-n1 (a supervisor and a member) beside the store's own employee, who is in no
    team; the store's inputs (_store_inputs) are all by that employee and must not reach the team."""
    starts, ends, mid = bd.past_window()
    org = world.a.org
    period = bd.make_period(
        org,
        name="acme team bonus",
        starts_on=starts,
        ends_on=ends,
        kpis=TEAM_SCORECARD,
        payout_threshold=D(50),
        payout_cap_percent=D(150),
    )
    _store_inputs(world, mid=mid)
    with tenant_context(org):
        location = world.a.locations["a-n1"]
        team = f.TeamFactory(organization=org, location=location, name="Floor A")
        lead = f.EmployeeFactory(
            organization=org,
            name="Sam Lead",
            role=m.Employee.Role.SUPERVISOR,
            current_location=location,
            current_team=team,
        )
        member = f.EmployeeFactory(
            organization=org, name="Tea Member", current_location=location, current_team=team
        )
        supervisor = f.UserFactory(username="lead@acme.test", email="lead@acme.test")
        f.MembershipFactory(organization=org, user=supervisor, role=m.Role.EMPLOYEE, employee=lead)
    # The team's inputs: NPS 3 promoters, 1 detractor of 4 → 50; audits 70, 90 → 80; training
    # 1 on time, 1 late → 50 %. No CSAT answers and no cases by team members.
    bd.answers(world.a, "a-n1", "nps", [10, 10, 0], when=mid, employee=member)
    bd.answers(world.a, "a-n1", "nps", [9], when=mid, employee=lead)
    bd.audits(world.a, "a-n1", [70, 90], when=mid, employee=member)
    bd.training(world.a, "a-n1", due=mid, on_time=1, late=1, employee=member)
    return period, team, supervisor, mid


def test_add_managers_adds_supervisors_scored_on_their_team(team_world, world):
    period, team, supervisor, _mid = team_world
    with tenant_context(world.a.org):
        teamless = f.EmployeeFactory(organization=world.a.org, role=m.Employee.Role.SUPERVISOR)
        f.MembershipFactory(
            organization=world.a.org, user=f.UserFactory(), role=m.Role.EMPLOYEE, employee=teamless
        )
        added = bonus.participants_add_managers(
            organization=world.a.org, actor=Actor.system(), period=period, target_bonus="1000"
        )
        by_user = {p.user_id: p for p in added}
        # Store manager, regional manager and the supervisor; not the plain employee, not the
        # supervisor with no team.
        assert set(by_user) == {world.users["manager"].pk, world.users["regional"].pk, supervisor.pk}
        mine = by_user[supervisor.pk]
        assert (mine.team_id, mine.location_id, mine.region_id) == (team.pk, None, None)
        (card,) = bonus.scorecards(period=period, participants=[mine])
    lines = _lines(card)
    # Only the team members' facts: the store employee's 10 NPS answers, 2 audits and 4
    # assignments are not the team's.
    assert (lines[K.NPS].value, lines[K.NPS].n, lines[K.NPS].score) == (D("50.00"), 4, D("100.00"))
    assert (lines[K.AUDIT_SCORE].value, lines[K.AUDIT_SCORE].n, lines[K.AUDIT_SCORE].score) == (
        D("80.00"),
        2,
        D("50.00"),
    )
    assert (lines[K.TRAINING_ON_TIME].value, lines[K.TRAINING_ON_TIME].n) == (D("50.00"), 2)
    # What the team has no attributable data for is insufficient / no data, never 0.
    assert (lines[K.CSAT].status, lines[K.CSAT].note) == (bonus.INSUFFICIENT, "insufficient data (0 of 1)")
    assert lines[K.CASES_IN_SLA].status == bonus.INSUFFICIENT and lines[K.CASES_IN_SLA].score is None
    assert lines[K.ALIGNMENT].status == bonus.NO_SOURCE
    # (40·100 + 30·50 + 30·50) / 100 = 70.
    assert card.score == D("70.00")
    assert card.payout_amount == D("700.00")
    with tenant_context(world.a.org):
        membership = m.Membership.objects.get(employee=teamless)
        with pytest.raises(bonus.ValidationError) as exc:
            bonus.participant_add(
                organization=world.a.org,
                actor=Actor.system(),
                period=period,
                membership=membership,
                target_bonus="1000",
            )
    assert "membership" in exc.value.message_dict


def test_team_cases_count_cases_of_team_members(team_world, world):
    period, team, supervisor, mid = team_world
    with tenant_context(world.a.org):
        member = m.Employee.objects.get(current_team=team, name="Tea Member")
    bd.cases(world.a, "a-n1", due=mid, in_sla=3, late=1, employee=member)
    bd.cases(world.a, "a-n1", due=mid, in_sla=0, late=5)  # the store employee's: not the team's
    with tenant_context(world.a.org):
        added = bonus.participants_add_managers(
            organization=world.a.org, actor=Actor.system(), period=period, target_bonus="1000"
        )
        p = next(p for p in added if p.user_id == supervisor.pk)
        (card,) = bonus.scorecards(period=period, participants=[p])
    cases = _lines(card)[K.CASES_IN_SLA]
    assert (cases.value, cases.n, cases.status) == (D("75.00"), 4, bonus.SCORED)


def test_a_supervisor_sees_only_their_own_scorecard(team_world, world, api):
    period, _team, supervisor, _mid = team_world
    with tenant_context(world.a.org):
        added = bonus.participants_add_managers(
            organization=world.a.org, actor=Actor.system(), period=period, target_bonus="1000"
        )
    mine = next(p for p in added if p.user_id == supervisor.pk)
    other = next(p for p in added if p.user_id == world.users["manager"].pk)
    client = api(supervisor)
    assert [p["id"] for p in client.get(PERIODS).json()["results"]] == [period.pk]
    listed = client.get(PARTICIPANTS).json()["results"]
    assert [(p["id"], p["team"]) for p in listed] == [(mine.pk, mine.team_id)]
    assert client.get(f"{PARTICIPANTS}{other.pk}/").status_code == 404
    assert client.get(f"{PARTICIPANTS}{other.pk}/scorecard/").status_code == 404
    card = client.get(f"{PARTICIPANTS}{mine.pk}/scorecard/").json()["scorecard"]
    assert card["score"] == 70.0 and card["payout_amount"] == 700.0
    preview = client.get(f"{PERIODS}{period.pk}/preview/").json()["scorecards"]
    assert [c["participant"] for c in preview] == [mine.pk]
    assert client.patch(f"{PARTICIPANTS}{mine.pk}/", {"target_bonus": "9"}, format="json").status_code == 403
    assert client.post(f"{PERIODS}{period.pk}/close/").status_code == 403
    # Pages: "My scorecard" over the team; the period page shows only their row.
    body = client.get("/rewards/bonus/mine/").content.decode()
    assert "Floor A (team" in body and "acme team bonus" in body
    body = client.get(f"/rewards/bonus/{period.pk}/").content.decode()
    assert "lead@acme.test" in body and "manager@acme.test" not in body
    assert 'data-testid="my-scorecard"' in client.get("/rewards/bonus/").content.decode()


def test_an_ordinary_employee_sees_no_bonus_periods(team_world, world, api):
    period, _team, _supervisor, _mid = team_world
    with tenant_context(world.a.org):
        added = bonus.participants_add_managers(
            organization=world.a.org, actor=Actor.system(), period=period, target_bonus="1000"
        )
    client = api(world.users["employee"])
    assert client.get(PERIODS).json()["results"] == []
    assert client.get(PARTICIPANTS).json()["results"] == []
    assert client.get("/api/v1/bonus-kpis/").json()["results"] == []
    assert client.get(f"{PERIODS}{period.pk}/").status_code == 404
    assert client.get(f"{PERIODS}{period.pk}/preview/").status_code == 404
    for p in added:
        assert client.get(f"{PARTICIPANTS}{p.pk}/scorecard/").status_code == 404
    page = client.get("/rewards/bonus/")
    assert page.status_code == 200 and 'data-testid="period-row"' not in page.content.decode()
    assert 'data-testid="my-scorecard"' not in page.content.decode()
    assert client.get(f"/rewards/bonus/{period.pk}/").status_code == 404
    mine = client.get("/rewards/bonus/mine/")
    assert mine.status_code == 200 and "acme team bonus" not in mine.content.decode()
