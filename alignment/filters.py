"""The filter state every alignment dashboard shares, parsed from GET and written back to URLs.

``DashboardFilters.from_params(request.GET, organization)`` reads:

- ``period``: a preset (``7``, ``30``, ``90``, ``180``, ``365`` days ending today in the
  organization's time zone, or ``all``), default ``90``; ``from`` / ``to`` (``YYYY-MM-DD``, both
  days included) override the preset and make the period ``custom``;
- ``grain``: ``day``, ``week`` (Monday-start), ``month`` or ``quarter`` — the bucket of trend charts
  and the period kind of the alignment scores shown, default ``week``;
- ``channel``, ``touchpoint``, ``segment``: one id each;
- ``category``: an interaction category (``stabilizing``, ``critical``, ``planned``).

Anything else that is malformed raises :class:`FilterError` naming the parameter; pages and the
API answer it with a 400 (``bad_filter_response`` / DRF ``ValidationError``). An id of another
tenant is not an error: the rollup is tenant-scoped, so it simply matches nothing.

``querystring()`` writes the state back (only what differs from the defaults), so a panel URL,
its CSV link and the browser's address bar all carry the same filters.

Not every measure has every dimension (``alignment.rollups``): audits and monitoring have no
customer segment, lessons and points have no channel, touchpoint, segment or category. A filter
applies to the measures that carry its dimension and is ignored by the others;
``rollup_filter(measures)`` builds the ORM filter accordingly and ``ignored_by(measures)`` names
the filters a panel could not apply, so the page can say so instead of showing zeros.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, replace
from urllib.parse import urlencode

from django.db.models import Q
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_date

from alignment.models import Measure
from cem.models import InteractionCategory
from cem.params import id_of
from feedback.selectors import org_tz

PERIODS = {
    "7": "Last 7 days",
    "30": "Last 30 days",
    "90": "Last 90 days",
    "180": "Last 6 months",
    "365": "Last 12 months",
    "all": "All time",
    "custom": "Custom dates",
}
DEFAULT_PERIOD = "90"
GRAINS = {"day": "Day", "week": "Week", "month": "Month", "quarter": "Quarter"}
DEFAULT_GRAIN = "week"
CATEGORIES = dict(InteractionCategory.choices)
ID_PARAMS = ("channel", "touchpoint", "segment")
PARAMS = ("period", "from", "to", "grain", *ID_PARAMS, "category")

# Which filter dimensions each measure's rollup rows carry (alignment.rollups fills them).
_SURVEY = frozenset({"channel", "touchpoint", "segment", "category"})
_OBSERVED = frozenset({"channel", "touchpoint", "category"})
MEASURE_DIMENSIONS: dict[str, frozenset[str]] = {
    Measure.NPS: _SURVEY,
    Measure.CSAT: _SURVEY,
    Measure.CES: _SURVEY,
    Measure.FCR: _SURVEY,
    Measure.RESPONSES: _SURVEY,
    Measure.STD_FEEDBACK: _SURVEY,
    Measure.AUDIT: _OBSERVED,
    Measure.MONITORING: _OBSERVED,
    Measure.STD_AUDIT: _OBSERVED,
    Measure.STD_MONITORING: _OBSERVED,
    Measure.INTERACTIONS: _OBSERVED,
    Measure.LESSONS: frozenset(),
    Measure.LESSON_STD: frozenset(),
    Measure.POINTS: frozenset(),
}


class FilterError(ValueError):
    """A malformed filter parameter; ``param`` names it for the 400."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def bad_filter_response(exc: FilterError) -> HttpResponse:
    """The page answer to a malformed filter: 400, naming the parameter in the body."""
    return HttpResponse(
        f"Bad filter parameter '{exc.param}': {exc.message}",
        status=400,
        content_type="text/plain; charset=utf-8",
    )


def local_today(organization) -> dt.date:
    return timezone.now().astimezone(org_tz(organization)).date()


