"""Reads behind the alignment dashboards: figures over the ``Rollup`` table, scoped by the viewer.

Every function takes

- ``caller``: whose view (``feedback.selectors.Caller``: role + membership); the rollup is
  narrowed with ``cem.scoping.scope_queryset`` through ``Rollup.SCOPE_PATHS``, exactly like the
  API base viewset and the page mixin, so a store manager reads their store only and an
  employee their own rows only;
- ``filters``: an ``alignment.filters.DashboardFilters`` (period, grain, channel, touchpoint,
  segment, category; a dimension filter applies to the measures that carry it);
- ``subject``: *whose* figures inside that scope (a :class:`Subject`: the organization, a
  region, a location, an employee or a set of employees);

and returns plain data (lists of dicts, dates as ``date``, figures as float/None with their
``n``) that the page draws and the CSV export writes row for row. Nothing here reads raw
responses, audits or completions: each function is one or two aggregate queries over the
rollup (its indexes lead with organization, location/measure, day) plus at most one look-up of
names. Reads for one subject have a constant number of queries, whatever the data.

Figures (``measure_value``):

- NPS, CSAT, FCR, CES: ``feedback.metrics.*_from_counts`` over the summed counts (top/bottom are
  promoters/detractors, top-two box, yes), so a dashboard figure equals the feedback app's to
  the digit for the same answers;
- audit, monitoring and the ``std_*`` standard points: the mean of the 0-100 values
  (``mean_from_sum``: sum / n, two decimals half-up);
- responses, interactions, lessons: the count ``n``; points: the points total;
- lessons on time: % of completions with a due date that were on time (top / (top + bottom)).

The impression x execution matrix compares, per standard, the **impression** (customers'
points on questions linked to the standard, ``std_feedback``) with the **execution** (mystery
shopping and monitoring points on it, ``std_audit`` + ``std_monitoring`` pooled per
observation). Both are 0-100. With ``IMPRESSION_THRESHOLD`` and ``EXECUTION_THRESHOLD`` (70):

- **strength**: impression ≥ 70 and execution ≥ 70 — done well and seen by customers;
- **hidden strength**: impression ≥ 70, execution < 70 — customers are pleased although the
  audits find the standard poorly executed (the standard, or its audit items, may not capture
  what customers value; keep it, check the measurement);
- **blind spot**: impression < 70, execution ≥ 70 — audits say the standard is met yet
  customers are unhappy with it (the misalignment managers do not see from audits alone);
- **weakness**: impression < 70, execution < 70 — poorly done and felt by customers.

A standard with no data on one side has no quadrant; one with fewer than ``MATRIX_MIN_N``
values on either side is placed but flagged ``reliable: False`` (shown faded, never ranked).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlencode

from django.core.cache import cache
from django.db.models import DateField, Q, Subquery, Sum
from django.db.models.functions import Trunc

from alignment.filters import GRAINS, MEASURE_DIMENSIONS, DashboardFilters
from alignment.models import (
    PERIOD_MEASURES,
    AlignmentScore,
    Link,
    Measure,
    PeriodKind,
    PeriodRollup,
    Rollup,
    ScopeKind,
)
from alignment.rollup_derived import generation
from cem.category_weights import category_weights, raises_priority
from cem.models import Employee, InteractionCategory, Location, Standard, Touchpoint
from cem.tenancy import current_tenant_id
from feedback import metrics as fm
from feedback.selectors import Caller

__all__ = [
    "ANSWER_METRICS",
    "EXECUTION_THRESHOLD",
    "IMPRESSION_THRESHOLD",
    "MATRIX_MIN_N",
    "QUADRANTS",
    "Caller",
    "ScopeKind",
    "Subject",
    "alignment_scores",
    "comparison",
    "filter_options",
    "heatmap_cells",
    "impression_execution",
    "interaction_categories",
    "kpi_tiles",
    "location_in_scope",
    "measure_value",
    "metric_trend",
    "on_time_rate",
    "points_awarded",
    "quadrant",
    "region_totals",
    "rename_standards",
    "rollup_rows",
    "score_trend",
    "standards_heatmap",
    "summary",
    "training_status",
]

ANSWER_METRICS = (Measure.NPS, Measure.CSAT, Measure.CES, Measure.FCR)
SCORE_MEASURES = (Measure.AUDIT, Measure.MONITORING)
STANDARD_SOURCES = {
    Measure.STD_FEEDBACK: "feedback",
    Measure.STD_AUDIT: "audit",
    Measure.STD_MONITORING: "monitoring",
}
EXECUTION_MEASURES = (Measure.STD_AUDIT, Measure.STD_MONITORING)
KPI_MEASURES = (
    *ANSWER_METRICS,
    *SCORE_MEASURES,
    Measure.RESPONSES,
    Measure.INTERACTIONS,
    Measure.LESSONS,
    Measure.POINTS,
)
COMPARISON_MEASURES = (*ANSWER_METRICS, *SCORE_MEASURES)

IMPRESSION_THRESHOLD = Decimal(70)
EXECUTION_THRESHOLD = Decimal(70)
MATRIX_MIN_N = 5
QUADRANTS = {
    "strength": "Strength",
    "hidden_strength": "Hidden strength",
    "blind_spot": "Blind spot",
    "weakness": "Weakness",
}

_SUMS = {"n": Sum("n"), "total": Sum("total"), "top": Sum("top"), "bottom": Sum("bottom")}


@dataclass(frozen=True)
class Subject:
    """Whose figures, inside the caller's scope. All ``None``: the whole organization (as far as
    the caller sees). ``employees`` (a tuple of ids) covers a team; the rollup has no team key."""

    region: int | None = None
    location: int | None = None
    employee: int | None = None
    employees: tuple[int, ...] | None = None

    def q(self) -> Q:
        q = Q()
        if self.location is not None:
            q &= Q(location_id=self.location)
        if self.region is not None:
            q &= Q(location__region_id=self.region)
        if self.employee is not None:
            q &= Q(employee_id=self.employee)
        if self.employees is not None:
            q &= Q(employee_id__in=list(self.employees))
        return q


# --- values ---------------------------------------------------------------------------------------


def _int(value) -> int:
    return int(value or 0)


def measure_value(measure: str, *, n, total=0, top=0, bottom=0) -> fm.Metric:
    """The dashboard figure of summed rollup values (see the module docstring)."""
    n, top, bottom = _int(n), _int(top), _int(bottom)
    measure = str(measure)
    if measure == Measure.NPS:
        return fm.nps_from_counts(promoters=top, detractors=bottom, n=n)
    if measure in (Measure.CSAT, Measure.FCR):
        return fm.percent_from_counts(hits=top, n=n)
    if measure in (Measure.RESPONSES, Measure.INTERACTIONS, Measure.LESSONS, Measure.LESSON_STD):
        return fm.Metric(Decimal(n) if n else None, n)
    if measure == Measure.POINTS:
        return fm.Metric(Decimal(total or 0) if n else None, n)
    # CES and every 0-100 score: the mean.
    return fm.mean_from_sum(total=Decimal(total or 0), n=n)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def on_time_rate(*, top, bottom) -> fm.Metric:
    """% on time of completions that had a due date (no due date counts in neither)."""
    due = _int(top) + _int(bottom)
    return fm.percent_from_counts(hits=_int(top), n=due)


# --- the rollup, scoped -----------------------------------------------------------------------


def rollup_rows(caller: Caller, filters: DashboardFilters, measures, subject: Subject | None = None):
    """The scoped, filtered rollup rows of these measures (unordered), for aggregation."""
    qs = caller.scoped(Rollup.objects.all())
    qs = qs.filter(filters.rollup_filter(measures))
    if subject is not None:
        qs = qs.filter(subject.q())
    return qs.order_by()


def bucket(grain: str):
    """The period start of a rollup row's day: the day, its ISO week's Monday, the month's or the
    quarter's 1st."""
    if grain == "day":
        return Trunc("day", "day", output_field=DateField())
    return Trunc("day", grain, output_field=DateField())


