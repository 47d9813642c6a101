"""Bonus KPIs from business metrics: sales vs target, average purchase and retention of the
participant's location(s) and period — and "no data yet", never 0, without metrics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from cem import models as m
from cem.tenancy import tenant_context
from incentives import bonus
from incentives.models import BonusKpi, BonusParticipant
from tests import factories as f
from tests.alignment.business_data import metric
from tests.incentives import bonus_data as bd

K = BonusKpi.Kpi
Q1 = (dt.date(2025, 1, 1), dt.date(2025, 3, 31))
MONTHS = [dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]
SCORECARD = [
    (K.SALES_VS_TARGET, 40, 80, 110, 1),
    (K.AVERAGE_PURCHASE, 30, 5, 15, 1),
    (K.RETENTION, 30, 50, 90, 1),
]


def _period(world, name="acme Q1 2025 bonus", kpis=SCORECARD):
    return bd.make_period(world.a.org, name=name, starts_on=Q1[0], ends_on=Q1[1], kpis=kpis)


def _store(world, store, *, sales, targets, transactions=None, retention=None):
    for i, start in enumerate(MONTHS):
        metric(world.a, store, "sales", sales[i], start=start)
        metric(world.a, store, "sales_target", targets[i], start=start)
        if transactions:
            metric(world.a, store, "transactions", transactions[i], start=start)
        if retention:
            metric(world.a, store, "retention_rate", retention[i], start=start)


def _card(world, period, user, now=None):
    with tenant_context(world.a.org):
        participant = BonusParticipant.objects.get(period=period, user=user)
        (card,) = bonus.scorecards(period=period, participants=[participant], now=now)
    return {line.kpi: line for line in card.lines}, card


def _lines_of(world, period, user, now=None):
    return _card(world, period, user, now=now)[0]


@pytest.fixture
def stores(world):
    # a-n1: 3000 sold of 3000 targeted, 300 transactions, retention 60/70/80.
    _store(
        world,
        "a-n1",
        sales=[900, 1000, 1100],
        targets=[1000, 1000, 1000],
        transactions=[100, 100, 100],
        retention=[60, 70, 80],
    )
    # a-n2 (also north): 1500 of 3000, no transactions or retention figures.
    _store(world, "a-n2", sales=[500, 500, 500], targets=[1000, 1000, 1000])
    # Outside the quarter: never counted.
    metric(world.a, "a-n1", "sales", 99999, start=dt.date(2025, 4, 1))
    metric(world.a, "a-n1", "sales_target", 1, start=dt.date(2025, 4, 1))
    return world


def test_store_manager_kpis_read_their_store_metrics(stores, world, django_assert_max_num_queries):
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    lines, card = _card(world, period, world.users["manager"])
    assert (lines[K.SALES_VS_TARGET].value, lines[K.SALES_VS_TARGET].n) == (D("100.00"), 3)
    assert (lines[K.AVERAGE_PURCHASE].value, lines[K.AVERAGE_PURCHASE].n) == (D("10.00"), 300)
    assert (lines[K.RETENTION].value, lines[K.RETENTION].n) == (D("70.00"), 3)
    assert {line.status for line in lines.values()} == {bonus.SCORED}
    # 100 % of target between 80 and 110 → 66.67; 10 between 5 and 15 → 50; 70 between 50 and 90 → 50.
    assert lines[K.SALES_VS_TARGET].score == D("66.67")
    assert card.score == D("56.67")
    with tenant_context(world.a.org), django_assert_max_num_queries(12):
        bonus.scorecards(period=period)


def test_regional_manager_kpis_sum_their_region(stores, world):
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["regional"])
    lines = _lines_of(world, period, world.users["regional"])
    # (3000 + 1500) / (3000 + 3000) = 75 %, over 6 store-months.
    assert (lines[K.SALES_VS_TARGET].value, lines[K.SALES_VS_TARGET].n) == (D("75.00"), 6)
    # Only a-n1 has transactions: its 3000 / 300.
    assert (lines[K.AVERAGE_PURCHASE].value, lines[K.AVERAGE_PURCHASE].n) == (D("10.00"), 300)
    assert (lines[K.RETENTION].value, lines[K.RETENTION].n) == (D("70.00"), 3)


def test_without_business_metrics_the_kpis_show_no_data_yet_never_zero(world):
    metric(world.a, "a-s1", "sales", 500, start=MONTHS[0])  # another store's figures
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    lines, card = _card(world, period, world.users["manager"])
    for kpi in (K.SALES_VS_TARGET, K.AVERAGE_PURCHASE, K.RETENTION):
        assert (lines[kpi].status, lines[kpi].note) == (bonus.NO_SOURCE, "no data yet")
        assert lines[kpi].value is None and lines[kpi].score is None and lines[kpi].contribution is None
    assert card.score is None and card.payout_amount == D("0.00")


def test_sales_without_a_target_is_no_data_yet(world):
    for start in MONTHS:
        metric(world.a, "a-n1", "sales", 1000, start=start)
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    lines = _lines_of(world, period, world.users["manager"])
    assert lines[K.SALES_VS_TARGET].status == bonus.NO_SOURCE


def test_average_purchase_falls_back_to_imported_averages(world):
    for start, value in zip(MONTHS, (20, 30, 40), strict=True):
        metric(world.a, "a-n1", "average_purchase", value, start=start)
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    lines = _lines_of(world, period, world.users["manager"])
    assert (lines[K.AVERAGE_PURCHASE].value, lines[K.AVERAGE_PURCHASE].n) == (D("30.00"), 3)


def test_months_and_their_quarter_are_not_counted_twice(stores, world):
    # The quarter's own row (same sales, one target) covers as many days: the coarser is used.
    metric(world.a, "a-n1", "sales", 3000, period="quarter", start=Q1[0])
    metric(world.a, "a-n1", "sales_target", 3000, period="quarter", start=Q1[0])
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    lines = _lines_of(world, period, world.users["manager"])
    assert (lines[K.SALES_VS_TARGET].value, lines[K.SALES_VS_TARGET].n) == (D("100.00"), 1)


def test_a_live_preview_leaves_out_the_month_still_running(stores, world):
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    mid_march = dt.datetime(2025, 3, 15, 12, tzinfo=dt.UTC)
    lines = _lines_of(world, period, world.users["manager"], now=mid_march)
    # January and February: 1900 of 2000.
    assert (lines[K.SALES_VS_TARGET].value, lines[K.SALES_VS_TARGET].n) == (D("95.00"), 2)


def test_a_supervisor_is_scored_on_their_team_location(stores, world):
    org = world.a.org
    with tenant_context(org):
        team = f.TeamFactory(organization=org, location=world.a.locations["a-n1"], name="acme floor")
        lead = f.EmployeeFactory(
            organization=org,
            role=m.Employee.Role.SUPERVISOR,
            current_location=team.location,
            current_team=team,
        )
        user = f.UserFactory(username="lead@acme.test")
        f.MembershipFactory(organization=org, user=user, role=m.Role.EMPLOYEE, employee=lead)
    period = _period(world)
    with tenant_context(org):
        BonusParticipant.objects.create(
            organization=org, period=period, user=user, employee=lead, team=team, target_bonus=D(100)
        )
    lines = _lines_of(world, period, user)
    assert lines[K.SALES_VS_TARGET].value == D("100.00")


def test_the_period_page_no_longer_marks_business_kpis_as_without_source(stores, world, client):
    period = _period(world)
    bd.add_participant(world.a.org, period, world.users["manager"])
    client.force_login(world.users["admin"])
    html = client.get(f"/rewards/bonus/{period.pk}/").content.decode()
    assert "Sales vs target" in html and "Sales vs target <small" not in html
