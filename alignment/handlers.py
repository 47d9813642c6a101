"""Event handlers of the alignment app (registered on import by AlignmentConfig.ready).

Each adds only what its event touched to the rollup (alignment.rollups). A shop visit publishes
AuditPublished and a monitored call EvaluationPublished; either way the points are keyed by the
audit in RollupApplied, so an audit seen under both names is counted once, and a redelivered
event adds nothing.
"""

from __future__ import annotations

from alignment import rollups
from cem.events import handles


@handles("ResponseReceived", name="alignment.rollup_response")
def rollup_response(event) -> None:
    rollups.apply_responses(event.organization_id, event.payload.get("response_ids") or [])


@handles("AuditPublished", name="alignment.rollup_audit")
def rollup_audit(event) -> None:
    if event.payload.get("audit_id"):
        rollups.apply_audit(event.organization_id, event.payload["audit_id"])


@handles("EvaluationPublished", name="alignment.rollup_evaluation")
def rollup_evaluation(event) -> None:
    if event.payload.get("audit_id"):
        rollups.apply_audit(event.organization_id, event.payload["audit_id"])


@handles("AuditRescored", name="alignment.rollup_rescore")
def rollup_rescore(event) -> None:
    """The audit's new StandardScores replace what it added: only the difference is applied."""
    if event.payload.get("audit_id"):
        rollups.apply_audit(event.organization_id, event.payload["audit_id"])
