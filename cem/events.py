"""The event spine: services emit, the outbox stores, Celery delivers to registered handlers.

    from cem.events import emit, handles

    # inside the service's atomic block:
    emit(organization=org, event_type="InteractionRecorded", payload={...})

    @handles("InteractionRecorded")
    def feedback_invite_after_interaction(event): ...

A handler runs inside a transaction together with the HandlerDelivery row that marks it done,
so a handler that raises leaves no trace and is retried, and one that succeeded is never run
again for the same event, however often the task is redelivered.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

logger = logging.getLogger(__name__)

_handlers: dict[str, dict[str, Callable]] = defaultdict(dict)

EVENT_TYPES = {
    "InteractionRecorded": "Interactions were ingested (payload: interaction_ids).",
    "ResponseReceived": "Survey responses were stored (payload: response_ids, survey_id, location_id, "
    "employee_id, standard_ids).",
    "SurveyPublished": "A new survey version was created (payload: survey_id, version_id, number, "
    "question_keys).",
    "ResponseErased": "Survey responses were erased (GDPR) or struck out as fraud; what they earned is "
    "reversed (payload: response_ids, reason).",
    "CaseOpened": "An alert rule opened a case (payload: case_id, response_id, rule_id, location_id, "
    "employee_id, priority, assignee_id).",
    "CaseEscalated": "A case passed its SLA and moved up a level (payload: case_id, escalation_level, "
    "assignee_id, location_id).",
    "CaseResolved": "A case was resolved (payload: case_id, response_id, rule_id, location_id, employee_id, "
    "escalation_level, …).",
    "AuditPublished": "An audit was scored and published (payload: audit_id, location_id, employee_id, "
    "standard_ids, score as a decimal string).",
    "AuditRescored": "A published audit's score changed after a dispute (payload: audit_id, dispute_id, "
    "score_change_id, location_id, employee_id, standard_ids, old_score, new_score).",
    "EvaluationPublished": "A call/chat monitoring evaluation was published to its agent (payload: audit_id, "
    "employee_id, location_id, standard_ids, score); the same audit also raises AuditPublished.",
    # Shopper workforce and mystery-shopping jobs (audits/workforce.py, audits/jobs.py).
    "ShopperApplied": "Someone applied to shop for the organization (payload: shopper_id).",
    "ShopperApproved": "An application was approved and linked to a login (payload: shopper_id, user_id).",
    "AssignmentCreated": "A job was posted (payload: assignment_id, program_id, location_id).",
    "AssignmentTaken": "A shopper took a job (payload: assignment_id, shopper_id).",
    "AssignmentSubmitted": "A shopper submitted a visit report (payload: assignment_id, audit_id, "
    "location_id).",
    "AssignmentReturned": "A reviewer returned a visit for revision (payload: assignment_id, "
    "revision_due_at).",
    "AssignmentApproved": "A reviewer approved a visit (payload: assignment_id, audit_id, shopper_id).",
    "AssignmentRejected": "A reviewer rejected a visit (payload: assignment_id, shopper_id).",
    "AssignmentReleased": "A taken job's window closed unsubmitted; it is open again (payload: "
    "assignment_id, shopper_id).",
    # Learning (learning/assignments.py, learning/progress.py, learning/quizzes.py).
    "LessonAssigned": "A lesson or path was assigned (payload: assignment_id, lesson_id, path_id, "
    "employee_id, user_id, location_id, source, rule_id, due_at).",
    "AssignmentWithdrawn": "An unstarted gap-triggered assignment was withdrawn because the gap closed "
    "(payload: assignment_id, rule_id, note).",
    "LessonCompleted": "A learner completed a lesson (payload: completion_id, assignment_id, lesson_id, "
    "version_id, employee_id, user_id, location_id, on_time, source).",
    "PathCompleted": "A learner completed every lesson of a path (payload: certificate_id, path_id, "
    "employee_id, user_id, location_id).",
    "QuizPassed": "A quiz attempt passed (payload: attempt_id, quiz_id, lesson_id, employee_id, user_id, "
    "location_id, score, attempt_number, first_try).",
    "QuizFailed": "A quiz attempt failed (payload: attempt_id, quiz_id, lesson_id, employee_id, user_id, "
    "location_id, score, attempt_number, attempts_left).",
    # Incentives (incentives/ledger.py, rewards.py, redemptions.py, bonus.py).
    "PointsAwarded": "Points reached a wallet (payload: transaction_id, employee_id, location_id, points, "
    "kind award|recognition, rule_id, source_event_id).",
    # Alignment (alignment/scores.py).
    "AlignmentThresholdCrossed": "An overall alignment score crossed the organization's threshold (payload: "
    "score_id, scope, scope_id, location_id, region_id, period, period_start, value, previous, threshold, "
    "direction below|above, rankable).",
    "AlignmentMonthScored": "A month ended: every store's overall alignment score for it, published once "
    "(payload: period, period_start, period_end, scores [score_id, location_id, region_id, value, n, "
    "rankable]).",
    # Business data (alignment/business.py).
    "BusinessMetricsImported": "Business metrics were created or changed by an import (payload: metric_ids, "
    "location_ids, kinds, first_period_start, last_period_start).",
    "CustomerTransactionsImported": "CRM transactions were created or changed by an import (payload: "
    "transaction_ids, customer_ids, customers_created).",
    "CustomerSegmentsAssigned": "A rule segment was applied and customers changed segment (payload: segment, "
    "members, added, removed, changed, segment_ids, skipped_segments).",
    "PointsReversed": "An award was reversed (payload: transaction_id, reversed_transaction_id, employee_id, "
    "points, debt, written_off).",
    "PointsRedeemed": "A redemption was placed (payload: redemption_id, employee_id, item_id, points, "
    "status).",
    "RedemptionDecided": "A redemption was fulfilled, declined or failed (payload: redemption_id, status).",
    "PointsExpired": "Points expired from a wallet (payload: transaction_id, employee_id, points).",
    "BonusPeriodClosed": "A bonus period was closed and payouts calculated (payload: period_id).",
}


@dataclass(frozen=True)
class Handler:
    name: str
    func: Callable


def handles(event_type: str, *, name: str | None = None):
    """Register a function as a handler of one event type; its name is its idempotency key."""

    def register(func: Callable) -> Callable:
        handler_name = name or f"{func.__module__}.{func.__qualname__}"
        _handlers[event_type][handler_name] = func
        return func

    return register


def handlers_for(event_type: str) -> dict[str, Callable]:
    return dict(_handlers.get(event_type, {}))


def emit(*, organization, event_type: str, payload: dict, aggregate=None):
    """Write an event to the outbox in the caller's transaction; deliver it once that commits."""
    from cem.models import OutboxEvent

    event = OutboxEvent.objects.create(
        organization_id=getattr(organization, "pk", organization),
        event_type=event_type,
        aggregate_type=type(aggregate).__name__ if aggregate is not None else "",
        aggregate_id=str(aggregate.pk) if aggregate is not None else "",
        payload=payload,
    )
    deliver_on_commit(event.organization_id, event.pk)
    return event


