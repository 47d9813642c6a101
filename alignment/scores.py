"""Alignment link scores: five links and an overall score (0-100) per scope and period.

Scopes: the organization, each region, location, team (its members now) and employee. Periods:
day, ISO week (from Monday), month, quarter, in the organization's local dates. Every score is
stored as an :class:`~alignment.models.AlignmentScore` with ``inputs`` (the figures that went
in), ``missing`` (what is absent), a 95 % interval ``low``-``high``, ``n`` (the data points it
rests on) and ``inputs["rankable"]``. Scores read the rollup (alignment.rollups) and small
reference tables, never raw responses; statistics are in alignment.score_math, gathering in
alignment.score_inputs. The same text, with formulas, is the "How scores are computed" page.

Weights. ``c(x)`` is the organization's weight of the interaction category a data point came from
(``AlignmentSettings.category_weights``; Critical 2, Stabilizing and Planned 1 by default;
uncategorised 1). ``c(s)`` is the weight of a standard's own category. ``imp(s)`` is the
importance (1-5) of the customer expectation a standard serves (3 when it serves none).
``r(n) = n / (n + 10)`` is the reliability of a figure resting on n points.

1. **Brand message ↔ customer expectations** — do customers perceive what the brand promises?
   For each active standard carrying a brand message, the customers' score on it ``p_s``: the
   mean of the 0-100 points of survey answers linked to it (``std_feedback``), each point weighted
   by ``c(x)``. Link = Σ w_s p_s / Σ w_s with ``w_s = imp(s) · r(n_s)``: the promises customers
   care most about count most, and a standard with few answers counts less. Missing: messages no
   standard carries, such standards with no survey question, no expectation, or no answers here.
2. **Customer expectations ↔ service standards** — coverage, a census (no sampling error):
   ``A`` = importance-weighted share of expectations with at least one active standard;
   ``B`` = Σ v_s m_s / Σ v_s over active standards, ``m_s`` = ½ [asked by a question of an
   active survey's current version] + ½ [scored by an item of an audit or monitoring form's
   current version], ``v_s = c(s) · imp(s)``. Link = (A + B) / 2. The same for every scope.
3. **Service standards ↔ training** — the mean of three parts: ``C`` = share of active standards
   (weighted by c(s)) with a published lesson (census); ``G`` = share of gaps found here in the
   period (learning gap triggers) that led to training — assigned, or skipped because the lesson
   was already open or just done (the cooldown) — the held-out control group left out; ``T`` =
   share of lesson completions on a standard that were on time (rollup ``lesson_std`` top/bottom),
   weighted by c(s). G and T carry Wilson intervals; the link's bounds are the mean of the parts'.
4. **Training ↔ execution** — did execution on a standard improve after training on it? For each
   standard with lessons completed here in the *previous* period, execution (audit, monitoring
   and survey points on it, weighted by c(x)) in the period *before that* vs *this* period, as
   the common-language effect size ``CL_s = Φ((Δ_s - d_s) / √(s_a² + s_b²))`` (50 = no change,
   100 = every point after beats every point before), where ``d_s`` is the drift the learning
   app's holdout control groups show on the standard (LessonEffect ``control_change``, weighted
   by control cases; scores after a gap drift up on their own) and 0 without enough controls.
   Link = Σ w_s CL_s / Σ w_s, ``w_s = c(s) · r(n_s)``, SEs propagated. Needs ≥ 2 points each
   side. Lessons the learning app found ineffective on these standards are listed as missing.
5. **Execution ↔ incentives** — do rewards go where execution is good? The mean of ``R`` =
   50 · (1 + rho), rho = Spearman's rank correlation, across the scope's members, between execution
   (mean of audit, monitoring and survey points, weighted by c(x); ≥ 3 points) and points awarded
   in the period — members are locations (points per current employee) for the organization and
   regions, employees for locations and teams, standards for one employee — needing ≥ 5 members,
   with a Fisher-z interval; and ``K`` = share of active Critical standards with an active reward
   rule in effect during the period (census).

**Overall** = Σ λ_l L_l / Σ λ_l over the links that have a value, λ = ``link_weights``; its
bounds are the same weighted mean of the links' bounds, and its n is the smallest n among the
sampled links: it is rankable only when every link in it is.

**Minimum sample.** A score whose n is below ``AlignmentSettings.min_sample`` is stored with its
(wide) interval and ``rankable = false``: shown, never ranked. Census figures are exact and
rankable. A score with no data has no value and says why in ``missing``.

**Incremental.** :func:`recompute_touched` is called with the (day, location, employee) keys
rollup changes touched — queued by the rollup handlers in the change's transaction and drained
after it commits (alignment.score_queue) — and recomputes only those scopes (the location, its
region, the employee, their current team, the organization) in the periods holding each day — and
refreshes those scopes' existing scores in the two following periods (link 4 reads the two
periods before its own; none are created there for a scope with no data in them).
Its queries depend on the keys, not on history (score_inputs.gather_touched). A transaction
advisory lock per organization orders concurrent recomputes, so the later one reads the earlier
one's rollup change. When an overall score crosses ``alert_threshold`` (from below to at-or-above
or back) ``AlignmentThresholdCrossed`` is written to the outbox in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from alignment import score_inputs as si
from alignment import score_periods as periods
from alignment.models import AlignmentScore, Link, Measure
from alignment.score_math import (
    MIN_MEMBERS,
    NONE,
    Agg,
    Estimate,
    combine_bounds,
    combine_independent,
    common_language,
    exact,
    proportion,
    reliability,
    spearman,
    weighted_mean,
)
from alignment.score_selectors import GROUPED, MISSING_IDS
from alignment.score_settings import settings_for
from cem.events import emit
from cem.models import Employee, InteractionCategory, Team
from cem.services import _check_tenant
from learning.effectiveness import MIN_CONTROL

EVENT = "AlignmentThresholdCrossed"
LINKS = [link for link in Link.values if link != Link.OVERALL]
NEUTRAL_IMPORTANCE = 3
MIN_MEMBER_POINTS = 3
MISSING_CAP = 50  # listed per kind; the rest are counted
_LOCK_SPACE = 0x41_4C_47  # "ALG": the advisory-lock namespace of score recomputes
_TWO = Decimal("0.01")


@dataclass
class Result:
    link: str
    estimate: Estimate
    inputs: dict
    missing: list[dict]


class _Missing(list):
    """Missing pieces. Lists of reference rows (score_selectors.GROUPED) become one entry per kind
    holding their ids; other kinds are listed one by one, at most MISSING_CAP of each."""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, int] = defaultdict(int)
        self.groups: dict[str, list] = {}

    def add(self, kind: str, label: str = "", id=None, **extra) -> None:
        self.counts[kind] += 1
        if kind in GROUPED:
            self.groups.setdefault(kind, []).append(id)
        elif self.counts[kind] <= MISSING_CAP:
            self.append({"kind": kind, "id": id, "label": label, **extra})

    def done(self) -> list[dict]:
        out = [
            {
                "kind": kind,
                "ids": ids[:MISSING_IDS],
                "count": len(ids),
                "label": f"{len(ids)} {GROUPED[kind][1]}",
            }
            for kind, ids in self.groups.items()
        ]
        out += list(self)
        for kind, n in self.counts.items():
            if kind not in GROUPED and n > MISSING_CAP:
                out.append({"kind": kind, "id": None, "label": "", "more": n - MISSING_CAP})
        return out


def _r(x, places=2):
    return None if x is None else round(float(x), places)


def _est(e: Estimate) -> dict:
    return {"value": _r(e.value), "low": _r(e.low), "high": _r(e.high), "n": int(e.n)}


def _std_label(ref: si.Reference, std_id) -> str:
    std = ref.standards.get(std_id)
    return f"{std.code} {std.title}" if std else str(std_id)


def _execution(ref: si.Reference, sums: dict[tuple, Agg], std_id) -> Estimate:
    return weighted_mean(
        (ref.category_weight(cat), agg)
        for (std, cat, measure), agg in sums.items()
        if std == std_id and measure in si.EXECUTION
    )


# --- the five links ------------------------------------------------------------------------------


def _message_structure(ref: si.Reference) -> tuple[list, list[tuple[str, int]]]:
    """Standards carrying a brand message, and the link's structural gaps (the same for every scope)."""
    if "message" not in ref.memo:
        promised = [s for s in ref.standards.values() if s.brand_message_id]
        carried = {s.brand_message_id for s in promised}
        gaps = [
            ("message_without_standard", pk)
            for pk, _title in sorted(ref.brand_messages.items(), key=lambda kv: kv[1])
            if pk not in carried
        ]
        for s in promised:
            if s.id not in ref.question_standards:
                gaps.append(("standard_without_question", s.id))
            if ref.importance(s.id) is None:
                gaps.append(("standard_without_expectation", s.id))
        ref.memo["message"] = (promised, gaps)
    return ref.memo["message"]


