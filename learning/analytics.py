"""Trainer analytics: how often each lesson is sent (manual vs automatic), how much of it gets done
and on time, and how learners score on its quiz — per lesson, location, team and period.

Reads only, always through the caller's scope (cem/scoping.py): trainers and executives see
the organization, regional and store managers their region or store. Every figure is one
aggregate query grouped in the database (assignments once, quiz attempts once, names once per
dimension), so a page's cost does not follow the number of lessons, people or rows.

Definitions (also on the page):

- *sent*: lesson assignments made in the period (by ``assigned_at``), of which *manual* (a
  trainer or manager), *automatic* (a gap rule) and *other* (certification, self-started);
- *completion rate*: completed / sent, withdrawn assignments left out;
- *on-time rate*: completed by the due date / assignments whose due date has passed or that are
  completed (an overdue open assignment counts against it, one not yet due does not);
- *quiz*: submitted attempts at the lesson's quiz in the period (by ``submitted_at``): average
  score, pass rate, and attempts per learner.

Location and team are where the learner worked when assigned (stored on the assignment); for
quiz attempts, the assignment's team, else the learner's current team.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Avg, Count, F, Q
from django.db.models.functions import Coalesce, Trunc
from django.utils import timezone

from cem.models import Location, Team
from cem.params import id_of
from cem.scoping import scope_queryset
from feedback.selectors import org_tz, parse_bound
from learning.models import Assignment, Lesson, QuizAttempt

A = Assignment
PERIODS = {
    "30": "Last 30 days",
    "90": "Last 90 days",
    "365": "Last 12 months",
    "all": "All time",
}
DEFAULT_PERIOD = "90"
GROUPS = ("lesson", "location", "team", "week", "month")
TIME_GROUPS = ("week", "month")


class AnalyticsQueryError(ValueError):
    """Bad input, naming the parameter at fault (the API answers 400 with it)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


@dataclass(frozen=True)
class Query:
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    location_id: int | None = None
    team_id: int | None = None
    lesson_id: int | None = None
    group_by: str = "lesson"
    period: str = DEFAULT_PERIOD
    tz: dt.tzinfo = dt.UTC


@dataclass(frozen=True)
class Caller:
    role: str | None
    membership: object = None

    @classmethod
    def of_membership(cls, membership) -> Caller:
        return cls(role=membership.role, membership=membership)

    def scoped(self, qs):
        return scope_queryset(qs, role=self.role, membership=self.membership)


def _id_param(params, name: str) -> int | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    value = id_of(raw)
    if value is None:
        raise AnalyticsQueryError(name, "Give an id (digits).")
    return value


def parse_query(params, organization, *, now: dt.datetime | None = None) -> Query:
    """period (30/90/365/all) or from/to dates, location, team, lesson, group_by."""
    tz = org_tz(organization)
    period = (params.get("period") or DEFAULT_PERIOD).strip()
    if period not in PERIODS:
        raise AnalyticsQueryError("period", f"One of {', '.join(PERIODS)}.")
    group_by = (params.get("group_by") or "lesson").strip()
    if group_by not in GROUPS:
        raise AnalyticsQueryError("group_by", f"One of {', '.join(GROUPS)}.")
    since = until = None
    try:
        if raw := (params.get("from") or "").strip():
            since = parse_bound("from", raw, tz, end=False)
        if raw := (params.get("to") or "").strip():
            until = parse_bound("to", raw, tz, end=True)
    except ValueError as exc:  # feedback's MetricQueryError names the parameter
        raise AnalyticsQueryError(getattr(exc, "param", "from"), getattr(exc, "message", str(exc))) from None
    if since is None and period != "all":
        today = (now or timezone.now()).astimezone(tz).date()
        start = today - dt.timedelta(days=int(period) - 1)
        since = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    if since and until and until <= since:
        raise AnalyticsQueryError("to", "Must be after from.")
    return Query(
        since=since,
        until=until,
        location_id=_id_param(params, "location"),
        team_id=_id_param(params, "team"),
        lesson_id=_id_param(params, "lesson"),
        group_by=group_by,
        period=period,
        tz=tz,
    )


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _group_expr(query: Query, *, time_field: str, lesson_field: str, team_field: str):
    if query.group_by in TIME_GROUPS:
        return Trunc(time_field, query.group_by, tzinfo=query.tz)
    return F({"lesson": lesson_field, "location": "location_id", "team": team_field}[query.group_by])


def _key(value):
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _assignments(caller: Caller, query: Query):
    qs = caller.scoped(A.objects.filter(lesson__isnull=False))
    if query.since:
        qs = qs.filter(assigned_at__gte=query.since)
    if query.until:
        qs = qs.filter(assigned_at__lt=query.until)
    if query.location_id:
        qs = qs.filter(location_id=query.location_id)
    if query.team_id:
        qs = qs.filter(team_id=query.team_id)
    if query.lesson_id:
        qs = qs.filter(lesson_id=query.lesson_id)
    return qs


def _attempts(caller: Caller, query: Query):
    qs = caller.scoped(QuizAttempt.objects.filter(submitted_at__isnull=False, quiz__lesson__isnull=False))
    qs = qs.annotate(team_of=Coalesce("assignment__team_id", "employee__current_team_id"))
    if query.since:
        qs = qs.filter(submitted_at__gte=query.since)
    if query.until:
        qs = qs.filter(submitted_at__lt=query.until)
    if query.location_id:
        qs = qs.filter(location_id=query.location_id)
    if query.team_id:
        qs = qs.filter(team_of=query.team_id)
    if query.lesson_id:
        qs = qs.filter(quiz__lesson_id=query.lesson_id)
    return qs


