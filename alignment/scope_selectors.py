"""Reads behind the executive, region, drill-down, agent, self and trainer dashboards.

Every function takes the viewer (``caller``: role + membership, as ``feedback.selectors.Caller``)
and reads only the rollup and the alignment scores — never raw responses — through
``cem.scoping.scope_queryset``, so a regional manager's figures cover their region and a store
manager's their store whatever ids a URL names. Each function is a fixed number of queries
(grouped in the database), however many locations, teams or employees there are.

Key figures per node (``figures``): NPS, CSAT, CES, FCR (value + n), audit and monitoring score
(mean + n), lessons completed (n, % on time of those with a due date), points awarded (net of
reversals), responses. Figures follow ``alignment.filters`` (a filter a measure does not carry is
ignored by that measure).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum

from alignment import score_periods
from alignment.models import AlignmentScore, AlignmentSettings, Link, Measure, PeriodKind
from alignment.ranking import (
    DEFAULT_METRIC,
    DEFAULT_MIN_SAMPLE,
    RANK_METRICS,
    RankedRow,
    Ranking,
    estimate,
    rank,
    score_estimate,
)
from alignment.selectors import measure_value, on_time_rate, rollup_rows
from cem.models import Location

KEY_MEASURES = (
    Measure.NPS,
    Measure.CSAT,
    Measure.CES,
    Measure.FCR,
    Measure.RESPONSES,
    Measure.AUDIT,
    Measure.MONITORING,
    Measure.LESSONS,
    Measure.POINTS,
)
AGENT_MEASURES = (Measure.MONITORING, Measure.FCR, Measure.CES, Measure.NPS, Measure.LESSONS, Measure.POINTS)


@dataclass(frozen=True)
class Sums:
    n: int = 0
    total: Decimal = Decimal(0)
    sumsq: Decimal = Decimal(0)
    top: int = 0
    bottom: int = 0


_SUMS = {
    "sn": Sum("n"),
    "stotal": Sum("total"),
    "ssumsq": Sum("sumsq"),
    "stop": Sum("top"),
    "sbottom": Sum("bottom"),
}


def _sums(row: dict) -> Sums:
    return Sums(
        n=row["sn"] or 0,
        total=row["stotal"] or Decimal(0),
        sumsq=row["ssumsq"] or Decimal(0),
        top=row["stop"] or 0,
        bottom=row["sbottom"] or 0,
    )


def rollups(caller, filters, measures, **where):
    """The viewer's rollup rows of these measures over the filters (scoped; one queryset)."""
    return rollup_rows(caller, filters, measures).filter(**where)


def grouped_sums(caller, filters, measures, group_by: str | None, **where) -> dict:
    """``{(group_id, measure): Sums}`` in one query (``group_id`` None when not grouped)."""
    columns = [group_by, "measure"] if group_by else ["measure"]
    rows = rollups(caller, filters, measures, **where).order_by().values(*columns).annotate(**_SUMS)
    return {((row[group_by] if group_by else None), row["measure"]): _sums(row) for row in rows}


def min_sample(organization) -> int:
    value = (
        AlignmentSettings.objects.filter(organization=organization)
        .values_list("min_sample", flat=True)
        .first()
    )
    return DEFAULT_MIN_SAMPLE if value is None else value


def _round(x: float | None, places: int = 1) -> float | None:
    return None if x is None else round(x, places)


def figures(by_measure: dict) -> dict:
    """Key figures of one node from ``{measure: Sums}``; ``None`` values where there is no data."""

    def est(key: str) -> dict:
        # The value as every other dashboard rounds it (alignment.selectors.measure_value); the
        # interval from alignment.ranking.
        measure = RANK_METRICS[key].measure
        sums = by_measure.get(measure)
        e = estimate(RANK_METRICS[key], sums)
        value = (
            measure_value(measure, n=sums.n, total=sums.total, top=sums.top, bottom=sums.bottom)
            if sums
            else None
        )
        return {
            "value": None if value is None or value.value is None else float(value.value),
            "n": e.n,
            "low": _round(e.low),
            "high": _round(e.high),
        }

    lessons = by_measure.get(Measure.LESSONS, Sums())
    rate = on_time_rate(top=lessons.top, bottom=lessons.bottom).value
    points = by_measure.get(Measure.POINTS, Sums())
    return {
        "nps": est("nps"),
        "csat": est("csat"),
        "ces": est("ces"),
        "fcr": est("fcr"),
        "audit": est("audit"),
        "monitoring": est("monitoring"),
        "responses": by_measure.get(Measure.RESPONSES, Sums()).n,
        "lessons": {
            "completed": lessons.n,
            "on_time": lessons.top,
            "late": lessons.bottom,
            "on_time_rate": None if rate is None else float(rate),
        },
        "points": {"awards": points.n, "total": int(points.total)},
    }