def link_message(ref: si.Reference, sd: si.ScopeData) -> Result:
    missing = _Missing()
    promised, gaps = _message_structure(ref)
    for kind, pk in gaps:
        missing.add(kind, id=pk)
    answers = defaultdict(list)
    for (std, cat, measure), agg in sd.std[0].items():
        if measure == Measure.STD_FEEDBACK and std is not None:
            answers[std].append((ref.category_weight(cat), agg))
    parts, rows = [], []
    for s in promised:
        importance = ref.importance(s.id) or NEUTRAL_IMPORTANCE
        perceived = weighted_mean(answers.get(s.id, ()))
        if not perceived.ok:
            missing.add("standard_without_feedback", id=s.id)
            continue
        weight = importance * reliability(perceived.n_eff)
        parts.append((weight, perceived))
        rows.append(
            {
                "standard": s.id,
                "importance": importance,
                "perceived": _r(perceived.value),
                "low": _r(perceived.low),
                "high": _r(perceived.high),
                "n": int(perceived.n),
                "weight": _r(weight, 3),
            }
        )
    estimate = combine_independent(parts)
    return Result(Link.MESSAGE_EXPECTATION, estimate, {"standards": rows}, missing.done())


def link_coverage(ref: si.Reference) -> Result:
    """The same for every scope and period: computed once per recompute."""
    if "coverage" not in ref.memo:
        ref.memo["coverage"] = _coverage(ref)
    return ref.memo["coverage"]