def deliver_on_commit(tenant_id: int, event_id: int) -> None:
    """Hand an outbox row to the workers once the transaction that wrote it commits.

    For writers that insert the outbox row in their own statement instead of through emit().
    """

    def kick():
        from django.conf import settings

        from cem.tasks import events_deliver, events_deliver_pending
        from cem.throttle import set_once

        if settings.CELERY_TASK_ALWAYS_EAGER:
            # Tests and one-process runs: deliver this very event here and now, in order.
            try:
                events_deliver.delay(tenant_id, event_id)
            except (KombuOperationalError, ConnectionError, OSError):
                logger.warning("broker unavailable; event %s left for the sweep", event_id)
            return
        try:
            if set_once(DOORBELL_KEY, ttl=DOORBELL_TTL):
                # One task drains every event committed until it starts; commits that find the
                # doorbell already rung ride along. A Celery message per event cost a fifth of a
                # single-response POST (bench/profile_post.py); SET NX costs one round trip.
                events_deliver_pending.delay()
        except Exception as exc:
            # The write has committed: whatever fails here (Redis or the broker down, a timeout)
            # must not turn it into an error for the caller. The event stays undispatched in the
            # outbox, where the next doorbell's drain or beat's events_sweep delivers it.
            logger.warning("broker unavailable (%r); event %s left for the sweep", exc, event_id)

    transaction.on_commit(kick)


# Rung (SET NX) after a commit that wrote outbox rows; cleared by events_deliver_pending before it
# reads them, so a commit after that rings again. The TTL bounds the wait if that task is lost
# (the sweep would deliver anyway).
DOORBELL_KEY = "outbox:doorbell"
DOORBELL_TTL = 10
