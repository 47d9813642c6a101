"""Reads behind the audit results pages, scoped to the caller like everything else."""

from __future__ import annotations

import datetime as dt

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from audits.models import Audit, StandardScore
from cem.params import id_of
from cem.scoping import scope_queryset


def _scoped(qs, membership):
    return scope_queryset(qs, role=membership.role, membership=membership)


def published_audits(*, membership, params):
    """Newest published audits and evaluations first, optionally for one location."""
    qs = _scoped(Audit.objects.filter(published_at__isnull=False), membership)
    if (location_id := id_of(params.get("location") or "")) is not None:
        qs = qs.filter(location_id=location_id)
    return qs.select_related("location", "employee", "version__form").order_by("-published_at", "-pk")


def standard_summary(*, membership, days: int = 90) -> list[dict]:
    """Score per standard over the period: the weighted % of points, with the number of audits.

    Points are summed before dividing, so an audit with more applicable items on a standard
    weighs more, as it does in each audit's own score.
    """
    since = timezone.now() - dt.timedelta(days=days)
    rows = (
        _scoped(StandardScore.objects.filter(published_at__gte=since), membership)
        .values("standard_id", "standard__code", "standard__title")
        .annotate(earned=Sum("earned"), possible=Sum("possible"), audits=Count("audit_id", distinct=True))
        .order_by("standard__code")
    )
    out = []
    for row in rows:
        possible = row["possible"] or 0
        value = round(float(100 * row["earned"] / possible), 2) if possible else None
        out.append(
            {
                "code": row["standard__code"],
                "title": row["standard__title"],
                "value": value,
                "audits": row["audits"],
            }
        )
    return out


def average_score(*, membership, days: int = 90) -> dict:
    since = timezone.now() - dt.timedelta(days=days)
    agg = _scoped(Audit.objects.filter(published_at__gte=since), membership).aggregate(
        value=Avg("score"), n=Count("pk")
    )
    return {"value": round(float(agg["value"]), 2) if agg["value"] is not None else None, "n": agg["n"]}


def standard_points(
    *,
    standard_id: int,
    since: dt.datetime,
    location_id: int | None = None,
    employee_id: int | None = None,
    team_id: int | None = None,
) -> dict:
    """Published audit and monitoring scores on a standard since ``since`` for one subject.

    For the learning app's gap rules: ``{"n", "mean"}`` on 0-100 (each audit counts once). One
    aggregate on ``stdscore_org_std_published`` (organization, standard, published_at), so the
    cost follows the window, not the organization's history. A team is its employees' current team.
    """
    qs = StandardScore.objects.filter(standard_id=standard_id, published_at__gte=since, value__isnull=False)
    if location_id is not None:
        qs = qs.filter(location_id=location_id)
    if employee_id is not None:
        qs = qs.filter(employee_id=employee_id)
    if team_id is not None:
        qs = qs.filter(employee__current_team_id=team_id)
    agg = qs.aggregate(n=Count("pk"), mean=Avg("value"))
    return {"n": agg["n"], "mean": round(float(agg["mean"]), 2) if agg["mean"] is not None else None}


def standard_point_series(
    *,
    standard_id: int,
    since: dt.datetime,
    until: dt.datetime,
    employee_ids=(),
    location_ids=(),
    team_ids=(),
) -> list[tuple[int | None, int | None, int | None, dt.datetime, float]]:
    """Every published audit/monitoring score on a standard in [since, until) about any of these
    subjects: rows ``(employee_id, location_id, team_id, published_at, value 0-100)``.

    The points :func:`standard_points` averages, one by one, for the learning app's before/after
    comparison. One query on ``stdscore_org_std_published`` for all subjects at once.
    """
    about = Q()
    if employee_ids:
        about |= Q(employee_id__in=list(employee_ids))
    if location_ids:
        about |= Q(location_id__in=list(location_ids))
    if team_ids:
        about |= Q(employee__current_team_id__in=list(team_ids))
    if not about:
        return []
    rows = (
        StandardScore.objects.filter(
            about,
            standard_id=standard_id,
            published_at__gte=since,
            published_at__lt=until,
            value__isnull=False,
        )
        .order_by()
        .values_list("employee_id", "location_id", "employee__current_team_id", "published_at", "value")
    )
    return [(e, loc, t, at, float(v)) for e, loc, t, at, v in rows.iterator(chunk_size=5000)]
