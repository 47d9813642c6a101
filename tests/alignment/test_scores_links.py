"""Formula tests: each link with constructed data — known inputs give a known score, and the
missing pieces are listed."""

from __future__ import annotations

import datetime as dt
import statistics
from decimal import Decimal
from statistics import NormalDist

import pytest

from alignment import scores
from alignment.models import AlignmentScore, Link
from cem.tenancy import tenant_context
from tests.alignment.score_world import DAY, ScoreWorld


@pytest.fixture
def sw(world):
    return ScoreWorld(world)


def compute(sw, scope="location", scope_id=None, period="month", day=DAY) -> dict[str, AlignmentScore]:
    if scope_id is None:
        scope_id = sw.t.locations["a-n1"].pk
    with tenant_context(sw.org):
        rows = scores.recompute(sw.org, scope, scope_id, period, day)
    return {r.link: r for r in rows}


def kinds(score) -> dict[str, list]:
    """kind -> ids of the missing pieces (lists of reference rows are stored as one entry with ids)."""
    out: dict[str, list] = {}
    for entry in score.missing:
        if "ids" in entry:
            assert entry["count"] == len(entry["ids"]) and entry["label"].startswith(str(entry["count"]))
            out.setdefault(entry["kind"], []).extend(entry["ids"])
        else:
            out.setdefault(entry["kind"], []).append(entry.get("id"))
    return out


def near(value, expected, places=2):
    return value is not None and abs(float(value) - expected) <= 0.5 * 10 ** (-places) + 1e-9


def test_message_link_is_importance_and_reliability_weighted_perception(sw):
    important, minor = sw.expectation(5), sw.expectation(1)
    promise, unused = sw.message(), sw.message()
    s1 = sw.standard(expectation=important, message=promise)
    s2 = sw.standard(expectation=minor, message=promise)
    s3 = sw.standard(message=promise)  # no expectation, no question, no answers
    sw.standard(expectation=important)  # carries no message: not part of this link
    sw.questions(s1, s2)
    sw.put("std_feedback", [70] * 45 + [90] * 45, standard=s1)  # mean 80, n 90
    sw.put("std_feedback", [30] * 45 + [50] * 45, standard=s2)  # mean 40, n 90

    score = compute(sw)[Link.MESSAGE_EXPECTATION]

    reliability = 90 / (90 + 10)
    w1, w2 = 5 * reliability, 1 * reliability
    assert near(score.value, (w1 * 80 + w2 * 40) / (w1 + w2))  # 73.33
    assert score.n == 180
    assert score.low < score.value < score.high
    assert score.inputs["rankable"] is True
    rows = {r["standard"]: r for r in score.inputs["standards"]}
    assert rows[s1.pk]["importance"] == 5 and rows[s1.pk]["perceived"] == 80.0 and rows[s1.pk]["n"] == 90
    missing = kinds(score)
    assert missing["message_without_standard"] == [unused.pk]
    assert missing["standard_without_question"] == [s3.pk]
    assert missing["standard_without_expectation"] == [s3.pk]
    assert missing["standard_without_feedback"] == [s3.pk]


def test_coverage_link_counts_expectations_and_measured_standards(sw):
    big, small = sw.expectation(4), sw.expectation(1)
    covered = sw.standard(expectation=big, category="critical")
    half = sw.standard()  # no expectation; asked but not audited
    sw.questions(covered, half)
    sw.items(covered, kind="monitoring")
    sw.questions(sw.standard(code="acme-draft-only"), status="draft")  # a draft survey measures nothing

    score = compute(sw)[Link.EXPECTATION_STANDARD]

    share_a = 4 / 5  # importance-weighted expectations with a standard
    draft_only = 1 * 3 * 0  # the third standard: neither asked (draft) nor scored
    share_b = (2 * 4 * 1 + 1 * 3 * 0.5 + draft_only) / (2 * 4 + 1 * 3 + 1 * 3)
    assert near(score.value, 100 * (share_a + share_b) / 2)
    assert score.low == score.value == score.high
    assert score.inputs["exact"] is True and score.inputs["rankable"] is True
    assert score.inputs["expectations"] == {"total": 2, "covered": 1, "share": 80.0}
    missing = kinds(score)
    assert missing["expectation_without_standard"] == [small.pk]
    assert half.pk in missing["standard_without_item"] and covered.pk not in missing["standard_without_item"]
    assert half.pk in missing["standard_without_expectation"]
    assert covered.pk not in missing.get("standard_without_question", [])


