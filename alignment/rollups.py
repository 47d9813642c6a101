"""Incremental upkeep of the ``Rollup`` table, and its rebuild from raw data in Python.

Each *source* object (a response, a published audit, an interaction, a lesson completion, a
points award) contributes rows ``{key: values}``:

- key: (local day, location, employee, standard, channel, touchpoint, segment, category, measure)
- values: (n, total, sumsq, top, bottom)

The contributions, per measure:

- a response: ``responses`` n=1; each NPS/CSAT/CES/FCR answer its raw value under that measure
  with top/bottom = promoters/detractors (NPS 9-10 / 0-6), top/bottom two boxes (CSAT 4-5 / 1-2,
  CES 5-7 / 1-3), yes/no (FCR); each scored answer linked to a standard its 0-100 point under
  ``std_feedback`` (the learning gap rules' scale conversion, ``feedback.selectors.gap_scale``).
- a published audit: its overall score under ``audit`` (a shop visit) or ``monitoring`` (an
  evaluation of a call/chat), and each standard score under ``std_audit`` / ``std_monitoring``.
- an interaction: ``interactions`` n=1, attributed to its first employee.
- a lesson completion by an employee: ``lessons`` once, and ``lesson_std`` per standard the
  lesson is tagged with; top = on time, bottom = late.
- a points award or recognition not reversed: ``points`` n=1, total = points into the wallet,
  standard = the reward rule's; located where the employee worked that day.

Values are quantized to 4 places half-up (sumsq per point too) before summing, so incremental,
Python-rebuilt and SQL-rebuilt totals are equal to the last digit.

``RollupSource`` stores each source's rows: applying it again is a no-op, and re-applying after a
rescore, reversal or erasure adds only the difference.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from alignment import rollup_derived
from alignment.models import Measure, Rollup, RollupSource
from audits.models import Audit, StandardScore
from cem.models import EmployeeAssignment, Interaction, InteractionEmployee, Organization
from cem.services import _check_tenant
from feedback.models import Answer, QuestionType, Response
from feedback.selectors import GAP_TYPES, gap_scale
from incentives.models import Account, LedgerEntry, LedgerTransaction
from learning.models import Completion, LessonStandard

_Q = Decimal("0.0001")
ZERO = (0, Decimal(0), Decimal(0), 0, 0)
Kind = RollupSource.Kind

# (top when value >= x, bottom when value <= y) of each metric question type.
METRIC_BOXES = {
    QuestionType.NPS: (9, 6),
    QuestionType.CSAT: (4, 2),
    QuestionType.CES: (5, 3),
    QuestionType.FCR: (1, 0),
}


def quantize(value) -> Decimal:
    return Decimal(value).quantize(_Q, rounding=ROUND_HALF_UP)


def org_tz(org_id: int) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(Organization.objects.get(pk=org_id).time_zone or "UTC")


def _day(at: dt.datetime, tz) -> str:
    return at.astimezone(tz).date().isoformat()


def _key(
    day,
    location=None,
    employee=None,
    standard=None,
    channel=None,
    touchpoint=None,
    segment=None,
    category="",
    *,
    measure,
) -> tuple:
    return (day, location, employee, standard, channel, touchpoint, segment, category or "", str(measure))


def _add(acc: dict, key: tuple, value=None, *, top: int = 0, bottom: int = 0) -> None:
    n, total, sumsq, t, b = acc.get(key, ZERO)
    v = quantize(value) if value is not None else Decimal(0)
    acc[key] = (n + 1, total + v, sumsq + quantize(v * v), t + top, b + bottom)


# --- sources -> rows ---------------------------------------------------------------------------

_RESPONSE_COLUMNS = (
    "id",
    "submitted_at",
    "location_id",
    "employee_id",
    "channel_id",
    "touchpoint_id",
    "segment_id",
    "category",
)
_ANSWER_COLUMNS = (
    "response_id",
    "submitted_at",
    "location_id",
    "employee_id",
    "channel_id",
    "touchpoint_id",
    "segment_id",
    "category",
    "standard_id",
    "question_type",
    "number",
    "question__scale_min",
    "question__scale_max",
)


def _response_points(responses, answers, tz, acc: dict) -> None:
    for rid, at, loc, emp, chan, tp, seg, cat in responses:
        _add(acc[rid], _key(_day(at, tz), loc, emp, None, chan, tp, seg, cat, measure=Measure.RESPONSES))
    for rid, at, loc, emp, chan, tp, seg, cat, std, qtype, number, smin, smax in answers:
        if number is None:
            continue
        day = _day(at, tz)
        boxes = METRIC_BOXES.get(qtype)
        if boxes is not None:
            _add(
                acc[rid],
                _key(day, loc, emp, None, chan, tp, seg, cat, measure=qtype),
                number,
                top=int(number >= boxes[0]),
                bottom=int(number <= boxes[1]),
            )
        if std is not None and qtype in GAP_TYPES:
            low, high = gap_scale(qtype, smin, smax)
            if low is None:
                continue  # a rating question without a usable scale cannot be put on 0-100
            point = (Decimal(number) - low) * 100 / (high - low)
            _add(acc[rid], _key(day, loc, emp, std, chan, tp, seg, cat, measure=Measure.STD_FEEDBACK), point)


def _responses(**filters):
    return Response.objects.filter(**filters).order_by().values_list(*_RESPONSE_COLUMNS)


def _answers(**filters):
    return (
        Answer.objects.filter(number__isnull=False, question_type__in=GAP_TYPES, **filters)
        .order_by()
        .values_list(*_ANSWER_COLUMNS)
    )


def is_monitoring(assignment_id, interaction_id) -> bool:
    # The same test as audit_publish's: a monitored call/chat is an evaluation.
    return assignment_id is None and interaction_id is not None


_AUDIT_COLUMNS = (
    "id",
    "published_at",
    "location_id",
    "employee_id",
    "score",
    "assignment_id",
    "interaction_id",
    "interaction__channel_id",
    "interaction__touchpoint_id",
    "interaction__category",
)


def _audits(**filters):
    return (
        Audit.objects.filter(status=Audit.Status.PUBLISHED, published_at__isnull=False, **filters)
        .order_by()
        .values_list(*_AUDIT_COLUMNS)
    )


def _scores(**filters):
    return (
        StandardScore.objects.filter(
            value__isnull=False,
            audit__status=Audit.Status.PUBLISHED,
            audit__published_at__isnull=False,
            **filters,
        )
        .order_by()
        .values_list("audit_id", "standard_id", "location_id", "employee_id", "value")
    )


def _audit_points(audits, scores, tz, acc: dict) -> None:
    dims = {}
    for aid, at, loc, emp, score, assignment_id, interaction_id, chan, tp, cat in audits:
        monitoring = is_monitoring(assignment_id, interaction_id)
        dims[aid] = (_day(at, tz), chan, tp, cat or "", monitoring)
        acc[aid]  # an audit without a score still records that it contributed nothing
        if score is not None:
            measure = Measure.MONITORING if monitoring else Measure.AUDIT
            _add(acc[aid], _key(dims[aid][0], loc, emp, None, chan, tp, None, cat, measure=measure), score)
    for aid, std, loc, emp, value in scores:
        if aid not in dims:
            continue
        day, chan, tp, cat, monitoring = dims[aid]
        measure = Measure.STD_MONITORING if monitoring else Measure.STD_AUDIT
        _add(acc[aid], _key(day, loc, emp, std, chan, tp, None, cat, measure=measure), value)


def _interaction_points(interactions, first_employee: dict, tz, acc: dict) -> None:
    for iid, at, loc, chan, tp, cat in interactions:
        key = _key(
            _day(at, tz),
            loc,
            first_employee.get(iid),
            None,
            chan,
            tp,
            None,
            cat,
            measure=Measure.INTERACTIONS,
        )
        _add(acc[iid], key)


def _interactions(**filters):
    return (
        Interaction.objects.filter(**filters)
        .order_by()
        .values_list("id", "occurred_at", "location_id", "channel_id", "touchpoint_id", "category")
    )


def _first_employees(**filters) -> dict[int, int]:
    rows = (
        InteractionEmployee.objects.filter(**filters)
        .order_by()
        .values("interaction_id")
        .annotate(first=Min("employee_id"))
        .values_list("interaction_id", "first")
    )
    return dict(rows)


def _completion_points(completions, lesson_standards: dict, tz, acc: dict) -> None:
    for cid, at, loc, emp, on_time, lesson_id in completions:
        day = _day(at, tz)
        top, bottom = int(on_time is True), int(on_time is False)
        _add(acc[cid], _key(day, loc, emp, measure=Measure.LESSONS), top=top, bottom=bottom)
        for std in lesson_standards.get(lesson_id, ()):
            _add(acc[cid], _key(day, loc, emp, std, measure=Measure.LESSON_STD), top=top, bottom=bottom)


def _completions(**filters):
    return (
        Completion.objects.filter(employee__isnull=False, **filters)
        .order_by()
        .values_list("id", "completed_at", "location_id", "employee_id", "on_time", "lesson_id")
    )


def _lesson_standards(lesson_ids=None) -> dict[int, list[int]]:
    qs = LessonStandard.objects.order_by("standard_id")
    if lesson_ids is not None:
        qs = qs.filter(lesson_id__in=list(lesson_ids))
    out = defaultdict(list)
    for lesson_id, std in qs.values_list("lesson_id", "standard_id"):
        out[lesson_id].append(std)
    return out


AWARD_KINDS = (LedgerTransaction.Kind.AWARD, LedgerTransaction.Kind.RECOGNITION)


class _Workplaces:
    """Where each employee worked on a day (their assignment covering it), loaded once per call."""

    def __init__(self, employee_ids=None):
        qs = EmployeeAssignment.objects.order_by("employee_id", "-start_date", "-id")
        if employee_ids is not None:
            qs = qs.filter(employee_id__in=list(employee_ids))
        self.by_employee = defaultdict(list)
        for emp, loc, start, end in qs.values_list("employee_id", "location_id", "start_date", "end_date"):
            self.by_employee[emp].append((start, end, loc))

    def on(self, employee_id, day: dt.date):
        for start, end, loc in self.by_employee.get(employee_id, ()):
            if start <= day and (end is None or end >= day):
                return loc
        return None


def _award_points(awards, tz, acc: dict) -> None:
    awards = list(awards)
    places = _Workplaces({emp for _, _, emp, _, _, _ in awards})
    for tid, at, emp, std, points, reversed_ in awards:
        acc[tid]
        if reversed_ or not points:
            continue  # a reversed award counts for nothing
        day = at.astimezone(tz).date()
        key = _key(day.isoformat(), places.on(emp, day), emp, std, measure=Measure.POINTS)
        _add(acc[tid], key, points)


def _awards(**filters):
    from django.db.models import Exists, OuterRef, Sum

    wallet_in = (
        LedgerEntry.objects.filter(
            transaction_id=OuterRef("pk"), account__kind=Account.Kind.WALLET, amount__gt=0
        )
        .order_by()
        .values("transaction_id")
        .annotate(points=Sum("amount"))
        .values("points")
    )
    reversed_ = LedgerTransaction.objects.filter(reverses_id=OuterRef("pk"))
    return (
        LedgerTransaction.objects.filter(kind__in=AWARD_KINDS, employee__isnull=False, **filters)
        .order_by()
        .annotate(points=wallet_in, is_reversed=Exists(reversed_))
        .values_list("id", "created_at", "employee_id", "rule__standard_id", "points", "is_reversed")
    )


def points_for(org, kind: str, ids) -> dict[int, dict]:
    """``{source_id: {key: values}}`` of the given sources, from raw data (absent ids contribute {})."""
    org_id = _check_tenant(org)
    ids = sorted(set(ids))
    tz = org_tz(org_id)
    acc = defaultdict(dict)
    if not ids:
        return acc
    if kind == Kind.RESPONSE:
        _response_points(_responses(id__in=ids), _answers(response_id__in=ids), tz, acc)
    elif kind == Kind.AUDIT:
        _audit_points(_audits(id__in=ids), _scores(audit_id__in=ids), tz, acc)
    elif kind == Kind.INTERACTION:
        _interaction_points(_interactions(id__in=ids), _first_employees(interaction_id__in=ids), tz, acc)
    elif kind == Kind.COMPLETION:
        completions = list(_completions(id__in=ids))
        _completion_points(completions, _lesson_standards({c[5] for c in completions}), tz, acc)
    elif kind == Kind.AWARD:
        _award_points(_awards(id__in=ids), tz, acc)
    else:
        raise ValueError(f"unknown rollup source kind {kind!r}")
    return acc


def points_all(org) -> dict[str, dict[int, dict]]:
    """Every source's rows, from raw data: ``{kind: {source_id: rows}}`` (the Python rebuild)."""
    org_id = _check_tenant(org)
    tz = org_tz(org_id)
    out = {}
    acc = defaultdict(dict)
    _response_points(_responses().iterator(chunk_size=5000), _answers().iterator(chunk_size=5000), tz, acc)
    out[Kind.RESPONSE] = acc
    acc = defaultdict(dict)
    _audit_points(list(_audits()), _scores().iterator(chunk_size=5000), tz, acc)
    out[Kind.AUDIT] = acc
    acc = defaultdict(dict)
    _interaction_points(_interactions().iterator(chunk_size=5000), _first_employees(), tz, acc)
    out[Kind.INTERACTION] = acc
    acc = defaultdict(dict)
    _completion_points(_completions().iterator(chunk_size=5000), _lesson_standards(), tz, acc)
    out[Kind.COMPLETION] = acc
    acc = defaultdict(dict)
    _award_points(_awards(), tz, acc)
    out[Kind.AWARD] = acc
    return out


