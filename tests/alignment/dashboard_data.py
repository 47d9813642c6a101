"""Constructed rollup rows for the dashboard tests, written straight into the rollup."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from alignment import rollups
from cem.tenancy import tenant_context
from feedback.selectors import org_tz


def today(org) -> dt.date:
    return timezone.now().astimezone(org_tz(org)).date()


def put(org, rows) -> None:
    """rows: dicts with ``measure`` and any of day/location/employee/standard/channel/touchpoint/
    segment/category (ids) and values (n, total, top, bottom; sumsq is derived)."""
    points = {}
    for r in rows:
        key = (
            (r.get("day") or today(org)).isoformat(),
            r.get("location"),
            r.get("employee"),
            r.get("standard"),
            r.get("channel"),
            r.get("touchpoint"),
            r.get("segment"),
            r.get("category", ""),
            r["measure"],
        )
        total = Decimal(str(r.get("total", 0)))
        vals = (r.get("n", 1), total, total * total, r.get("top", 0), r.get("bottom", 0))
        points[key] = tuple(a + b for a, b in zip(points.get(key, rollups.ZERO), vals, strict=True))
    with tenant_context(org):
        rollups.apply_points(org, points)


def nps_counts(values) -> dict:
    """n/total/top/bottom of NPS answers (0-10), as the rollup stores them."""
    return {
        "n": len(values),
        "total": sum(values),
        "top": sum(1 for v in values if v >= 9),
        "bottom": sum(1 for v in values if v <= 6),
    }