def test_training_link_is_lessons_gaps_followed_and_completions_on_time(sw):
    critical = sw.standard(expectation=sw.expectation(), category="critical")
    plain = sw.standard(expectation=sw.expectation())
    lesson = sw.lesson(critical)
    sw.gap_triggers(
        critical,
        lesson,
        [
            ("assigned", ""),
            ("assigned", ""),
            ("assigned", ""),
            ("skipped", "Everyone concerned already has it open."),
            ("skipped", "Nobody to assign it to."),
            ("holdout", ""),
            ("skipped", "In the control group until 2025-04-01; assigned then if the gap is still there."),
        ],
    )
    sw.gap_triggers(critical, lesson, [("assigned", "")], location="a-s1")  # another store
    sw.put("lesson_std", standard=critical, top=8, bottom=2)
    sw.put("lesson_std", standard=plain, top=5, bottom=5)

    score = compute(sw)[Link.STANDARD_TRAINING]

    coverage = 100 * 2 / (2 + 1)  # the Critical standard (weight 2) has a lesson
    followed = 100 * 4 / 5  # 3 assigned + 1 already open, of 5 (the held-out 2 left out)
    on_time = 100 * (2 * 8 + 1 * 5) / (2 * 10 + 1 * 10)
    assert near(score.value, (coverage + followed + on_time) / 3)
    assert score.n == 5 + 20
    gaps = score.inputs["gaps"]
    assert (gaps["assigned"], gaps["in_flight"], gaps["not_followed"], gaps["holdout"]) == (3, 1, 1, 2)
    assert score.inputs["on_time"]["late"] == 7
    missing = kinds(score)
    assert missing["standard_without_lesson"] == [plain.pk]
    assert [e["label"] for e in score.missing if e["kind"] == "gap_not_followed"] == [
        "Nobody to assign it to."
    ]
    assert [e["count"] for e in score.missing if e["kind"] == "late_completions"] == [7]
    # Wilson intervals on the sampled parts; the link's bounds are the mean of the parts' bounds.
    assert score.low < score.value < score.high


def test_execution_link_compares_before_and_after_training_net_of_the_holdout_drift(sw):
    trained = sw.standard(expectation=sw.expectation())
    thin = sw.standard(expectation=sw.expectation())
    lesson = sw.lesson(trained, thin)
    before = [40, 60] * 15
    after = [60, 80] * 15
    sw.put("std_audit", before, standard=trained, day=dt.date(2025, 1, 20))
    sw.put("lesson_std", standard=trained, top=4, day=dt.date(2025, 2, 10))
    sw.put("lesson_std", standard=thin, top=2, day=dt.date(2025, 2, 10))
    sw.put("std_audit", after, standard=trained, day=DAY)
    sw.put("std_audit", [90], standard=thin, day=DAY)  # one point after, none before

    spread = (statistics.stdev(before) ** 2 + statistics.stdev(after) ** 2) ** 0.5
    score = compute(sw)[Link.TRAINING_EXECUTION]
    expected = 100 * NormalDist().cdf((statistics.mean(after) - statistics.mean(before)) / spread)
    assert near(score.value, expected)  # ≈ 91.8: most points after beat most points before
    assert score.n == 60
    assert kinds(score)["execution_too_thin"] == [thin.pk]

    # The learning app's holdout groups show scores drifting up 5 points on their own.
    sw.lesson_effect(lesson, trained, control_n=10, control_change=5.0)
    sw.lesson_effect(sw.lesson(trained), trained, control_n=3, control_change=50.0, verdict="ineffective")
    score = compute(sw)[Link.TRAINING_EXECUTION]
    expected = 100 * NormalDist().cdf((statistics.mean(after) - statistics.mean(before) - 5) / spread)
    assert near(score.value, expected)  # the 3-control snapshot is too small to count as drift
    row = next(r for r in score.inputs["standards"] if r["standard"] == trained.pk)
    assert (row["before"], row["after"], row["drift"], row["controls"], row["completions"]) == (
        50,
        70,
        5,
        10,
        4,
    )
    assert "ineffective_lesson" in kinds(score)


def test_execution_link_without_training_in_the_previous_period_has_no_value(sw):
    std = sw.standard(expectation=sw.expectation())
    sw.put("std_audit", [80, 90], standard=std)
    score = compute(sw)[Link.TRAINING_EXECUTION]
    assert score.value is None and score.low is None
    assert kinds(score) == {"no_training": [None]}
    assert score.inputs["rankable"] is False


