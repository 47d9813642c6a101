"""What the alignment scores are computed from: rollup sums per scope and period, gap triggers,
and the organization's small reference tables. Reads only; the formulas are in alignment.scores.

Two ways to gather the same :class:`ScopeData`:

- :func:`gather_touched` — for the few scopes an event touched: per period, the sums per
  (scope, standard, category, measure) over the period and the two before it and the per-member
  sums (for the execution ↔ incentives correlation) — the organization's, regions' and
  locations' from ``PeriodRollup`` (the rollup summed per period and location, kept in the same
  transaction as the rollup: a few rows per location whatever the history), teams' and
  employees' from the rollup by employee — and one query of gap-trigger counts. The number of
  queries depends on the periods and kinds of scope touched, never on how much history there is.
- :func:`gather_all` — every scope with data in one period, from one grouped query of the
  period's rollup sums summed up the hierarchy in Python (the full recompute walks periods in
  order and hands the two previous periods' sums along).

Scopes: ``("organization", 0)``, ``("region", id)``, ``("location", id)``, ``("team", id)``,
``("employee", id)``. A region is its locations; a team is its members *now*
(``Employee.current_team``, like the team dimension of feedback.selectors and incentives.bonus);
rows with no employee cannot be attributed to a team.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Case, Count, IntegerField, Max, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce

from alignment import score_periods as periods
from alignment.models import AlignmentSettings, Measure, Rollup, ScopeKind
from alignment.score_math import Agg
from cem.models import BrandMessage, CustomerExpectation, Employee, Location, Organization, Standard, Team
from learning.assignments import SKIP_OPEN
from learning.gaps import SKIPPED_RACE
from learning.models import ContentStatus, GapTrigger, LessonEffect, LessonStandard

ORG, REGION, LOCATION, TEAM, EMPLOYEE = (
    ScopeKind.ORGANIZATION.value,
    ScopeKind.REGION.value,
    ScopeKind.LOCATION.value,
    ScopeKind.TEAM.value,
    ScopeKind.EMPLOYEE.value,
)
Scope = tuple[str, int]
ORG_SCOPE: Scope = (ORG, 0)

EXECUTION = (Measure.STD_FEEDBACK.value, Measure.STD_AUDIT.value, Measure.STD_MONITORING.value)
STANDARD_MEASURES = (*EXECUTION, Measure.LESSON_STD.value, Measure.POINTS.value)
MEMBER_MEASURES = (*EXECUTION, Measure.POINTS.value)
SUMS = {
    "n": Coalesce(Sum("n"), 0),
    "total": Coalesce(Sum("total"), 0, output_field=Rollup._meta.get_field("total")),
    "sumsq": Coalesce(Sum("sumsq"), 0, output_field=Rollup._meta.get_field("sumsq")),
    "top": Coalesce(Sum("top"), 0),
    "bottom": Coalesce(Sum("bottom"), 0),
}

# --- reference data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandardRef:
    id: int
    code: str
    title: str
    category: str
    expectation_id: int | None
    brand_message_id: int | None


@dataclass
class Reference:
    """The organization's reference tables, read once per recompute."""

    org_id: int
    tz: zoneinfo.ZoneInfo
    settings: AlignmentSettings
    standards: dict[int, StandardRef]  # active standards
    expectations: dict[int, tuple[str, int]]  # id -> (name, importance)
    brand_messages: dict[int, str]
    question_standards: set[int]  # asked by a question of an active survey's current version
    audit_standards: set[int]  # scored by an item of a mystery-shopping form's current version
    monitoring_standards: set[int]  # scored by an item of a monitoring form's current version
    lesson_counts: dict[int, int]  # published lessons tagged with each standard
    effects: dict[int, list[dict]]  # LessonEffect figures per standard
    reward_rules: list[tuple[int, dt.date, dt.date | None]]  # active rules: standard, from, until
    region_of: dict[int, int]  # location -> region
    headcount: dict[int, int]  # active employees per current location
    employees: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)  # -> (loc, team)
    team_location: dict[int, int] = field(default_factory=dict)
    team_members: dict[int, list[int]] = field(default_factory=dict)
    memo: dict = field(default_factory=dict)  # figures the same for every scope (alignment.scores)

    def category_weight(self, category: str) -> float:
        """Weight of a data point's interaction category; uncategorised points weigh 1."""
        if not category:
            return 1.0
        return float((self.settings.category_weights or {}).get(category, 1.0))

    def standard_weight(self, standard_id: int) -> float:
        std = self.standards.get(standard_id)
        return self.category_weight(std.category) if std else 1.0

    def importance(self, standard_id: int) -> int | None:
        std = self.standards.get(standard_id)
        if std is None or std.expectation_id is None:
            return None
        found = self.expectations.get(std.expectation_id)
        return found[1] if found else None

    def rules_in(self, start: dt.date, end: dt.date) -> set[int]:
        """Standards with an active reward rule in effect on some day of [start, end)."""
        last = end - dt.timedelta(days=1)
        return {
            std
            for std, since, until in self.reward_rules
            if since <= last and (until is None or until >= start)
        }