def _coverage(ref: si.Reference) -> Result:
    missing = _Missing()
    by_expectation = defaultdict(list)
    for s in ref.standards.values():
        if s.expectation_id is not None:
            by_expectation[s.expectation_id].append(s.id)
    covered_weight = total_weight = 0.0
    covered = 0
    for pk, (_name, importance) in sorted(ref.expectations.items(), key=lambda kv: kv[1][0]):
        total_weight += importance
        if by_expectation.get(pk):
            covered_weight += importance
            covered += 1
        else:
            missing.add("expectation_without_standard", id=pk)
    measured_weight = standards_weight = 0.0
    with_question = with_item = 0
    for s in ref.standards.values():
        asked = s.id in ref.question_standards
        scored = s.id in ref.audit_standards or s.id in ref.monitoring_standards
        with_question += asked
        with_item += scored
        if not asked:
            missing.add("standard_without_question", id=s.id)
        if not scored:
            missing.add("standard_without_item", id=s.id)
        if s.expectation_id is None:
            missing.add("standard_without_expectation", id=s.id)
        weight = ref.category_weight(s.category) * (ref.importance(s.id) or NEUTRAL_IMPORTANCE)
        standards_weight += weight
        measured_weight += weight * (int(asked) + int(scored)) / 2
    share_a = covered_weight / total_weight if total_weight else None
    share_b = measured_weight / standards_weight if standards_weight else None
    shares = [x for x in (share_a, share_b) if x is not None]
    value = 100 * sum(shares) / len(shares) if shares else None
    inputs = {
        "expectations": {
            "total": len(ref.expectations),
            "covered": covered,
            "share": _r(share_a and 100 * share_a),
        },
        "standards": {
            "total": len(ref.standards),
            "with_question": with_question,
            "with_item": with_item,
            "share": _r(share_b and 100 * share_b),
        },
    }
    return Result(
        Link.EXPECTATION_STANDARD,
        exact(value, len(ref.expectations) + len(ref.standards)),
        inputs,
        missing.done(),
    )


def _lesson_coverage(ref: si.Reference) -> tuple[Estimate, list[int]]:
    if "lessons" not in ref.memo:
        with_lesson_weight = all_weight = 0.0
        without = []
        for s in ref.standards.values():
            weight = ref.category_weight(s.category)
            all_weight += weight
            if ref.lesson_counts.get(s.id):
                with_lesson_weight += weight
            else:
                without.append(s.id)
        value = 100 * with_lesson_weight / all_weight if all_weight else None
        ref.memo["lessons"] = (exact(value, len(ref.standards)), without)
    return ref.memo["lessons"]


