"""Incremental upkeep of the ``StandardDaily`` rollup, and its rebuild from raw data.

A *point* is one 0-100 value on a standard: a survey answer linked to a standard, put on 0-100
with the same scale conversion as the learning gap rules (``feedback.selectors.gap_scale``), or
an audit's / evaluation's ``StandardScore.value``. Each point is quantized to 4 places, keyed by
(local day, location, employee, standard, channel, source) and summed; incremental and rebuilt
totals are therefore equal to the last digit.

Each response and audit records what it added (``RollupApplied``): applying it again is a no-op,
and re-applying after a rescore adds only the difference between the new rows and the old ones.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from decimal import Decimal

from django.db import connection, transaction

from alignment.models import RollupApplied, StandardDaily
from audits.models import Audit, StandardScore
from cem.models import Organization
from cem.services import _check_tenant
from feedback.models import Answer
from feedback.selectors import GAP_TYPES, gap_scale

_Q = Decimal("0.0001")
Key = tuple  # (day iso, location_id, employee_id, standard_id, channel_id, source)


def _tz(org_id: int) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(Organization.objects.get(pk=org_id).time_zone or "UTC")


def _day(at: dt.datetime, tz) -> str:
    return at.astimezone(tz).date().isoformat()


def _add(acc: dict, key: Key, value: Decimal) -> None:
    n, total = acc.get(key, (0, Decimal(0)))
    acc[key] = (n + 1, total + value)


def _answer_points(answers, tz, acc_by_source_id: dict) -> None:
    for resp_id, std, loc, emp, chan, at, number, qtype, smin, smax in answers:
        low, high = gap_scale(qtype, smin, smax)
        if low is None:
            continue  # a rating question without a usable scale cannot be put on 0-100
        value = ((Decimal(number) - low) * 100 / (high - low)).quantize(_Q)
        _add(acc_by_source_id[resp_id], (_day(at, tz), loc, emp, std, chan, "feedback"), value)


_ANSWER_COLUMNS = (
    "response_id",
    "standard_id",
    "location_id",
    "employee_id",
    "channel_id",
    "submitted_at",
    "number",
    "question_type",
    "question__scale_min",
    "question__scale_max",
)


def _answers(**filters):
    return (
        Answer.objects.filter(
            standard__isnull=False, number__isnull=False, question_type__in=GAP_TYPES, **filters
        )
        .order_by()
        .values_list(*_ANSWER_COLUMNS)
    )


def _audit_source(assignment_id, interaction_id) -> str:
    # The same test as audit_publish's: a monitored call/chat is an evaluation.
    return "monitoring" if assignment_id is None and interaction_id is not None else "audit"


def _score_points(scores, tz, acc_by_source_id: dict) -> None:
    for audit_id, std, loc, emp, value, published_at, assignment_id, interaction_id in scores:
        key = (_day(published_at, tz), loc, emp, std, None, _audit_source(assignment_id, interaction_id))
        _add(acc_by_source_id[audit_id], key, Decimal(value).quantize(_Q))


def _scores(**filters):
    return (
        StandardScore.objects.filter(
            value__isnull=False,
            audit__status=Audit.Status.PUBLISHED,
            audit__published_at__isnull=False,
            **filters,
        )
        .order_by()
        .values_list(
            "audit_id",
            "standard_id",
            "location_id",
            "employee_id",
            "value",
            "audit__published_at",
            "audit__assignment_id",
            "audit__interaction_id",
        )
    )


def points_for_responses(org, response_ids) -> dict[int, dict[Key, tuple[int, Decimal]]]:
    org_id = _check_tenant(org)
    acc = defaultdict(dict)
    _answer_points(_answers(response_id__in=list(response_ids)), _tz(org_id), acc)
    return acc


def points_for_audit(org, audit_id: int) -> dict[Key, tuple[int, Decimal]]:
    org_id = _check_tenant(org)
    acc = defaultdict(dict)
    _score_points(_scores(audit_id=audit_id), _tz(org_id), acc)
    return acc.get(audit_id, {})


def _to_json(rows: dict) -> list:
    return [[*key, n, str(total)] for key, (n, total) in sorted(rows.items(), key=lambda kv: repr(kv[0]))]


def _from_json(rows: list) -> dict:
    return {tuple(r[:6]): (r[6], Decimal(r[7])) for r in rows}


_UPSERT = """
INSERT INTO alignment_standarddaily
    (organization_id, day, location_id, employee_id, standard_id, channel_id, source, n, total, updated_at)