def test_incentive_link_is_rank_correlation_and_critical_rule_coverage(sw):
    ruled = sw.standard(expectation=sw.expectation(), category="critical")
    unruled = sw.standard(expectation=sw.expectation(), category="critical")
    sw.reward_rule(ruled)
    sw.reward_rule(unruled, until=dt.date(2025, 2, 1))  # ended before the period
    people = [sw.employee() for _ in range(6)]
    execution = [50, 60, 70, 80, 90, 95]
    points = [20, 10, 30, 40, 60, 50]
    for person, level, pts in zip(people, execution, points, strict=True):
        sw.put("std_audit", [level] * 4, employee=person, standard=ruled)
        sw.put("points", [pts], employee=person, standard=ruled)
    sw.put("points", [500], employee=sw.employee(), standard=ruled)  # points but no execution: not a member

    score = compute(sw)[Link.EXECUTION_INCENTIVE]

    rho = 1 - 6 * (1 + 1 + 0 + 0 + 1 + 1) / (6 * (36 - 1))  # Spearman from rank differences
    assert near(score.value, (50 * (1 + rho) + 50) / 2)  # correlation part, half the Critical standards ruled
    corr = score.inputs["correlation"]
    assert corr["m"] == 6 and abs(corr["rho"] - round(rho, 3)) < 1e-9
    assert corr["rho_low"] < rho < corr["rho_high"]
    assert score.inputs["members"] == "employee"
    assert score.inputs["critical_coverage"]["with_rule"] == 1
    assert kinds(score)["critical_without_rule"] == [unruled.pk]
    assert score.n == 24


def test_incentive_link_across_locations_and_for_one_employee(sw):
    std = sw.standard(expectation=sw.expectation())
    other = sw.standard(expectation=sw.expectation())
    emp = sw.t.employees["a-n1"]
    sw.put("std_audit", [90] * 3, employee=emp, standard=std)
    sw.put("points", [30], employee=emp, standard=std)
    sw.put("std_audit", [40] * 3, employee=emp, standard=other)

    per_employee = compute(sw, scope="employee", scope_id=emp.pk)[Link.EXECUTION_INCENTIVE]
    assert per_employee.inputs["members"] == "standard"
    assert per_employee.inputs["correlation"]["m"] == 2
    assert kinds(per_employee)["too_few_members"] == [None]
    assert per_employee.value is None  # no Critical standards, too few members: nothing to say

    org = compute(sw, scope="organization", scope_id=0)[Link.EXECUTION_INCENTIVE]
    assert org.inputs["members"] == "location"


def test_overall_is_the_link_weighted_mean_and_only_as_rankable_as_its_weakest_link(sw):
    sw.settings(
        link_weights={
            "message_expectation": 3,
            "expectation_standard": 1,
            "standard_training": 0,
            "training_execution": 1,
            "execution_incentive": 1,
        },
        min_sample=30,
    )
    std = sw.standard(expectation=sw.expectation(5), message=sw.message())
    sw.questions(std)
    sw.put("std_feedback", [60, 80] * 10, standard=std)  # 20 answers: below the minimum sample

    rows = compute(sw)
    message, coverage = rows[Link.MESSAGE_EXPECTATION], rows[Link.EXPECTATION_STANDARD]
    overall = rows[Link.OVERALL]
    assert rows[Link.TRAINING_EXECUTION].value is None and rows[Link.EXECUTION_INCENTIVE].value is None
    expected = (3 * float(message.value) + 1 * float(coverage.value)) / 4
    assert near(overall.value, expected, places=1)
    assert near(overall.low, (3 * float(message.low) + float(coverage.low)) / 4, places=1)
    assert overall.n == 20 and overall.inputs["rankable"] is False
    assert overall.inputs["links"]["standard_training"]["weight"] == 0
    assert {e["link"] for e in overall.missing} == {"training_execution", "execution_incentive"}


def test_scores_are_stored_once_per_key_and_read_back(sw):
    std = sw.standard(expectation=sw.expectation(), message=sw.message())
    sw.put("std_feedback", [50], standard=std)
    compute(sw)
    compute(sw)
    with tenant_context(sw.org):
        stored = AlignmentScore.objects.filter(scope="location", period="month")
        assert stored.count() == 6
        row = stored.get(link=Link.MESSAGE_EXPECTATION)
    assert row.period_start == dt.date(2025, 3, 1)
    assert row.location_id == sw.t.locations["a-n1"].pk and row.region_id == sw.t.regions["north"].pk
    assert row.value == Decimal("50.00") and row.low == Decimal("0.00") and row.high == Decimal("100.00")
