"""Reads of imported business data: the scoped lists behind the page and the API, and the
business-metric KPIs of the incentives scorecards.

**KPIs from business metrics** (``business_kpi_figures``), for a location, a region (its
locations) or a team (its location) over a span of days: the metric rows counted are those whose
whole period lies inside the span (a month row counts for a quarter it belongs to; a month still
running is left out of a live preview). When a location has rows of several granularities for the
same figure (months and the quarter they make), one granularity is used per location: the one
covering the most days, the coarser on a tie — the same sales are never counted twice.

- ``sales_vs_target``: 100 x sales / sales target, summed over the location-periods that have
  both (and a target above 0). ``n`` = those location-periods.
- ``average_purchase``: sales / transactions over the location-periods that have both — the
  average purchase of the whole scope, weighted by transactions; ``n`` = the transactions. Where
  no location-period of the scope has both, the mean of the imported ``average_purchase`` figures,
  ``n`` = those location-periods.
- ``retention``: the mean of the ``retention_rate`` figures, ``n`` = the location-periods.

A scope with no usable row has no entry (the scorecard says "no data yet", never 0).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from alignment.business import period_end
from alignment.models import BusinessMetric, CustomerTransaction, PeriodKind
from cem.models import Location, Team
from cem.scoping import scope_queryset

K = BusinessMetric.Kind
TWO = Decimal("0.01")
# Coarser first: on equal coverage the coarser rows win.
_GRANULARITY = (PeriodKind.QUARTER, PeriodKind.MONTH, PeriodKind.WEEK, PeriodKind.DAY)
KPI_KINDS = {
    "sales_vs_target": (K.SALES, K.SALES_TARGET),
    "average_purchase": (K.SALES, K.TRANSACTIONS, K.AVERAGE_PURCHASE),
    "retention": (K.RETENTION_RATE,),
}


def metrics_for(*, role, membership):
    """Business metrics the caller may see, with their location (one query per page)."""
    return scope_queryset(
        BusinessMetric.objects.select_related("location"), role=role, membership=membership
    ).order_by("-period_start", "location__code", "kind", "period")


def transactions_for(*, role, membership):
    """CRM transactions the caller may see, with their customer and location."""
    return scope_queryset(
        CustomerTransaction.objects.select_related("customer", "location"), role=role, membership=membership
    ).order_by("-occurred_on", "-id")


def _q(value: Decimal) -> Decimal:
    return value.quantize(TWO, rounding=ROUND_HALF_UP)


def _scope_locations(scopes: dict[str, set[int]]) -> dict[str, dict[int, set[int]]]:
    """scope kind → scope id → its location ids (a region's locations, a team's location)."""
    out: dict[str, dict[int, set[int]]] = {}
    if scopes.get("location"):
        out["location"] = {pk: {pk} for pk in scopes["location"]}
    if scopes.get("region"):
        regions: dict[int, set[int]] = {pk: set() for pk in scopes["region"]}
        for pk, region_id in Location.objects.filter(region_id__in=scopes["region"]).values_list(
            "pk", "region_id"
        ):
            regions[region_id].add(pk)
        out["region"] = regions
    if scopes.get("team"):
        out["team"] = {
            pk: {location_id}
            for pk, location_id in Team.objects.filter(pk__in=scopes["team"]).values_list("pk", "location_id")
        }
    return out


def _chosen(periods: dict[str, dict[dt.date, dict]], usable) -> list[dict]:
    """The usable period figures of one location in the granularity covering the most days."""
    best, best_days = [], 0
    for granularity in _GRANULARITY:
        rows = [figures for start, figures in periods.get(granularity, {}).items() if usable(figures)]
        days = sum(
            (period_end(granularity, start) - start).days + 1
            for start, figures in periods.get(granularity, {}).items()
            if usable(figures)
        )
        if days > best_days:
            best, best_days = rows, days
    return best


def _has(*kinds, positive=()):
    def usable(figures: dict) -> bool:
        return all(k in figures for k in kinds) and all(figures[k] > 0 for k in positive)

    return usable


def business_kpi_figures(
    *, kpi: str, first_day: dt.date, last_day: dt.date, scopes: dict[str, set[int]]
) -> dict[str, dict[int, tuple[Decimal, int]]]:
    """scope kind → scope id → (value, n) of one business KPI over [first_day, last_day].

    Two queries (locations of regions/teams, then the metric rows), whatever the number of scopes.
    """
    kinds = KPI_KINDS[kpi]
    locations_of = _scope_locations(scopes)
    all_locations = {loc for by_id in locations_of.values() for locs in by_id.values() for loc in locs}
    # location → granularity → period start → kind → value
    periods: dict[int, dict[str, dict[dt.date, dict]]] = defaultdict(lambda: defaultdict(dict))
    if all_locations:
        rows = BusinessMetric.objects.filter(
            location_id__in=all_locations,
            kind__in=kinds,
            period_start__gte=first_day,
            period_start__lte=last_day,
        ).values_list("location_id", "period", "period_start", "kind", "value")
        for location_id, period, start, kind, value in rows:
            if period_end(period, start) <= last_day:
                periods[location_id][period].setdefault(start, {})[kind] = value
    per_location = {loc: _location_figures(kpi, periods[loc]) for loc in all_locations if loc in periods}
    out: dict[str, dict[int, tuple[Decimal, int]]] = {}
    for dim, by_id in locations_of.items():
        out[dim] = {}
        for scope_id, locs in by_id.items():
            figure = _combine(kpi, [per_location[loc] for loc in locs if loc in per_location])
            if figure is not None:
                out[dim][scope_id] = figure
    return out


def _location_figures(kpi: str, periods) -> dict:
    if kpi == "sales_vs_target":
        rows = _chosen(periods, _has(K.SALES, K.SALES_TARGET, positive=(K.SALES_TARGET,)))
        return {"pairs": [(r[K.SALES], r[K.SALES_TARGET]) for r in rows]}
    if kpi == "average_purchase":
        rows = _chosen(periods, _has(K.SALES, K.TRANSACTIONS, positive=(K.TRANSACTIONS,)))
        means = _chosen(periods, _has(K.AVERAGE_PURCHASE))
        return {
            "pairs": [(r[K.SALES], r[K.TRANSACTIONS]) for r in rows],
            "values": [r[K.AVERAGE_PURCHASE] for r in means],
        }
    rows = _chosen(periods, _has(K.RETENTION_RATE))
    return {"values": [r[K.RETENTION_RATE] for r in rows]}


def _combine(kpi: str, figures: list[dict]) -> tuple[Decimal, int] | None:
    pairs = [p for f in figures for p in f.get("pairs", ())]
    values = [v for f in figures for v in f.get("values", ())]
    if kpi == "sales_vs_target":
        if not pairs:
            return None
        return _q(sum(s for s, _ in pairs) * 100 / sum(t for _, t in pairs)), len(pairs)
    if kpi == "average_purchase" and pairs:
        transactions = sum(t for _, t in pairs)
        return _q(sum(s for s, _ in pairs) / transactions), int(transactions)
    if not values:
        return None
    return _q(sum(values) / len(values)), len(values)
