"""Lesson effectiveness, the data side: gather every gap-triggered case of each lesson, read the
standard's scores around it set-based, and store the figures (:class:`LessonEffect`).

The statistics are pure functions in learning/effectiveness.py (its docstring is the method).
Here, for each (lesson, standard) of a gap rule:

- treated cases are the rule's ``assigned`` triggers with at least one completed assignment of
  the lesson; the reference time is the (median) completion;
- control cases are the rule's ``holdout`` triggers; their reference time is the trigger time
  plus the treated cases' median trigger → completion delay, and their "after" window stops when
  the holdout ends (from then on they may be trained, so they are no longer a control);
- a case's windows are the rule's ``window_days`` before and after the reference time, on the
  rule's subject (employee, location or team) and sources (feedback, audits or both).

Scores are read per standard in one query per source for all subjects and the whole time range
(``standard_point_series`` in feedback and audits selectors), never per case. Computing runs in a
Celery task (learning/analytics_tasks.py), hourly and on demand, never in a page request.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from audits import selectors as audit_selectors
from cem.tenancy import current_tenant_id
from feedback import selectors as feedback_selectors
from learning import effectiveness
from learning.models import Assignment, GapRule, GapTrigger, LessonEffect

R = GapRule
FEEDBACK = "feedback"
AUDITS = "audits"
SOURCES = {
    R.Source.ANY: (FEEDBACK, AUDITS),
    R.Source.FEEDBACK: (FEEDBACK,),
    R.Source.AUDITS: (AUDITS,),
}


@dataclass
class Case:
    subject: str  # GapRule.Subject
    subject_id: int
    sources: tuple[str, ...]
    window: dt.timedelta
    triggered_at: dt.datetime
    reference: dt.datetime | None = None
    after_end: dt.datetime | None = None  # the holdout's end for control cases

    @property
    def key(self) -> tuple[str, int]:
        return (self.subject, self.subject_id)


def _subject_id(subject, employee_id, location_id, team_id):
    return {R.Subject.EMPLOYEE: employee_id, R.Subject.LOCATION: location_id, R.Subject.TEAM: team_id}.get(
        subject
    )


def _median_time(times: list[dt.datetime]) -> dt.datetime:
    times = sorted(times)
    return times[(len(times) - 1) // 2]


def gather_cases(now: dt.datetime) -> dict[tuple[int, int], dict]:
    """{(lesson_id, standard_id): {"treated": [Case], "control": [Case], "delay": timedelta}} for
    every lesson with a gap rule (pairs without cases too). Three queries, whatever the history."""
    pairs: dict[tuple[int, int], dict] = {
        pair: {"treated": [], "control": [], "delay": None}
        for pair in GapRule.objects.filter(lesson__isnull=False)
        .order_by()
        .values_list("lesson_id", "standard_id")
        .distinct()
    }
    # Treated: assigned (not held-out) triggers whose assignment of the rule's lesson was completed.
    completions: dict[int, dict] = {}
    rows = (
        Assignment.objects.filter(
            source=Assignment.Source.RULE,
            status=Assignment.Status.COMPLETED,
            completed_at__isnull=False,
            completed_at__lte=now,
            lesson__isnull=False,
            trigger__outcome=GapTrigger.Outcome.ASSIGNED,
        )
        .order_by()
        .values_list(
            "trigger_id",
            "lesson_id",
            "trigger__rule__lesson_id",
            "trigger__standard_id",
            "trigger__subject",
            "trigger__employee_id",
            "trigger__location_id",
            "trigger__team_id",
            "trigger__created_at",
            "trigger__rule__source",
            "trigger__rule__window_days",
            "completed_at",
        )
    )
    for trig, lesson, rule_lesson, std, subject, emp, loc, team, created, source, window, done in rows:
        if lesson != rule_lesson or (lesson, std) not in pairs:
            continue
        entry = completions.get(trig)
        if entry is None:
            sid = _subject_id(subject, emp, loc, team)
            if sid is None:
                continue
            case = Case(subject, sid, SOURCES[source], dt.timedelta(days=window), created)
            entry = completions[trig] = {"pair": (lesson, std), "case": case, "times": []}
        entry["times"].append(done)
    for entry in completions.values():
        case = entry["case"]
        case.reference = _median_time(entry["times"])
        pairs[entry["pair"]]["treated"].append(case)
    for data in pairs.values():
        delays = [c.reference - c.triggered_at for c in data["treated"]]
        data["delay"] = statistics.median_low(delays) if delays else dt.timedelta(0)
    # Control: the held-out triggers, measured over the same stretch after the gap was found.
    holdouts = (
        GapTrigger.objects.filter(
            outcome=GapTrigger.Outcome.HOLDOUT, rule__lesson__isnull=False, created_at__lte=now
        )
        .order_by()
        .values_list(
            "rule__lesson_id",
            "standard_id",
            "subject",
            "employee_id",
            "location_id",
            "team_id",
            "created_at",
            "rule__source",
            "rule__window_days",
            "holdout_until",
        )
    )
    for lesson, std, subject, emp, loc, team, created, source, window, until in holdouts:
        data = pairs.get((lesson, std))
        sid = _subject_id(subject, emp, loc, team)
        if data is None or sid is None:
            continue
        case = Case(subject, sid, SOURCES[source], dt.timedelta(days=window), created)
        case.reference = created + data["delay"]
        case.after_end = until
        data["control"].append(case)
    return pairs


class Series:
    """A standard's points per subject and source, sorted by time, for window look-ups."""

    def __init__(self):
        self._points: dict[tuple[str, int, str], tuple[list, list]] = {}

    def load(self, source: str, rows, wanted: dict[str, set[int]]) -> None:
        collected: dict[tuple, list] = defaultdict(list)
        for employee_id, location_id, team_id, at, value in rows:
            for kind, sid in (
                (R.Subject.EMPLOYEE, employee_id),
                (R.Subject.LOCATION, location_id),
                (R.Subject.TEAM, team_id),
            ):
                if sid is not None and sid in wanted[kind]:
                    collected[(kind, sid, source)].append((at, value))
        for key, points in collected.items():
            points.sort(key=lambda p: p[0])
            self._points[key] = ([p[0] for p in points], [p[1] for p in points])

    def values(self, case: Case, source: str, start: dt.datetime, end: dt.datetime) -> list[float]:
        times, values = self._points.get((*case.key, source), ((), ()))
        return list(values[bisect.bisect_left(times, start) : bisect.bisect_left(times, end)])

    def change(self, case: Case) -> float | None:
        ref, w = case.reference, case.window
        after_end = ref + w if case.after_end is None else min(ref + w, case.after_end)
        before, after = [], []
        for source in case.sources:
            before += self.values(case, source, ref - w, ref)
            after += self.values(case, source, ref, after_end)
        return effectiveness.window_change(before, after)


