"""Customer journey maps, the reads: each step's expected vs actual experience.

- **expected** (0-100): how much the step's customer expectation matters to customers. Surveys
  carry no importance question (feedback.QuestionType has NPS, CSAT, CES, FCR, rating, choice and
  text; none asks "how important is…"), so it comes from ``CustomerExpectation.importance``
  (1 nice to have … 5 essential) mapped linearly onto 0-100: 1 → 0, 3 → 50, 5 → 100. A step
  without an expectation has no expected level and no gap ("set an expectation").
- **actual** (0-100): what customers of the journey's segment (all customers when the journey has
  none) said at the step's touchpoint over the period, from the rollup (touchpoint and segment
  are rollup dimensions; dashboards never scan raw answers): the mean of the customer-feedback
  points on the standards that serve the step's expectation; if none were answered there, on
  every standard measured at the touchpoint; failing that, the touchpoint's CSAT mapped onto
  0-100 ((x-1)/4). ``source`` says which, with n and a 95 % interval (normal approximation from
  the rollup's sum of squares).
- **gap** = expected - actual. A gap of ``GAP_HIGHLIGHT`` points or more is highlighted when the
  actual rests on at least ``MIN_N`` answers; a step whose actual exceeds its expectation by as
  much is marked as exceeding it. Fewer answers: the gap is shown but flagged as uncertain.

The rollup queryset is the caller's: pages and the API pass it scoped to the viewer (a store
manager sees their own store's figures), optionally narrowed to one location.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Prefetch, Sum

from alignment.models import JourneyMap, JourneyStep, Measure
from cem.models import InteractionCategory, Standard

GAP_HIGHLIGHT = 15
MIN_N = 10
Z95 = 1.959964

LARGE_GAP = "large_gap"
EXCEEDS = "exceeds"
ON_TRACK = "on_track"
UNCERTAIN = "few_answers"
NO_EXPECTATION = "no_expectation"
NO_DATA = "no_data"
STATUS_LABELS = {
    LARGE_GAP: "Falls short",
    EXCEEDS: "Exceeds expectation",
    ON_TRACK: "Meets expectation",
    UNCERTAIN: "Too few answers to tell",
    NO_EXPECTATION: "No expectation set",
    NO_DATA: "No customer feedback",
}
SOURCE_LABELS = {
    "expectation_standards": "Feedback on the standards that serve this expectation",
    "touchpoint_standards": "Feedback on every standard measured at this touchpoint",
    "csat": "CSAT at this touchpoint",
    "": "—",
}


def journeys_list():
    """Journeys with their segment and step count: two queries at most, whatever their number."""
    return JourneyMap.objects.select_related("segment").annotate(step_count=Count("steps")).order_by("name")


def journeys_with_steps(queryset=None):
    """Journeys with their steps (touchpoint, expectation) prefetched in order (API lists)."""
    queryset = JourneyMap.objects.all() if queryset is None else queryset
    steps = JourneyStep.objects.select_related("touchpoint", "expectation").order_by("position")
    return queryset.select_related("segment").prefetch_related(Prefetch("steps", queryset=steps))


def expected_from_importance(importance) -> float | None:
    if importance is None:
        return None
    return (int(importance) - 1) * 25.0


@dataclass
class _Sums:
    n: int = 0
    total: Decimal = Decimal(0)
    sumsq: Decimal = Decimal(0)

    def add(self, n, total, sumsq) -> None:
        self.n += int(n or 0)
        self.total += total or Decimal(0)
        self.sumsq += sumsq or Decimal(0)

    def stats(self, scale: float = 1.0, shift: float = 0.0):
        """(mean, low, high) of the values mapped by (x + shift) * scale, clipped to 0-100."""
        if self.n == 0:
            return None, None, None
        mean = float(self.total) / self.n
        mapped = (mean + shift) * scale
        if self.n < 2:
            return mapped, None, None
        var = max(float(self.sumsq) - float(self.total) ** 2 / self.n, 0.0) / (self.n - 1)
        half = Z95 * math.sqrt(var) / math.sqrt(self.n) * abs(scale)
        return mapped, max(mapped - half, 0.0), min(mapped + half, 100.0)


def _status(expected, actual, n) -> str:
    if expected is None:
        return NO_EXPECTATION
    if actual is None:
        return NO_DATA
    if n < MIN_N:
        return UNCERTAIN
    gap = expected - actual
    if gap >= GAP_HIGHLIGHT:
        return LARGE_GAP
    if gap <= -GAP_HIGHLIGHT:
        return EXCEEDS
    return ON_TRACK


def _round(value, digits: int = 1):
    return None if value is None else round(value, digits)


def journey_experience(
    journey: JourneyMap,
    *,
    rollups,
    start: dt.date | None,
    end: dt.date | None,
    location_id: int | None = None,
) -> list[dict]:
    """One row per step in order: touchpoint, category, expectation, expected, actual (n, interval,
    source), gap and status. Three queries, whatever the number of steps."""
    steps = list(
        JourneyStep.objects.filter(journey=journey)
        .select_related("touchpoint", "expectation")
        .order_by("position")
    )
    if not steps:
        return []
    expectation_ids = {s.expectation_id for s in steps if s.expectation_id}
    serving: dict[int, set[int]] = {}
    for std_id, exp_id in Standard.objects.filter(expectation_id__in=expectation_ids).values_list(
        "pk", "expectation_id"
    ):
        serving.setdefault(exp_id, set()).add(std_id)

    qs = rollups.filter(
        touchpoint_id__in=[s.touchpoint_id for s in steps],
        measure__in=[Measure.STD_FEEDBACK, Measure.CSAT],
    )
    if journey.segment_id is not None:
        qs = qs.filter(segment_id=journey.segment_id)
    if location_id is not None:
        qs = qs.filter(location_id=location_id)
    if start is not None:
        qs = qs.filter(day__gte=start)
    if end is not None:
        qs = qs.filter(day__lte=end)
    cells: dict[tuple, _Sums] = {}
    for tp, std, measure, n, total, sumsq in (
        qs.order_by()
        .values("touchpoint_id", "standard_id", "measure")
        .annotate(n=Sum("n"), total=Sum("total"), sumsq=Sum("sumsq"))
        .values_list("touchpoint_id", "standard_id", "measure", "n", "total", "sumsq")
    ):
        cells.setdefault((tp, std, measure), _Sums()).add(n, total, sumsq)

    categories = dict(InteractionCategory.choices)
    rows = []
    for step in steps:
        tp = step.touchpoint_id
        wanted = serving.get(step.expectation_id, set())
        on_expectation, on_touchpoint, csat = _Sums(), _Sums(), _Sums()
        for (cell_tp, std, measure), sums in cells.items():
            if cell_tp != tp:
                continue
            if measure == Measure.CSAT:
                csat.add(sums.n, sums.total, sums.sumsq)
            else:
                on_touchpoint.add(sums.n, sums.total, sums.sumsq)
                if std in wanted:
                    on_expectation.add(sums.n, sums.total, sums.sumsq)
        if on_expectation.n:
            source, (actual, low, high), n = "expectation_standards", on_expectation.stats(), on_expectation.n
        elif on_touchpoint.n:
            source, (actual, low, high), n = "touchpoint_standards", on_touchpoint.stats(), on_touchpoint.n
        elif csat.n:
            source, (actual, low, high), n = "csat", csat.stats(scale=25.0, shift=-1.0), csat.n
        else:
            source, actual, low, high, n = "", None, None, None, 0
        importance = step.expectation.importance if step.expectation_id else None
        expected = expected_from_importance(importance)
        gap = expected - actual if expected is not None and actual is not None else None
        status = _status(expected, actual, n)
        rows.append(
            {
                "step_id": step.pk,
                "position": step.position,
                "touchpoint_id": tp,
                "touchpoint": step.touchpoint.name,
                "category": step.touchpoint.category,
                "category_label": categories.get(step.touchpoint.category, ""),
                "expectation_id": step.expectation_id,
                "expectation": step.expectation.name if step.expectation_id else "",
                "importance": importance,
                "expected": _round(expected),
                "actual": _round(actual),
                "actual_low": _round(low),
                "actual_high": _round(high),
                "n": n,
                "gap": _round(gap),
                "status": status,
                "status_label": STATUS_LABELS[status],
                "highlight": status == LARGE_GAP,
                "source": source,
                "source_label": SOURCE_LABELS[source],
                "note": step.note,
            }
        )
    return rows