def figures_by(caller, filters, group_by: str | None, measures=KEY_MEASURES, **where) -> dict:
    """``{group_id: figures}`` for every group that has rows (one query)."""
    per_group: dict = defaultdict(dict)
    for (group, measure), sums in grouped_sums(caller, filters, measures, group_by, **where).items():
        per_group[group][measure] = sums
    return {group: figures(by_measure) for group, by_measure in per_group.items()}


EMPTY_FIGURES = figures({})


# --- alignment scores --------------------------------------------------------------------------


GRAIN_PERIOD = {
    "day": PeriodKind.DAY,
    "week": PeriodKind.WEEK,
    "month": PeriodKind.MONTH,
    "quarter": PeriodKind.QUARTER,
}


def latest_scores(caller, filters, scope: str, ids=None, *, period: str | None = None) -> dict:
    """``{scope_id: AlignmentScore}``: each scope's latest overall score whose period overlaps
    the filters' dates (the period holding the first day counts: the quarter grain over the last
    90 days still shows this quarter), of the period kind of the filters' grain (as the store
    dashboard's scores panel) unless ``period`` is given. One query; scoped by the score's
    hierarchy columns."""
    period = period or GRAIN_PERIOD.get(filters.grain, PeriodKind.MONTH)
    qs = AlignmentScore.objects.filter(scope=scope, link=Link.OVERALL, period=period)
    if ids is not None:
        qs = qs.filter(scope_id__in=list(ids))
    if filters.start is not None:
        qs = qs.filter(period_start__gte=score_periods.start_of(period, filters.start))
    if filters.end is not None:
        qs = qs.filter(period_start__lte=filters.end)
    qs = caller.scoped(qs).order_by("scope_id", "-period_start").distinct("scope_id")
    return {s.scope_id: s for s in qs}


# --- trends for one node -----------------------------------------------------------------------


def daily_sums(caller, filters, measures, **where) -> dict:
    """``{(day, measure): Sums}`` for one node (one query); bucketed by the caller."""
    rows = rollups(caller, filters, measures, **where).order_by().values("day", "measure").annotate(**_SUMS)
    return {(row["day"], row["measure"]): _sums(row) for row in rows}


def lesson_status_by_standard(caller, filters, **where) -> list[dict]:
    """Lessons completed per standard (``lesson_std``): n, on time, late, % on time; one query."""
    rows = (
        rollups(caller, filters, [Measure.LESSON_STD], **where)
        .order_by()
        .values("standard_id", "standard__code", "standard__title")
        .annotate(**_SUMS)
        .order_by("standard__code", "standard_id")
    )
    out = []
    for row in rows:
        sums = _sums(row)
        rate = on_time_rate(top=sums.top, bottom=sums.bottom).value
        out.append(
            {
                "standard_id": row["standard_id"],
                "code": row["standard__code"] or "",
                "name": row["standard__title"] or "",
                "completed": sums.n,
                "on_time": sums.top,
                "late": sums.bottom,
                "on_time_rate": None if rate is None else float(rate),
            }
        )
    return out


# --- location ranking --------------------------------------------------------------------------


def location_ranking(
    caller, organization, filters, metric_key: str = DEFAULT_METRIC, *, region_id=None
) -> Ranking:
    """The viewer's active locations ranked on one figure with 95 % intervals (alignment.ranking).

    Three queries whatever the number of locations: the locations, their figures grouped by
    location (or their latest overall alignment scores), and the organization's minimum sample.
    """
    metric = RANK_METRICS[metric_key]
    locations = caller.scoped(Location.objects.filter(active=True).select_related("region")).order_by("name")
    if region_id is not None:
        locations = locations.filter(region_id=region_id)
    locations = list(locations)
    ids = [loc.pk for loc in locations]
    if metric.measure is None:
        scores = latest_scores(caller, filters, "location", ids)
        estimates = {pk: score_estimate(scores.get(pk)) for pk in ids}
    else:
        sums = grouped_sums(caller, filters, [metric.measure], "location_id", location_id__in=ids)
        estimates = {pk: estimate(metric, sums.get((pk, metric.measure))) for pk in ids}
    rows = [
        RankedRow(
            location_id=loc.pk,
            location=loc.name,
            region_id=loc.region_id,
            region=loc.region.name,
            value=estimates[loc.pk].value,
            low=estimates[loc.pk].low,
            high=estimates[loc.pk].high,
            n=estimates[loc.pk].n,
        )
        for loc in locations
    ]
    return rank(metric, rows, min_sample=min_sample(organization))