def link_training(ref: si.Reference, sd: si.ScopeData) -> Result:
    missing = _Missing()
    coverage, without = _lesson_coverage(ref)
    for pk in without:
        missing.add("standard_without_lesson", id=pk)
    gaps = sd.gaps
    followed = gaps.assigned + gaps.in_flight
    gap_part = proportion([(1.0, followed, followed + gaps.not_followed)])
    if gaps.not_followed:
        for reason, n in sorted(gaps.reasons.items(), key=lambda kv: -kv[1]):
            missing.add("gap_not_followed", reason, None, count=n)
    on_time = proportion(
        (ref.standard_weight(std), agg.top, agg.top + agg.bottom)
        for (std, _cat, measure), agg in sd.std[0].items()
        if measure == Measure.LESSON_STD and std is not None
    )
    late = sum(
        agg.bottom for (std, _c, measure), agg in sd.std[0].items() if measure == Measure.LESSON_STD and std
    )
    if late:
        missing.add("late_completions", "", None, count=int(late))
    estimate = combine_bounds([(1.0, coverage), (1.0, gap_part), (1.0, on_time)], weakest=False)
    inputs = {
        "lesson_coverage": _est(coverage),
        "gaps": {
            **_est(gap_part),
            "assigned": gaps.assigned,
            "in_flight": gaps.in_flight,
            "not_followed": gaps.not_followed,
            "holdout": gaps.holdout,
        },
        "on_time": {**_est(on_time), "late": int(late)},
    }
    return Result(Link.STANDARD_TRAINING, estimate, inputs, missing.done())


def _drift(ref: si.Reference, std_id) -> tuple[float, int]:
    """The holdout groups' mean change on a standard (score points) and how many controls show it."""
    weight = total = 0.0
    for effect in ref.effects.get(std_id, ()):
        controls, change = effect["control_n"] or 0, effect["control_change"]
        if controls >= MIN_CONTROL and change is not None:
            weight += controls
            total += controls * change
    return (total / weight if weight else 0.0), int(weight)


def link_execution(ref: si.Reference, sd: si.ScopeData) -> Result:
    missing = _Missing()
    trained = defaultdict(float)
    for (std, _cat, measure), agg in sd.std[1].items():
        if measure == Measure.LESSON_STD and std in ref.standards:
            trained[std] += agg.n
    if not trained:
        missing.add("no_training", "", None)
        return Result(Link.TRAINING_EXECUTION, NONE, {"standards": []}, missing.done())
    parts, rows = [], []
    for std in sorted(trained, key=lambda s: ref.standards[s].code):
        label = _std_label(ref, std)
        before = _execution(ref, sd.std[2], std)
        after = _execution(ref, sd.std[0], std)
        drift, controls = _drift(ref, std)
        for effect in ref.effects.get(std, ()):
            if effect["verdict"] == "ineffective":
                missing.add(
                    "ineffective_lesson", effect["lesson__title"], effect["lesson_id"], standard=label
                )
        effect_size = common_language(before, after, drift)
        row = {
            "standard": std,
            "completions": int(trained[std]),
            "before": _r(before.value),
            "before_n": int(before.n),
            "after": _r(after.value),
            "after_n": int(after.n),
            "drift": _r(drift),
            "controls": controls,
        }
        if not effect_size.ok:
            missing.add("execution_too_thin", label, std, before_n=int(before.n), after_n=int(after.n))
            rows.append(row)
            continue
        weight = ref.standard_weight(std) * reliability(effect_size.n_eff)
        parts.append((weight, effect_size))
        rows.append(
            {**row, "effect": _r(effect_size.value), "low": _r(effect_size.low), "high": _r(effect_size.high)}
        )
    return Result(Link.TRAINING_EXECUTION, combine_independent(parts), {"standards": rows}, missing.done())


def _members(ref: si.Reference, scope: si.Scope, sd: si.ScopeData) -> tuple[str, list[dict]]:
    """(what members are, [{id, execution estimate, points}]) of a scope's correlation."""
    kind = scope[0]
    out = []
    if kind == si.EMPLOYEE:
        by_std = defaultdict(dict)
        for (std, cat, measure), agg in sd.std[0].items():
            if std is not None and measure in si.MEMBER_MEASURES:
                by_std[std].setdefault((cat, measure), Agg()).merge(agg)
        sums_by_member, what = by_std, "standard"
    else:
        sums_by_member = sd.members
        what = "location" if kind in (si.ORG, si.REGION) else "employee"
    for member, sums in sorted(sums_by_member.items()):
        execution = weighted_mean(
            (ref.category_weight(cat), agg) for (cat, measure), agg in sums.items() if measure in si.EXECUTION
        )
        if not execution.ok or execution.n < MIN_MEMBER_POINTS:
            continue
        points = sum(agg.total for (_cat, measure), agg in sums.items() if measure == Measure.POINTS)
        if what == "location":
            points = points / max(ref.headcount.get(member, 1), 1)
        out.append({"id": member, "execution": execution, "points": points})
    return what, out


