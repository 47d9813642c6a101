"""Closing the loop: alert rules open cases, managers work them, overdue cases escalate.

**Rules.** An active :class:`AlertRule` matches a response when its ``condition`` holds for one
of the response's answers and, if the rule names a ``category``, the response came from an
interaction of that category. Condition shapes (exactly one per rule)::

    {"question_type": "nps", "op": "lte", "value": 6}   score answers; op is lte / gte / eq
    {"sentiment": "negative"}                            text answers' sentiment
    {"topic": "rude"}                                    text answers' topics

**One case per response.** When several rules match, the most urgent one (highest priority,
then shortest SLA, then name) opens the case: a detractor who also left a rude comment is one
customer to call back, not three tickets. The database keeps (response, rule) unique, so a
redelivered ``ResponseReceived`` can never open a second case.

**Priority.** The rule's priority, one level higher (capped at Urgent) when the interaction's
category is the organization's heaviest (``cem.category_weights``: the weights of the alignment
settings; Critical by default, none when all weigh the same), so Critical complaints sort first in
every list (lists order by priority desc).

**Who gets the case** (the escalation ladder; level = index):

0. the store level: the active store manager of the response's location (oldest membership
   first); failing that, a member linked to a *supervisor* employee at that location whose
   role may work cases;
1. the region level: the active regional manager of the location's region;
2. the organization level: an active org admin.

A new case goes to the first level, from 0 up, that has someone. An overdue case (open or in
progress past ``sla_due_at``) moves to the first level above its current one that has someone,
gets a new SLA window of the rule's ``sla_hours`` and its new assignee is emailed. Level 2 is
the top: a case there stays overdue and shows on the executive complaint review.

**Contact details** are copied onto the case only when the customer consented to that channel
and has not opted out; otherwise the case carries none.
"""

from __future__ import annotations

import datetime as dt
import logging
import operator
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from cem import suppression
from cem.category_weights import category_weights, raises_priority
from cem.events import emit, handles
from cem.models import Customer, Employee, Location, Membership, Role
from cem.permissions import role_can
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write, record_create, record_update
from feedback.models import AlertRule, Answer, Case, CaseNote, QuestionType, Response
from feedback.services import RESPONSE_RECEIVED

logger = logging.getLogger(__name__)

CASE_OPENED = "CaseOpened"
CASE_RESOLVED = "CaseResolved"
CASE_ESCALATED = "CaseEscalated"

ACTIVE_STATUSES = (Case.Status.OPEN, Case.Status.IN_PROGRESS)
TRANSITIONS: dict[str, set[str]] = {
    Case.Status.OPEN: {Case.Status.IN_PROGRESS, Case.Status.CLOSED},
    Case.Status.IN_PROGRESS: {Case.Status.RESOLVED, Case.Status.CLOSED},
    Case.Status.RESOLVED: {Case.Status.CLOSED},
    Case.Status.CLOSED: set(),
}

LEVEL_STORE, LEVEL_REGION, LEVEL_ORGANIZATION = 0, 1, 2
TOP_LEVEL = LEVEL_ORGANIZATION
LEVEL_LABELS = {LEVEL_STORE: "Store", LEVEL_REGION: "Region", LEVEL_ORGANIZATION: "Organization"}
DEFAULT_SLA_HOURS = 24
REASON_MAX = 300
NOTE_MAX = 5000

# --- conditions --------------------------------------------------------------------------------

SCORE_OPS = {"lte": operator.le, "gte": operator.ge, "eq": operator.eq}
SCORE_TYPES = (QuestionType.NPS, QuestionType.CSAT, QuestionType.CES, QuestionType.FCR, QuestionType.RATING)
CONDITION_HELP = (
    'Use {"question_type": "nps", "op": "lte", "value": 6}, {"sentiment": "negative"} or {"topic": "rude"}.'
)