def _assignment_aggregates(now: dt.datetime) -> dict:
    done = Q(status=A.Status.COMPLETED)
    return {
        "sent": Count("pk"),
        "manual": Count("pk", filter=Q(source=A.Source.MANUAL)),
        "automatic": Count("pk", filter=Q(source=A.Source.RULE)),
        "withdrawn": Count("pk", filter=Q(status=A.Status.WITHDRAWN)),
        "completed": Count("pk", filter=done),
        "due": Count("pk", filter=done | (Q(due_at__lt=now) & ~Q(status=A.Status.WITHDRAWN))),
        "on_time": Count("pk", filter=done & Q(completed_at__lte=F("due_at"))),
    }


def _assignment_row(row: dict) -> dict:
    active = row["sent"] - row["withdrawn"]
    return {
        "sent": row["sent"],
        "manual": row["manual"],
        "automatic": row["automatic"],
        "other": row["sent"] - row["manual"] - row["automatic"],
        "withdrawn": row["withdrawn"],
        "completed": row["completed"],
        "completion_rate": _rate(row["completed"], active),
        "due": row["due"],
        "on_time": row["on_time"],
        "on_time_rate": _rate(row["on_time"], row["due"]),
    }


_QUIZ_AGGREGATES = {
    "attempts": Count("pk"),
    "passed": Count("pk", filter=Q(passed=True)),
    "avg_score": Avg("score"),
    "employees": Count("employee_id", distinct=True),
    "users": Count("user_id", distinct=True, filter=Q(employee__isnull=True)),
}


def _quiz_row(row: dict) -> dict:
    learners = row["employees"] + row["users"]
    return {
        "attempts": row["attempts"],
        "learners": learners,
        "attempts_per_learner": round(row["attempts"] / learners, 2) if learners else None,
        "avg_score": round(float(row["avg_score"]), 1) if row["avg_score"] is not None else None,
        "pass_rate": _rate(row["passed"], row["attempts"]),
    }


EMPTY_ASSIGNMENTS = _assignment_row(
    {"sent": 0, "manual": 0, "automatic": 0, "withdrawn": 0, "completed": 0, "due": 0, "on_time": 0}
)
EMPTY_QUIZ = _quiz_row({"attempts": 0, "passed": 0, "avg_score": None, "employees": 0, "users": 0})


def totals(*, caller: Caller, query: Query, now: dt.datetime | None = None) -> dict:
    """The whole selection in one row: assignments and quiz figures (two queries)."""
    now = now or timezone.now()
    a = _assignments(caller, query).aggregate(**_assignment_aggregates(now))
    q = _attempts(caller, query).aggregate(**_QUIZ_AGGREGATES)
    return {**_assignment_row(a), "quiz": _quiz_row(q)}


def _names(group_by: str, keys) -> dict:
    ids = [k for k in keys if isinstance(k, int)]
    if group_by == "lesson":
        return dict(Lesson.objects.filter(pk__in=ids).values_list("pk", "title"))
    if group_by == "location":
        return dict(Location.objects.filter(pk__in=ids).values_list("pk", "name"))
    if group_by == "team":
        return dict(Team.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {}


def stats(*, caller: Caller, query: Query, now: dt.datetime | None = None) -> list[dict]:
    """One row per group (lesson, location, team, week or month): assignment and quiz figures.

    ``[{"key": id | "YYYY-MM-DD" | None, "name", **assignment figures, "quiz": {…}}]``, most sent
    first (time groups in order). Three queries: assignments, attempts, names.
    """
    now = now or timezone.now()
    group = _group_expr(query, time_field="assigned_at", lesson_field="lesson_id", team_field="team_id")
    a_rows = (
        _assignments(caller, query)
        .order_by()
        .annotate(g=group)
        .values("g")
        .annotate(**_assignment_aggregates(now))
    )
    q_group = _group_expr(
        query, time_field="submitted_at", lesson_field="quiz__lesson_id", team_field="team_of"
    )
    q_rows = _attempts(caller, query).order_by().annotate(g=q_group).values("g").annotate(**_QUIZ_AGGREGATES)
    by_key: dict = {}
    for row in a_rows:
        by_key.setdefault(_key(row["g"]), {}).update(_assignment_row(row))
    for row in q_rows:
        by_key.setdefault(_key(row["g"]), {})["quiz"] = _quiz_row(row)
    names = _names(query.group_by, by_key)
    out = []
    for key, figures in by_key.items():
        if query.group_by == "month" and key:
            name = key[:7]
        elif query.group_by == "week" and key:
            name = f"week of {key}"
        elif key is None:
            name = {"team": "No team", "location": "No location"}.get(query.group_by, "—")
        else:
            name = names.get(key, f"#{key}")
        out.append({"key": key, "name": name, **EMPTY_ASSIGNMENTS, "quiz": EMPTY_QUIZ, **figures})
    if query.group_by in TIME_GROUPS:
        out.sort(key=lambda r: r["key"] or "")
    else:
        out.sort(key=lambda r: (-r["sent"], -r["quiz"]["attempts"], str(r["name"])))
    return out


def filter_options(*, caller: Caller) -> dict:
    """The locations, teams and lessons the caller may filter on (three small queries)."""
    locations = caller.scoped(Location.objects.all()).order_by("name").values_list("pk", "name")
    teams = caller.scoped(Team.objects.all()).order_by("name").values_list("pk", "name")
    lessons = Lesson.objects.order_by("title").values_list("pk", "title")
    return {"locations": list(locations), "teams": list(teams), "lessons": list(lessons)}
