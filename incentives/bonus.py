"""Manager bonus periods: a weighted scorecard per manager, a live preview, close → approve → export.

A period (say a quarter) has KPIs (``BonusKpi``: weight, target, floor, minimum sample) and
participants — store managers scored on their location, regional managers on their region,
supervisors on their team, each with a target bonus in a currency. The KPI inputs for a
participant's scope and the period come from the other apps, read set-based (one grouped query
per KPI and scope kind, however many participants):

- **NPS**, **CSAT**: ``feedback.selectors.metric_results`` — the exact definitions of
  ``feedback.metrics`` (NPS = % promoters - % detractors, CSAT = % top-two-box), ``n`` = answers.
- **Audit score** / **monitoring score**: the mean ``Audit.score`` of audits (shop visits) /
  evaluations (monitored calls and chats: no job, an interaction) published in the period, as in
  ``audits.selectors.average_score``; calibration copies are not results. ``n`` = audits.
- **Training completed on time**: assignments of the scope's employees (where they worked when
  assigned) due in the period, withdrawn ones left out, counted once their due date has passed or
  they are completed; value = % completed by the due date — the on-time rate of
  ``learning.analytics``. ``n`` = such assignments.
- **Cases resolved within SLA**: ``feedback.selectors`` ``resolution_rate`` over cases whose SLA
  deadline fell in the period (and has passed). ``n`` = cases due.
- **A team** (supervisors) is its members now (``Employee.current_team``, like the ``team``
  dimension of ``feedback.selectors``): answers and cases attributed to a member, audits and
  evaluations of a member, members' training. Facts with no employee cannot be attributed to a
  team and are not counted, so a KPI the team has no such data for is "insufficient data", never 0.
- **Sales vs target**, **average purchase**, **retention**: the imported business metrics of the
  scope's locations (a team: its location) whose period lies inside the bonus period (so far) —
  ``alignment.business_selectors.business_kpi_figures``: 100 x sales / sales target, sales /
  transactions (n = transactions), the mean retention rate; n is otherwise the location-periods,
  so set these KPIs' minimum sample in periods (e.g. 1). A scope with no such figures shows
  "no data yet", never 0.
- **Alignment score**: the overall alignment score (``alignment.scores``) of the scope (a team,
  location or region) over the bonus period, read as the calendar periods that tile it (a quarter
  is one quarter's score; Feb-Mar the two monthly scores, weighted by their n) —
  ``alignment.score_selectors.bonus_kpi_figures``; n is the data points the scores rest on. A
  scope with no scores yet shows "no data yet", never 0.

Normalisation: each value is mapped linearly to 0-100 between ``floor`` (0) and ``target`` (100)
and clamped (a target below the floor means lower is better).

**Insufficient data — decision.** A KPI with fewer than ``min_sample`` data points (or with no
source yet) is shown as "insufficient data (n of min)" / "no data yet" and *left out*: the
weights of the KPIs that have data are renormalised to 100 %, so a manager is neither punished
(scored 0) nor rewarded (scored 100) for what cannot be measured. If no KPI has data there is no
score and no payout (and no points).

Payout: payout % = the score when it reaches ``payout_threshold``, else 0, capped at
``payout_cap_percent``; amount = payout % x target bonus. Points (optional) = score x
``points_per_score_point``, independent of the cash threshold: points and cash are separate.
The points are recorded on the result at close and paid into the manager's wallet through the
points ledger at approval, from the budget named "Bonus points".

Live preview: the same calculation on data so far, plus the KPI that holds the score back most —
the largest weighted gap to 100 (renormalised weight x (100 - score)).

Lifecycle: open → close (the period has ended; results computed and stored per participant,
``BonusPeriodClosed`` emitted; closing again before approval recomputes) → approve (an org admin)
→ export (CSV for payroll; ``exported_at`` set on the results the first time).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from audits.models import Audit
from cem.events import emit
from cem.models import Employee, Location, Membership, Organization, Role
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write, record_create, record_delete, record_update
from feedback import metrics as fm
from feedback import selectors as fs
from feedback.exports import escape_cell
from incentives.models import BonusKpi, BonusParticipant, BonusPeriod, BonusResult
from learning.models import Assignment

K = BonusKpi.Kpi
S = BonusPeriod.Status
TWO = Decimal("0.01")
HUNDRED = Decimal(100)

SCORED = "scored"
INSUFFICIENT = "insufficient"
NO_SOURCE = "no_data_yet"

# KPIs with no data source in the platform yet.
NO_SOURCE_KPIS: frozenset = frozenset()
# KPIs read from imported business metrics: a scope with none has "no data yet", not 0 of n.
BUSINESS_KPIS = frozenset({K.SALES_VS_TARGET, K.AVERAGE_PURCHASE, K.RETENTION})
# KPIs whose figures are snapshots another app computes: a scope without one has "no data yet".
SNAPSHOT_KPIS = BUSINESS_KPIS | {K.ALIGNMENT}
MANAGER_ROLES = {Role.STORE_MANAGER, Role.REGIONAL_MANAGER}
# Supervisors log in as employees; they are told apart by their employee record's role or by a
# team on their membership.
SUPERVISOR_ROLES = {Role.EMPLOYEE}
# The budget the scorecards' points are paid from (funded like any other budget).
BONUS_BUDGET = "Bonus points"

CSV_COLUMNS = (
    "period",
    "manager",
    "email",
    "employee_id",
    "scope",
    "target_bonus",
    "score",
    "payout_percent",
    "amount",
    "currency",
    "points",
)


def _q(value: Decimal) -> Decimal:
    return value.quantize(TWO, rounding=ROUND_HALF_UP)


# --- the scorecard (pure) -------------------------------------------------------------------------


@dataclass
class KpiLine:
    kpi: str
    label: str
    weight: Decimal
    target: Decimal
    floor: Decimal
    min_sample: int
    value: Decimal | None
    n: int
    status: str
    score: Decimal | None = None  # normalised 0-100
    effective_weight: Decimal | None = None  # % of the score, after renormalisation
    contribution: Decimal | None = None  # points of the final score this KPI provides
    gap: Decimal | None = None  # points of the final score lost to this KPI

    @property
    def note(self) -> str:
        if self.status == NO_SOURCE:
            return "no data yet"
        if self.status == INSUFFICIENT:
            return f"insufficient data ({self.n} of {self.min_sample})"
        return ""

    def as_dict(self) -> dict:
        def num(v):
            return None if v is None else float(v)

        return {
            "kpi": self.kpi,
            "label": self.label,
            "value": num(self.value),
            "n": self.n,
            "min_sample": self.min_sample,
            "target": num(self.target),
            "floor": num(self.floor),
            "weight": num(self.weight),
            "effective_weight": num(self.effective_weight),
            "score": num(self.score),
            "contribution": num(self.contribution),
            "gap": num(self.gap),
            "status": self.status,
            "note": self.note,
        }


@dataclass
class Scorecard:
    lines: list[KpiLine]
    score: Decimal | None
    payout_percent: Decimal
    payout_amount: Decimal
    points: int
    holding_back: KpiLine | None = None
    participant: BonusParticipant | None = None
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "participant": self.participant.pk if self.participant else None,
            "score": None if self.score is None else float(self.score),
            "payout_percent": float(self.payout_percent),
            "payout_amount": float(self.payout_amount),
            "points": self.points,
            "holding_back": self.holding_back.kpi if self.holding_back else None,
            "holding_back_label": self.holding_back.label if self.holding_back else None,
            "kpis": [line.as_dict() for line in self.lines],
        }


def normalise(value: Decimal, *, floor: Decimal, target: Decimal) -> Decimal:
    """Linear between floor (0) and target (100), clamped to 0-100."""
    raw = (Decimal(value) - floor) / (target - floor) * HUNDRED
    return _q(min(HUNDRED, max(Decimal(0), raw)))


def payout_percent_for(score: Decimal | None, *, threshold: Decimal, cap: Decimal) -> Decimal:
    if score is None or score < threshold:
        return Decimal("0.00")
    return _q(min(score, cap))


def scorecard(
    kpis: list[BonusKpi],
    inputs: dict[str, fm.Metric | None],
    *,
    period: BonusPeriod,
    target_bonus: Decimal,
) -> Scorecard:
    """The scorecard for one participant from their KPI inputs (``None``: no source yet)."""
    lines = []
    for k in kpis:
        metric = inputs.get(k.kpi)
        if metric is None:
            value, n, status = None, 0, NO_SOURCE
        else:
            value, n = metric.value, metric.n
            status = SCORED if value is not None and n >= k.min_sample and n > 0 else INSUFFICIENT
        line = KpiLine(
            kpi=k.kpi,
            label=K(k.kpi).label,
            weight=Decimal(k.weight),
            target=Decimal(k.target),
            floor=Decimal(k.floor),
            min_sample=k.min_sample,
            value=value,
            n=n,
            status=status,
        )
        if status == SCORED:
            line.score = normalise(value, floor=line.floor, target=line.target)
        lines.append(line)

    scored = [line for line in lines if line.status == SCORED]
    total_weight = sum((line.weight for line in scored), Decimal(0))
    score = None
    holding_back = None
    if scored and total_weight > 0:
        raw = Decimal(0)
        for line in scored:
            share = line.weight / total_weight
            raw += line.score * share
            line.effective_weight = _q(share * HUNDRED)
            line.contribution = _q(line.score * share)
            line.gap = _q((HUNDRED - line.score) * share)
        score = _q(raw)
        worst = max(scored, key=lambda line: (line.gap, -lines.index(line)))
        holding_back = worst if worst.gap > 0 else None
    pct = payout_percent_for(
        score, threshold=Decimal(period.payout_threshold), cap=Decimal(period.payout_cap_percent)
    )
    amount = _q(pct / HUNDRED * Decimal(target_bonus))
    points = 0
    if score is not None and period.points_per_score_point:
        points = int((score * period.points_per_score_point).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return Scorecard(
        lines=lines,
        score=score,
        payout_percent=pct,
        payout_amount=amount,
        points=points,
        holding_back=holding_back,
    )


# --- KPI inputs (reads) -----------------------------------------------------------------------------


def period_window(period: BonusPeriod, organization) -> tuple[dt.datetime, dt.datetime]:
    """[first local midnight, the local midnight after the last day) in the organization's zone."""
    tz = fs.org_tz(organization)
    start = dt.datetime.combine(period.starts_on, dt.time.min, tzinfo=tz)
    end = dt.datetime.combine(period.ends_on + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    return start, end


_ORG_WIDE = fs.Caller(role=Role.ORG_ADMIN)  # scores are about the scope, not about who looks


# Scope kind → the participant's field naming it; a team participant is scored on its team alone.
SCOPE_KINDS = ("team", "location", "region")


def _scope_key(p: BonusParticipant) -> tuple[str, int]:
    for kind in SCOPE_KINDS:
        value = getattr(p, f"{kind}_id")
        if value:
            return kind, value
    raise ValueError(f"participant {p.pk} has no scope")


def _feedback(kpi: str, *, organization, start, end, scopes, now) -> dict[str, dict]:
    metric = {K.NPS: "nps", K.CSAT: "csat", K.CASES_IN_SLA: "resolution_rate"}[kpi]
    out = {}
    for dim, ids in scopes.items():
        query = fs.MetricQuery(
            metric=metric, group_by=(dim,), filters={dim: tuple(sorted(ids))}, start=start, end=end
        )
        out[dim] = {}
        for row in fs.metric_results(organization=organization, caller=_ORG_WIDE, query=query):
            value = None if row["value"] is None else Decimal(str(row["value"]))
            out[dim][row["group"][dim]] = fm.Metric(value, row["n"])
    return out


# Scope kind → the ORM path of its id from a fact with a location and an employee. A team is
# its members now (employee.current_team), as in feedback.selectors' "team" dimension.
_FACT_PATHS = {
    "location": "location_id",
    "region": "location__region_id",
    "team": "employee__current_team_id",
}


def _grouped_counts(qs, aggregates: dict, *, scopes) -> dict[str, dict]:
    out = {}
    for dim, ids in scopes.items():
        path = _FACT_PATHS[dim]
        rows = qs.filter(**{f"{path}__in": ids}).order_by().values(path).annotate(**aggregates)
        out[dim] = {row[path]: row for row in rows}
    return out


def _audits(kind: str, *, organization, start, end, scopes, now) -> dict[str, dict]:
    qs = Audit.objects.filter(
        published_at__gte=start, published_at__lt=end, score__isnull=False, calibration__isnull=True
    )
    evaluation = Q(assignment__isnull=True, interaction__isnull=False)
    qs = qs.filter(evaluation) if kind == K.MONITORING_SCORE else qs.exclude(evaluation)
    maps = _grouped_counts(qs, {"n": Count("pk"), "total": Sum("score")}, scopes=scopes)
    return {
        dim: {k: fm.mean_from_sum(total=r["total"], n=r["n"]) for k, r in m.items()}
        for dim, m in maps.items()
    }


def _training(kind: str, *, organization, start, end, scopes, now) -> dict[str, dict]:
    A = Assignment.Status
    qs = (
        Assignment.objects.filter(employee__isnull=False, due_at__gte=start, due_at__lt=end)
        .exclude(status=A.WITHDRAWN)
        .filter(Q(status=A.COMPLETED) | Q(due_at__lt=now))
    )
    aggregates = {
        "n": Count("pk"),
        "hits": Count("pk", filter=Q(status=A.COMPLETED, completed_at__lte=F("due_at"))),
    }
    maps = _grouped_counts(qs, aggregates, scopes=scopes)
    return {
        dim: {k: fm.percent_from_counts(hits=r["hits"], n=r["n"]) for k, r in m.items()}
        for dim, m in maps.items()
    }


def _business(kpi: str, *, organization, start, end, scopes, now) -> dict[str, dict]:
    from alignment.business_selectors import business_kpi_figures

    tz = fs.org_tz(organization)
    # Metric periods lying within the local days of [start, end): a month still running is out.
    first_day = start.astimezone(tz).date()
    last_day = (end - dt.timedelta(microseconds=1)).astimezone(tz).date()
    found = business_kpi_figures(kpi=kpi, first_day=first_day, last_day=last_day, scopes=scopes)
    return {dim: {k: fm.Metric(value, n) for k, (value, n) in m.items()} for dim, m in found.items()}


def _alignment(kpi: str, *, organization, start, end, scopes, now, period: BonusPeriod) -> dict[str, dict]:
    from alignment.score_selectors import bonus_kpi_figures

    # The whole bonus period decides which calendar periods tile it; "so far" is what has begun.
    through = (end - dt.timedelta(microseconds=1)).astimezone(fs.org_tz(organization)).date()
    found = bonus_kpi_figures(
        first_day=period.starts_on, last_day=period.ends_on, through=through, scopes=scopes
    )
    return {dim: {k: fm.Metric(value, n) for k, (value, n) in m.items()} for dim, m in found.items()}


def _source(kpi: str):
    if kpi in BUSINESS_KPIS:
        return _business
    if kpi == K.ALIGNMENT:
        return _alignment
    if kpi in (K.NPS, K.CSAT, K.CASES_IN_SLA):
        return _feedback
    if kpi in (K.AUDIT_SCORE, K.MONITORING_SCORE):
        return _audits
    if kpi == K.TRAINING_ON_TIME:
        return _training
    return None


def kpi_inputs(
    *, period: BonusPeriod, kpis: list[BonusKpi], participants: list[BonusParticipant], now=None
) -> dict[int, dict[str, fm.Metric | None]]:
    """participant id → kpi → Metric (value, n), or None for a KPI with no source yet.

    One grouped query per KPI and scope kind (teams, locations, regions), whatever the number of
    participants.
    """
    now = now or timezone.now()
    organization = Organization.objects.get(pk=period.organization_id)
    start, end = period_window(period, organization)
    keys = {p.pk: _scope_key(p) for p in participants}
    scopes: dict[str, set] = defaultdict(set)
    for dim, value in keys.values():
        scopes[dim].add(value)
    empty = fm.Metric(None, 0)
    out: dict[int, dict] = defaultdict(dict)
    for k in kpis:
        source = _source(k.kpi)
        if source is None:
            for p in participants:
                out[p.pk][k.kpi] = None
            continue
        if source is _alignment:
            source = functools.partial(source, period=period)
        found = source(
            k.kpi, organization=organization, start=start, end=min(end, now), scopes=dict(scopes), now=now
        )
        for p in participants:
            dim, value = keys[p.pk]
            missing = None if k.kpi in SNAPSHOT_KPIS else empty
            out[p.pk][k.kpi] = found.get(dim, {}).get(value) or missing
    return out


def scorecards(*, period: BonusPeriod, participants=None, now=None) -> list[Scorecard]:
    """Live scorecards of the period's participants (or the given ones), in name order."""
    kpis = list(BonusKpi.objects.filter(period=period).order_by("pk"))
    if participants is None:
        participants = participants_of(period)
    participants = list(participants)
    inputs = kpi_inputs(period=period, kpis=kpis, participants=participants, now=now)
    cards = []
    for p in participants:
        card = scorecard(kpis, inputs[p.pk], period=period, target_bonus=p.target_bonus)
        card.participant = p
        cards.append(card)
    return cards


def participants_of(period: BonusPeriod):
    return (
        BonusParticipant.objects.filter(period=period)
        .select_related("user", "employee", "location", "region", "team__location")
        .order_by("user__last_name", "user__first_name", "user__username", "pk")
    )


def stored_scorecard(result: BonusResult) -> dict:
    """A closed period's result in the shape of Scorecard.as_dict()."""
    lines = result.kpi_scores or []
    scored = [line for line in lines if line.get("status") == SCORED and (line.get("gap") or 0) > 0]
    worst = max(scored, key=lambda line: line["gap"], default=None)
    return {
        "participant": result.participant_id,
        "score": None if result.score is None else float(result.score),
        "payout_percent": float(result.payout_percent),
        "payout_amount": float(result.payout_amount),
        "points": result.points,
        "holding_back": worst["kpi"] if worst else None,
        "holding_back_label": worst["label"] if worst else None,
        "kpis": lines,
    }


# --- writes ------------------------------------------------------------------------------------------


def _lock_period(period: BonusPeriod) -> BonusPeriod:
    return BonusPeriod.objects.select_for_update().get(pk=period.pk)


def _require_open(period: BonusPeriod, what: str) -> None:
    if period.status != S.OPEN:
        raise ValidationError({"period": f"The period is {period.get_status_display().lower()}; {what}."})


def default_currency(organization) -> str:
    settings = Organization.objects.filter(pk=getattr(organization, "pk", organization)).values_list(
        "settings", flat=True
    )
    currency = str(((settings.first() or {}) or {}).get("currency", "")).strip().upper()[:3]
    return currency or "USD"


@transaction.atomic
def period_create(*, organization, actor: Actor, data: dict) -> BonusPeriod:
    _check_tenant(organization)
    data = {k: v for k, v in data.items() if k not in {"status", "closed_at", "approved_by", "approved_at"}}
    return record_create(organization=organization, actor=actor, model=BonusPeriod, data=data)


@transaction.atomic
def period_update(*, organization, actor: Actor, period: BonusPeriod, data: dict) -> BonusPeriod:
    _check_tenant(organization)
    period = _lock_period(period)
    _require_open(period, "its definition can no longer change")
    data = {k: v for k, v in data.items() if k not in {"status", "closed_at", "approved_by", "approved_at"}}
    return record_update(organization=organization, actor=actor, instance=period, data=data)


@transaction.atomic
def period_delete(*, organization, actor: Actor, period: BonusPeriod) -> None:
    _check_tenant(organization)
    period = _lock_period(period)
    _require_open(period, "it is kept as the record of what was paid")
    record_delete(organization=organization, actor=actor, instance=period)


def _validate_kpi(data: dict) -> None:
    try:
        target, floor = Decimal(str(data.get("target"))), Decimal(str(data.get("floor", 0)))
    except ArithmeticError:
        return  # not numbers: the model's own validation names the field
    if target.is_finite() and floor.is_finite() and target == floor:
        raise ValidationError({"target": "The target must differ from the floor (the value that scores 0)."})


@transaction.atomic
def kpi_create(*, organization, actor: Actor, data: dict) -> BonusKpi:
    _check_tenant(organization)
    _require_open(_lock_period(data["period"]), "its scorecard can no longer change")
    _validate_kpi(data)
    return record_create(organization=organization, actor=actor, model=BonusKpi, data=data)


@transaction.atomic
def kpi_update(*, organization, actor: Actor, kpi: BonusKpi, data: dict) -> BonusKpi:
    _check_tenant(organization)
    _require_open(_lock_period(kpi.period), "its scorecard can no longer change")
    if "period" in data and data["period"].pk != kpi.period_id:
        raise ValidationError({"period": "A KPI cannot move to another period."})
    _validate_kpi({"target": data.get("target", kpi.target), "floor": data.get("floor", kpi.floor)})
    return record_update(organization=organization, actor=actor, instance=kpi, data=data)


@transaction.atomic
def kpi_delete(*, organization, actor: Actor, kpi: BonusKpi) -> None:
    _check_tenant(organization)
    _require_open(_lock_period(kpi.period), "its scorecard can no longer change")
    record_delete(organization=organization, actor=actor, instance=kpi)


def is_supervisor(membership: Membership) -> bool:
    employee = membership.employee
    return membership.role in SUPERVISOR_ROLES and (
        membership.team_id is not None or (employee is not None and employee.role == Employee.Role.SUPERVISOR)
    )


def _scope_of(membership: Membership) -> dict:
    if membership.is_active and membership.role == Role.STORE_MANAGER:
        return {"location": membership.location, "region": None, "team": None}
    if membership.is_active and membership.role == Role.REGIONAL_MANAGER:
        return {"location": None, "region": membership.region, "team": None}
    if membership.is_active and is_supervisor(membership):
        # The membership's team when set (the team they supervise), else the one they work in.
        team = membership.team or (membership.employee.current_team if membership.employee else None)
        if team is None:
            raise ValidationError({"membership": "This supervisor has no team to be scored on."})
        return {"location": None, "region": None, "team": team}
    raise ValidationError(
        {
            "membership": "Only active store managers, regional managers and supervisors "
            "take part in bonus periods."
        }
    )


def _money(value, field_name: str = "target_bonus") -> Decimal:
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        raise ValidationError({field_name: "Enter an amount such as 5000.00."}) from None
    if not amount.is_finite() or amount < 0:
        raise ValidationError({field_name: "Enter an amount of 0 or more."})
    return amount


@transaction.atomic
def participant_add(
    *,
    organization,
    actor: Actor,
    period: BonusPeriod,
    membership: Membership,
    target_bonus,
    currency: str = "",
) -> BonusParticipant:
    """A manager joins the period, scored on their location (store), region (regional) or team
    (supervisor)."""
    _check_tenant(organization)
    _require_open(_lock_period(period), "participants can no longer change")
    if BonusParticipant.objects.filter(period=period, user_id=membership.user_id).exists():
        raise ValidationError({"membership": "This manager already takes part in the period."})
    data = {
        "period": period,
        "user": membership.user,
        "employee": membership.employee,
        **_scope_of(membership),
        "target_bonus": _money(target_bonus),
        "currency": (currency or default_currency(organization)).upper()[:3],
    }
    return record_create(organization=organization, actor=actor, model=BonusParticipant, data=data)


@transaction.atomic
def participants_add_managers(
    *, organization, actor: Actor, period: BonusPeriod, target_bonus, currency: str = ""
) -> list[BonusParticipant]:
    """Every active store and regional manager and supervisor not yet in the period joins it
    (a supervisor with no team to be scored on is left out)."""
    _check_tenant(organization)
    _require_open(_lock_period(period), "participants can no longer change")
    taken = set(BonusParticipant.objects.filter(period=period).values_list("user_id", flat=True))
    supervisors = Q(role__in=SUPERVISOR_ROLES) & (
        Q(team__isnull=False) | Q(employee__role=Employee.Role.SUPERVISOR)
    )
    members = [
        m
        for m in Membership.objects.filter(Q(role__in=MANAGER_ROLES) | supervisors, is_active=True)
        .exclude(user_id__in=taken)
        .select_related("user", "employee__current_team", "location", "region", "team")
        .order_by("pk")
        if m.role in MANAGER_ROLES or m.team_id or m.employee.current_team_id
    ]
    return [
        participant_add(
            organization=organization,
            actor=actor,
            period=period,
            membership=m,
            target_bonus=target_bonus,
            currency=currency,
        )
        for m in members
    ]


@transaction.atomic
def participant_update(
    *, organization, actor: Actor, participant: BonusParticipant, data: dict
) -> BonusParticipant:
    _check_tenant(organization)
    _require_open(_lock_period(participant.period), "participants can no longer change")
    allowed = {}
    if "target_bonus" in data:
        allowed["target_bonus"] = _money(data["target_bonus"])
    if data.get("currency"):
        allowed["currency"] = str(data["currency"]).upper()[:3]
    return record_update(organization=organization, actor=actor, instance=participant, data=allowed)


@transaction.atomic
def participant_remove(*, organization, actor: Actor, participant: BonusParticipant) -> None:
    _check_tenant(organization)
    _require_open(_lock_period(participant.period), "participants can no longer change")
    record_delete(organization=organization, actor=actor, instance=participant)


@transaction.atomic
def period_close(*, organization, actor: Actor, period: BonusPeriod, now=None) -> BonusPeriod:
    """Compute and store every participant's result; the period must have ended.

    Closing again before approval recomputes (late data, a corrected target); approved periods
    are final. Points are recorded on each result; approval pays them (see _award_points).
    """
    org_id = _check_tenant(organization)
    now = now or timezone.now()
    period = _lock_period(period)
    if period.status == S.APPROVED:
        raise ValidationError({"period": "The period is approved; its results are final."})
    _, end = period_window(period, Organization.objects.get(pk=org_id))
    if now < end:
        raise ValidationError(
            {"period": f"The period runs until {period.ends_on}; close it once it has ended."}
        )
    if not BonusKpi.objects.filter(period=period).exists():
        raise ValidationError({"kpis": "The period has no KPIs: define its scorecard first."})
    cards = scorecards(period=period, now=now)
    BonusResult.objects.filter(participant__period=period).delete()
    BonusResult.objects.bulk_create(
        [
            BonusResult(
                organization_id=org_id,
                participant=card.participant,
                kpi_scores=[line.as_dict() for line in card.lines],
                score=card.score,
                payout_percent=card.payout_percent,
                payout_amount=card.payout_amount,
                points=card.points,
                computed_at=now,
            )
            for card in cards
        ]
    )
    period.status = S.CLOSED
    period.closed_at = now
    period.save(update_fields=["status", "closed_at"])
    total = sum((card.payout_amount for card in cards), Decimal(0))
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="bonus_period.close",
        instance=period,
        changes={"participants": len(cards), "total": str(total)},
    )
    emit(
        organization=org_id,
        event_type="BonusPeriodClosed",
        payload={"period_id": period.pk},
        aggregate=period,
    )
    return period