def _as_date(value) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


# --- trends ---------------------------------------------------------------------------------------


def metric_trend(
    caller: Caller, filters: DashboardFilters, subject: Subject, metrics=ANSWER_METRICS
) -> list[dict]:
    """NPS/CSAT/CES/FCR per period of ``filters.grain``: ``[{period, metric, value, n}]``.

    One query; periods without answers are absent (a gap in the line, never a zero)."""
    rows = (
        rollup_rows(caller, filters, metrics, subject)
        .annotate(period=bucket(filters.grain))
        .values("period", "measure")
        .annotate(**_SUMS)
    )
    out = []
    for row in rows:
        metric = measure_value(row["measure"], **{k: row[k] for k in _SUMS})
        out.append(
            {
                "period": _as_date(row["period"]),
                "metric": row["measure"],
                "value": _float(metric.value),
                "n": metric.n,
            }
        )
    order = {str(m): i for i, m in enumerate(metrics)}
    return sorted(out, key=lambda r: (r["period"], order.get(r["metric"], 99)))


def score_trend(
    caller: Caller, filters: DashboardFilters, subject: Subject, measures=SCORE_MEASURES
) -> list[dict]:
    """Mean audit (shop visit) and monitoring (call/chat evaluation) scores per period:
    ``[{period, measure, value, n}]``, n = audits/evaluations published. One query."""
    return metric_trend(caller, filters, subject, metrics=measures)