# --- applying rows -----------------------------------------------------------------------------


def _to_json(rows: dict) -> list:
    return [
        [*key, n, str(total), str(sumsq), top, bottom]
        for key, (n, total, sumsq, top, bottom) in sorted(rows.items(), key=lambda kv: repr(kv[0]))
    ]


def _from_json(rows: list) -> dict:
    return {tuple(r[:9]): (r[9], Decimal(r[10]), Decimal(r[11]), r[12], r[13]) for r in rows}


def merge(into: dict, rows: dict, sign: int = 1) -> dict:
    for key, vals in rows.items():
        old = into.get(key, ZERO)
        into[key] = tuple(a + sign * b for a, b in zip(old, vals, strict=True))
    return into


def diff(new: dict, old: dict) -> dict:
    out = {}
    for key in new.keys() | old.keys():
        d = tuple(a - b for a, b in zip(new.get(key, ZERO), old.get(key, ZERO), strict=True))
        if any(d):
            out[key] = d
    return out


_UPSERT = """
INSERT INTO alignment_rollup
    (organization_id, day, location_id, employee_id, standard_id, channel_id, touchpoint_id, segment_id,
     category, measure, n, total, sumsq, top, bottom, updated_at)
VALUES {values}
ON CONFLICT (organization_id, day, location_id, employee_id, standard_id, channel_id, touchpoint_id,
             segment_id, category, measure)
DO UPDATE SET n = alignment_rollup.n + EXCLUDED.n,
              total = alignment_rollup.total + EXCLUDED.total,
              sumsq = alignment_rollup.sumsq + EXCLUDED.sumsq,
              top = alignment_rollup.top + EXCLUDED.top,
              bottom = alignment_rollup.bottom + EXCLUDED.bottom,
              updated_at = EXCLUDED.updated_at
"""
_ROW = "(%s, %s::date, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())"
# Which rows the upsert created (xmax is 0 on a freshly inserted row version): the period sums
# count the rollup rows they cover (alignment.rollup_derived).
_RETURNING = (
    " RETURNING day, location_id, employee_id, standard_id, channel_id, touchpoint_id, segment_id, category,"
    " measure, xmax = 0"
)
_CHUNK = 1000


