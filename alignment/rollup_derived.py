"""What is derived from the rollup in the transaction of each change to it.

- ``PeriodRollup``: the score measures per period and location (what the organization-, region-
  and location-level alignment scores read);
- ``RollupGeneration``: a counter per location raised by every change to its rows (what the
  store dashboard's panel cache is keyed by); and, once the change commits, the store's and the
  organization's replay versions in Redis (what the panels' fast reads are checked against,
  cem.fast_reads) — :func:`replay_versions_changed`, called by every writer.

Two writers keep them, and the tests hold them equal to a GROUP BY over the rollup:

- :func:`apply` — the handlers' path (alignment.rollups.apply_points): the differences it is
  adding are known in Python, so each table gets one upsert in key order. Two handlers touching
  the same store's period rows lock them in the same order and cannot deadlock.
- the statement triggers on alignment_rollup (migration 0004) — everyone else: the SQL rebuild,
  the repair's delete, the ORM. :func:`by_caller` tells them the caller writes the derived rows
  itself; :func:`refresh` recomputes an organization's from scratch (after a bulk replacement,
  where one GROUP BY beats the triggers' subtract-everything-then-add-it-back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from contextlib import contextmanager
from decimal import Decimal

from django.db.models import Sum

from alignment import score_periods as periods
from alignment.models import PERIOD_MEASURES, RollupGeneration
from cem import fast_reads
from cem.fast_reads import tenant_version

FLAG = "alignment.derived_by_caller"
_MEASURES = frozenset(str(m) for m in PERIOD_MEASURES)
_ZERO = (0, 0, Decimal(0), Decimal(0), 0, 0)  # rows, n, total, sumsq, top, bottom


@contextmanager
def by_caller(cursor):
    """The triggers skip the statements inside: the caller writes the derived rows itself.

    Transaction-local; on an exception it is left set, as the savepoint it was set in rolls
    back with the statement that raised and takes the setting with it."""
    cursor.execute("SELECT set_config(%s, 'on', true)", [FLAG])
    yield
    cursor.execute("SELECT set_config(%s, 'off', true)", [FLAG])


def _nullable(value) -> tuple:
    return (value is None, value or 0)


def period_deltas(items: Iterable[tuple[tuple, tuple]], inserted: set[tuple]) -> dict[tuple, tuple]:
    """``{(period, start, location, standard, category, measure): (rows, n, total, sumsq, top,
    bottom)}`` of rollup differences ``(key, values)``; ``inserted``: the keys that are new rows."""
    out: dict[tuple, tuple] = {}
    for key, values in items:
        day, location, _employee, standard, _channel, _touchpoint, _segment, category, measure = key
        if measure not in _MEASURES:
            continue
        day = dt.date.fromisoformat(day) if isinstance(day, str) else day
        new_row = 1 if key in inserted else 0
        for kind, start in periods.periods_containing(day):
            group = (str(kind), start, location, standard, category, measure)
            held = out.get(group, _ZERO)
            out[group] = (held[0] + new_row, *(a + b for a, b in zip(held[1:], values, strict=True)))
    return {group: v for group, v in out.items() if any(v)}


_PERIOD_UPSERT = """
INSERT INTO alignment_periodrollup AS p
    (organization_id, period, period_start, location_id, standard_id, category, measure,
     rows, n, total, sumsq, top, bottom)
VALUES {values}
ON CONFLICT (organization_id, period, period_start, location_id, standard_id, category, measure)
DO UPDATE SET rows = p.rows + EXCLUDED.rows, n = p.n + EXCLUDED.n, total = p.total + EXCLUDED.total,
              sumsq = p.sumsq + EXCLUDED.sumsq, top = p.top + EXCLUDED.top,
              bottom = p.bottom + EXCLUDED.bottom