# --- standards ----------------------------------------------------------------------------------


def standard_names(ids) -> dict[int, dict]:
    """``{id: {"code", "title"}}`` of these standards (reference data, one query)."""
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    return {
        pk: {"code": code, "title": title}
        for pk, code, title in Standard.objects.filter(pk__in=ids).values_list("pk", "code", "title")
    }


def rename_standards(rows: list[dict]) -> list[dict]:
    """Set the rows' ``standard_code`` and ``standard`` afresh (one query) and sort them by those,
    stably, so each standard's rows keep their order (rows cached by alignment.panel_cache)."""
    names = standard_names(r["standard_id"] for r in rows)
    for r in rows:
        name = names.get(r["standard_id"], {"code": "", "title": f"#{r['standard_id']}"})
        r["standard_code"], r["standard"] = name["code"], name["title"]
    rows.sort(key=lambda r: (r["standard_code"], r["standard"]))
    return rows


def standards_heatmap(
    caller: Caller, filters: DashboardFilters, subject: Subject, measures=tuple(STANDARD_SOURCES)
) -> list[dict]:
    """Standard x week of 0-100 points: ``[{standard_id, standard_code, standard, week, source,
    value, n}]``, one row per source (feedback / audit / monitoring) with data. Two queries.

    The chart's cell is the mean of the sources present, each weighing the same, so hundreds
    of survey answers do not drown a handful of audits (``heatmap_cells``)."""
    rows = list(
        rollup_rows(caller, filters, measures, subject)
        .filter(standard_id__isnull=False)
        .annotate(week=bucket("week"))
        .values("standard_id", "week", "measure")
        .annotate(n=Sum("n"), total=Sum("total"))
    )
    names = standard_names(r["standard_id"] for r in rows)
    out = []
    for r in rows:
        metric = measure_value(r["measure"], n=r["n"], total=r["total"])
        name = names.get(r["standard_id"], {"code": "", "title": f"#{r['standard_id']}"})
        out.append(
            {
                "standard_id": r["standard_id"],
                "standard_code": name["code"],
                "standard": name["title"],
                "week": _as_date(r["week"]),
                "source": STANDARD_SOURCES[r["measure"]],
                "value": _float(metric.value),
                "n": metric.n,
            }
        )
    return sorted(out, key=lambda r: (r["standard_code"], r["standard"], r["week"], r["source"]))


def heatmap_cells(rows: list[dict]) -> dict[tuple[int, dt.date], float]:
    """``{(standard_id, week): mean of the sources' values}`` for the heatmap chart."""
    cells: dict[tuple, list[float]] = {}
    for r in rows:
        if r["value"] is not None:
            cells.setdefault((r["standard_id"], r["week"]), []).append(r["value"])
    return {key: round(sum(values) / len(values), 2) for key, values in cells.items()}


def quadrant(impression: Decimal | None, execution: Decimal | None) -> str | None:
    if impression is None or execution is None:
        return None
    high_impression = impression >= IMPRESSION_THRESHOLD
    high_execution = execution >= EXECUTION_THRESHOLD
    if high_impression and high_execution:
        return "strength"
    if high_impression:
        return "hidden_strength"
    if high_execution:
        return "blind_spot"
    return "weakness"