def _rule_coverage(ref: si.Reference, kind: str, start: dt.date) -> tuple[Estimate, int, list[int]]:
    """(share of active Critical standards with a reward rule in effect in the period, how many
    Critical standards, those without), once per period."""
    key = ("rules", kind, start)
    if key not in ref.memo:
        critical = [s.id for s in ref.standards.values() if s.category == InteractionCategory.CRITICAL]
        ruled = ref.rules_in(start, periods.end_of(kind, start))
        unruled = [pk for pk in critical if pk not in ruled]
        value = 100 * (len(critical) - len(unruled)) / len(critical) if critical else None
        ref.memo[key] = (exact(value, len(critical)), len(critical), unruled)
    return ref.memo[key]


def link_incentives(
    ref: si.Reference, scope: si.Scope, sd: si.ScopeData, kind: str, start: dt.date
) -> Result:
    missing = _Missing()
    what, members = _members(ref, scope, sd)
    xs = [m["execution"].value for m in members]
    ys = [m["points"] for m in members]
    rho, low, high = spearman(xs, ys)
    if len(members) < MIN_MEMBERS:
        missing.add("too_few_members", what, None, members=len(members), needed=MIN_MEMBERS)
        correlation = NONE
    elif rho is None:
        missing.add("no_spread", what, None, members=len(members))
        correlation = NONE
    else:
        correlation = Estimate(
            50 * (1 + rho),
            50 * (1 + low),
            50 * (1 + high),
            sum(m["execution"].n for m in members),
            se=25 * (high - low) / 1.96,
        )
    coverage, critical, unruled = _rule_coverage(ref, kind, start)
    for pk in unruled:
        missing.add("critical_without_rule", id=pk)
    inputs = {
        "members": what,
        "correlation": {
            **_est(correlation),
            "rho": _r(rho, 3),
            "rho_low": _r(low, 3),
            "rho_high": _r(high, 3),
            "m": len(members),
        },
        "pairs": [
            [m["id"], _r(m["execution"].value), int(m["execution"].n), _r(m["points"])] for m in members[:200]
        ],
        "critical_coverage": {
            **_est(coverage),
            "critical": critical,
            "with_rule": critical - len(unruled),
        },
    }
    estimate = combine_bounds([(1.0, correlation), (1.0, coverage)], weakest=False)
    return Result(Link.EXECUTION_INCENTIVE, estimate, inputs, missing.done())


def rankable(estimate: Estimate, min_sample: int) -> bool:
    return estimate.ok and (estimate.exact or estimate.n >= min_sample)


def overall(ref: si.Reference, results: list[Result]) -> Result:
    weights = ref.settings.link_weights or {}
    min_sample = ref.settings.min_sample
    parts, rows, missing = [], {}, _Missing()
    for res in results:
        weight = float(weights.get(res.link, 1.0))
        rows[res.link] = {
            **_est(res.estimate),
            "weight": weight,
            "rankable": rankable(res.estimate, min_sample),
        }
        if not res.estimate.ok:
            missing.add("link_without_value", Link(res.link).label, None, link=res.link)
        elif weight > 0:
            parts.append((weight, res.estimate))
    return Result(Link.OVERALL, combine_bounds(parts, weakest=True), {"links": rows}, missing.done())


def compute(ref: si.Reference, scope: si.Scope, kind: str, start: dt.date, sd: si.ScopeData) -> list[Result]:
    links = [
        link_message(ref, sd),
        link_coverage(ref),
        link_training(ref, sd),
        link_execution(ref, sd),
        link_incentives(ref, scope, sd, kind, start),
    ]
    return [*links, overall(ref, links)]


# --- storing -------------------------------------------------------------------------------------


def _dec(x) -> Decimal | None:
    return None if x is None else Decimal(str(round(float(x), 4))).quantize(_TWO, rounding=ROUND_HALF_UP)


def _place(ref: si.Reference, scope: si.Scope) -> dict:
    kind, pk = scope
    place = {"region_id": None, "location_id": None, "team_id": None, "employee_id": None}
    if kind == si.REGION:
        place["region_id"] = pk
    elif kind == si.LOCATION:
        place.update(location_id=pk, region_id=ref.region_of.get(pk))
    elif kind == si.TEAM:
        loc = ref.team_location.get(pk)
        place.update(team_id=pk, location_id=loc, region_id=ref.region_of.get(loc))
    elif kind == si.EMPLOYEE:
        loc, team = ref.employees.get(pk, (None, None))
        place.update(employee_id=pk, location_id=loc, team_id=team, region_id=ref.region_of.get(loc))
    return place