"""
_PERIOD_ROW = "(%s, %s, %s::date, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_GENERATION_UPSERT = """
INSERT INTO alignment_rollupgeneration AS g (organization_id, location_id, generation)
VALUES {values}
ON CONFLICT (organization_id, location_id) DO UPDATE SET generation = g.generation + 1
"""
_CHUNK = 1000


def _period_order(group: tuple) -> tuple:
    kind, start, location, standard, category, measure = group
    return (kind, start, _nullable(location), _nullable(standard), category, measure)


def apply(cursor, org_id: int, items: list[tuple[tuple, tuple]], inserted: set[tuple]) -> None:
    """Add rollup differences to PeriodRollup and raise the touched locations' generations."""
    deltas = period_deltas(items, inserted)
    ordered = sorted(deltas.items(), key=lambda kv: _period_order(kv[0]))
    for first in range(0, len(ordered), _CHUNK):
        chunk = ordered[first : first + _CHUNK]
        params = []
        for group, values in chunk:
            params += [org_id, *group, *values]
        cursor.execute(_PERIOD_UPSERT.format(values=", ".join([_PERIOD_ROW] * len(chunk))), params)
    locations = sorted({key[1] for key, _ in items}, key=_nullable)
    if locations:
        params = [v for location in locations for v in (org_id, location, 1)]
        cursor.execute(_GENERATION_UPSERT.format(values=", ".join(["(%s, %s, %s)"] * len(locations))), params)
        replay_versions_changed(org_id, locations)


_REFRESH = """
INSERT INTO alignment_periodrollup
    (organization_id, period, period_start, location_id, standard_id, category, measure,
     rows, n, total, sumsq, top, bottom)
SELECT r.organization_id, k.period,
       CASE k.period WHEN 'day' THEN r.day ELSE date_trunc(k.period, r.day::timestamp)::date END,
       r.location_id, r.standard_id, r.category, r.measure,
       count(*), sum(r.n), sum(r.total), sum(r.sumsq), sum(r.top), sum(r.bottom)
  FROM alignment_rollup r
 CROSS JOIN (VALUES ('day'), ('week'), ('month'), ('quarter')) k (period)
 WHERE r.organization_id = %(org)s AND r.measure = ANY(%(measures)s)
 GROUP BY 1, 2, 3, 4, 5, 6, 7
"""


def refresh(cursor, org_id: int) -> None:
    """The organization's PeriodRollup recomputed from its rollup; every generation raised.

    Call inside :func:`by_caller` in the transaction that replaced the rollup."""
    cursor.execute("DELETE FROM alignment_periodrollup WHERE organization_id = %s", [org_id])
    cursor.execute(_REFRESH, {"org": org_id, "measures": sorted(_MEASURES)})
    cursor.execute(
        "UPDATE alignment_rollupgeneration SET generation = generation + 1 WHERE organization_id = %s",
        [org_id],
    )
    cursor.execute(
        """INSERT INTO alignment_rollupgeneration (organization_id, location_id, generation)
           SELECT DISTINCT organization_id, location_id, 1 FROM alignment_rollup WHERE organization_id = %s
           ON CONFLICT (organization_id, location_id) DO NOTHING""",
        [org_id],
    )
    replay_versions_changed(org_id)


def location_version(org_id: int, location_id: int) -> str:
    return f"l:{org_id}:{location_id}"


def organization_version(org_id: int) -> str:
    return f"o:{org_id}"


def replay_versions_changed(org_id: int, locations: list | None = None) -> None:
    """After this transaction commits, stop replaying the store panels it changed (cem.fast_reads):
    the locations' and the organization's versions, or (``None``: the whole rollup, e.g. a rebuild
    or a repair) the tenant's. Every writer of the rollup calls this where it raises generations."""
    if locations is None:
        names = [tenant_version(org_id)]
    else:
        names = [location_version(org_id, loc) for loc in locations if loc is not None]
        names.append(organization_version(org_id))
    fast_reads.changed_on_commit(names)


def generation(
    location_id: int | None = None, *, organization: bool = False, using: str | None = None
) -> int:
    """The location's generation (0 before its first rollup row), or the sum of the organization's;
    ``using`` names a database alias (the primary, where a view otherwise reads a replica)."""
    rows = RollupGeneration.objects.using(using) if using else RollupGeneration.objects.all()
    if organization:
        return rows.aggregate(total=Sum("generation"))["total"] or 0
    return rows.filter(location_id=location_id).values_list("generation", flat=True).first() or 0