def impression_execution(caller: Caller, filters: DashboardFilters, subject: Subject) -> list[dict]:
    """Per standard: customer impression vs execution and the quadrant (module docstring):
    ``[{standard_id, standard_code, standard, impression, impression_n, execution,
    execution_n, quadrant, reliable}]``. Two queries."""
    rows = (
        rollup_rows(caller, filters, STANDARD_SOURCES, subject)
        .filter(standard_id__isnull=False)
        .values("standard_id", "measure")
        .annotate(n=Sum("n"), total=Sum("total"))
    )
    sums: dict[int, dict[str, list]] = {}
    for r in rows:
        side = "impression" if r["measure"] == Measure.STD_FEEDBACK else "execution"
        acc = sums.setdefault(r["standard_id"], {"impression": [0, Decimal(0)], "execution": [0, Decimal(0)]})
        acc[side][0] += _int(r["n"])
        acc[side][1] += Decimal(r["total"] or 0)
    names = standard_names(sums)
    out = []
    for std, acc in sums.items():
        imp = fm.mean_from_sum(total=acc["impression"][1], n=acc["impression"][0])
        exe = fm.mean_from_sum(total=acc["execution"][1], n=acc["execution"][0])
        name = names.get(std, {"code": "", "title": f"#{std}"})
        out.append(
            {
                "standard_id": std,
                "standard_code": name["code"],
                "standard": name["title"],
                "impression": _float(imp.value),
                "impression_n": imp.n,
                "execution": _float(exe.value),
                "execution_n": exe.n,
                "quadrant": quadrant(imp.value, exe.value),
                "reliable": imp.n >= MATRIX_MIN_N and exe.n >= MATRIX_MIN_N,
            }
        )
    return sorted(out, key=lambda r: (r["standard_code"], r["standard"]))


# --- tiles and comparison -----------------------------------------------------------------------


def _by_measure(rows) -> dict[str, fm.Metric]:
    return {r["measure"]: measure_value(r["measure"], **{k: r[k] for k in _SUMS}) for r in rows}


def kpi_tiles(
    caller: Caller, filters: DashboardFilters, subject: Subject, measures=KPI_MEASURES
) -> list[dict]:
    """``[{measure, label, value, n}]`` for each KPI measure (value None when n is 0). One query."""
    found = _by_measure(rollup_rows(caller, filters, measures, subject).values("measure").annotate(**_SUMS))
    labels = dict(Measure.choices)
    out = []
    for measure in measures:
        metric = found.get(str(measure), fm.Metric(None, 0))
        out.append(
            {"measure": str(measure), "label": labels[measure], "value": _float(metric.value), "n": metric.n}
        )
    return out


COMPARISON_CACHE_SECONDS = 60


def region_totals(filters: DashboardFilters, measures=COMPARISON_MEASURES) -> dict[tuple, tuple]:
    """``{(region_id, measure): (n, total, top, bottom)}`` over the whole organization (region
    None: rows with no location, e.g. points of an employee with no workplace that day).

    The costliest read of a store dashboard, and the same for every store and viewer with the
    same filters. Read from ``PeriodRollup`` (:func:`_period_region_totals`: the period's whole
    months and the days around them, per location — a few thousand rows for a year of a hundred
    stores) when the measures are kept there and no channel, touchpoint or segment filter is
    set (PeriodRollup has no such column); else one query over the rollup's (organization,
    measure, day) index, which reads every location's rows of the period. Either way it is
    cached, keyed by tenant, measures, the resolved filter state (relative periods by their
    dates) and the organization's rollup generation, which every rollup change raises in its
    transaction, so never stale, for up to ``COMPARISON_CACHE_SECONDS``."""
    key = "alignment:region_totals:" + ":".join(
        [
            str(current_tenant_id()),
            str(generation(organization=True)),
            ",".join(sorted(str(m) for m in measures)),
            str(filters.start),
            str(filters.end),
            urlencode(sorted(filters.dimension_values.items())),
        ]
    )
    cached = cache.get(key)
    if cached is not None:
        return cached
    if _in_periods(filters, measures):
        totals = _period_region_totals(filters, measures)
    else:
        totals = _rollup_region_totals(filters, measures)
    cache.set(key, totals, COMPARISON_CACHE_SECONDS)
    return totals


def _in_periods(filters: DashboardFilters, measures) -> bool:
    """Whether PeriodRollup answers exactly what ``filters.rollup_filter(measures)`` selects."""
    measures = {str(m) for m in measures}
    dims = filters.dimension_values.keys()
    if not measures <= {str(m) for m in PERIOD_MEASURES} or dims - {"category"}:
        return False
    # A category filter must apply to every measure, as it does to the rollup's.
    return not dims or all("category" in MEASURE_DIMENSIONS.get(m, ()) for m in measures)