def _is_org_admin(actor: Actor) -> bool:
    if actor.user_id is None:
        return False
    return Membership.objects.filter(user_id=actor.user_id, role=Role.ORG_ADMIN, is_active=True).exists()


@transaction.atomic
def period_approve(*, organization, actor: Actor, period: BonusPeriod, now=None) -> BonusPeriod:
    """An org admin approves the calculated payouts (API keys and other roles cannot)."""
    org_id = _check_tenant(organization)
    if not _is_org_admin(actor):
        raise PermissionDenied("Only an organization admin approves bonus payouts.")
    period = _lock_period(period)
    if period.status == S.APPROVED:
        return period
    if period.status != S.CLOSED:
        raise ValidationError({"period": "Close the period first: there are no payouts to approve."})
    period.status = S.APPROVED
    period.approved_by_id = actor.user_id
    period.approved_at = now or timezone.now()
    period.save(update_fields=["status", "approved_by", "approved_at"])
    total = BonusResult.objects.filter(participant__period=period).aggregate(t=Sum("payout_amount"))["t"]
    points = _award_points(organization=organization, period=period)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="bonus_period.approve",
        instance=period,
        changes={"total": str(total or 0), "points": points},
    )
    return period


def _award_points(*, organization, period: BonusPeriod) -> int:
    """Each approved result's points, from the "Bonus points" budget to the manager's wallet.

    At approval, not at close: a closed period may still be recalculated, and ledger movements
    are never edited. One movement per result, keyed ``bonus:<period>:<participant>`` (a retry
    adds nothing). The budget must hold them all, else the approval is refused naming ``points``
    (the admin funds the budget, or the period awards no points). A manager with no employee
    record has no wallet: their points stay on the result only.
    """
    from incentives import ledger
    from incentives.models import Account, LedgerTransaction

    results = [
        r
        for r in BonusResult.objects.filter(participant__period=period, points__gt=0)
        .select_related("participant__employee")
        .order_by("pk")
        if r.participant.employee_id
    ]
    needed = sum(r.points for r in results)
    if not needed:
        return 0
    budget = Account.objects.filter(kind=Account.Kind.BUDGET, name=BONUS_BUDGET).first()
    if budget is None:
        raise ValidationError(
            {
                "points": f"The scorecards award {needed} points: create and fund a budget named "
                f'"{BONUS_BUDGET}" first, or set points per score point to 0 and close again.'
            }
        )
    try:
        for r in results:
            employee = r.participant.employee
            wallet = ledger.wallet_for(org=organization, employee=employee)
            tx = ledger.post(
                org=organization,
                kind=LedgerTransaction.Kind.AWARD,
                legs=[(budget, -r.points), (wallet, r.points)],
                key=f"bonus:{period.pk}:{r.participant_id}",
                employee=employee,
                note=f"Bonus {period.name}: scorecard {r.score}",
            )
            if not tx.replayed:
                emit(
                    organization=organization,
                    event_type="PointsAwarded",
                    payload={
                        "transaction_id": tx.pk,
                        "employee_id": employee.pk,
                        "location_id": employee.current_location_id,
                        "points": r.points,
                        "kind": str(LedgerTransaction.Kind.AWARD),
                        "rule_id": None,
                        "bonus_period_id": period.pk,
                    },
                    aggregate=tx,
                )
    except ledger.InsufficientPoints as exc:
        raise ValidationError(
            {"points": f"The scorecards award {needed} points but {exc.message}: fund the budget first."}
        ) from None
    return needed


