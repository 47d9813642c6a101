"""Event handlers of the incentives app (registered on import by IncentivesConfig.ready).

Each handler turns its event into the sources it is about (incentives.rewards.Facts) and lets
incentives.rewards award the matching rules. A handler runs once per event (HandlerDelivery),
and every award is keyed on (rule, source, person) in the ledger, so neither a redelivered event
nor a second event about the same source pays twice. Handlers read nothing when the organization
has no active rule for the trigger.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.utils import timezone

from cem.events import handles
from cem.models import Membership
from incentives import rewards
from incentives.models import RewardRule

T = RewardRule.Trigger
PROMOTER_MIN = Decimal(9)


def _decimal(value) -> Decimal | None:
    try:
        return None if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


def _n(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _org(event):
    return event.organization_id


# --- feedback ---------------------------------------------------------------------------------


def response_facts(response_ids: list[int]) -> tuple[list[rewards.Facts], list[rewards.Facts]]:
    """(promoter facts, scored-answer facts) of the responses, from their answers in one query."""
    from feedback.models import Answer, QuestionType

    promoters: dict[int, rewards.Facts] = {}
    standards: dict[int, set[int]] = {}
    scored: list[rewards.Facts] = []
    rows = Answer.objects.filter(response_id__in=response_ids).values(
        "response_id",
        "question_type",
        "number",
        "standard_id",
        "channel_id",
        "touchpoint_id",
        "category",
        "location_id",
        "employee_id",
        "submitted_at",
    )
    for row in rows:
        rid = row["response_id"]
        if row["standard_id"]:
            standards.setdefault(rid, set()).add(row["standard_id"])
        if row["number"] is None:
            continue

        def facts(label, score, standard_ids, row=row):
            return rewards.Facts(
                kind="response",
                pk=row["response_id"],
                when=row["submitted_at"],
                label=label,
                score=score,
                standard_ids=standard_ids,
                channel_id=row["channel_id"],
                touchpoint_id=row["touchpoint_id"],
                category=row["category"] or "",
                location_id=row["location_id"],
                employee_id=row["employee_id"],
            )

        if row["question_type"] == QuestionType.NPS and row["number"] >= PROMOTER_MIN and row["employee_id"]:
            promoters[rid] = facts(
                f"a customer gave {_n(row['number'])}/10 and named you", row["number"], set()
            )
        scored.append(
            facts(
                f"a customer answered {_n(row['number'])}",
                row["number"],
                {row["standard_id"]} if row["standard_id"] else set(),
            )
        )
    for rid, f in promoters.items():
        f.standard_ids = standards.get(rid, set())
    return list(promoters.values()), scored


@handles("ResponseReceived", name="incentives.rewards_after_response")
def rewards_after_response(event) -> None:
    promoter_rules = rewards.rules_for(T.PROMOTER_RESPONSE)
    score_rules = rewards.rules_for(T.RESPONSE_SCORE)
    if not promoter_rules and not score_rules:
        return
    promoters, scored = response_facts(event.payload.get("response_ids") or [])
    rewards.apply(org=_org(event), trigger=T.PROMOTER_RESPONSE, facts_list=promoters, rules=promoter_rules)
    rewards.apply(org=_org(event), trigger=T.RESPONSE_SCORE, facts_list=scored, rules=score_rules)


@handles("ResponseErased", name="incentives.reverse_after_response_erased")
def reverse_after_response_erased(event) -> None:
    """A response erased (GDPR) or struck out as fraud: every award it earned is reversed.

    The award's event id is derived from the response's id alone (rewards.source_uuid), so this
    needs nothing of the response itself, which is usually gone by the time the event arrives.
    """
    reason = (event.payload.get("reason") or "erased").strip()
    for rid in event.payload.get("response_ids") or []:
        rewards.award_reverse_for_source(
            org=_org(event), kind="response", pk=rid, note=f"Response #{rid} {reason}"
        )


@handles("CaseResolved", name="incentives.rewards_after_case")
def rewards_after_case(event) -> None:
    payload = event.payload
    if not payload.get("within_sla"):
        return
    rules = rewards.rules_for(T.CASE_RESOLVED_IN_SLA)
    if not rules:
        return
    from feedback.models import Case, Response

    case = (
        Case.objects.filter(pk=payload.get("case_id"))
        .values("pk", "response_id", "assignee_id", "location_id", "category", "resolved_at")
        .first()
    )
    if case is None:
        return
    response = (
        Response.objects.filter(pk=case["response_id"]).values("channel_id", "touchpoint_id").first() or {}
    )
    assignee = None
    if case["assignee_id"]:
        assignee = (
            Membership.objects.filter(user_id=case["assignee_id"], employee__isnull=False, is_active=True)
            .values_list("employee_id", flat=True)
            .first()
        )
    facts = rewards.Facts(
        kind="case",
        pk=case["pk"],
        when=case["resolved_at"] or timezone.now(),
        label=f"case #{case['pk']} resolved within its SLA",
        channel_id=response.get("channel_id"),
        touchpoint_id=response.get("touchpoint_id"),
        category=case["category"] or "",
        location_id=case["location_id"],
        employee_id=assignee,
    )
    rewards.apply(org=_org(event), trigger=T.CASE_RESOLVED_IN_SLA, facts_list=[facts], rules=rules)


# --- audits -----------------------------------------------------------------------------------


def audit_facts(audit_id, *, standard_ids, score=None) -> tuple[rewards.Facts | None, bool]:
    """(facts, is_evaluation) of a published audit, read by id (``score`` overrides the stored one)."""
    from audits.models import Audit
    from cem.models import Interaction

    audit = (
        Audit.objects.filter(pk=audit_id)
        .only("pk", "location_id", "employee_id", "score", "published_at", "interaction_id", "assignment_id")
        .first()
    )
    if audit is None or audit.published_at is None:
        return None, False
    is_evaluation = audit.assignment_id is None and audit.interaction_id is not None
    interaction = {}
    if audit.interaction_id:
        interaction = (
            Interaction.objects.filter(pk=audit.interaction_id)
            .values("channel_id", "touchpoint_id", "category")
            .first()
            or {}
        )
    value = score if score is not None else audit.score
    what = "evaluation" if is_evaluation else "audit"
    facts = rewards.Facts(
        kind="audit",
        pk=audit.pk,
        when=audit.published_at,
        label=f"{what} #{audit.pk} scored {value}",
        score=value,
        standard_ids=set(standard_ids or []),
        channel_id=interaction.get("channel_id"),
        touchpoint_id=interaction.get("touchpoint_id"),
        category=interaction.get("category") or "",
        location_id=audit.location_id,
        employee_id=audit.employee_id,
    )
    return facts, is_evaluation


def _audit_rules(is_evaluation: bool) -> tuple[str, list[RewardRule]]:
    trigger = T.EVALUATION_SCORE if is_evaluation else T.AUDIT_SCORE
    return trigger, rewards.rules_for(trigger)


@handles("AuditPublished", name="incentives.rewards_after_audit")
def rewards_after_audit(event) -> None:
    rules = rewards.rules_for(T.AUDIT_SCORE)
    if rules:
        facts, _ = audit_facts(event.payload.get("audit_id"), standard_ids=event.payload.get("standard_ids"))
        if facts is not None:
            rewards.apply(org=_org(event), trigger=T.AUDIT_SCORE, facts_list=[facts], rules=rules)


@handles("EvaluationPublished", name="incentives.rewards_after_evaluation")
def rewards_after_evaluation(event) -> None:
    rules = rewards.rules_for(T.EVALUATION_SCORE)
    if rules:
        facts, _ = audit_facts(event.payload.get("audit_id"), standard_ids=event.payload.get("standard_ids"))
        if facts is not None:
            rewards.apply(org=_org(event), trigger=T.EVALUATION_SCORE, facts_list=[facts], rules=rules)


@handles("AuditRescored", name="incentives.rewards_after_rescore")
def rewards_after_rescore(event) -> None:
    """Below a rule's minimum now: reverse its awards for the audit; at or above: award what is missing."""
    payload = event.payload
    new = _decimal(payload.get("new_score"))
    facts, is_evaluation = audit_facts(
        payload.get("audit_id"), standard_ids=payload.get("standard_ids"), score=new
    )
    if facts is None:
        return
    trigger, rules = _audit_rules(is_evaluation)
    if not rules:
        return
    below = [r for r in rules if r.min_score is not None and (new is None or new < r.min_score)]
    if below:
        rewards.award_reverse_for_source(
            org=_org(event),
            kind="audit",
            pk=facts.pk,
            rules=below,
            note=f"Audit #{facts.pk} rescored from {payload.get('old_score')} to {payload.get('new_score')} "
            f"after dispute #{payload.get('dispute_id')}",
        )
    rewards.apply(org=_org(event), trigger=trigger, facts_list=[facts], rules=rules)