def apply_points(org, rows: dict) -> None:
    """Add ``{key: values}`` to the rollup with upsert-increments (values may be negative), and
    the same differences to what is derived from it (alignment.rollup_derived).

    Keys are written in sorted order, so two transactions touching the same rows lock them in
    the same order and cannot deadlock.
    """
    org_id = _check_tenant(org)
    items = sorted(((k, v) for k, v in rows.items() if any(v)), key=lambda kv: repr(kv[0]))
    if not items:
        return
    inserted = set()
    with connection.cursor() as cur, rollup_derived.by_caller(cur):
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            params = []
            for key, vals in chunk:
                params += [org_id, *key, *vals]
            cur.execute(_UPSERT.format(values=",".join([_ROW] * len(chunk))) + _RETURNING, params)
            for day, *rest, is_new in cur.fetchall():
                if is_new:
                    inserted.add((day.isoformat(), *rest))
        rollup_derived.apply(cur, org_id, items, inserted)


@transaction.atomic
def apply_sources(org, kind: str, rows_by_source: dict[int, dict]) -> set[tuple]:
    """Make the rollup hold ``rows_by_source`` for these sources: add the difference to what they held.

    Returns the (day, location_id, employee_id) the change touched (empty: nothing changed), so
    the alignment scores of just those scopes and periods can be recomputed. Each source's
    RollupSource row is claimed (insert, or lock the existing one) before its difference is
    computed, so two deliveries of the same event cannot both add.
    """
    org_id = _check_tenant(org)
    ids = sorted(rows_by_source)
    if not ids:
        return set()
    RollupSource.objects.bulk_create(
        [RollupSource(organization_id=org_id, kind=kind, source_id=sid, rows=[]) for sid in ids],
        ignore_conflicts=True,
        batch_size=2000,
    )
    held = {
        s.source_id: s
        for s in RollupSource.objects.select_for_update()
        .filter(organization_id=org_id, kind=kind, source_id__in=ids)
        .order_by("source_id")
    }
    delta, changed, now = {}, [], timezone.now()
    for sid in ids:
        source = held[sid]
        d = diff(rows_by_source[sid], _from_json(source.rows))
        if d:
            merge(delta, d)
            source.rows, source.updated_at = _to_json(rows_by_source[sid]), now
            changed.append(source)
    apply_points(org_id, delta)
    RollupSource.objects.bulk_update(changed, ["rows", "updated_at"], batch_size=2000)
    return {key[:3] for key in delta}


