"""Event handlers of the alignment app (registered on import by AlignmentConfig.ready).

Each brings the rollup in line with the raw data of just the objects its event names
(alignment.rollups.apply: idempotent, a rescore/reversal/erasure applies only the difference),
then queues the touched keys for the alignment scores (alignment.score_queue), which are
recomputed by their own task after this transaction commits.

A shop visit publishes AuditPublished and a monitored call EvaluationPublished and AuditPublished;
either way the rows are keyed by the audit in RollupSource, so it is counted once.
"""

from __future__ import annotations

from alignment import rollups, score_queue
from alignment.models import RollupSource
from cem.events import handles

Kind = RollupSource.Kind


def _apply(event, kind: str, ids) -> None:
    touched = rollups.apply(event.organization_id, kind, ids)
    if touched:
        score_queue.enqueue(event.organization_id, touched)


@handles("ResponseReceived", name="alignment.rollup_response")
def rollup_response(event) -> None:
    _apply(event, Kind.RESPONSE, event.payload.get("response_ids") or [])


@handles("ResponseErased", name="alignment.rollup_response_erased")
def rollup_response_erased(event) -> None:
    """Erased or struck-out responses: whatever raw data is left decides what they still count."""
    _apply(event, Kind.RESPONSE, event.payload.get("response_ids") or [])


@handles("AuditPublished", name="alignment.rollup_audit")
def rollup_audit(event) -> None:
    _apply(event, Kind.AUDIT, [event.payload.get("audit_id")])


@handles("EvaluationPublished", name="alignment.rollup_evaluation")
def rollup_evaluation(event) -> None:
    _apply(event, Kind.AUDIT, [event.payload.get("audit_id")])


@handles("AuditRescored", name="alignment.rollup_rescore")
def rollup_rescore(event) -> None:
    """The audit's new scores replace what it added: only the difference is applied."""
    _apply(event, Kind.AUDIT, [event.payload.get("audit_id")])


@handles("InteractionRecorded", name="alignment.rollup_interactions")
def rollup_interactions(event) -> None:
    _apply(event, Kind.INTERACTION, event.payload.get("interaction_ids") or [])


@handles("LessonCompleted", name="alignment.rollup_completion")
def rollup_completion(event) -> None:
    _apply(event, Kind.COMPLETION, [event.payload.get("completion_id")])


@handles("PointsAwarded", name="alignment.rollup_award")
def rollup_award(event) -> None:
    _apply(event, Kind.AWARD, [event.payload.get("transaction_id")])


@handles("PointsReversed", name="alignment.rollup_award_reversed")
def rollup_award_reversed(event) -> None:
    """A reversed award counts for nothing any more: its rows are taken back out."""
    _apply(event, Kind.AWARD, [event.payload.get("reversed_transaction_id")])
