"""Reward rules: which spine events earn points, for whom, and how many.

The handlers (incentives/handlers.py) turn an event into :class:`Facts` — one per *source*: a
survey response, an audit, a lesson completion, a quiz attempt, a case — and call :func:`apply`.
For every active rule of the trigger whose effective dates cover the source's date and whose
conditions hold, each recipient gets the rule's points through ``ledger.award``.

Decisions (documented here because tests and pages rely on them):

- **The award's event id is the source's id**, a UUID derived from (organization, source kind,
  source id) (:func:`source_uuid`), so the ledger key ``award:<rule>:<event>:<employee>`` is
  the same however often, and through however many spine events, the source arrives: a
  redelivered event, the same audit rescored, a bulk event re-sent. It is also how an award is
  found again to be reversed (:func:`award_reverse_for_source`, indexed on ``event_id``).
- **Conditions** (blank = any): standard (the source is linked to it: an answer's standard, an
  audit's standard scores, a lesson's standards), channel, touchpoint, interaction category,
  location, region, and the recipient's employee role. A condition the trigger carries no value
  for is refused when the rule is saved (:func:`rule_shape_errors`), so a rule never silently
  matches nothing. The rule's date window is checked against the source's own date (response
  submitted, audit published, …) in the organization's time zone.
- **Critical counts double**: ``critical_multiplier`` multiplies the points (rounded) when the
  source's interaction is Critical.
- **Caps** per person per period (day / ISO week / month / quarter in the organization's time zone)
  count the rule's awards to that person in the current period that were not reversed. An award
  that would pass the cap is **paid partially up to the cap** (the note says so); once the cap is
  reached the award is skipped with the reason "cap reached". The budget and the wallet are locked
  (id order, the ledger's order) before counting, so two concurrent awards cannot both fit.
- **Budget exhausted**: when the rule's budget holds less than the award, nothing is paid and a
  :class:`~incentives.models.RewardSkip` "budget empty" is recorded once per (rule, source, person);
  the rules page shows the rule as "stopped: budget empty" while its budget holds less than its
  points. A skipped award is not retried when the budget is funded later.
- **Reversal**: an audit rescored below a rule's ``min_score`` reverses that rule's awards for the
  audit (``ledger.reverse``: a linked transaction; when the points were already spent the
  organization's ``allow_debt`` decides between a wallet in debt and a write-off, see
  incentives/ledger.py). A rescore at or above the minimum awards what had not been awarded
  (e.g. a dispute lifted the audit over the line); an award once reversed is not paid again.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from cem.models import Employee, InteractionCategory, Location, Organization
from cem.services import _check_tenant
from incentives import ledger
from incentives.models import Account, LedgerEntry, LedgerTransaction, RewardRule, RewardSkip

T = RewardRule.Trigger
R = RewardRule.Recipients

_NAMESPACE = uuid.UUID("6f2d3c1e-7a43-4b8e-9a7e-5c0f6e3b9d21")

BUDGET_EMPTY = "budget empty"
CAP_REACHED = "cap reached"
NO_RECIPIENT = "no recipient"

# The conditions each trigger's sources carry a value for (the recipient's role always applies).
_SURVEY = {"standard", "channel", "touchpoint", "category", "location", "region"}
CONDITIONS: dict[str, set[str]] = {
    T.PROMOTER_RESPONSE: _SURVEY,
    T.RESPONSE_SCORE: _SURVEY,
    T.AUDIT_SCORE: _SURVEY,
    T.EVALUATION_SCORE: _SURVEY,
    T.LESSON_COMPLETED: {"standard", "location", "region"},
    T.QUIZ_PASSED_FIRST_TRY: {"standard", "location", "region"},
    T.QUIZ_PASSED: {"standard", "location", "region"},
    T.CASE_RESOLVED_IN_SLA: {"channel", "touchpoint", "category", "location", "region"},
    T.ALIGNMENT_SCORE: {"location", "region"},
}
RECIPIENTS: dict[str, set[str]] = {
    T.PROMOTER_RESPONSE: {R.NAMED_EMPLOYEE, R.LOCATION_EMPLOYEES, R.LOCATION_MANAGERS},
    T.RESPONSE_SCORE: {R.NAMED_EMPLOYEE, R.LOCATION_EMPLOYEES, R.LOCATION_MANAGERS},
    T.AUDIT_SCORE: {R.NAMED_EMPLOYEE, R.LOCATION_EMPLOYEES, R.LOCATION_MANAGERS},
    T.EVALUATION_SCORE: {R.NAMED_EMPLOYEE, R.LOCATION_MANAGERS},
    T.LESSON_COMPLETED: {R.LEARNER},
    T.QUIZ_PASSED_FIRST_TRY: {R.LEARNER},
    T.QUIZ_PASSED: {R.LEARNER},
    # "named" is the case's assignee (as an employee), "managers" the location's managers.
    T.CASE_RESOLVED_IN_SLA: {R.NAMED_EMPLOYEE, R.LOCATION_MANAGERS},
    T.ALIGNMENT_SCORE: {R.LOCATION_EMPLOYEES, R.LOCATION_MANAGERS},
}
SCORED = {T.RESPONSE_SCORE, T.AUDIT_SCORE, T.EVALUATION_SCORE, T.ALIGNMENT_SCORE}
# Triggers whose spine event does not exist yet (rule_status says so). None at present: store
# alignment scores arrive with AlignmentMonthScored (incentives.handlers).
WAITING: dict[str, str] = {}
MANAGER_ROLES = (Employee.Role.STORE_MANAGER, Employee.Role.SUPERVISOR)
CONDITION_FIELDS = ("standard", "channel", "touchpoint", "category", "location", "region")


def source_uuid(org, kind: str, pk) -> uuid.UUID:
    """The award event id of a source (see the module docstring)."""
    return uuid.uuid5(_NAMESPACE, f"{getattr(org, 'pk', org)}:{kind}:{pk}")


@dataclass
class Facts:
    """What one source says, as far as rules care."""

    kind: str  # response | audit | lesson_completion | quiz_attempt | case | alignment
    pk: object
    when: dt.datetime
    label: str
    score: Decimal | None = None
    standard_ids: set[int] = field(default_factory=set)
    channel_id: int | None = None
    touchpoint_id: int | None = None
    category: str = ""
    location_id: int | None = None
    region_id: int | None = None
    employee_id: int | None = None  # the employee named in it (agent, learner, assignee)


# --- rule shape (shared by the API serializer and the page form) ----------------------------


def rule_shape_errors(*, trigger, recipients, min_score, **conditions) -> dict[str, str]:
    """Field → message for a rule that could never award as configured."""
    errors: dict[str, str] = {}
    if not trigger:
        return errors
    label = T(trigger).label.lower()
    allowed = RECIPIENTS.get(trigger, set())
    if recipients and recipients not in allowed:
        names = ", ".join(sorted(R(r).label.lower() for r in allowed))
        errors["recipients"] = f"A {label} rule awards {names}."
    if trigger in SCORED and min_score is None:
        errors["min_score"] = "This trigger needs a minimum score."
    if trigger not in SCORED and min_score is not None:
        errors["min_score"] = "This trigger has no score; leave it blank."
    carried = CONDITIONS.get(trigger, set())
    for name in CONDITION_FIELDS:
        if conditions.get(name) not in (None, "") and name not in carried:
            errors[name] = f"A {label} carries no {name}; leave it blank."
    return errors


def rule_status(rule: RewardRule, today: dt.date | None = None) -> str:
    """What the rules page says about a rule (the budget must be selected with it)."""
    today = today or timezone.localdate()
    if not rule.active:
        return "inactive"
    if rule.effective_until is not None and rule.effective_until < today:
        return "ended"
    if rule.effective_from > today:
        return "starts " + rule.effective_from.isoformat()
    if rule.budget.balance < rule.points:
        return "stopped: budget empty"
    if rule.trigger in WAITING:
        return WAITING[rule.trigger]
    return "active"


# --- matching -----------------------------------------------------------------------------------


def org_zone(org) -> zoneinfo.ZoneInfo:
    name = getattr(org, "time_zone", None)
    if name is None:
        name = (
            Organization.objects.filter(pk=getattr(org, "pk", org))
            .values_list("time_zone", flat=True)
            .first()
        )
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def rules_for(trigger) -> list[RewardRule]:
    return list(
        RewardRule.objects.filter(trigger=trigger, active=True).select_related("budget").order_by("pk")
    )


def _matches(rule: RewardRule, facts: Facts, zone) -> bool:
    day = facts.when.astimezone(zone).date()
    if day < rule.effective_from or (rule.effective_until is not None and day > rule.effective_until):
        return False
    if rule.min_score is not None and (facts.score is None or facts.score < rule.min_score):
        return False
    checks = (
        (rule.standard_id, rule.standard_id in facts.standard_ids),
        (rule.channel_id, rule.channel_id == facts.channel_id),
        (rule.touchpoint_id, rule.touchpoint_id == facts.touchpoint_id),
        (rule.category, rule.category == facts.category),
        (rule.location_id, rule.location_id == facts.location_id),
        (rule.region_id, rule.region_id == facts.region_id),
    )
    return all(ok for wanted, ok in checks if wanted)


def points_for(rule: RewardRule, facts: Facts) -> int:
    if facts.category == InteractionCategory.CRITICAL and rule.critical_multiplier != 1:
        scaled = (Decimal(rule.points) * rule.critical_multiplier).quantize(Decimal(1), ROUND_HALF_UP)
        return int(scaled)
    return rule.points


class _People:
    """Employees by id and by location, read once per apply() call."""

    def __init__(self):
        self.by_location: dict[int, list[Employee]] = {}
        self.by_id: dict[int, Employee] = {}

    def load(self, *, location_ids: Iterable[int], employee_ids: Iterable[int]) -> None:
        loc = {i for i in location_ids if i and i not in self.by_location}
        emp = {i for i in employee_ids if i and i not in self.by_id}
        if not loc and not emp:
            return
        for e in Employee.objects.filter(Q(current_location_id__in=loc) | Q(pk__in=emp)).order_by("pk"):
            self.by_id[e.pk] = e
            if e.current_location_id in loc and e.active:
                self.by_location.setdefault(e.current_location_id, []).append(e)
        for i in loc:
            self.by_location.setdefault(i, [])

    def recipients(self, rule: RewardRule, facts: Facts) -> list[Employee]:
        if rule.recipients in (R.NAMED_EMPLOYEE, R.LEARNER):
            found = self.by_id.get(facts.employee_id)
            people = [found] if found is not None and found.active else []
        else:
            people = self.by_location.get(facts.location_id, [])
            if rule.recipients == R.LOCATION_MANAGERS:
                people = [e for e in people if e.role in MANAGER_ROLES]
        if rule.employee_role:
            people = [e for e in people if e.role == rule.employee_role]
        return people


def _fill_regions(facts_list: list[Facts]) -> None:
    ids = {f.location_id for f in facts_list if f.location_id and f.region_id is None}
    if not ids:
        return
    regions = dict(Location.objects.filter(pk__in=ids).values_list("pk", "region_id"))
    for f in facts_list:
        if f.region_id is None:
            f.region_id = regions.get(f.location_id)


@dataclass
class Outcome:
    awarded: list[LedgerTransaction] = field(default_factory=list)
    skipped: list[RewardSkip] = field(default_factory=list)


def apply(*, org, trigger, facts_list: list[Facts], rules: list[RewardRule] | None = None) -> Outcome:
    """Award every matching rule of ``trigger`` for each source (idempotent, see the docstring)."""
    _check_tenant(org)
    outcome = Outcome()
    rules = rules_for(trigger) if rules is None else rules
    if not rules or not facts_list:
        return outcome
    zone = org_zone(org)
    _fill_regions(facts_list)
    pairs = [(rule, facts) for facts in facts_list for rule in rules if _matches(rule, facts, zone)]
    if not pairs:
        return outcome
    people = _People()
    people.load(
        location_ids={
            f.location_id for r, f in pairs if r.recipients in (R.LOCATION_EMPLOYEES, R.LOCATION_MANAGERS)
        },
        employee_ids={f.employee_id for r, f in pairs if r.recipients in (R.NAMED_EMPLOYEE, R.LEARNER)},
    )
    for rule, facts in pairs:
        points = points_for(rule, facts)
        for employee in people.recipients(rule, facts):
            _award_one(
                org=org, rule=rule, facts=facts, employee=employee, points=points, zone=zone, outcome=outcome
            )
    return outcome


# --- one award ------------------------------------------------------------------------------------


def period_start(period: str, now: dt.datetime, zone) -> dt.datetime:
    local = now.astimezone(zone)
    day = local.date()
    if period == RewardRule.CapPeriod.DAY:
        start = day
    elif period == RewardRule.CapPeriod.WEEK:
        start = day - dt.timedelta(days=day.weekday())
    elif period == RewardRule.CapPeriod.QUARTER:
        start = day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    else:
        start = day.replace(day=1)
    return dt.datetime.combine(start, dt.time.min, tzinfo=zone)


def awarded_in_period(*, rule: RewardRule, employee, since: dt.datetime) -> int:
    """Points of the rule's unreversed awards to the employee since ``since``."""
    total = LedgerEntry.objects.filter(
        account__kind=Account.Kind.WALLET,
        transaction__rule=rule,
        transaction__employee=employee,
        transaction__kind=LedgerTransaction.Kind.AWARD,
        transaction__created_at__gte=since,
        transaction__reversed_by__isnull=True,
    ).aggregate(total=Sum("amount"))["total"]
    return int(total or 0)


