"""Calendar periods of the alignment scores: day, ISO week (Monday), month, quarter — local dates.

A period is ``(kind, start)``; its end is exclusive. Rollup days are local dates in the
organization's time zone, so periods are plain date arithmetic; facts stored as instants
(gap triggers) are cut at the local midnights of :func:`bounds`.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from alignment.models import PeriodKind

KINDS = (PeriodKind.DAY, PeriodKind.WEEK, PeriodKind.MONTH, PeriodKind.QUARTER)


def start_of(kind: str, day: dt.date) -> dt.date:
    if kind == PeriodKind.DAY:
        return day
    if kind == PeriodKind.WEEK:
        return day - dt.timedelta(days=day.weekday())
    if kind == PeriodKind.MONTH:
        return day.replace(day=1)
    if kind == PeriodKind.QUARTER:
        return dt.date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    raise ValueError(f"unknown period kind {kind!r}")


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def shift(kind: str, start: dt.date, steps: int) -> dt.date:
    """The start of the period ``steps`` periods after (negative: before) the one at ``start``."""
    if kind == PeriodKind.DAY:
        return start + dt.timedelta(days=steps)
    if kind == PeriodKind.WEEK:
        return start + dt.timedelta(weeks=steps)
    if kind == PeriodKind.MONTH:
        return _add_months(start, steps)
    if kind == PeriodKind.QUARTER:
        return _add_months(start, 3 * steps)
    raise ValueError(f"unknown period kind {kind!r}")


def end_of(kind: str, start: dt.date) -> dt.date:
    """The first day after the period."""
    return shift(kind, start, 1)


def periods_containing(day: dt.date) -> list[tuple[str, dt.date]]:
    return [(kind, start_of(kind, day)) for kind in KINDS]


def periods_between(kind: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """Starts of every period of ``kind`` from the one holding ``first`` to the one holding ``last``."""
    out, start = [], start_of(kind, first)
    while start <= last:
        out.append(start)
        start = shift(kind, start, 1)
    return out


def bounds(kind: str, start: dt.date, tz: zoneinfo.ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    """[local midnight of the first day, local midnight after the last day)."""
    return (
        dt.datetime.combine(start, dt.time.min, tzinfo=tz),
        dt.datetime.combine(end_of(kind, start), dt.time.min, tzinfo=tz),
    )


def label(kind: str, start: dt.date) -> str:
    if kind == PeriodKind.DAY:
        return start.isoformat()
    if kind == PeriodKind.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == PeriodKind.MONTH:
        return start.strftime("%Y-%m")
    return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