def results_of(period: BonusPeriod):
    return (
        BonusResult.objects.filter(participant__period=period)
        .select_related(
            "participant__user",
            "participant__employee",
            "participant__location",
            "participant__region",
            "participant__team",
        )
        .order_by("participant__user__last_name", "participant__user__username", "pk")
    )


def _scope_label(p: BonusParticipant) -> str:
    if p.team_id:
        return f"team {p.team.name}"
    if p.location_id:
        return f"location {p.location.code}"
    return f"region {p.region.code}"


def _manager_name(user) -> str:
    return user.get_full_name() or user.username


def export_csv(*, organization, actor: Actor, period: BonusPeriod, now=None) -> str:
    """The approved payouts as CSV for payroll; marks the results exported (first time only)."""
    with transaction.atomic():
        org_id = _check_tenant(organization)
        period = _lock_period(period)
        if period.status != S.APPROVED:
            raise ValidationError({"period": "Only an approved period is exported for payroll."})
        results = list(results_of(period))
        now = now or timezone.now()
        marked = BonusResult.objects.filter(participant__period=period, exported_at__isnull=True).update(
            exported_at=now
        )
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="bonus_period.export",
            instance=period,
            changes={"rows": len(results), "newly_exported": marked},
        )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for r in results:
        p = r.participant
        writer.writerow(
            [
                escape_cell(period.name),
                escape_cell(_manager_name(p.user)),
                escape_cell(p.user.email),
                escape_cell(p.employee.external_id if p.employee_id else ""),
                escape_cell(_scope_label(p)),
                f"{p.target_bonus:.2f}",
                "" if r.score is None else f"{r.score:.2f}",
                f"{r.payout_percent:.2f}",
                f"{r.payout_amount:.2f}",
                escape_cell(p.currency),
                r.points,
            ]
        )
    return out.getvalue()


def location_names(ids) -> dict[int, str]:
    return dict(Location.objects.filter(pk__in=list(ids)).values_list("pk", "name"))
