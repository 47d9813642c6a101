"""Minimum sample and uncertainty, category weighting, incremental recomputation of only what an
event touched (with a query count that does not grow with history), the full recompute, and the
threshold event raised once per crossing."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alignment import scores
from alignment.models import AlignmentScore, Link
from cem import models as m
from cem import outbox
from cem.models import OutboxEvent
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.score_world import DAY, ScoreWorld

ONLY_MESSAGE = {
    "message_expectation": 1,
    "expectation_standard": 0,
    "standard_training": 0,
    "training_execution": 0,
    "execution_incentive": 0,
}


@pytest.fixture
def sw(world):
    return ScoreWorld(world)


def touched(sw, *keys):
    with tenant_context(sw.org):
        return scores.recompute_touched(sw.org, set(keys))


def stored(sw, **filters) -> dict[tuple, AlignmentScore]:
    with tenant_context(sw.org):
        rows = AlignmentScore.objects.filter(**filters)
        return {(r.scope, r.scope_id, r.period, r.period_start.isoformat(), r.link): r for r in rows}


def promised_standard(sw, **kw):
    std = sw.standard(expectation=sw.expectation(4), message=sw.message(), **kw)
    sw.questions(std)
    return std


def test_three_points_are_shown_with_a_wide_interval_and_not_ranked_beside_three_hundred(sw):
    sw.settings(min_sample=30)
    std = promised_standard(sw)
    sw.put("std_feedback", [70, 80, 90], standard=std, location="a-n1")
    sw.put("std_feedback", [70, 80, 90] * 100, standard=std, location="a-n2")
    a_n1, a_n2 = sw.t.locations["a-n1"].pk, sw.t.locations["a-n2"].pk
    touched(sw, (DAY, a_n1, None), (DAY, a_n2, None))

    rows = stored(sw, scope="location", period="month", link=Link.MESSAGE_EXPECTATION)
    few = rows[("location", a_n1, "month", "2025-03-01", Link.MESSAGE_EXPECTATION)]
    many = rows[("location", a_n2, "month", "2025-03-01", Link.MESSAGE_EXPECTATION)]
    assert few.value == many.value == 80
    assert (few.n, many.n) == (3, 300)
    assert few.high - few.low > 4 * (many.high - many.low)
    assert few.inputs["rankable"] is False and many.inputs["rankable"] is True
    assert few.low < 80 < few.high and many.low < 80 < many.high


def test_critical_interactions_weigh_more(sw):
    std = promised_standard(sw)
    sw.put("std_feedback", [40] * 50, standard=std, category="critical")
    sw.put("std_feedback", [80] * 50, standard=std, category="stabilizing")
    loc = sw.t.locations["a-n1"].pk
    key = ("location", loc, "month", "2025-03-01", Link.MESSAGE_EXPECTATION)

    touched(sw, (DAY, loc, None))
    assert float(stored(sw)[key].value) == pytest.approx((2 * 40 + 80) / 3, abs=0.005)  # Critical x2

    sw.settings(category_weights={"critical": 1, "stabilizing": 1, "planned": 1})
    touched(sw, (DAY, loc, None))
    assert stored(sw)[key].value == 60

    sw.settings(category_weights={"critical": 3, "stabilizing": 1, "planned": 1})
    touched(sw, (DAY, loc, None))
    assert float(stored(sw)[key].value) == pytest.approx((3 * 40 + 80) / 4, abs=0.005)


@pytest.fixture
def two_stores(sw):
    """Feedback on a promised standard at a-n1 (an employee in a team) and at a-s1."""
    std = promised_standard(sw)
    team = f.TeamFactory(organization=sw.org, name="acme floor", location=sw.t.locations["a-n1"])
    e1, e3 = sw.t.employees["a-n1"], sw.t.employees["a-s1"]
    with tenant_context(sw.org):
        m.Employee.objects.filter(pk=e1.pk).update(current_team=team)
    sw.put("std_feedback", [60, 80] * 5, standard=std, location="a-n1", employee=e1)
    sw.put("std_feedback", [50, 70] * 5, standard=std, location="a-s1", employee=e3)
    keys = {
        "n1": (DAY, sw.t.locations["a-n1"].pk, e1.pk),
        "s1": (DAY, sw.t.locations["a-s1"].pk, e3.pk),
    }
    return sw, team, keys


def test_only_the_touched_scopes_and_periods_are_recomputed(two_stores):
    sw, team, keys = two_stores
    touched(sw, keys["n1"], keys["s1"])
    before = {k: r.computed_at for k, r in stored(sw).items()}

    touched(sw, keys["n1"])
    after = stored(sw)

    changed = {k[:4] for k, r in after.items() if r.computed_at != before.get(k)}
    t = sw.t
    scopes = {
        ("organization", 0),
        ("region", t.regions["north"].pk),
        ("location", t.locations["a-n1"].pk),
        ("employee", t.employees["a-n1"].pk),
        ("team", team.pk),
    }
    periods = {
        ("day", "2025-03-12"),
        ("week", "2025-03-10"),
        ("month", "2025-03-01"),
        ("quarter", "2025-01-01"),
    }
    assert changed == {(s, pk, p, start) for s, pk in scopes for p, start in periods}
    untouched = {k[:2] for k in after} - scopes
    assert untouched == {
        ("region", t.regions["south"].pk),
        ("location", t.locations["a-s1"].pk),
        ("employee", t.employees["a-s1"].pk),
    }
    assert all(len([k for k in after if k[:4] == c]) == 6 for c in changed)  # five links and the overall


def test_a_later_periods_existing_scores_are_refreshed_but_none_are_created(two_stores):
    sw, _team, keys = two_stores
    later = DAY + dt.timedelta(days=35)  # April: link 4 there reads March as its "training" period
    std = promised_standard(sw)
    sw.put("std_feedback", [90] * 3, standard=std, location="a-n1", day=later)
    touched(sw, (later, sw.t.locations["a-n1"].pk, None))
    april = stored(sw, period="month", period_start=dt.date(2025, 4, 1))
    assert {k[:2] for k in april} == {
        ("organization", 0),
        ("region", sw.t.regions["north"].pk),
        ("location", sw.t.locations["a-n1"].pk),
    }
    stamps = {k: r.computed_at for k, r in april.items()}

    touched(sw, keys["n1"])  # March data changed
    april_after = stored(sw, period="month", period_start=dt.date(2025, 4, 1))
    assert set(april_after) == set(april)  # no April rows for the employee or the team
    assert all(april_after[k].computed_at != stamps[k] for k in april)


def _history(sw, days: int, end: dt.date, std) -> int:
    """Rollup rows on every store and employee for ``days`` days before ``end``; returns how many."""
    from alignment.models import Rollup

    rows = [
        Rollup(
            organization=sw.org,
            day=end - dt.timedelta(days=back),
            location=sw.t.locations[code],
            employee=sw.t.employees[code],
            standard=std,
            measure=measure,
            n=2,
            total=140,
            sumsq=10000,
            top=1,
            bottom=1,
        )
        for back in range(1, days + 1)
        for code in ("a-n1", "a-n2", "a-s1")
        for measure in ("std_feedback", "std_audit", "lesson_std", "points")
    ]
    with tenant_context(sw.org):
        Rollup.objects.bulk_create(rows)
    return len(rows)


def test_recompute_touched_query_count_does_not_grow_with_history(two_stores):
    sw, _team, _keys = two_stores
    std = promised_standard(sw)
    today = dt.datetime.now(zoneinfo.ZoneInfo(sw.org.time_zone or "UTC")).date()
    key = (today, sw.t.locations["a-n1"].pk, sw.t.employees["a-n1"].pk)
    sw.put("std_feedback", [75] * 4, standard=std, day=today, employee="a-n1")
    small_history = _history(sw, 10, today, std)
    touched(sw, key)  # warm: the settings row, the first scores

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            touched(sw, key)
        return len(ctx.captured_queries)

    small = count()
    assert _history(sw, 400, today - dt.timedelta(days=10), std) == 40 * small_history
    large = count()
    assert small == large
    assert small <= 40


def test_full_recompute_matches_the_incremental_one_and_drops_stale_rows(two_stores):
    sw, _team, keys = two_stores
    std = promised_standard(sw, category="critical")
    sw.reward_rule(std)
    lesson = sw.lesson(std)
    sw.put("std_audit", [40, 60] * 5, standard=std, day=dt.date(2025, 1, 15), employee="a-n1")
    sw.put("lesson_std", standard=std, top=3, bottom=1, day=dt.date(2025, 2, 3), employee="a-n1")
    sw.put("std_audit", [70, 90] * 5, standard=std, employee="a-n1")
    sw.put("points", [25], standard=std, employee="a-n1")
    sw.gap_triggers(std, lesson, [("assigned", ""), ("skipped", "Nobody to assign it to.")])
    with tenant_context(sw.org):
        written = scores.recompute_all(sw.org)
    full = stored(sw)
    assert written == len(full) > 0

    with tenant_context(sw.org):
        AlignmentScore.objects.all().delete()
    all_keys = {
        (dt.date(2025, 1, 15), sw.t.locations["a-n1"].pk, sw.t.employees["a-n1"].pk),
        (dt.date(2025, 2, 3), sw.t.locations["a-n1"].pk, sw.t.employees["a-n1"].pk),
        keys["n1"],
        keys["s1"],
    }
    touched(sw, *sorted(all_keys))
    incremental = stored(sw)
    assert set(incremental) == set(full)
    for key, row in full.items():
        other = incremental[key]
        assert (row.value, row.low, row.high, row.n, row.missing) == (
            other.value,
            other.low,
            other.high,
            other.n,
            other.missing,
        ), key
        assert row.inputs == other.inputs, key

    ghost = AlignmentScore(
        organization=sw.org,
        scope="location",
        scope_id=999999,
        period="day",
        period_start=dt.date(2024, 1, 1),
        link=Link.OVERALL,
        computed_at=timezone.now() - dt.timedelta(days=1),
        value=50,
    )
    with tenant_context(sw.org):
        ghost.save()
        scores.recompute_all(sw.org)
        assert not AlignmentScore.objects.filter(pk=ghost.pk).exists()
        assert AlignmentScore.objects.count() == len(full)


def _crossings(sw):
    with tenant_context(sw.org):
        return list(
            OutboxEvent.objects.filter(event_type="AlignmentThresholdCrossed")
            .order_by("pk")
            .values_list("payload", flat=True)
        )


def test_threshold_crossing_raises_one_event_per_crossing(sw):
    sw.settings(link_weights=ONLY_MESSAGE, alert_threshold=60)
    std = promised_standard(sw)
    loc = sw.t.locations["a-n1"].pk
    sw.put("std_feedback", [80] * 40, standard=std)
    touched(sw, (DAY, loc, None))
    assert _crossings(sw) == []  # a first score crosses nothing

    sw.put("std_feedback", [20] * 80, standard=std)  # the mean falls to 40
    touched(sw, (DAY, loc, None))
    touched(sw, (DAY, loc, None))  # recomputing the same value raises nothing more
    events = _crossings(sw)
    assert len(events) == 3 * 4  # organization, region, location x day, week, month, quarter
    month = next(e for e in events if e["scope"] == "location" and e["period"] == "month")
    assert month["direction"] == "below" and month["previous"] == "80.00" and month["value"] == "40.00"
    assert (
        month["threshold"] == "60.00"
        and month["location_id"] == loc
        and month["period_start"] == "2025-03-01"
    )
    with tenant_context(sw.org):
        score = AlignmentScore.objects.get(pk=month["score_id"])
    assert (score.link, score.scope, score.period) == (Link.OVERALL, "location", "month")

    sw.put("std_feedback", [100] * 200, standard=std)  # back up
    touched(sw, (DAY, loc, None))
    events = _crossings(sw)
    assert len(events) == 24
    assert {e["direction"] for e in events[12:]} == {"above"}


def test_the_rollup_handler_recomputes_the_scores_of_what_it_touched(
    world, django_capture_on_commit_callbacks
):
    """After its transaction commits: inside it, the touched keys are only queued."""
    from alignment import rollups
    from alignment.models import PendingScore
    from tests.learning.gap_data import GapWorld

    gw = GapWorld(world, name="acme align scores")
    with tenant_context(gw.org):
        rollups.rebuild(gw.org, replace=True)
        m.Standard.objects.filter(pk=gw.std.pk).update(
            brand_message=f.BrandMessageFactory(organization=gw.org)
        )
    ids = gw.answers([5, 4, 4])
    event = gw.response_event(ids)
    with tenant_context(gw.org):
        rows = AlignmentScore.objects.filter(
            scope="location", scope_id=world.a.locations["a-n1"].pk, period="day"
        )
        with django_capture_on_commit_callbacks(execute=True):
            assert outbox.run_handler(event.pk, "alignment.rollup_response") is True
            assert not rows.exists() and PendingScore.objects.count() == 1
        assert PendingScore.objects.count() == 0
        message = rows.get(link=Link.MESSAGE_EXPECTATION)
        assert rows.count() == 6
    assert message.n == 3 and message.value is not None


def test_tasks_are_named_and_scheduled(sw):
    from django.conf import settings

    from alignment import score_tasks

    std = promised_standard(sw)
    sw.put("std_feedback", [80, 90], standard=std)
    assert score_tasks.scores_recompute.name == "alignment.scores_recompute"
    assert score_tasks.scores_recompute.delay(sw.org.pk).get() == 6 * 4 * 3  # org, region, store x 4 periods
    assert (
        settings.CELERY_BEAT_SCHEDULE["alignment-scores-refresh"]["task"]
        == "alignment.scores_refresh_dispatch"
    )
    assert settings.CELERY_BEAT_SCHEDULE["alignment-month-close"]["task"] == "alignment.month_close_dispatch"