def _rows(ref, scope, kind, start, results: list[Result], now) -> list[AlignmentScore]:
    out = []
    place = _place(ref, scope)
    min_sample = ref.settings.min_sample
    for res in results:
        e = res.estimate
        inputs = {
            **res.inputs,
            "rankable": rankable(e, min_sample),
            "exact": bool(e.exact),
            "min_sample": min_sample,
        }
        out.append(
            AlignmentScore(
                organization_id=ref.org_id,
                scope=scope[0],
                scope_id=scope[1],
                period=kind,
                period_start=start,
                link=res.link,
                value=_dec(e.value),
                low=_dec(e.low),
                high=_dec(e.high),
                n=int(e.n),
                inputs=inputs,
                missing=res.missing,
                computed_at=now,
                **place,
            )
        )
    return out


_UPSERT_VALUES = """
INSERT INTO alignment_alignmentscore
    (organization_id, scope, scope_id, region_id, location_id, team_id, employee_id, period, period_start,
     link, value, low, high, n, inputs, missing, computed_at)
VALUES {values}
ON CONFLICT (organization_id, scope, scope_id, period, period_start, link)
DO UPDATE SET region_id = EXCLUDED.region_id, location_id = EXCLUDED.location_id, team_id = EXCLUDED.team_id,
              employee_id = EXCLUDED.employee_id, value = EXCLUDED.value, low = EXCLUDED.low,
              high = EXCLUDED.high, n = EXCLUDED.n, inputs = EXCLUDED.inputs, missing = EXCLUDED.missing,
              computed_at = EXCLUDED.computed_at
"""
_VALUES_ROW = "(%s, %s, %s, %s, %s, %s, %s, %s, %s::date, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s)"
_LOAD_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS alignment_score_load (
    organization_id bigint, scope varchar(12), scope_id bigint, region_id bigint, location_id bigint,
    team_id bigint, employee_id bigint, period varchar(8), period_start date, link varchar(24),
    value numeric(6, 2), low numeric(6, 2), high numeric(6, 2), n integer, inputs jsonb, missing jsonb,
    computed_at timestamptz
) ON COMMIT DELETE ROWS
"""
_COPY = """
COPY alignment_score_load
    (organization_id, scope, scope_id, region_id, location_id, team_id, employee_id, period, period_start,
     link, value, low, high, n, inputs, missing, computed_at)
FROM STDIN
"""
_UPSERT_LOADED = """
INSERT INTO alignment_alignmentscore
    (organization_id, scope, scope_id, region_id, location_id, team_id, employee_id, period, period_start,
     link, value, low, high, n, inputs, missing, computed_at)
SELECT organization_id, scope, scope_id, region_id, location_id, team_id, employee_id, period, period_start,
       link, value, low, high, n, inputs, missing, computed_at
  FROM alignment_score_load
 ORDER BY scope, scope_id, period, period_start, link
ON CONFLICT (organization_id, scope, scope_id, period, period_start, link)
DO UPDATE SET region_id = EXCLUDED.region_id, location_id = EXCLUDED.location_id, team_id = EXCLUDED.team_id,
              employee_id = EXCLUDED.employee_id, value = EXCLUDED.value, low = EXCLUDED.low,
              high = EXCLUDED.high, n = EXCLUDED.n, inputs = EXCLUDED.inputs, missing = EXCLUDED.missing,
              computed_at = EXCLUDED.computed_at