def apply(org, kind: str, ids) -> set[tuple]:
    """Bring the rollup in line with the raw data of these sources (idempotent)."""
    ids = sorted({int(i) for i in ids if i is not None})
    if not ids:
        return set()
    by_source = points_for(org, kind, ids)
    return apply_sources(org, kind, {sid: by_source.get(sid, {}) for sid in ids})


# --- rebuild and compare (Python; alignment.rebuild has the SQL scratch-table version) ----------


def rebuild(org, *, replace: bool = False) -> dict:
    """The rollup computed from raw data. ``replace=True`` also makes it the stored rollup."""
    org_id = _check_tenant(org)
    by_kind = points_all(org_id)
    total: dict = {}
    for per_source in by_kind.values():
        for rows in per_source.values():
            merge(total, rows)
    total = {k: v for k, v in total.items() if any(v)}
    if replace:
        with transaction.atomic():
            Rollup.objects.filter(organization_id=org_id).delete()
            rollup_derived.replay_versions_changed(org_id)
            apply_points(org_id, total)
            RollupSource.objects.filter(organization_id=org_id).delete()
            RollupSource.objects.bulk_create(
                [
                    RollupSource(organization_id=org_id, kind=kind, source_id=sid, rows=_to_json(rows))
                    for kind, per_source in by_kind.items()
                    for sid, rows in per_source.items()
                ],
                batch_size=2000,
            )
    return total


def stored(org, **filters) -> dict:
    org_id = _check_tenant(org)
    rows = Rollup.objects.filter(organization_id=org_id, **filters).values_list(*Rollup.KEY, *Rollup.VALUES)
    out = {}
    for row in rows:
        key = (row[0].isoformat(), *row[1:9])
        vals = tuple(row[9:])
        if any(vals):
            out[key] = vals
    return out


def compare(org) -> dict:
    """Keys where the stored rollup and a Python rebuild disagree: ``{key: {"stored", "rebuilt"}}``."""
    built, have = rebuild(org), stored(org)
    return {
        key: {"stored": have.get(key), "rebuilt": built.get(key)}
        for key in built.keys() | have.keys()
        if have.get(key) != built.get(key)
    }