def reference(org_id: int, settings: AlignmentSettings) -> Reference:
    from audits.models import AuditFormVersion, FormItem, ProgramKind
    from feedback.models import Question, Survey, SurveyVersion
    from incentives.models import RewardRule

    tz_name = Organization.objects.filter(pk=org_id).values_list("time_zone", flat=True).first()
    try:
        tz = zoneinfo.ZoneInfo(tz_name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        tz = zoneinfo.ZoneInfo("UTC")
    standards = {
        row[0]: StandardRef(*row)
        for row in Standard.objects.filter(active=True)
        .order_by("code")
        .values_list("id", "code", "title", "category", "expectation_id", "brand_message_id")
    }
    current_survey_version = (
        SurveyVersion.objects.filter(survey_id=OuterRef("version__survey_id"))
        .order_by("-number")
        .values("pk")[:1]
    )
    question_standards = set(
        Question.objects.filter(
            standard__isnull=False,
            version__survey__status=Survey.Status.ACTIVE,
            version_id=Subquery(current_survey_version),
        ).values_list("standard_id", flat=True)
    )
    current_form_version = (
        AuditFormVersion.objects.filter(form_id=OuterRef("version__form_id"))
        .order_by("-number")
        .values("pk")[:1]
    )
    audit_standards, monitoring_standards = set(), set()
    for std, kind in (
        FormItem.objects.filter(standard__isnull=False, version_id=Subquery(current_form_version))
        .values_list("standard_id", "version__form__kind")
        .distinct()
    ):
        (monitoring_standards if kind == ProgramKind.MONITORING else audit_standards).add(std)
    lesson_counts = dict(
        LessonStandard.objects.filter(lesson__status=ContentStatus.PUBLISHED)
        .order_by()
        .values("standard_id")
        .annotate(n=Count("lesson_id", distinct=True))
        .values_list("standard_id", "n")
    )
    effects = defaultdict(list)
    for row in LessonEffect.objects.order_by("standard_id", "lesson_id").values(
        "standard_id",
        "lesson_id",
        "lesson__title",
        "treated_n",
        "control_n",
        "control_change",
        "difference",
        "ci_low",
        "ci_high",
        "verdict",
    ):
        effects[row["standard_id"]].append(row)
    rules = list(
        RewardRule.objects.filter(active=True, standard__isnull=False)
        .order_by("pk")
        .values_list("standard_id", "effective_from", "effective_until")
    )
    region_of = dict(Location.objects.values_list("id", "region_id"))
    headcount = dict(
        Employee.objects.filter(active=True, current_location__isnull=False)
        .order_by()
        .values("current_location_id")
        .annotate(n=Count("pk"))
        .values_list("current_location_id", "n")
    )
    return Reference(
        org_id=org_id,
        tz=tz,
        settings=settings,
        standards=standards,
        expectations={
            pk: (name, importance)
            for pk, name, importance in CustomerExpectation.objects.values_list("id", "name", "importance")
        },
        brand_messages=dict(BrandMessage.objects.values_list("id", "title")),
        question_standards=question_standards,
        audit_standards=audit_standards,
        monitoring_standards=monitoring_standards,
        lesson_counts=lesson_counts,
        effects=dict(effects),
        reward_rules=rules,
        region_of=region_of,
        headcount=headcount,
    )


def load_people(ref: Reference, employee_ids: Iterable[int] | None = None) -> None:
    """Employees' current place and team, and each of their teams' members (everyone, or the
    given employees and the members of their teams: a team's sums need all its members)."""
    qs = Employee.objects.order_by("pk")
    if employee_ids is not None:
        qs = qs.filter(pk__in=sorted(set(employee_ids)))
    found = {
        pk: (loc, team) for pk, loc, team in qs.values_list("id", "current_location_id", "current_team_id")
    }
    teams = sorted({team for _, team in found.values() if team})
    if employee_ids is not None and teams:
        found.update(
            {
                pk: (loc, team)
                for pk, loc, team in Employee.objects.filter(current_team_id__in=teams)
                .order_by("pk")
                .values_list("id", "current_location_id", "current_team_id")
            }
        )
    ref.employees.update(found)
    members = defaultdict(list)
    for pk, (_, team) in sorted(found.items()):
        if team:
            members[team].append(pk)
    ref.team_members.update(members)
    if teams:
        ref.team_location.update(dict(Team.objects.filter(pk__in=teams).values_list("id", "location_id")))


# --- what one scope holds in one period -----------------------------------------------------------


@dataclass
class GapCounts:
    assigned: int = 0  # gap → training assigned
    in_flight: int = 0  # skipped because the training was already open or just done (cooldown)
    not_followed: int = 0  # skipped for another reason: nobody to assign, at the cap, inactive
    holdout: int = 0  # the deliberate control group: not counted either way
    reasons: dict[str, int] = field(default_factory=dict)  # why gaps were not followed

    def add(self, kind: str, n: int, reason: str = "") -> None:
        setattr(self, kind, getattr(self, kind) + n)
        if kind == "not_followed" and reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + n

    def merge(self, other: GapCounts) -> None:
        for kind in ("assigned", "in_flight", "holdout"):
            self.add(kind, getattr(other, kind))
        self.not_followed += other.not_followed
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


@dataclass
class ScopeData:
    """Rollup sums of one scope: per bucket (0 = the period, 1 and 2 = the periods before it) and
    (standard, category, measure); per member and (category, measure) in the period; gap counts."""

    std: dict[int, dict[tuple, Agg]] = field(default_factory=lambda: {0: {}, 1: {}, 2: {}})
    members: dict[int, dict[tuple, Agg]] = field(default_factory=dict)
    gaps: GapCounts = field(default_factory=GapCounts)
    active: bool = False

    def add_std(self, bucket: int, key: tuple, values) -> None:
        self.std[bucket].setdefault(key, Agg()).add(*values)

    def add_member(self, member: int, key: tuple, values) -> None:
        self.members.setdefault(member, {}).setdefault(key, Agg()).add(*values)


def _values(row: dict) -> tuple:
    return (row["n"], row["total"], row["sumsq"], row["top"], row["bottom"])


# Skip reasons that mean the gap *is* being trained: the learner has the lesson open, just had
# it (the rule's cooldown), or another assign got there first.
_IN_FLIGHT = re.compile(r"^(already has it open|was assigned it within the last \d+ days \(cooldown\))$")


def classify_gap(outcome: str, skip_reason: str) -> str:
    if outcome == GapTrigger.Outcome.ASSIGNED:
        return "assigned"
    if outcome == GapTrigger.Outcome.HOLDOUT or skip_reason.startswith("In the control group"):
        return "holdout"
    if skip_reason == SKIPPED_RACE:
        return "in_flight"
    text = skip_reason.strip().rstrip(".")
    for prefix in ("Everyone concerned ", "The employee "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if parts and all(p == SKIP_OPEN or _IN_FLIGHT.match(p) for p in parts):
        return "in_flight"
    return "not_followed"


def _gap_rows(ref: Reference, kind: str, start: dt.date):
    since, until = periods.bounds(kind, start, ref.tz)
    return (
        GapTrigger.objects.filter(created_at__gte=since, created_at__lt=until)
        .order_by()
        .values("location_id", "team_id", "employee_id", "outcome", "skip_reason")
        .annotate(n=Count("pk"))
    )


def _scopes_of_row(ref: Reference, location_id, employee_id) -> list[Scope]:
    """Every scope a rollup row (or gap trigger) with this location and employee belongs to."""
    out = [ORG_SCOPE]
    if location_id:
        out.append((LOCATION, location_id))
        region = ref.region_of.get(location_id)
        if region:
            out.append((REGION, region))
    if employee_id:
        out.append((EMPLOYEE, employee_id))
        team = ref.employees.get(employee_id, (None, None))[1]
        if team:
            out.append((TEAM, team))
    return out


def _add_gaps(ref: Reference, data: dict[Scope, ScopeData], kind: str, start: dt.date, wanted=None) -> None:
    for row in _gap_rows(ref, kind, start):
        klass = classify_gap(row["outcome"], row["skip_reason"] or "")
        scopes = set(_scopes_of_row(ref, row["location_id"], row["employee_id"]))
        if row["team_id"]:
            scopes.add((TEAM, row["team_id"]))
        for scope in scopes:
            if wanted is not None and scope not in wanted:
                continue
            target = data.get(scope) if wanted is not None else data.setdefault(scope, ScopeData())
            if target is not None:
                target.gaps.add(klass, row["n"], row["skip_reason"] or "")


def _member_of(scope: Scope, location_id, employee_id) -> int | None:
    """Who a row counts for in a scope's correlation: locations in the organization and regions,
    employees in locations and teams, standards for one employee (from the standard sums)."""
    kind = scope[0]
    if kind in (ORG, REGION):
        return location_id
    if kind in (LOCATION, TEAM):
        return employee_id
    return None


_PERIOD_SUMS = """
SELECT location_id, employee_id, standard_id, category, measure,
       SUM(n), SUM(total), SUM(sumsq), SUM(top), SUM(bottom)
  FROM alignment_rollup
 WHERE organization_id = %s AND day >= %s AND day < %s
 GROUP BY location_id, employee_id, standard_id, category, measure
"""


def gather_all(ref: Reference, kind: str, start: dt.date, previous: list[dict[Scope, ScopeData]]) -> dict:
    """Every scope with rollup data in the period; ``previous`` = the two periods before, newest first."""
    end = periods.end_of(kind, start)
    data: dict[Scope, ScopeData] = {}
    with connection.cursor() as cur:
        # Raw: a period of the whole organization is many rows, and the ORM's per-value
        # converters cost more than the sums themselves.
        cur.execute(_PERIOD_SUMS, [ref.org_id, start, end])
        rows = cur.fetchall()
    for loc, emp, std, cat, measure, *values in rows:
        for scope in _scopes_of_row(ref, loc, emp):
            sd = data.get(scope)
            if sd is None:
                sd = data[scope] = ScopeData()
            sd.active = True
            if measure in STANDARD_MEASURES:
                sd.add_std(0, (std, cat, measure), values)
            if measure in MEMBER_MEASURES:
                member = _member_of(scope, loc, emp)
                if member is not None:
                    sd.add_member(member, (cat, measure), values)
    for scope, sd in data.items():
        for bucket, older in enumerate(previous[:2], start=1):
            if scope in older:
                sd.std[bucket] = older[scope].std[0]
    _add_gaps(ref, data, kind, start, wanted=set(data))
    return data


def _scope_filter(ref: Reference, scope: Scope) -> dict | None:
    kind, pk = scope
    if kind == ORG:
        return {}
    if kind == REGION:
        return {"location_id__in": sorted(loc for loc, reg in ref.region_of.items() if reg == pk)}
    if kind == LOCATION:
        return {"location_id": pk}
    if kind == TEAM:
        members = ref.team_members.get(pk) or []
        return {"employee_id__in": members} if members else None
    return {"employee_id": pk}


_KIND_CODE = {ORG: 0, REGION: 1, LOCATION: 2, TEAM: 3, EMPLOYEE: 4}
_CODE_KIND = {v: k for k, v in _KIND_CODE.items()}


# Scopes whose sums PeriodRollup holds (no employee dimension needed): read there, a few rows per
# location and period whatever the history. Teams and employees read the rollup by employee.
PERIOD_SCOPES = (ORG, REGION, LOCATION)

# One statement: the period rows wanted (the period's score measures, the previous period's
# lessons, the one before's execution), summed in the database per wanted scope — the
# organization, regions (through the location -> region map given), locations — and per location
# for the organization's and regions' correlation members.
_PERIOD_SUMS_OF_SCOPES = """
WITH p AS MATERIALIZED (
    SELECT period_start, location_id, standard_id, category, measure, n, total, sumsq, top, bottom
      FROM alignment_periodrollup
     WHERE organization_id = %(org)s AND period = %(kind)s AND period_start = ANY(%(starts)s) AND rows > 0
       AND ((period_start = %(start)s AND measure = ANY(%(standard)s))
            OR (period_start = %(previous)s AND measure = %(lessons)s)
            OR (period_start = %(first)s AND measure = ANY(%(execution)s))){locations}
), regions AS (
    SELECT * FROM unnest(%(map_locations)s::bigint[], %(map_regions)s::bigint[]) AS m (location_id, region_id)
)
SELECT 'organization', 0, period_start, standard_id, category, measure,
       sum(n), sum(total), sum(sumsq), sum(top), sum(bottom)
  FROM p WHERE %(organization)s
 GROUP BY period_start, standard_id, category, measure
UNION ALL
SELECT 'region', r.region_id, p.period_start, p.standard_id, p.category, p.measure,
       sum(p.n), sum(p.total), sum(p.sumsq), sum(p.top), sum(p.bottom)
  FROM p JOIN regions r ON r.location_id = p.location_id
 GROUP BY r.region_id, p.period_start, p.standard_id, p.category, p.measure
UNION ALL
SELECT 'location', location_id, period_start, standard_id, category, measure,
       sum(n), sum(total), sum(sumsq), sum(top), sum(bottom)
  FROM p WHERE location_id = ANY(%(locations)s)
 GROUP BY location_id, period_start, standard_id, category, measure
UNION ALL
SELECT 'member', location_id, NULL, NULL, category, measure,
       sum(n), sum(total), sum(sumsq), sum(top), sum(bottom)
  FROM p WHERE %(members)s AND period_start = %(start)s AND measure = ANY(%(member_measures)s)
   AND location_id IS NOT NULL
 GROUP BY location_id, category, measure
"""


def _period_scopes(ref: Reference, kind: str, start: dt.date, data: dict, scopes: list[Scope]) -> None:
    """The organization's, regions' and locations' sums of one period from PeriodRollup: one
    query, a few rows per scope (summed in the database) and per location for the members."""
    wanted = [s for s in scopes if s[0] in PERIOD_SCOPES]
    if not wanted:
        return
    previous, first = periods.shift(kind, start, -1), periods.shift(kind, start, -2)
    regions = {pk for kind_, pk in wanted if kind_ == REGION}
    in_regions = sorted(loc for loc, reg in ref.region_of.items() if reg in regions)
    locations = sorted(pk for kind_, pk in wanted if kind_ == LOCATION)
    params = {
        "org": ref.org_id,
        "kind": str(kind),
        "starts": [start, previous, first],  # the index's third column: the OR below is not
        "start": start,
        "previous": previous,
        "first": first,
        "standard": list(STANDARD_MEASURES),
        "lessons": Measure.LESSON_STD.value,
        "execution": list(EXECUTION),
        "map_locations": in_regions,
        "map_regions": [ref.region_of[loc] for loc in in_regions],
        "organization": ORG_SCOPE in wanted,
        "locations": locations,
        "members": ORG_SCOPE in wanted or bool(regions),
        "member_measures": list(MEMBER_MEASURES),
        "read": sorted(set(in_regions) | set(locations)),
    }
    where = "" if ORG_SCOPE in wanted else " AND location_id = ANY(%(read)s)"
    bucket_of = {start: 0, previous: 1, first: 2}
    with connection.cursor() as cur:
        cur.execute(_PERIOD_SUMS_OF_SCOPES.format(locations=where), params)
        rows = cur.fetchall()
    for what, pk, period_start, std, cat, measure, *values in rows:
        if what != "member":
            data[(what, pk)].add_std(bucket_of[period_start], (std, cat, measure), values)
            continue
        # The organization's and regions' correlation members are their locations.
        if ORG_SCOPE in data:
            data[ORG_SCOPE].add_member(pk, (cat, measure), values)
        region = (REGION, ref.region_of.get(pk))
        if region[1] in regions:
            data[region].add_member(pk, (cat, measure), values)


def gather_touched(ref: Reference, kind: str, start: dt.date, scopes: Iterable[Scope]) -> dict:
    """The given scopes' data in one period; the number of queries depends on the scope kinds
    asked for, never on how many scopes or how much history.

    The organization, regions and locations: their sums per (standard, category, measure) in
    the period and the two before it, and the organization's and regions' per-location sums,
    from PeriodRollup. Teams and employees: the same sums from the rollup (a UNION of one
    filtered aggregate per scope, summed in the database). The per-employee sums of locations
    and teams (their correlation members): the rollup of just those locations and members."""
    scopes = sorted(set(scopes), key=lambda s: (_KIND_CODE[s[0]], s[1]))
    data = {scope: ScopeData(active=True) for scope in scopes}
    _period_scopes(ref, kind, start, data, scopes)
    first = periods.shift(kind, start, -2)
    previous = periods.shift(kind, start, -1)
    end = periods.end_of(kind, start)
    bucket = Case(
        When(day__gte=start, then=Value(0)),
        When(day__gte=previous, then=Value(1)),
        default=Value(2),
        output_field=IntegerField(),
    )
    # Link 4 reads only lessons (lesson_std) in the previous period and only execution in the one
    # before it: the rest of those periods is not read.
    wanted_rows = (
        Q(day__gte=start, day__lt=end, measure__in=STANDARD_MEASURES)
        | Q(day__gte=previous, day__lt=start, measure=Measure.LESSON_STD.value)
        | Q(day__gte=first, day__lt=previous, measure__in=EXECUTION)
    )
    parts = []
    for scope in scopes:
        if scope[0] in PERIOD_SCOPES:
            continue
        filters = _scope_filter(ref, scope)
        if filters is None:
            continue
        parts.append(
            Rollup.objects.filter(wanted_rows, **filters)
            .order_by()
            .annotate(
                scope_code=Value(_KIND_CODE[scope[0]], output_field=IntegerField()),
                scope_pk=Value(scope[1], output_field=IntegerField()),
                bucket=bucket,
            )
            .values("scope_code", "scope_pk", "bucket", "standard_id", "category", "measure")
            .annotate(**SUMS)
        )
    if parts:
        query = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
        for row in query:
            scope = (_CODE_KIND[row["scope_code"]], row["scope_pk"])
            data[scope].add_std(
                row["bucket"], (row["standard_id"], row["category"], row["measure"]), _values(row)
            )
    by_employee = [s for s in scopes if s[0] in (LOCATION, TEAM)]
    places = Q()
    for scope in by_employee:
        filters = _scope_filter(ref, scope)
        if filters is not None:
            places |= Q(**filters)
    if places:
        rows = (
            Rollup.objects.filter(places, day__gte=start, day__lt=end, measure__in=MEMBER_MEASURES)
            .order_by()
            .values("location_id", "employee_id", "category", "measure")
            .annotate(**SUMS)
        )
        wanted = set(by_employee)
        for row in rows:
            loc, emp = row["location_id"], row["employee_id"]
            for scope in _scopes_of_row(ref, loc, emp):
                if scope not in wanted:
                    continue
                member = _member_of(scope, loc, emp)
                if member is not None:
                    data[scope].add_member(member, (row["category"], row["measure"]), _values(row))
    _add_gaps(ref, data, kind, start, wanted=set(scopes))
    return data


def data_range(org_id: int) -> tuple[dt.date, dt.date] | None:
    """The first and last rollup day of the organization."""
    from django.db.models import Min

    found = Rollup.objects.aggregate(first=Min("day"), last=Max("day"))
    if found["first"] is None:
        return None
    return found["first"], found["last"]
