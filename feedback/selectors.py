"""Reads behind the metrics API and the feedback dashboard. Every read is scoped to the caller.

Answer metrics (NPS, CSAT, CES, FCR) are one aggregate query per call over ``Answer``, with
conditional counts (``COUNT(number) FILTER (WHERE number >= 9)``) so the database returns
counts and :mod:`feedback.metrics` turns them into values — the API and the page round alike.
The query touches only columns of the covering index ``answer_org_type_submitted``
(organization, question_type, submitted_at INCLUDE number, location, employee, channel,
touchpoint, segment, survey), so NPS by location over millions of answers is an index-only scan.

Dimensions:

- ``organization``, ``location``, ``employee``, ``channel``, ``touchpoint``, ``segment``,
  ``standard``: the ids copied onto each answer when it was written (where it happened).
- ``region``: the answer's location's region *today* (one join to the location table).
- ``team``: the answering employee's **current** team (``Employee.current_team``). A location
  can have several teams, so "the location's teams" would count an answer more than once;
  the employee's team does not. Answers with no employee, or by an employee with no team,
  group under ``null``. Moving an employee moves their history with them — document for users.
- ``day`` / ``week`` (ISO, Monday) / ``month``: truncated in the organization's time zone, so a
  Friday-evening answer in Madrid is not counted on Saturday.

Case metrics read the ``Case`` table (written by the cases area):

- ``complaint_rate``: cases per 100 responses. Both sides are attributed to the *response*
  (its location, channel, employee… and its ``submitted_at`` for the period), so a period's
  rate compares complaints about that period's responses with those responses. ``n`` is the
  number of responses.
- ``resolution_rate``: % of cases resolved no later than ``sla_due_at``, over the cases whose
  SLA deadline has passed (a case due tomorrow is neither a success nor a failure yet). Period
  = the SLA deadline. ``n`` is the number of cases due.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connections
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Trunc
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cem.models import Location
from cem.params import as_utc, id_of
from cem.scoping import scope_queryset
from feedback import metrics as m
from feedback.models import Answer, Case, QuestionType, Response, Survey

ANSWER_METRICS = ("nps", "csat", "ces", "fcr")
CASE_METRICS = ("complaint_rate", "resolution_rate")
METRIC_NAMES = ANSWER_METRICS + CASE_METRICS
PERIODS = ("day", "week", "month")

# dimension → ORM path of its id, per table. A dimension a table cannot answer is absent.
_ANSWER_PATHS = {
    "organization": "organization_id",
    "region": "location__region_id",
    "location": "location_id",
    "team": "employee__current_team_id",
    "employee": "employee_id",
    "channel": "channel_id",
    "touchpoint": "touchpoint_id",
    "segment": "segment_id",
    "standard": "standard_id",
}
_RESPONSE_PATHS = {k: v for k, v in _ANSWER_PATHS.items() if k != "standard"}
_CASE_VIA_RESPONSE_PATHS = {k: f"response__{v}" for k, v in _RESPONSE_PATHS.items()}
_CASE_PATHS = {
    "organization": "organization_id",
    "region": "location__region_id",
    "location": "location_id",
    "team": "employee__current_team_id",
    "employee": "employee_id",
}
DIMENSIONS = (*_ANSWER_PATHS, *PERIODS)


def dimensions_for(metric: str) -> tuple[str, ...]:
    paths = {"complaint_rate": _RESPONSE_PATHS, "resolution_rate": _CASE_PATHS}.get(metric, _ANSWER_PATHS)
    return (*paths, *PERIODS)


class MetricQueryError(ValueError):
    """Bad input, naming the parameter at fault (the API answers 400 with it)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class MetricQuery:
    metric: str = "nps"
    group_by: tuple[str, ...] = ()
    # dimension → ids (a comma-separated filter matches any of them)
    filters: dict[str, tuple[int, ...]] = field(default_factory=dict)
    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # exclusive
    survey: int | None = None
    question: str = ""