# --- learning ---------------------------------------------------------------------------------


def _lesson_standards(lesson_id, rules) -> set[int]:
    if not lesson_id or not any(r.standard_id for r in rules):
        return set()
    from learning.models import LessonStandard

    return set(LessonStandard.objects.filter(lesson_id=lesson_id).values_list("standard_id", flat=True))


@handles("LessonCompleted", name="incentives.rewards_after_lesson")
def rewards_after_lesson(event) -> None:
    payload = event.payload
    if not payload.get("employee_id"):
        return  # shoppers and other learners without an employee record have no wallet
    rules = rewards.rules_for(T.LESSON_COMPLETED)
    if not rules:
        return
    facts = rewards.Facts(
        kind="lesson_completion",
        pk=payload.get("completion_id"),
        when=event.created_at,
        label="lesson completed",
        standard_ids=_lesson_standards(payload.get("lesson_id"), rules),
        location_id=payload.get("location_id"),
        employee_id=payload.get("employee_id"),
    )
    rewards.apply(org=_org(event), trigger=T.LESSON_COMPLETED, facts_list=[facts], rules=rules)


@handles("QuizPassed", name="incentives.rewards_after_quiz")
def rewards_after_quiz(event) -> None:
    payload = event.payload
    if not payload.get("employee_id"):
        return
    triggers = [T.QUIZ_PASSED] + ([T.QUIZ_PASSED_FIRST_TRY] if payload.get("first_try") else [])
    for trigger in triggers:
        rules = rewards.rules_for(trigger)
        if not rules:
            continue
        facts = rewards.Facts(
            kind="quiz_attempt",
            pk=payload.get("attempt_id"),
            when=event.created_at,
            label="quiz passed at the first try" if trigger == T.QUIZ_PASSED_FIRST_TRY else "quiz passed",
            score=_decimal(payload.get("score")),
            standard_ids=_lesson_standards(payload.get("lesson_id"), rules),
            location_id=payload.get("location_id"),
            employee_id=payload.get("employee_id"),
        )
        rewards.apply(org=_org(event), trigger=trigger, facts_list=[facts], rules=rules)