def condition_errors(condition) -> list[str]:
    """Messages explaining why ``condition`` is not one of the three shapes; [] when it is."""
    if not isinstance(condition, dict) or not condition:
        return [f"Must be an object. {CONDITION_HELP}"]
    keys = set(condition)
    if keys == {"question_type", "op", "value"}:
        errors = []
        if condition["question_type"] not in SCORE_TYPES:
            errors.append(f"question_type must be one of {', '.join(SCORE_TYPES)}.")
        if condition["op"] not in SCORE_OPS:
            errors.append(f"op must be one of {', '.join(SCORE_OPS)}.")
        value = condition["value"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append("value must be a number.")
        return errors
    if keys == {"sentiment"}:
        if condition["sentiment"] not in Answer.Sentiment.values:
            return [f"sentiment must be one of {', '.join(Answer.Sentiment.values)}."]
        return []
    if keys == {"topic"}:
        topic = condition["topic"]
        if not isinstance(topic, str) or not topic.strip() or len(topic) > 40:
            return ["topic must be a non-empty string of at most 40 characters."]
        return []
    return [f"Unknown condition {sorted(keys)}. {CONDITION_HELP}"]


def condition_holds(condition: dict, answers: list[Answer]) -> bool:
    if "question_type" in condition:
        compare, wanted = SCORE_OPS[condition["op"]], Decimal(str(condition["value"]))
        return any(
            a.question_type == condition["question_type"]
            and a.number is not None
            and compare(a.number, wanted)
            for a in answers
        )
    if "sentiment" in condition:
        return any(a.sentiment == condition["sentiment"] for a in answers)
    if "topic" in condition:
        return any(condition["topic"] in a.topics for a in answers)
    return False


def rule_matches(rule: AlertRule, response: Response, answers: list[Answer]) -> bool:
    if rule.category and rule.category != response.category:
        return False
    return not condition_errors(rule.condition) and condition_holds(rule.condition, answers)


def _urgency(rule: AlertRule) -> tuple:
    return (-rule.priority, rule.sla_hours, rule.name)


def case_priority(rule: AlertRule, category: str, *, weights: Mapping[str, float]) -> int:
    """``weights``: the organization's ``cem.category_weights.category_weights``."""
    if raises_priority(weights, category):
        return min(rule.priority + 1, AlertRule.Priority.URGENT)
    return rule.priority


# --- alert rules -------------------------------------------------------------------------------

DEFAULT_RULES = (
    {
        "name": "Detractor (NPS 0–6)",
        "condition": {"question_type": "nps", "op": "lte", "value": 6},
        "priority": AlertRule.Priority.HIGH,
        "sla_hours": 24,
    },
    {
        "name": "Very dissatisfied (CSAT 1–2)",
        "condition": {"question_type": "csat", "op": "lte", "value": 2},
        "priority": AlertRule.Priority.HIGH,
        "sla_hours": 24,
    },
    {
        "name": "Rude staff mentioned",
        "condition": {"topic": "rude"},
        "priority": AlertRule.Priority.HIGH,
        "sla_hours": 24,
    },
    {
        "name": "Negative comment",
        "condition": {"sentiment": "negative"},
        "priority": AlertRule.Priority.NORMAL,
        "sla_hours": 48,
    },
)


def _validate_condition(data: dict) -> None:
    if "condition" in data:
        errors = condition_errors(data["condition"])
        if errors:
            raise ValidationError({"condition": errors})


@transaction.atomic
def alert_rule_create(*, organization, actor: Actor, data: dict) -> AlertRule:
    _validate_condition(data)
    return record_create(organization=organization, actor=actor, model=AlertRule, data=data)


@transaction.atomic
def alert_rule_update(*, organization, actor: Actor, rule: AlertRule, data: dict) -> AlertRule:
    _validate_condition(data)
    return record_update(organization=organization, actor=actor, instance=rule, data=data)


@transaction.atomic
def alert_rules_install_defaults(*, organization, actor: Actor) -> list[AlertRule]:
    """Add the default rules an organization does not have yet (by name); returns those added."""
    _check_tenant(organization)
    have = set(AlertRule.objects.values_list("name", flat=True))
    return [
        alert_rule_create(organization=organization, actor=actor, data=dict(spec))
        for spec in DEFAULT_RULES
        if spec["name"] not in have
    ]


# --- who is responsible ------------------------------------------------------------------------

CASE_WORKER_ROLES = tuple(r for r in Role.values if role_can(r, "cases.change") and r != Role.INTEGRATOR)


def _level_candidate(level: int, location: Location | None) -> int | None:
    members = Membership.objects.filter(is_active=True, user__is_active=True).order_by("pk")
    if level == LEVEL_STORE:
        if location is None:
            return None
        user_id = (
            members.filter(role=Role.STORE_MANAGER, location_id=location.pk)
            .values_list("user_id", flat=True)
            .first()
        )
        if user_id is None:
            user_id = (
                members.filter(
                    role__in=CASE_WORKER_ROLES,
                    employee__role=Employee.Role.SUPERVISOR,
                    employee__current_location_id=location.pk,
                )
                .values_list("user_id", flat=True)
                .first()
            )
        return user_id
    if level == LEVEL_REGION:
        if location is None:
            return None
        return (
            members.filter(role=Role.REGIONAL_MANAGER, region_id=location.region_id)
            .values_list("user_id", flat=True)
            .first()
        )
    return members.filter(role=Role.ORG_ADMIN).values_list("user_id", flat=True).first()


def responsible_user(location: Location | None, *, from_level: int = LEVEL_STORE) -> tuple[int | None, int]:
    """(user id, level) of the first level from ``from_level`` up that has someone; (None, top) if none."""
    for level in range(from_level, TOP_LEVEL + 1):
        user_id = _level_candidate(level, location)
        if user_id is not None:
            return user_id, level
    return None, TOP_LEVEL


# --- opening cases -----------------------------------------------------------------------------


def _consented_contact(customer: Customer | None, *, suppressed: bool = False) -> dict:
    if customer is None or customer.opted_out_at is not None or suppressed:
        return {}
    contact = {}
    if customer.consent_email and customer.email:
        contact["email"] = customer.email
    if customer.consent_sms and customer.phone:
        contact["phone"] = customer.phone
    if contact and customer.locale:
        contact["locale"] = customer.locale
    return contact


def _themes(answers: list[Answer]) -> list[str]:
    seen: dict[str, None] = {}
    for answer in answers:
        for topic in answer.topics:
            seen.setdefault(topic, None)
    return list(seen)


TITLE_SCORES = (QuestionType.NPS, QuestionType.CSAT, QuestionType.CES)


def _title(rule: AlertRule, answers: list[Answer], location: Location | None) -> str:
    scores = [
        f"{a.question_type.upper()} {a.number.normalize():f}"
        for a in answers
        if a.question_type in TITLE_SCORES and a.number is not None
    ]
    parts = [rule.name]
    if scores:
        parts.append(", ".join(scores[:2]))
    parts.append(location.name if location is not None else "no location")
    return " · ".join(parts)[:300]


def sla_hours_of(case: Case) -> int:
    return case.rule.sla_hours if case.rule_id and case.rule else DEFAULT_SLA_HOURS


def cases_open_for_responses(*, organization, response_ids, now: dt.datetime | None = None) -> list[Case]:
    """Open at most one case per response for the most urgent matching rule; returns those opened."""
    org_id = _check_tenant(organization)
    rules = sorted(AlertRule.objects.filter(active=True), key=_urgency)
    if not rules or not response_ids:
        return []
    now = now or timezone.now()
    responses = list(Response.objects.filter(pk__in=response_ids).order_by("pk"))
    already = set(
        Case.objects.filter(response_id__in=[r.pk for r in responses]).values_list("response_id", flat=True)
    )
    responses = [r for r in responses if r.pk not in already]
    if not responses:
        return []
    weights = category_weights(org_id)
    answers: dict[int, list[Answer]] = defaultdict(list)
    for answer in Answer.objects.filter(response_id__in=[r.pk for r in responses]).order_by("pk"):
        answers[answer.response_id].append(answer)
    locations = Location.objects.in_bulk({r.location_id for r in responses if r.location_id})
    customers = Customer.objects.in_bulk({r.customer_id for r in responses if r.customer_id})
    suppressed = suppression.suppressed_customer_ids(customers.values())

    opened = []
    for response in responses:
        mine = answers.get(response.pk, [])
        rule = next((r for r in rules if rule_matches(r, response, mine)), None)
        if rule is None:
            continue
        location = locations.get(response.location_id)
        assignee_id, level = responsible_user(location)
        case = Case(
            organization_id=org_id,
            response=response,
            rule=rule,
            title=_title(rule, mine, location),
            location=location,
            employee_id=response.employee_id,
            assignee_id=assignee_id,
            priority=case_priority(rule, response.category, weights=weights),
            category=response.category,
            sla_due_at=now + dt.timedelta(hours=rule.sla_hours),
            escalation_level=level,
            customer_contact=_consented_contact(
                customers.get(response.customer_id), suppressed=response.customer_id in suppressed
            ),
            themes=_themes(mine),
        )
        try:
            with transaction.atomic():
                case.save()
        except IntegrityError:
            # Another delivery opened it first: one case per (response, rule) is the point.
            continue
        emit(
            organization=org_id,
            event_type=CASE_OPENED,
            payload={
                "case_id": case.pk,
                "response_id": response.pk,
                "rule_id": rule.pk,
                "location_id": case.location_id,
                "employee_id": case.employee_id,
                "priority": case.priority,
                "assignee_id": assignee_id,
            },
            aggregate=case,
        )
        audit_log_write(
            organization=org_id,
            actor=Actor.system(),
            action="case.open",
            instance=case,
            changes={"rule": rule.pk, "response": response.pk, "assignee": assignee_id, "level": level},
        )
        notify_on_commit(case, reason="opened")
        opened.append(case)
    return opened


@handles(RESPONSE_RECEIVED, name="feedback.cases_open")
def cases_open_after_response(event) -> None:
    cases_open_for_responses(
        organization=event.organization_id, response_ids=event.payload.get("response_ids") or []
    )


# --- notifying ---------------------------------------------------------------------------------


def notify_on_commit(case: Case, *, reason: str) -> None:
    """Email the case's assignee once the transaction commits (a rolled-back case mails nobody)."""
    if case.assignee_id is None:
        return
    tenant_id, case_id, assignee_id = case.organization_id, case.pk, case.assignee_id

    def kick():
        from feedback.case_tasks import case_notify

        try:
            case_notify.delay(tenant_id, case_id, assignee_id, reason)
        except (KombuOperationalError, ConnectionError, OSError):
            # The case is committed either way; without a broker, mail from here rather than not at all.
            logger.warning("broker unavailable; mailing case %s inline", case_id)
            case_notify_send(case_id=case_id, assignee_id=assignee_id, reason=reason)

    transaction.on_commit(kick)


def case_notify_send(*, case_id: int, assignee_id: int, reason: str) -> bool:
    """Send the assignment email; False when there is nothing to send (reassigned since, no email)."""
    case = Case.objects.select_related("location", "rule").filter(pk=case_id).first()
    if case is None or case.assignee_id != assignee_id:
        # Reassigned (escalated) before this ran: the newer assignee gets their own email.
        return False
    user = get_user_model().objects.filter(pk=assignee_id, is_active=True).first()
    if user is None or not user.email:
        return False
    context = {
        "case": case,
        "reason": reason,
        "user": user,
        "url": settings.SITE_URL.rstrip("/") + reverse("feedback_case", args=[case.pk]),
        "level": LEVEL_LABELS.get(case.escalation_level, ""),
    }
    verb = "Escalated to you" if reason == "escalated" else "New case"
    subject = f"[{case.get_priority_display()}] {verb}: {case.title}"[:200]
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("feedback/email/case_assigned.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[user.email],
    )
    message.attach_alternative(render_to_string("feedback/email/case_assigned.html", context), "text/html")
    message.send()
    return True


# --- working a case ----------------------------------------------------------------------------


def _locked(case: Case) -> Case:
    # Re-read under a row lock: an escalation or a colleague may have moved the case meanwhile.
    return Case.objects.select_for_update().get(pk=case.pk)


def _move(case: Case, to: str) -> None:
    if to not in TRANSITIONS[case.status]:
        allowed = ", ".join(sorted(TRANSITIONS[case.status])) or "nothing (it is final)"
        raise ValidationError(
            {"status": f"A case that is {case.get_status_display().lower()} can move to {allowed}, not {to}."}
        )
    case.status = to


def _clean_text(value, *, field: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationError({field: "This field is required."})
    if len(text) > limit:
        raise ValidationError({field: f"At most {limit} characters."})
    return text


def _note(org_id: int, case: Case, actor: Actor, text: str) -> CaseNote:
    return CaseNote.objects.create(organization_id=org_id, case=case, author_id=actor.user_id, text=text)


@transaction.atomic
def case_start(*, organization, actor: Actor, case: Case) -> Case:
    org_id = _check_tenant(organization)
    case = _locked(case)
    before = case.status
    _move(case, Case.Status.IN_PROGRESS)
    case.save(update_fields=["status"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="case.start",
        instance=case,
        changes={"status": {"before": before, "after": case.status}},
    )
    return case


@transaction.atomic
def case_add_note(*, organization, actor: Actor, case: Case, text: str) -> CaseNote:
    org_id = _check_tenant(organization)
    text = _clean_text(text, field="text", limit=NOTE_MAX)
    note = _note(org_id, case, actor, text)
    audit_log_write(
        organization=org_id, actor=actor, action="case.note", instance=case, changes={"note": note.pk}
    )
    return note


def contact_refusal(case: Case) -> str:
    """Why the customer behind a case must not be contacted ("" when nothing forbids it)."""
    customer_id = Response.objects.filter(pk=case.response_id).values_list("customer_id", flat=True).first()
    customer = Customer.objects.filter(pk=customer_id).first() if customer_id else None
    if customer is not None and (customer.opted_out_at is not None or suppression.is_suppressed(customer)):
        return "The customer opted out of being contacted; record the outcome without contacting them."
    return ""


@transaction.atomic
def case_mark_customer_contacted(*, organization, actor: Actor, case: Case, now=None) -> Case:
    org_id = _check_tenant(organization)
    case = _locked(case)
    if case.status == Case.Status.CLOSED:
        raise ValidationError({"status": "A closed case cannot be changed."})
    refusal = contact_refusal(case)
    if refusal:
        raise ValidationError({"customer": refusal})
    if case.customer_contacted_at is None:
        case.customer_contacted_at = now or timezone.now()
        case.save(update_fields=["customer_contacted_at"])
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="case.contacted",
            instance=case,
            changes={"customer_contacted_at": case.customer_contacted_at.isoformat()},
        )
    return case


@transaction.atomic
def case_resolve(*, organization, actor: Actor, case: Case, reason: str, now=None) -> Case:
    org_id = _check_tenant(organization)
    reason = _clean_text(reason, field="reason", limit=REASON_MAX)
    case = _locked(case)
    before = case.status
    _move(case, Case.Status.RESOLVED)
    now = now or timezone.now()
    case.resolved_at, case.closed_reason = now, reason
    case.save(update_fields=["status", "resolved_at", "closed_reason"])
    _note(org_id, case, actor, f"Resolved: {reason}")
    emit(
        organization=org_id,
        event_type=CASE_RESOLVED,
        payload={
            "case_id": case.pk,
            "response_id": case.response_id,
            "rule_id": case.rule_id,
            "location_id": case.location_id,
            "employee_id": case.employee_id,
            "escalation_level": case.escalation_level,
            "within_sla": now <= case.sla_due_at,
            "hours_open": round((now - case.created_at).total_seconds() / 3600, 2),
        },
        aggregate=case,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="case.resolve",
        instance=case,
        changes={"status": {"before": before, "after": case.status}, "reason": reason},
    )
    return case


@transaction.atomic
def case_close(*, organization, actor: Actor, case: Case, reason: str) -> Case:
    org_id = _check_tenant(organization)
    reason = _clean_text(reason, field="reason", limit=REASON_MAX)
    case = _locked(case)
    before = case.status
    _move(case, Case.Status.CLOSED)
    case.closed_reason = reason
    case.save(update_fields=["status", "closed_reason"])
    _note(org_id, case, actor, f"Closed: {reason}")
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="case.close",
        instance=case,
        changes={"status": {"before": before, "after": case.status}, "reason": reason},
    )
    return case


# --- escalation --------------------------------------------------------------------------------


def overdue_cases_by_tenant(now: dt.datetime, limit: int = 10_000) -> dict[int, list[int]]:
    """{tenant id: [case ids]} of cases past their SLA that can still go up. Call inside unscoped()."""
    rows = (
        Case.objects.filter(status__in=ACTIVE_STATUSES, sla_due_at__lt=now, escalation_level__lt=TOP_LEVEL)
        .order_by("organization_id", "sla_due_at")
        .values_list("organization_id", "pk")[:limit]
    )
    found: dict[int, list[int]] = defaultdict(list)
    for tenant_id, case_id in rows:
        found[tenant_id].append(case_id)
    return dict(found)


def _escalate_one(case: Case, now: dt.datetime) -> bool:
    """Move one overdue case a level up. The UPDATE is conditional on the level read, so of two
    runs holding the same snapshot only the first changes anything."""
    location = case.location
    assignee_id, level = responsible_user(location, from_level=case.escalation_level + 1)
    if assignee_id is None:
        assignee_id = case.assignee_id
    due = now + dt.timedelta(hours=sla_hours_of(case))
    changed = Case.objects.filter(
        pk=case.pk,
        escalation_level=case.escalation_level,
        status__in=ACTIVE_STATUSES,
        sla_due_at__lt=now,
    ).update(escalation_level=level, assignee_id=assignee_id, sla_due_at=due, escalated_at=now)
    if not changed:
        return False
    before = {"level": case.escalation_level, "assignee": case.assignee_id}
    case.escalation_level, case.assignee_id, case.sla_due_at, case.escalated_at = level, assignee_id, due, now
    emit(
        organization=case.organization_id,
        event_type=CASE_ESCALATED,
        payload={
            "case_id": case.pk,
            "escalation_level": level,
            "assignee_id": assignee_id,
            "location_id": case.location_id,
        },
        aggregate=case,
    )
    audit_log_write(
        organization=case.organization_id,
        actor=Actor.system(),
        action="case.escalate",
        instance=case,
        changes={"before": before, "after": {"level": level, "assignee": assignee_id}},
    )
    notify_on_commit(case, reason="escalated")
    return True


@transaction.atomic
def cases_escalate_overdue(*, organization, case_ids=None, now: dt.datetime | None = None) -> list[int]:
    """Escalate this tenant's overdue cases (or those of ``case_ids`` still overdue); returns ids moved.

    Rows another run holds are skipped (SKIP LOCKED), not waited for: that run is escalating them.
    """
    _check_tenant(organization)
    now = now or timezone.now()
    qs = (
        Case.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("location", "rule")
        .filter(status__in=ACTIVE_STATUSES, sla_due_at__lt=now, escalation_level__lt=TOP_LEVEL)
        .order_by("sla_due_at", "pk")
    )
    if case_ids is not None:
        qs = qs.filter(pk__in=list(case_ids))
    return [case.pk for case in qs if _escalate_one(case, now)]