@dataclass(frozen=True)
class Caller:
    """Whose view of the data: the same role + membership the base viewset and page mixin use."""

    role: str | None
    membership: object = None

    @classmethod
    def of_membership(cls, membership) -> Caller:
        return cls(role=membership.role, membership=membership)

    def scoped(self, qs):
        return scope_queryset(qs, role=self.role, membership=self.membership)


def org_tz(organization) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


# --- parsing -----------------------------------------------------------------------------------


def parse_bound(param: str, raw: str, tz, *, end: bool) -> dt.datetime:
    """A date covers the whole local day; a datetime without offset is local to the organization."""
    raw = raw.strip()
    # The date first: parse_datetime (datetime.fromisoformat) also accepts "YYYY-MM-DD" as
    # midnight, which would make "to=<day>" exclude that very day.
    try:
        day = parse_date(raw)
        moment = None if day else parse_datetime(raw)
    except ValueError:
        moment = day = None
    if moment is not None:
        if timezone.is_naive(moment):
            return timezone.make_aware(moment, tz)
        if (utc := as_utc(moment)) is None:
            raise MetricQueryError(param, f"'{raw}' is out of range.")
        return utc
    if day is not None:
        if end:
            day += dt.timedelta(days=1)
        return dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    raise MetricQueryError(param, f"'{raw}' is not a date (YYYY-MM-DD) or an ISO 8601 datetime.")