def _rollup_region_totals(filters: DashboardFilters, measures) -> dict[tuple, tuple]:
    rows = (
        Rollup.objects.filter(filters.rollup_filter(measures))
        .order_by()
        .values("location__region_id", "measure")
        .annotate(**_SUMS)
    )
    return {
        (r["location__region_id"], r["measure"]): (
            _int(r["n"]),
            Decimal(r["total"] or 0),
            _int(r["top"]),
            _int(r["bottom"]),
        )
        for r in rows
    }


def _first_of_next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def month_cover(start: dt.date | None, end: dt.date | None) -> tuple[dt.date | None, dt.date | None]:
    """``(first, last)``: the whole months inside the days ``[start, end]`` are those starting on
    or after ``first`` and before ``last`` (None: unbounded on that side); the days of
    ``[start, first)`` and ``[last, end]`` are read by day. ``first >= last``: no whole month."""
    first = None if start is None else start if start.day == 1 else _first_of_next_month(start)
    last = None if end is None else (end + dt.timedelta(days=1)).replace(day=1)
    return first, last


def _period_region_totals(filters: DashboardFilters, measures) -> dict[tuple, tuple]:
    """region_totals from PeriodRollup in one query: whole months by month, the days around them
    by day (month_cover)."""
    first, last = month_cover(filters.start, filters.end)
    if first is not None and last is not None and first >= last:  # no whole month: days only
        parts = Q(period=PeriodKind.DAY, **_between(filters.start, filters.end))
    else:
        months = {"period_start__gte": first, "period_start__lt": last}
        parts = Q(period=PeriodKind.MONTH, **{k: v for k, v in months.items() if v is not None})
        if first is not None:
            parts |= Q(period=PeriodKind.DAY, **_between(filters.start, first - dt.timedelta(days=1)))
        if last is not None:
            parts |= Q(period=PeriodKind.DAY, **_between(last, filters.end))
    dims = {"category": filters.category} if filters.category else {}
    rows = (
        PeriodRollup.objects.filter(parts, measure__in=[str(m) for m in measures], rows__gt=0, **dims)
        .order_by()
        .values("location__region_id", "measure")
        .annotate(**_SUMS)
    )
    return {
        (r["location__region_id"], r["measure"]): (
            _int(r["n"]),
            Decimal(r["total"] or 0),
            _int(r["top"]),
            _int(r["bottom"]),
        )
        for r in rows
    }


def _between(first: dt.date | None, last: dt.date | None) -> dict:
    out = {}
    if first is not None:
        out["period_start__gte"] = first
    if last is not None:
        out["period_start__lte"] = last
    return out


def comparison(
    caller: Caller, filters: DashboardFilters, location: Location, measures=COMPARISON_MEASURES
) -> list[dict]:
    """This location beside its region and the company: ``[{measure, label, location, location_n,
    region, region_n, company, company_n}]``. One query, plus ``region_totals`` (cached).

    The location's figures are the caller's scoped view (an employee's own rows); the region and
    company figures are aggregates of the whole region / organization, which any viewer of the
    dashboard may compare against — only totals, never another location's figures."""
    mine = _by_measure(
        rollup_rows(caller, filters, measures, Subject(location=location.pk))
        .values("measure")
        .annotate(**_SUMS)
    )
    company_sums: dict[str, list] = {}
    region_sums: dict[str, list] = {}
    for (region_id, measure), values in region_totals(filters, measures).items():
        for acc in (company_sums, region_sums) if region_id == location.region_id else (company_sums,):
            held = acc.setdefault(measure, [0, Decimal(0), 0, 0])
            for i, v in enumerate(values):
                held[i] += v
    labels = dict(Measure.choices)
    empty = fm.Metric(None, 0)

    def figure(sums: dict, measure: str) -> fm.Metric:
        if measure not in sums:
            return empty
        n, total, top, bottom = sums[measure]
        return measure_value(measure, n=n, total=total, top=top, bottom=bottom)

    out = []
    for measure in measures:
        key = str(measure)
        here, reg, comp = mine.get(key, empty), figure(region_sums, key), figure(company_sums, key)
        out.append(
            {
                "measure": key,
                "label": labels[measure],
                "location": _float(here.value),
                "location_n": here.n,
                "region": _float(reg.value),
                "region_n": reg.n,
                "company": _float(comp.value),
                "company_n": comp.n,
            }
        )
    return out