VALUES {values}
ON CONFLICT (organization_id, day, location_id, employee_id, standard_id, channel_id, source)
DO UPDATE SET n = alignment_standarddaily.n + EXCLUDED.n,
              total = alignment_standarddaily.total + EXCLUDED.total,
              updated_at = EXCLUDED.updated_at
"""


def apply_points(org, rows: dict) -> None:
    """Add ``{key: (n, total)}`` to the rollup in one upsert-increment statement (n may be negative)."""
    org_id = _check_tenant(org)
    rows = {k: v for k, v in rows.items() if v[0] or v[1]}
    if not rows:
        return
    params = []
    for (day, loc, emp, std, chan, source), (n, total) in rows.items():
        params += [org_id, day, loc, emp, std, chan, source, n, total]
    values = ",".join(["(%s, %s::date, %s, %s, %s, %s, %s, %s, %s, now())"] * len(rows))
    with connection.cursor() as cur:
        cur.execute(_UPSERT.format(values=values), params)


def _diff(new: dict, old: dict) -> dict:
    out = {}
    for key in new.keys() | old.keys():
        n1, t1 = new.get(key, (0, Decimal(0)))
        n0, t0 = old.get(key, (0, Decimal(0)))
        if n1 != n0 or t1 != t0:
            out[key] = (n1 - n0, t1 - t0)
    return out


@transaction.atomic
def apply_source(org, *, kind: str, source_id: int, rows: dict) -> bool:
    """Make the rollup hold ``rows`` for this response/audit: add the difference to what it held.

    Returns whether anything changed. The RollupApplied row is locked, so two deliveries of the
    same event cannot both add.
    """
    org_id = _check_tenant(org)
    applied, _ = RollupApplied.objects.select_for_update().get_or_create(
        organization_id=org_id, kind=kind, source_id=source_id, defaults={"rows": []}
    )
    delta = _diff(rows, _from_json(applied.rows))
    if not delta:
        return False
    apply_points(org_id, delta)
    applied.rows = _to_json(rows)
    applied.save(update_fields=["rows", "updated_at"])
    return True


def apply_responses(org, response_ids) -> int:
    by_response = points_for_responses(org, response_ids)
    return sum(
        apply_source(org, kind="response", source_id=rid, rows=by_response.get(rid, {}))
        for rid in response_ids
    )


def apply_audit(org, audit_id: int) -> bool:
    return apply_source(org, kind="audit", source_id=audit_id, rows=points_for_audit(org, audit_id))


def rebuild(org, *, into_scratch: bool = True) -> dict[Key, tuple[int, Decimal]]:
    """The rollup computed from raw data. ``into_scratch=False`` also replaces the stored rollup."""
    org_id = _check_tenant(org)
    tz = _tz(org_id)
    per_source = defaultdict(dict)
    _answer_points(_answers().iterator(chunk_size=5000), tz, per_source)
    scores = defaultdict(dict)
    _score_points(_scores().iterator(chunk_size=5000), tz, scores)
    total: dict = {}
    for acc in (per_source, scores):
        for rows in acc.values():
            for key, (n, t) in rows.items():
                n0, t0 = total.get(key, (0, Decimal(0)))
                total[key] = (n0 + n, t0 + t)
    if not into_scratch:
        with transaction.atomic():
            StandardDaily.objects.filter(organization_id=org_id).delete()
            apply_points(org_id, total)
            RollupApplied.objects.filter(organization_id=org_id).delete()
            RollupApplied.objects.bulk_create(
                [
                    RollupApplied(organization_id=org_id, kind="response", source_id=k, rows=_to_json(v))
                    for k, v in per_source.items()
                ]
                + [
                    RollupApplied(organization_id=org_id, kind="audit", source_id=k, rows=_to_json(v))
                    for k, v in scores.items()
                ]
            )
    return total


def stored(org) -> dict[Key, tuple[int, Decimal]]:
    org_id = _check_tenant(org)
    rows = StandardDaily.objects.filter(organization_id=org_id).values_list(
        "day", "location_id", "employee_id", "standard_id", "channel_id", "source", "n", "total"
    )
    return {
        (day.isoformat(), loc, emp, std, chan, src): (n, total)
        for day, loc, emp, std, chan, src, n, total in rows
        if n or total
    }


def compare(org) -> dict[Key, dict]:
    """Keys where the stored rollup and a rebuild disagree: ``{key: {"stored", "rebuilt"}}``."""
    built, have = rebuild(org), stored(org)
    return {
        key: {"stored": have.get(key), "rebuilt": built.get(key)}
        for key in built.keys() | have.keys()
        if have.get(key) != built.get(key)
    }