def _parse_ids(param: str, raw: str) -> tuple[int, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    ids = tuple(id_of(p) for p in parts)
    if not ids or None in ids:
        raise MetricQueryError(param, "Expected an id or comma-separated ids.")
    return ids


def parse_metric_query(params, organization, *, default_metric: str = "nps") -> MetricQuery:
    """Read query parameters (a QueryDict or dict of strings) into a MetricQuery."""
    tz = org_tz(organization)
    metric = (params.get("metric") or default_metric).strip()
    if metric not in METRIC_NAMES:
        raise MetricQueryError("metric", f"Unknown metric '{metric}'; one of {', '.join(METRIC_NAMES)}.")
    allowed = dimensions_for(metric)
    group_by = tuple(g.strip() for g in (params.get("group_by") or "").split(",") if g.strip())
    for name in group_by:
        if name not in DIMENSIONS:
            raise MetricQueryError("group_by", f"Unknown dimension '{name}'; one of {', '.join(DIMENSIONS)}.")
        if name not in allowed:
            raise MetricQueryError("group_by", f"'{name}' is not available for {metric}.")
    if len(set(group_by)) != len(group_by):
        raise MetricQueryError("group_by", "A dimension is repeated.")
    if sum(1 for g in group_by if g in PERIODS) > 1:
        raise MetricQueryError("group_by", "Group by at most one of day, week, month.")
    filters = {}
    for name in _ANSWER_PATHS:
        raw = params.get(name)
        if raw in (None, ""):
            continue
        if name not in allowed:
            raise MetricQueryError(name, f"Cannot filter {metric} by {name}.")
        filters[name] = _parse_ids(name, raw)
    start = parse_bound("from", params["from"], tz, end=False) if params.get("from") else None
    end = parse_bound("to", params["to"], tz, end=True) if params.get("to") else None
    if start and end and start >= end:
        raise MetricQueryError("from", "'from' must be before 'to'.")
    survey = None
    if params.get("survey"):
        survey = _parse_ids("survey", params["survey"])[0]
    question = (params.get("question") or "").strip()
    if question and metric not in ANSWER_METRICS:
        raise MetricQueryError("question", f"Cannot filter {metric} by question.")
    if len(question) > 60:
        raise MetricQueryError("question", "At most 60 characters.")
    return MetricQuery(
        metric=metric,
        group_by=group_by,
        filters=filters,
        start=start,
        end=end,
        survey=survey,
        question=question,
    )


# --- building blocks ---------------------------------------------------------------------------


def _filtered(qs, query: MetricQuery, paths: dict[str, str], *, time_field: str, survey_path: str | None):
    for name, ids in query.filters.items():
        path = paths[name]
        qs = qs.filter(**{path: ids[0]} if len(ids) == 1 else {f"{path}__in": ids})
    if query.start is not None:
        qs = qs.filter(**{f"{time_field}__gte": query.start})
    if query.end is not None:
        qs = qs.filter(**{f"{time_field}__lt": query.end})
    if query.survey is not None and survey_path:
        qs = qs.filter(**{survey_path: query.survey})
    return qs


def _group_exprs(query: MetricQuery, paths: dict[str, str], *, time_field: str, tz) -> dict:
    # Aliases carry a prefix: "location" as a values() alias would clash with the model field.
    exprs = {}
    for name in query.group_by:
        if name in PERIODS:
            exprs[f"g_{name}"] = Trunc(time_field, name, tzinfo=tz)
        else:
            exprs[f"g_{name}"] = F(paths[name])
    return exprs


def _group_of(row: dict, query: MetricQuery, tz) -> dict:
    group = {}
    for name in query.group_by:
        value = row[f"g_{name}"]
        if name in PERIODS and value is not None:
            value = value.astimezone(tz).date().isoformat()
        group[name] = value
    return group


def _sort_key(result: dict):
    # Nulls last, then by value; keeps the output stable for clients and tests.
    return tuple((v is None, v if v is not None else 0) for v in result["group"].values())


def _grouped(qs, query: MetricQuery, exprs: dict, aggregates: dict) -> list[dict]:
    if not exprs:
        return [qs.aggregate(**aggregates)]
    return list(qs.order_by().values(**exprs).annotate(**aggregates))


# --- answer metrics ----------------------------------------------------------------------------

_NUMBER = "number"


def _answer_aggregates(metric: str) -> dict:
    # Counting "number" (never "id") keeps every column inside the covering index.
    n = Count(_NUMBER)
    if metric == "nps":
        return {
            "n": n,
            "hi": Count(_NUMBER, filter=Q(number__gte=m.PROMOTER_MIN)),
            "lo": Count(_NUMBER, filter=Q(number__lte=m.DETRACTOR_MAX)),
        }
    if metric == "csat":
        return {"n": n, "hi": Count(_NUMBER, filter=Q(number__gte=m.CSAT_TOP_BOX_MIN))}
    if metric == "fcr":
        return {"n": n, "hi": Count(_NUMBER, filter=Q(number=m.FCR_YES))}
    return {"n": n, "total": Sum(_NUMBER)}


def _answer_value(metric: str, row: dict) -> m.Metric:
    n = row.get("n") or 0
    if metric == "nps":
        return m.nps_from_counts(promoters=row["hi"] or 0, detractors=row["lo"] or 0, n=n)
    if metric in ("csat", "fcr"):
        return m.percent_from_counts(hits=row["hi"] or 0, n=n)
    return m.mean_from_sum(total=row.get("total") or Decimal(0), n=n)


def _answers(caller: Caller, query: MetricQuery):
    qs = caller.scoped(Answer.objects.filter(question_type=query.metric, number__isnull=False))
    qs = _filtered(qs, query, _ANSWER_PATHS, time_field="submitted_at", survey_path="survey_id")
    if query.question:
        qs = qs.filter(question_key=query.question)
    return qs


def metric_results(*, organization, caller: Caller, query: MetricQuery) -> list[dict]:
    """[{"group": {...}, "value": float | None, "n": int}] for any metric, scoped to the caller.

    Without ``group_by`` there is always exactly one result (value null when n is 0); with it,
    one result per group that has data.
    """
    if query.metric in CASE_METRICS:
        return _case_results(organization=organization, caller=caller, query=query)
    tz = org_tz(organization)
    exprs = _group_exprs(query, _ANSWER_PATHS, time_field="submitted_at", tz=tz)
    rows = _grouped(_answers(caller, query), query, exprs, _answer_aggregates(query.metric))
    results = [
        {"group": _group_of(row, query, tz), **_answer_value(query.metric, row).as_dict()} for row in rows
    ]
    return sorted(results, key=_sort_key)


def kpis(*, organization, caller: Caller, query: MetricQuery) -> dict[str, m.Metric]:
    """NPS, CSAT, CES and FCR over the same filters in one query (grouped by question type)."""
    qs = caller.scoped(Answer.objects.filter(question_type__in=ANSWER_METRICS, number__isnull=False))
    qs = _filtered(qs, query, _ANSWER_PATHS, time_field="submitted_at", survey_path="survey_id")
    rows = (
        qs.order_by()
        .values("question_type")
        .annotate(
            n=Count(_NUMBER),
            total=Sum(_NUMBER),
            nps_hi=Count(_NUMBER, filter=Q(number__gte=m.PROMOTER_MIN)),
            nps_lo=Count(_NUMBER, filter=Q(number__lte=m.DETRACTOR_MAX)),
            top2=Count(_NUMBER, filter=Q(number__gte=m.CSAT_TOP_BOX_MIN)),
            yes=Count(_NUMBER, filter=Q(number=m.FCR_YES)),
        )
    )
    by_type = {row["question_type"]: row for row in rows}
    out = {}
    for metric in ANSWER_METRICS:
        row = by_type.get(metric, {})
        n = row.get("n", 0)
        if metric == "nps":
            out[metric] = m.nps_from_counts(
                promoters=row.get("nps_hi", 0), detractors=row.get("nps_lo", 0), n=n
            )
        elif metric == "csat":
            out[metric] = m.percent_from_counts(hits=row.get("top2", 0), n=n)
        elif metric == "fcr":
            out[metric] = m.percent_from_counts(hits=row.get("yes", 0), n=n)
        else:
            out[metric] = m.mean_from_sum(total=row.get("total"), n=n)
    return out


# --- case metrics ------------------------------------------------------------------------------


def _case_results(*, organization, caller: Caller, query: MetricQuery) -> list[dict]:
    tz = org_tz(organization)
    if query.metric == "complaint_rate":
        responses = _filtered(
            caller.scoped(Response.objects.all()),
            query,
            _RESPONSE_PATHS,
            time_field="submitted_at",
            survey_path="survey_id",
        )
        cases = _filtered(
            caller.scoped(Case.objects.all()),
            query,
            _CASE_VIA_RESPONSE_PATHS,
            time_field="response__submitted_at",
            survey_path="response__survey_id",
        )
        r_exprs = _group_exprs(query, _RESPONSE_PATHS, time_field="submitted_at", tz=tz)
        c_exprs = _group_exprs(query, _CASE_VIA_RESPONSE_PATHS, time_field="response__submitted_at", tz=tz)
        denominators = _grouped(responses, query, r_exprs, {"n": Count("id")})
        numerators = {
            _key(row, query, tz): row["k"] for row in _grouped(cases, query, c_exprs, {"k": Count("id")})
        }
        results = []
        for row in denominators:
            group = _group_of(row, query, tz)
            k = numerators.get(tuple(group.values()), 0)
            results.append({"group": group, **m.percent_from_counts(hits=k, n=row["n"]).as_dict()})
        return sorted(results, key=_sort_key)

    # resolution_rate: only cases whose deadline has passed have an outcome.
    cases = _filtered(
        caller.scoped(Case.objects.filter(sla_due_at__lte=timezone.now())),
        query,
        _CASE_PATHS,
        time_field="sla_due_at",
        survey_path="response__survey_id",
    )
    exprs = _group_exprs(query, _CASE_PATHS, time_field="sla_due_at", tz=tz)
    aggregates = {
        "n": Count("id"),
        # Escalation moves sla_due_at on, so an escalated case had already missed its SLA.
        "k": Count(
            "id",
            filter=Q(resolved_at__isnull=False, resolved_at__lte=F("sla_due_at"), escalation_level=0),
        ),
    }
    results = [
        {"group": _group_of(row, query, tz), **m.percent_from_counts(hits=row["k"], n=row["n"]).as_dict()}
        for row in _grouped(cases, query, exprs, aggregates)
    ]
    return sorted(results, key=_sort_key)


def _key(row, query, tz) -> tuple:
    return tuple(_group_of(row, query, tz).values())


# --- dashboard reads ---------------------------------------------------------------------------


def location_names(*, caller: Caller) -> dict[int, str]:
    return dict(caller.scoped(Location.objects.all()).order_by("name").values_list("pk", "name"))


def surveys() -> list[tuple[int, str]]:
    return list(Survey.objects.order_by("name").values_list("pk", "name"))


def _comments(caller: Caller, query: MetricQuery):
    qs = caller.scoped(Answer.objects.filter(question_type=QuestionType.TEXT))
    return _filtered(qs, query, _ANSWER_PATHS, time_field="submitted_at", survey_path="survey_id")


def sentiment_over_time(*, organization, caller: Caller, query: MetricQuery, period: str = "week") -> list:
    """[(period start date, sentiment, count)] of analysed comments."""
    tz = org_tz(organization)
    rows = (
        _comments(caller, query)
        .exclude(sentiment="")
        .order_by()
        .values("sentiment", g_period=Trunc("submitted_at", period, tzinfo=tz))
        .annotate(n=Count("id"))
        .values_list("g_period", "sentiment", "n")
    )
    return sorted((p.astimezone(tz).date(), s, n) for p, s, n in rows)


def top_topics_by_location(*, caller: Caller, query: MetricQuery, limit: int = 8) -> list[tuple]:
    """[(location id, topic, count)] for the ``limit`` topics mentioned most overall."""
    inner = _comments(caller, query).exclude(topics=[]).order_by().values("location_id", "topics")
    if inner.query.is_empty():
        return []
    sql, params = inner.query.sql_with_params()
    # unnest cannot sit in GROUP BY through the ORM; wrapping the scoped, filtered queryset's
    # own SQL keeps its tenant and hierarchy filters intact.
    wrapped = (
        "WITH t AS (SELECT c.location_id, u.topic FROM ("  # noqa: S608 - inner SQL is the ORM's
        + sql
        + ") c CROSS JOIN LATERAL unnest(c.topics) AS u(topic)), "
        "top AS (SELECT topic FROM t GROUP BY topic ORDER BY count(*) DESC, topic LIMIT %s) "
        "SELECT t.location_id, t.topic, count(*) FROM t JOIN top USING (topic) "
        "GROUP BY t.location_id, t.topic ORDER BY t.location_id, count(*) DESC, t.topic"  # nosec B608 # the inner SQL is the ORM's own, with its parameters bound
    )
    with connections[inner.db].cursor() as cursor:
        cursor.execute(wrapped, [*params, limit])
        return [tuple(r) for r in cursor.fetchall()]


# --- gap rules (learning) ------------------------------------------------------------------------
# The learning app's gap rules read survey answers only through these two functions, so the
# scales (and the indexes they rely on) stay defined in one app.

# Scores that can be put on 0-100: type → (worst, best). "rating" takes its question's own scale.
# CES asks "how easy was it", 7 = very easy, so higher is better like every other scale here.
GAP_SCALES = {
    QuestionType.NPS: (0, 10),
    QuestionType.CSAT: (1, 5),
    QuestionType.CES: (1, 7),
    QuestionType.FCR: (0, 1),
}
GAP_TYPES = (*GAP_SCALES, QuestionType.RATING)


def gap_scale(qtype: str, scale_min, scale_max) -> tuple[int, int] | tuple[None, None]:
    """(worst, best) of an answer's scale, or (None, None) when it cannot be put on 0-100."""
    low, high = GAP_SCALES.get(qtype, (scale_min, scale_max))
    if low is None or high is None or high <= low:
        return None, None
    return low, high


def standard_points(
    *,
    standard_id: int,
    since: dt.datetime,
    location_id: int | None = None,
    employee_id: int | None = None,
    team_id: int | None = None,
) -> dict:
    """Answers linked to a standard since ``since`` for one subject, put on 0-100.

    Returns ``{"n", "mean" (0-100 or None), "by_type": [{"type", "n", "mean" (native),
    "low", "high"}]}``. One aggregate query on ``answer_org_std_submitted`` (organization,
    standard, submitted_at): its cost follows the subject's answers in the window, not the
    organization's history. A team is its employees' current team, as in the metrics above.
    """
    qs = Answer.objects.filter(
        standard_id=standard_id, submitted_at__gte=since, question_type__in=GAP_TYPES, number__isnull=False
    )
    if location_id is not None:
        qs = qs.filter(location_id=location_id)
    if employee_id is not None:
        qs = qs.filter(employee_id=employee_id)
    if team_id is not None:
        qs = qs.filter(employee__current_team_id=team_id)
    rows = (
        qs.order_by()
        .values("question_type", "question__scale_min", "question__scale_max")
        .annotate(n=Count("number"), total=Sum("number"))
    )
    n, normalised, by_type = 0, Decimal(0), []
    for row in rows:
        qtype = row["question_type"]
        low, high = gap_scale(qtype, row["question__scale_min"], row["question__scale_max"])
        if low is None or not row["n"]:
            continue  # a rating question without a usable scale cannot be put on 0-100
        mean = Decimal(row["total"]) / row["n"]
        n += row["n"]
        normalised += row["n"] * (mean - low) * 100 / (high - low)
        by_type.append(
            {"type": qtype, "n": row["n"], "mean": float(round(mean, 2)), "low": low, "high": high}
        )
    return {"n": n, "mean": float(round(normalised / n, 2)) if n else None, "by_type": by_type}


def standard_point_series(
    *,
    standard_id: int,
    since: dt.datetime,
    until: dt.datetime,
    employee_ids=(),
    location_ids=(),
    team_ids=(),
) -> list[tuple[int | None, int | None, int | None, dt.datetime, float]]:
    """Every answer linked to a standard in [since, until) about any of these subjects, on 0-100.

    Rows ``(employee_id, location_id, team_id, submitted_at, value)`` — the same answers and the
    same scale conversion as :func:`standard_points`, one by one, for the learning app's
    before/after comparison (learning/effect_data.py). One query on ``answer_org_std_submitted``
    for all subjects at once; a team is the answering employee's current team.
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
        Answer.objects.filter(
            about,
            standard_id=standard_id,
            submitted_at__gte=since,
            submitted_at__lt=until,
            question_type__in=GAP_TYPES,
            number__isnull=False,
        )
        .order_by()
        .values_list(
            "employee_id",
            "location_id",
            "employee__current_team_id",
            "submitted_at",
            "number",
            "question_type",
            "question__scale_min",
            "question__scale_max",
        )
    )
    out = []
    for employee_id, location_id, team_id, at, number, qtype, scale_min, scale_max in rows.iterator(
        chunk_size=5000
    ):
        low, high = gap_scale(qtype, scale_min, scale_max)
        if low is None:
            continue
        out.append((employee_id, location_id, team_id, at, float((number - low) * 100 / (high - low))))
    return out


def standard_subjects_of_responses(*, response_ids, standard_ids) -> list[tuple[int, int | None, int | None]]:
    """(standard, location, employee) touched by these responses' answers on these standards."""
    if not response_ids or not standard_ids:
        return []
    return list(
        Answer.objects.filter(response_id__in=list(response_ids), standard_id__in=list(standard_ids))
        .order_by()
        .values_list("standard_id", "location_id", "employee_id")
        .distinct()
    )