def _series_for(standard_id: int, cases: list[Case], now: dt.datetime) -> Series:
    wanted: dict[str, set[int]] = {k: set() for k in R.Subject.values}
    for c in cases:
        wanted[c.subject].add(c.subject_id)
    since = min(c.reference - c.window for c in cases)
    until = min(max(c.reference + c.window for c in cases), now + dt.timedelta(seconds=1))
    args = {
        "standard_id": standard_id,
        "since": since,
        "until": until,
        "employee_ids": wanted[R.Subject.EMPLOYEE],
        "location_ids": wanted[R.Subject.LOCATION],
        "team_ids": wanted[R.Subject.TEAM],
    }
    series = Series()
    sources = {s for c in cases for s in c.sources}
    if FEEDBACK in sources:
        series.load(FEEDBACK, feedback_selectors.standard_point_series(**args), wanted)
    if AUDITS in sources:
        series.load(AUDITS, audit_selectors.standard_point_series(**args), wanted)
    return series


def compute(now: dt.datetime | None = None) -> dict[tuple[int, int], tuple[effectiveness.Effect, dict]]:
    """The effect of every lesson with gap rules on each of its rules' standards (no writes)."""
    now = now or timezone.now()
    pairs = gather_cases(now)
    by_standard: dict[int, list[Case]] = defaultdict(list)
    for (_lesson, std), data in pairs.items():
        by_standard[std] += data["treated"] + data["control"]
    series = {std: _series_for(std, cases, now) for std, cases in by_standard.items() if cases}
    out = {}
    for (lesson, std), data in pairs.items():
        changes = {}
        for group in ("treated", "control"):
            found = [series[std].change(c) for c in data[group]] if data[group] else []
            changes[group] = [round(x, 3) for x in found if x is not None]
        effect = effectiveness.lesson_effect(changes["treated"], changes["control"])
        detail = {
            **changes,
            "cases": {"treated": len(data["treated"]), "control": len(data["control"])},
            "delay_days": round(data["delay"].total_seconds() / 86400, 2),
        }
        out[(lesson, std)] = (effect, detail)
    return out


def lesson_effects_compute(*, organization, now: dt.datetime | None = None) -> int:
    """Recompute the organization's LessonEffect rows: one per (lesson, standard) of its gap rules,
    updated in place; pairs no longer ruled are removed. Idempotent; returns the rows kept.

    Derived figures, recomputed hourly: no audit-log row or event (nothing a person changed).
    """
    org_id = organization if isinstance(organization, int) else organization.pk
    if current_tenant_id() != org_id:
        raise ValueError("lesson_effects_compute runs inside its organization's tenant context")
    now = now or timezone.now()
    results = compute(now)
    with transaction.atomic():
        existing = {(e.lesson_id, e.standard_id): e for e in LessonEffect.objects.select_for_update()}
        create, update = [], []
        for (lesson, std), (effect, detail) in results.items():
            row = existing.pop((lesson, std), None) or LessonEffect(
                organization_id=org_id, lesson_id=lesson, standard_id=std
            )
            d = effect.as_dict()
            row.computed_at = now
            row.treated_n, row.control_n = effect.treated_n, effect.control_n
            for name in ("treated_change", "control_change", "difference", "ci_low", "ci_high"):
                setattr(row, name, d[name])
            row.verdict = effect.verdict
            row.changes = detail
            (update if row.pk else create).append(row)
        LessonEffect.objects.bulk_create(create)
        LessonEffect.objects.bulk_update(
            update,
            [
                "computed_at",
                "treated_n",
                "control_n",
                "treated_change",
                "control_change",
                "difference",
                "ci_low",
                "ci_high",
                "verdict",
                "changes",
            ],
        )
        if existing:
            LessonEffect.objects.filter(pk__in=[e.pk for e in existing.values()]).delete()
    return len(results)


def tenants_with_rules() -> list[int]:
    """Organizations with lesson gap rules; call inside unscoped()."""
    return list(
        GapRule.objects.filter(lesson__isnull=False)
        .order_by("organization_id")
        .values_list("organization_id", flat=True)
        .distinct()
    )