def _skip(*, org, rule, event_id, employee, reason: str, outcome: Outcome) -> None:
    try:
        with transaction.atomic():
            skip = RewardSkip.objects.create(
                organization_id=getattr(org, "pk", org),
                rule=rule,
                event_id=event_id,
                employee=employee,
                reason=reason[:200],
                created_at=timezone.now(),
            )
    except IntegrityError:
        return  # said once per (rule, source, person)
    outcome.skipped.append(skip)


def _award_one(*, org, rule, facts: Facts, employee, points: int, zone, outcome: Outcome) -> None:
    event_id = source_uuid(org, facts.kind, facts.pk)
    key = ledger.award_key(rule, event_id, employee)
    if LedgerTransaction.objects.filter(key=key).exists():
        return
    if RewardSkip.objects.filter(rule=rule, event_id=event_id, employee=employee).exists():
        return
    note = f"{rule.name}: {facts.label}"
    with transaction.atomic():
        if rule.cap_points is not None:
            wallet = ledger.wallet_for(org=org, employee=employee)
            # The ledger's lock order (ids ascending), taken before counting so that two awards
            # of the same rule to the same person queue here rather than both fit under the cap.
            list(
                Account.objects.select_for_update().filter(pk__in=[rule.budget_id, wallet.pk]).order_by("pk")
            )
            given = awarded_in_period(
                rule=rule, employee=employee, since=period_start(rule.cap_period, timezone.now(), zone)
            )
            room = rule.cap_points - given
            if room <= 0:
                _skip(
                    org=org,
                    rule=rule,
                    event_id=event_id,
                    employee=employee,
                    outcome=outcome,
                    reason=f"{CAP_REACHED} ({rule.cap_points} per {rule.get_cap_period_display().lower()})",
                )
                return
            if room < points:
                note += f" (capped: {room} of {points})"
                points = room
        try:
            with transaction.atomic():
                tx = ledger.award(
                    org=org, rule=rule, event_id=event_id, employee=employee, points=points, note=note
                )
        except ledger.InsufficientPoints:
            _skip(
                org=org, rule=rule, event_id=event_id, employee=employee, reason=BUDGET_EMPTY, outcome=outcome
            )
            return
    if not getattr(tx, "replayed", False):
        outcome.awarded.append(tx)


# --- reversal -------------------------------------------------------------------------------------


def award_reverse_for_source(
    *, org, kind: str, pk, note: str, rules: Iterable[RewardRule] | None = None, user=None
) -> list[LedgerTransaction]:
    """Reverse the unreversed awards made for one source (all rules, or only ``rules``).

    Used when an audit is rescored below a rule's minimum, and by deletions of a source (GDPR,
    fraud): each award gets its linked reversing transaction (see ledger.reverse for spent points).
    """
    _check_tenant(org)
    awards = LedgerTransaction.objects.filter(
        event_id=source_uuid(org, kind, pk),
        kind=LedgerTransaction.Kind.AWARD,
        reversed_by__isnull=True,
    )
    if rules is not None:
        awards = awards.filter(rule__in=[r.pk for r in rules])
    done = []
    for tx in awards.order_by("pk"):
        done.append(ledger.reverse(org=org, transaction=tx, note=note, user=user))
    return done