"""
# Above this many rows (a full recompute) COPY into a scratch table and upsert from it in one
# statement; an event's few hundred go as one VALUES list.
COPY_FROM = 2000


def _upsert(rows: list[AlignmentScore]) -> None:
    """Insert or update the rows by their key (Django's bulk_create quoted the JSON inside arrays
    character by character: most of a full recompute's time)."""
    params = [
        (
            r.organization_id,
            r.scope,
            r.scope_id,
            r.region_id,
            r.location_id,
            r.team_id,
            r.employee_id,
            r.period,
            r.period_start,
            r.link,
            r.value,
            r.low,
            r.high,
            r.n,
            json.dumps(r.inputs, cls=DjangoJSONEncoder),
            json.dumps(r.missing, cls=DjangoJSONEncoder),
            r.computed_at,
        )
        for r in rows
    ]
    with connection.cursor() as cur:
        if len(params) < COPY_FROM:
            values = ", ".join([_VALUES_ROW] * len(params))
            cur.execute(_UPSERT_VALUES.format(values=values), [v for row in params for v in row])
            return
        cur.execute(_LOAD_TABLE)
        cur.execute("DELETE FROM alignment_score_load")
        with cur.cursor.copy(_COPY) as copy:
            for row in params:
                copy.write_row(row)
        cur.execute(_UPSERT_LOADED)


def _ids(rows: list[AlignmentScore]) -> None:
    """Set the ids of stored rows (one query)."""
    if not rows:
        return
    by_key = {(r.scope, r.scope_id, r.period, r.period_start, r.link): r for r in rows}
    found = AlignmentScore.objects.filter(
        period_start__in=sorted({r.period_start for r in rows}),
        scope_id__in=sorted({r.scope_id for r in rows}),
        link__in=sorted({r.link for r in rows}),
    ).values_list("pk", "scope", "scope_id", "period", "period_start", "link")
    for pk, *key in found:
        row = by_key.get(tuple(key))
        if row is not None:
            row.pk = pk


# LATERAL with LIMIT 1: one probe of the unique key per wanted key, whatever the planner's
# statistics (just after a full recompute it took the table for empty and scanned every overall
# score of the organization instead).
_OVERALL_OF_KEYS = """
SELECT k.scope, k.scope_id, k.period, k.period_start, s.value
  FROM unnest(%s::text[], %s::bigint[], %s::text[], %s::date[]) AS k (scope, scope_id, period, period_start)
 CROSS JOIN LATERAL (
       SELECT value FROM alignment_alignmentscore
        WHERE organization_id = %s AND scope = k.scope AND scope_id = k.scope_id AND period = k.period
          AND period_start = k.period_start AND link = %s
        LIMIT 1
       ) s
"""


def _previous_overall(org_id: int, keys: set[tuple]) -> dict[tuple, Decimal | None]:
    """Stored overall values of (scope, scope_id, period, period_start) keys, in one query that
    looks each key up in the score key's unique index (a filter by each column's set of values
    read every employee's score of those periods: the slowest query of an event's recompute)."""
    if not keys:
        return {}
    scopes, ids, kinds, starts = zip(*sorted(keys), strict=True)
    params = [[str(s) for s in scopes], list(ids), [str(k) for k in kinds], list(starts)]
    with connection.cursor() as cur:
        cur.execute(_OVERALL_OF_KEYS, [*params, org_id, Link.OVERALL.value])
        return {tuple(r[:4]): r[4] for r in cur.fetchall()}


def _stored_scopes(org_id: int, candidates: dict[tuple[str, dt.date], set]) -> dict[tuple[str, dt.date], set]:
    """Of (period -> scopes), those that already have scores (one query, a key probe each): a later
    period's scores are refreshed where they exist, never created for a scope with no data in it."""
    keys = {(scope, pk, kind, start) for (kind, start), scopes in candidates.items() for scope, pk in scopes}
    found = defaultdict(set)
    for scope, pk, kind, start in _previous_overall(org_id, keys):
        found[(kind, start)].add((scope, pk))
    return found


def _save(ref: si.Reference, rows: list[AlignmentScore]) -> list[AlignmentScore]:
    """Upsert the rows; raise AlignmentThresholdCrossed for overall scores that crossed."""
    if not rows:
        return []
    overall_rows = [r for r in rows if r.link == Link.OVERALL]
    previous = _previous_overall(
        ref.org_id, {(r.scope, r.scope_id, r.period, r.period_start) for r in overall_rows}
    )
    _upsert(rows)
    threshold = Decimal(ref.settings.alert_threshold)
    crossed = []
    for row in overall_rows:
        before = previous.get((row.scope, row.scope_id, row.period, row.period_start))
        if before is not None and row.value is not None and (before < threshold) != (row.value < threshold):
            crossed.append((row, before))
    _ids([row for row, _ in crossed])
    for row, before in crossed:
        emit(
            organization=ref.org_id,
            event_type=EVENT,
            payload={
                "score_id": row.pk,
                "scope": row.scope,
                "scope_id": row.scope_id,
                "location_id": row.location_id,
                "region_id": row.region_id,
                "period": row.period,
                "period_start": row.period_start.isoformat(),
                "value": str(row.value),
                "previous": str(before),
                "threshold": str(threshold),
                "direction": "below" if row.value < threshold else "above",
                "rankable": row.inputs.get("rankable", False),
            },
            aggregate=row,
        )
    return rows


def lock(org_id: int) -> None:
    """The organization's recompute lock (transaction-scoped): recomputes run one after another."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_SPACE, org_id])


def _reference(org_id: int) -> si.Reference:
    return si.reference(org_id, settings_for(org_id))


def _compute_periods(ref: si.Reference, wanted: dict[tuple[str, dt.date], set], now) -> list[AlignmentScore]:
    rows = []
    for (kind, start), scopes in sorted(
        wanted.items(), key=lambda kv: (periods.KINDS.index(kv[0][0]), kv[0][1])
    ):
        data = si.gather_touched(ref, kind, start, scopes)
        for scope in sorted(data, key=lambda s: (s[0], s[1])):
            rows += _rows(ref, scope, kind, start, compute(ref, scope, kind, start, data[scope]), now)
    return rows


@transaction.atomic
def recompute_touched(org, touched: Iterable[tuple]) -> list[AlignmentScore]:
    """Recompute the scores of the scopes and periods a rollup change touched (see the module doc).

    ``touched``: (local day as ISO text or a date, location id, employee id) keys.
    """
    org_id = _check_tenant(org)
    touched = {(dt.date.fromisoformat(d) if isinstance(d, str) else d, loc, emp) for d, loc, emp in touched}
    if not touched:
        return []
    lock(org_id)
    ref = _reference(org_id)
    si.load_people(ref, {emp for _, _, emp in touched if emp})
    today = timezone.now().astimezone(ref.tz).date()
    wanted: dict[tuple[str, dt.date], set] = defaultdict(set)
    later: dict[tuple[str, dt.date], set] = defaultdict(set)
    for day, loc, emp in touched:
        scopes = si._scopes_of_row(ref, loc, emp)
        for kind, start in periods.periods_containing(day):
            wanted[(kind, start)].update(scopes)
            for step in (1, 2):  # link 4 of the next two periods reads this one
                following = periods.shift(kind, start, step)
                if following <= today:
                    later[(kind, following)].update(scopes)
    for key, scopes in _stored_scopes(org_id, later).items():
        wanted[key].update(scopes)
    return _save(ref, _compute_periods(ref, dict(wanted), timezone.now()))


@transaction.atomic
def recompute(org, scope: str, scope_id: int, period: str, period_start: dt.date) -> list[AlignmentScore]:
    """Recompute one scope's scores in one period (its six rows)."""
    org_id = _check_tenant(org)
    lock(org_id)
    ref = _reference(org_id)
    if scope == si.EMPLOYEE:
        si.load_people(ref, [scope_id])
    elif scope == si.TEAM:
        si.load_people(ref, Employee.objects.filter(current_team_id=scope_id).values_list("pk", flat=True))
        ref.team_location.update(dict(Team.objects.filter(pk=scope_id).values_list("id", "location_id")))
    key = (scope, 0 if scope == si.ORG else scope_id)
    start = periods.start_of(period, period_start)
    return _save(ref, _compute_periods(ref, {(period, start): {key}}, timezone.now()))


def recompute_all(org, *, since: dt.date | None = None) -> int:
    """Recompute every scope with data in every period (from the periods holding ``since``, if given).

    Walks each period kind in order, one grouped rollup query per period (score_inputs.gather_all),
    handing each period's sums on to the next two for link 4 (starting two periods early to have
    them). Scores of scopes and periods that no longer have data are deleted. Returns the number
    of rows written.
    """
    org_id = _check_tenant(org)
    written = 0
    with transaction.atomic():
        lock(org_id)
        ref = _reference(org_id)
        si.load_people(ref)
        now = timezone.now()
        span = si.data_range(org_id)
        stale = Q()
        for kind in periods.KINDS:
            first = periods.start_of(kind, since) if since else None
            stale |= Q(period=kind, period_start__gte=first) if first else Q(period=kind)
            if span is None:
                continue
            keep_from = first or periods.start_of(kind, span[0])
            previous: list[dict] = []
            for start in periods.periods_between(kind, periods.shift(kind, keep_from, -2), span[1]):
                data = si.gather_all(ref, kind, start, previous)
                if start >= keep_from and data:
                    rows = []
                    for scope in sorted(data):
                        rows += _rows(
                            ref, scope, kind, start, compute(ref, scope, kind, start, data[scope]), now
                        )
                    written += len(_save(ref, rows))
                previous = [data, *previous][:2]
        AlignmentScore.objects.filter(stale, computed_at__lt=now).delete()
    return written