# --- people -------------------------------------------------------------------------------------


def employee_names(ids) -> dict[int, str]:
    ids = sorted({i for i in ids if i is not None})
    if not ids:
        return {}
    return dict(Employee.objects.filter(pk__in=ids).values_list("pk", "name"))


def points_awarded(caller: Caller, filters: DashboardFilters, subject: Subject) -> list[dict]:
    """Points awarded (net of reversals) per employee: ``[{employee_id, employee, awards, points}]``,
    most points first. Two queries."""
    rows = list(
        rollup_rows(caller, filters, [Measure.POINTS], subject)
        .values("employee_id")
        .annotate(n=Sum("n"), total=Sum("total"))
    )
    names = employee_names(r["employee_id"] for r in rows)
    out = [
        {
            "employee_id": r["employee_id"],
            "employee": names.get(r["employee_id"], "—"),
            "awards": _int(r["n"]),
            "points": _int(r["total"]),
        }
        for r in rows
        if _int(r["n"])
    ]
    return sorted(out, key=lambda r: (-r["points"], r["employee"]))


def training_status(caller: Caller, filters: DashboardFilters, subject: Subject) -> list[dict]:
    """Lessons completed in the period per employee, with the on-time rate:
    ``[{employee_id, employee, completed, on_time, late, on_time_rate}]``.

    For a location, every current active employee of it the caller sees is listed (0 completed
    too), so a manager spots who has done nothing. Two queries."""
    rows = {
        r["employee_id"]: r
        for r in rollup_rows(caller, filters, [Measure.LESSONS], subject)
        .values("employee_id")
        .annotate(n=Sum("n"), top=Sum("top"), bottom=Sum("bottom"))
    }
    staff = caller.scoped(Employee.objects.all())
    if subject.location is not None:
        staff = staff.filter(Q(current_location_id=subject.location, active=True) | Q(pk__in=list(rows)))
    else:
        staff = staff.filter(pk__in=list(rows))
    if subject.employee is not None:
        staff = staff.filter(pk=subject.employee)
    if subject.employees is not None:
        staff = staff.filter(pk__in=list(subject.employees))
    out = []
    for pk, name in staff.order_by().values_list("pk", "name"):
        r = rows.get(pk, {})
        rate = on_time_rate(top=r.get("top"), bottom=r.get("bottom"))
        out.append(
            {
                "employee_id": pk,
                "employee": name,
                "completed": _int(r.get("n")),
                "on_time": _int(r.get("top")),
                "late": _int(r.get("bottom")),
                "on_time_rate": _float(rate.value),
            }
        )
    return sorted(out, key=lambda r: (r["employee"], r["employee_id"]))


# --- interactions -------------------------------------------------------------------------------