@dataclass(frozen=True)
class DashboardFilters:
    """The parsed filter state. ``start``/``end`` are local days, both included; None = open."""

    period: str = DEFAULT_PERIOD
    start: dt.date | None = None
    end: dt.date | None = None
    grain: str = DEFAULT_GRAIN
    channel: int | None = None
    touchpoint: int | None = None
    segment: int | None = None
    category: str = ""
    # The raw from/to of a custom period, echoed back in URLs exactly as given.
    raw_from: str = field(default="", compare=False)
    raw_to: str = field(default="", compare=False)

    # --- parsing -------------------------------------------------------------------------------

    @classmethod
    def from_params(cls, params, organization, *, today: dt.date | None = None) -> DashboardFilters:
        """Parse a QueryDict (or dict of strings); raises FilterError naming the bad parameter."""

        def get(name: str) -> str:
            value = params.get(name, "")
            return value.strip() if isinstance(value, str) else ""

        today = today or local_today(organization)
        period = get("period") or DEFAULT_PERIOD
        if period not in PERIODS:
            raise FilterError("period", f"One of {', '.join(PERIODS)}.")
        raw_from, raw_to = get("from"), get("to")
        start = _date("from", raw_from) if raw_from else None
        end = _date("to", raw_to) if raw_to else None
        if start is not None and end is not None and end < start:
            raise FilterError("to", "Must be on or after 'from'.")
        if raw_from or raw_to:
            period = "custom"
        elif period == "custom":
            raise FilterError("from", "A custom period needs 'from' and/or 'to' (YYYY-MM-DD).")
        elif period != "all":
            start, end = today - dt.timedelta(days=int(period) - 1), today
        grain = get("grain") or DEFAULT_GRAIN
        if grain not in GRAINS:
            raise FilterError("grain", f"One of {', '.join(GRAINS)}.")
        ids = {}
        for name in ID_PARAMS:
            if raw := get(name):
                ids[name] = id_of(raw)
                if ids[name] is None:
                    raise FilterError(name, "Expected an id (digits).")
        category = get("category")
        if category and category not in CATEGORIES:
            raise FilterError("category", f"One of {', '.join(CATEGORIES)}.")
        return cls(
            period=period,
            start=start,
            end=end,
            grain=grain,
            category=category,
            raw_from=raw_from,
            raw_to=raw_to,
            **{name: ids.get(name) for name in ID_PARAMS},
        )

    # --- writing back --------------------------------------------------------------------------

    def params(self, **overrides) -> dict[str, str]:
        """The non-default parameters as strings; ``overrides`` replace (``None``/"" drops one)."""
        out: dict[str, str] = {}
        if self.period == "custom":
            if self.raw_from or self.start:
                out["from"] = self.raw_from or self.start.isoformat()
            if self.raw_to or self.end:
                out["to"] = self.raw_to or self.end.isoformat()
        elif self.period != DEFAULT_PERIOD:
            out["period"] = self.period
        if self.grain != DEFAULT_GRAIN:
            out["grain"] = self.grain
        for name in ID_PARAMS:
            if getattr(self, name) is not None:
                out[name] = str(getattr(self, name))
        if self.category:
            out["category"] = self.category
        for key, value in overrides.items():
            if value in (None, ""):
                out.pop(key, None)
            else:
                out[key] = str(value)
        return out

    def querystring(self, **overrides) -> str:
        """``"period=30&channel=4"`` (no leading "?"; empty when everything is default)."""
        return urlencode(self.params(**overrides))

    def url(self, path: str, **overrides) -> str:
        """``path`` with this filter state appended (``?…`` or ``&…`` as the path needs)."""
        qs = self.querystring(**overrides)
        if not qs:
            return path
        return f"{path}{'&' if '?' in path else '?'}{qs}"

    def with_(self, **changes) -> DashboardFilters:
        return replace(self, **changes)

    # --- applying to the rollup ----------------------------------------------------------------

    @property
    def dimension_values(self) -> dict[str, object]:
        """The dimension filters that are set: {"channel": 4, "category": "critical", …}."""
        values = {name: getattr(self, name) for name in ID_PARAMS if getattr(self, name) is not None}
        if self.category:
            values["category"] = self.category
        return values

    def day_filter(self, prefix: str = "") -> dict:
        out = {}
        if self.start is not None:
            out[f"{prefix}day__gte"] = self.start
        if self.end is not None:
            out[f"{prefix}day__lte"] = self.end
        return out

    def rollup_filter(self, measures) -> Q:
        """``Q`` over Rollup: these measures, the period, and each dimension filter on the
        measures that carry that dimension (the others ignore it — see the module docstring)."""
        measures = [str(m) for m in measures]
        dims = self.dimension_values
        if not dims:
            return Q(measure__in=measures, **self.day_filter())
        # Measures with the same applicable dimensions share one clause.
        groups: dict[frozenset, list[str]] = {}
        for measure in measures:
            applicable = MEASURE_DIMENSIONS.get(measure, frozenset()) & dims.keys()
            groups.setdefault(frozenset(applicable), []).append(measure)
        clause = Q()
        for applicable, group in groups.items():
            column = {(f"{name}_id" if name in ID_PARAMS else name): dims[name] for name in applicable}
            part = Q(measure__in=group, **column) if len(group) > 1 else Q(measure=group[0], **column)
            clause |= part
        return clause & Q(**self.day_filter())

    def ignored_by(self, measures) -> list[str]:
        """The set filters none of ``measures`` can apply (to say so on the panel)."""
        carried = set().union(*(MEASURE_DIMENSIONS.get(str(m), frozenset()) for m in measures))
        return [name for name in self.dimension_values if name not in carried]

    def describe(self) -> str:
        if self.period == "custom":
            return f"{self.start or '…'} – {self.end or '…'}"
        return PERIODS[self.period]


def _date(param: str, raw: str) -> dt.date:
    try:
        day = parse_date(raw)
    except ValueError:
        day = None
    if day is None:
        raise FilterError(param, f"'{raw}' is not a date (YYYY-MM-DD).")
    return day


FIELD_NAMES = tuple(f.name for f in fields(DashboardFilters))
