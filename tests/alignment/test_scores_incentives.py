"""Incentives read the alignment scores: the monthly store scores are published once
(AlignmentMonthScored) and pay the "store alignment score at or above X for the month" rules —
rankable scores only — and the bonus KPI "alignment" is the participant's overall score over the
bonus period."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from alignment import score_months, scores
from alignment.score_selectors import bonus_kpi_figures, tiling_kind
from cem import outbox
from cem.models import OutboxEvent
from cem.tenancy import tenant_context
from incentives.models import LedgerTransaction, RewardRule
from tests.alignment.score_world import DAY, ScoreWorld
from tests.incentives.ledger_helpers import funded_budget

HANDLER = "incentives.rewards_after_alignment_month"
ONLY_MESSAGE = {
    "message_expectation": 1,
    "expectation_standard": 0,
    "standard_training": 0,
    "training_execution": 0,
    "execution_incentive": 0,
}
APRIL_5 = dt.datetime(2025, 4, 5, 9, tzinfo=dt.UTC)


@pytest.fixture
def sw(world):
    """Monthly store scores for March 2025: a-n1 75 (40 answers), a-n2 95 (3: not rankable), a-s1 50."""
    sw = ScoreWorld(world)
    sw.settings(link_weights=ONLY_MESSAGE, min_sample=30)
    std = sw.standard(expectation=sw.expectation(4), message=sw.message())
    sw.questions(std)
    sw.put("std_feedback", [70, 80] * 20, standard=std, location="a-n1")
    sw.put("std_feedback", [95] * 3, standard=std, location="a-n2")
    sw.put("std_feedback", [40, 60] * 20, standard=std, location="a-s1")
    with tenant_context(sw.org):
        scores.recompute_touched(
            sw.org, {(DAY, sw.t.locations[c].pk, None) for c in ("a-n1", "a-n2", "a-s1")}
        )
    return sw


def close(sw, now=APRIL_5):
    with tenant_context(sw.org):
        return score_months.month_close(sw.org, now=now)


def test_month_scores_are_published_once_after_the_month(sw):
    assert close(sw, dt.datetime(2025, 4, 1, 9, tzinfo=dt.UTC)) is None  # the grace day has not passed
    event = close(sw)
    assert event is not None and event.event_type == "AlignmentMonthScored"
    payload = event.payload
    assert (payload["period_start"], payload["period_end"]) == ("2025-03-01", "2025-03-31")
    by_location = {row["location_id"]: row for row in payload["scores"]}
    a_n1, a_n2 = by_location[sw.t.locations["a-n1"].pk], by_location[sw.t.locations["a-n2"].pk]
    assert (a_n1["value"], a_n1["n"], a_n1["rankable"]) == ("75.00", 40, True)
    assert (a_n2["value"], a_n2["rankable"]) == ("95.00", False)
    assert a_n1["region_id"] == sw.t.regions["north"].pk
    assert close(sw) is None  # published once
    with tenant_context(sw.org):
        assert OutboxEvent.objects.filter(event_type="AlignmentMonthScored").count() == 1


def test_alignment_reward_rule_pays_rankable_store_scores_at_or_above_its_minimum(sw):
    with tenant_context(sw.org):
        budget = funded_budget(sw.org, 1000, name="acme alignment budget")
        rule = RewardRule.objects.create(
            organization=sw.org,
            name="acme aligned store",
            trigger=RewardRule.Trigger.ALIGNMENT_SCORE,
            recipients=RewardRule.Recipients.LOCATION_EMPLOYEES,
            points=25,
            min_score=Decimal(70),
            budget=budget,
            effective_from=dt.date(2025, 1, 1),
        )
    event = close(sw)
    with tenant_context(sw.org):
        assert outbox.run_handler(event.pk, HANDLER) is True
        awards = list(LedgerTransaction.objects.filter(rule=rule).values_list("employee_id", flat=True))
        # a-n1 (75) is paid; a-n2 (95 from 3 answers) is too thin to pay on; a-s1 (50) is below 70.
        assert awards == [sw.t.employees["a-n1"].pk]
        from incentives import handlers

        handlers.rewards_after_alignment_month(event)  # a second delivery pays nothing more
        assert LedgerTransaction.objects.filter(rule=rule).count() == 1


def test_bonus_reads_the_overall_score_of_the_participants_scope_over_the_bonus_period(sw):
    t = sw.t
    quarter = {
        "first_day": dt.date(2025, 1, 1),
        "last_day": dt.date(2025, 3, 31),
        "through": dt.date(2025, 4, 2),
    }
    assert tiling_kind(quarter["first_day"], quarter["last_day"]) == "quarter"
    with tenant_context(sw.org):
        found = bonus_kpi_figures(
            **quarter,
            scopes={"location": {t.locations["a-n1"].pk}, "region": {t.regions["north"].pk}, "team": {999}},
        )
    assert found["location"][t.locations["a-n1"].pk] == (Decimal("75.00"), 40)
    region_value, region_n = found["region"][t.regions["north"].pk]
    assert region_n == 43 and region_value == Decimal("76.40")  # (40 x 75 + 3 x 95) / 43, pooled
    assert "team" not in found  # no scores: "no data yet", never 0

    # Two months of a bonus period: their monthly scores, weighted by n.
    with tenant_context(sw.org):
        two_months = bonus_kpi_figures(
            first_day=dt.date(2025, 2, 1),
            last_day=dt.date(2025, 3, 31),
            through=dt.date(2025, 4, 2),
            scopes={"location": {t.locations["a-n1"].pk}},
        )
    assert two_months["location"][t.locations["a-n1"].pk] == (Decimal("75.00"), 40)


def test_bonus_scorecard_alignment_kpi_is_the_scopes_overall_score(sw):
    from incentives import bonus
    from incentives.models import BonusKpi
    from tests.incentives.bonus_data import add_participant, make_period

    period = make_period(
        sw.org,
        name="acme Q1 alignment",
        starts_on=dt.date(2025, 1, 1),
        ends_on=dt.date(2025, 3, 31),
        kpis=[(BonusKpi.Kpi.ALIGNMENT, 100, 0, 100, 10)],
    )
    manager = add_participant(sw.org, period, sw.world.users["manager"])
    regional = add_participant(sw.org, period, sw.world.users["regional"])
    with tenant_context(sw.org):
        cards = {c.participant.pk: c for c in bonus.scorecards(period=period, now=APRIL_5)}
    [store_line] = cards[manager.pk].lines
    assert (store_line.value, store_line.n, store_line.status) == (Decimal("75.00"), 40, bonus.SCORED)
    assert cards[manager.pk].score == Decimal("75.00")
    [region_line] = cards[regional.pk].lines
    assert (region_line.value, region_line.n) == (Decimal("76.40"), 43)

    later = make_period(
        sw.org,
        name="acme Q2 alignment",
        starts_on=dt.date(2025, 4, 1),
        ends_on=dt.date(2025, 6, 30),
        kpis=[(BonusKpi.Kpi.ALIGNMENT, 100, 0, 100, 10)],
    )
    nobody = add_participant(sw.org, later, sw.world.users["manager"])
    with tenant_context(sw.org):
        [card] = bonus.scorecards(period=later, participants=[nobody], now=APRIL_5)
    assert (card.lines[0].status, card.lines[0].note) == (bonus.NO_SOURCE, "no data yet")  # never 0
    assert card.score is None