# --- alignment ----------------------------------------------------------------------------------


@handles("AlignmentMonthScored", name="incentives.rewards_after_alignment_month")
def rewards_after_alignment_month(event) -> None:
    """A month's store alignment scores (alignment/score_months.py): one source per store and month,
    dated on the month's last day (the rule's dates are checked against it). Only rankable scores
    count: a score resting on fewer data points than the organization's minimum sample is too
    uncertain to pay out on."""
    rules = rewards.rules_for(T.ALIGNMENT_SCORE)
    if not rules:
        return
    payload = event.payload
    month = payload.get("period_start", "")[:7]
    last_day = dt.date.fromisoformat(payload["period_end"])
    when = dt.datetime.combine(last_day, dt.time(12), tzinfo=rewards.org_zone(_org(event)))
    facts_list = [
        rewards.Facts(
            kind="alignment",
            pk=f"{row['location_id']}:{month}",
            when=when,
            label=f"store alignment score {row['value']} in {month}",
            score=_decimal(row.get("value")),
            location_id=row["location_id"],
            region_id=row.get("region_id"),
        )
        for row in payload.get("scores") or []
        if row.get("rankable") and row.get("value") is not None and row.get("location_id")
    ]
    rewards.apply(org=_org(event), trigger=T.ALIGNMENT_SCORE, facts_list=facts_list, rules=rules)