def interaction_categories(caller: Caller, filters: DashboardFilters, subject: Subject) -> list[dict]:
    """Interactions per touchpoint and category (Stabilizing / Critical / Planned) with the
    organization's weight of the category (``cem.category_weights``: in the overall scores, and
    the heaviest raises case priority): ``[{touchpoint_id, touchpoint, category, category_label,
    weight, raises_priority, n}]``. Three queries."""
    rows = list(
        rollup_rows(caller, filters, [Measure.INTERACTIONS], subject)
        .values("touchpoint_id", "category")
        .annotate(n=Sum("n"))
    )
    ids = sorted({r["touchpoint_id"] for r in rows if r["touchpoint_id"] is not None})
    names = dict(Touchpoint.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    labels = dict(InteractionCategory.choices)
    weights = category_weights(current_tenant_id()) if rows else {}
    out = [
        {
            "touchpoint_id": r["touchpoint_id"],
            "touchpoint": names.get(r["touchpoint_id"], "No touchpoint"),
            "category": r["category"] or "",
            "category_label": labels.get(r["category"], "Uncategorised"),
            "weight": weights.get(r["category"]),
            "raises_priority": raises_priority(weights, r["category"]),
            "n": _int(r["n"]),
        }
        for r in rows
        if _int(r["n"])
    ]
    order = {c: i for i, c in enumerate(labels)}
    return sorted(out, key=lambda r: (r["touchpoint"], order.get(r["category"], 9)))


# --- alignment scores ---------------------------------------------------------------------------

_GRAIN_PERIOD = {
    "day": PeriodKind.DAY,
    "week": PeriodKind.WEEK,
    "month": PeriodKind.MONTH,
    "quarter": PeriodKind.QUARTER,
}


def alignment_scores(
    caller: Caller, filters: DashboardFilters, *, scope: str, scope_id: int, period: str | None = None
) -> list[dict]:
    """The latest computed link scores of one scope (``ScopeKind``) for the period kind of the
    grain (or ``period``) starting inside the filter's period: ``[{id, link, label, value, low,
    high, n, period, period_start, missing}]``, in the order of ``Link``. One query; empty until
    alignment.scores has computed some."""
    period = period or _GRAIN_PERIOD.get(filters.grain, PeriodKind.MONTH)
    base = caller.scoped(AlignmentScore.objects.all()).filter(scope=scope, scope_id=scope_id, period=period)
    if filters.end is not None:
        base = base.filter(period_start__lte=filters.end)
    latest = base.order_by("-period_start").values("period_start")[:1]
    rows = base.filter(period_start=Subquery(latest)).values(
        "id", "link", "value", "low", "high", "n", "period", "period_start", "missing", "inputs"
    )
    labels = dict(Link.choices)
    order = {link: i for i, link in enumerate(labels)}
    out = [
        {
            **r,
            "label": labels.get(r["link"], r["link"]),
            "value": _float(r["value"]),
            "low": _float(r["low"]),
            "high": _float(r["high"]),
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: order.get(r["link"], 99))


# --- generic summary (the API) ------------------------------------------------------------------

GROUPS = {
    "day": None,
    "week": None,
    "month": None,
    "quarter": None,
    "location": "location_id",
    "region": "location__region_id",
    "employee": "employee_id",
    "standard": "standard_id",
    "channel": "channel_id",
    "touchpoint": "touchpoint_id",
    "segment": "segment_id",
    "category": "category",
}


def summary(
    caller: Caller, filters: DashboardFilters, subject: Subject, *, measures, group_by=()
) -> list[dict]:
    """Summed rollup values and the figure per group and measure: ``[{measure, <group keys>, n,
    total, top, bottom, value}]``. ``group_by`` names keys of ``GROUPS`` (at most one of
    day/week/month/quarter). One query."""
    qs = rollup_rows(caller, filters, measures, subject)
    keys = []
    for name in group_by:
        column = GROUPS[name]
        if column is None:
            qs = qs.annotate(**{f"g_{name}": bucket(name)})
            keys.append((name, f"g_{name}"))
        else:
            keys.append((name, column))
    rows = qs.values("measure", *[col for _, col in keys]).annotate(**_SUMS)
    out = []
    for r in rows:
        metric = measure_value(r["measure"], **{k: r[k] for k in _SUMS})
        item = {"measure": r["measure"]}
        for name, col in keys:
            value = r[col]
            item[name] = _as_date(value) if name in GRAINS else value
        item.update(
            n=_int(r["n"]),
            total=Decimal(r["total"] or 0),
            top=_int(r["top"]),
            bottom=_int(r["bottom"]),
            value=_float(metric.value),
        )
        out.append(item)
    return sorted(out, key=lambda r: (*(_sortable(r.get(name)) for name, _ in keys), r["measure"]))


def _sortable(value):
    return (
        value is None,
        "" if value is None else str(value) if not isinstance(value, int) else f"{value:020d}",
    )


def location_in_scope(caller: Caller, location_id) -> Location | None:
    """The location if the caller's scope reaches it (store managers: theirs; regional managers:
    their region's), else None — the page and the API answer 404 either way."""
    return caller.scoped(Location.objects.select_related("region")).filter(pk=location_id).first()


def filter_options() -> dict[str, list[tuple[int, str]]]:
    """Choices of the filter form: channels, touchpoints, segments (reference data; three queries)."""
    from cem.models import Channel, Segment

    return {
        "channels": list(Channel.objects.order_by("name").values_list("pk", "name")),
        "touchpoints": list(Touchpoint.objects.order_by("name").values_list("pk", "name")),
        "segments": list(Segment.objects.order_by("name").values_list("pk", "name")),
    }
