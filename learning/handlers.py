"""Event handlers of the learning app (registered on import by LearningConfig.ready).

New feedback, audit and monitoring data may reveal a gap: each handler passes only what its
event touched (the standards and the employee / location the data is about) to
``learning.gaps``, never a rescan. Each runs once per event (cem.outbox's HandlerDelivery), so a
redelivered event assigns nothing twice.
"""

from __future__ import annotations

from cem.events import handles
from feedback import selectors as feedback_selectors
from learning import gaps


def _audit_touched(payload: dict) -> list[tuple]:
    return [
        (standard_id, payload.get("location_id"), payload.get("employee_id"))
        for standard_id in payload.get("standard_ids") or []
    ]


@handles("ResponseReceived", name="learning.gaps_after_response")
def gaps_after_response(event) -> None:
    payload = event.payload
    rules = gaps.rules_for(payload.get("standard_ids") or [], sources=gaps.FEEDBACK_SOURCES)
    if not rules:
        return
    # A bulk event may span stores and people: the answers of its own responses say which.
    touched = feedback_selectors.standard_subjects_of_responses(
        response_ids=payload.get("response_ids") or [], standard_ids={r.standard_id for r in rules}
    )
    gaps.evaluate_touched(touched=touched, sources=gaps.FEEDBACK_SOURCES, event_pk=event.pk)


@handles("AuditPublished", name="learning.gaps_after_audit")
def gaps_after_audit(event) -> None:
    gaps.evaluate_touched(
        touched=_audit_touched(event.payload), sources=gaps.AUDIT_SOURCES, event_pk=event.pk
    )


@handles("EvaluationPublished", name="learning.gaps_after_evaluation")
def gaps_after_evaluation(event) -> None:
    gaps.evaluate_touched(
        touched=_audit_touched(event.payload), sources=gaps.AUDIT_SOURCES, event_pk=event.pk
    )


@handles("AuditRescored", name="learning.gaps_after_rescore")
def gaps_after_rescore(event) -> None:
    """A dispute changed an audit: withdraw unstarted assignments whose gap closed, then look for
    gaps the new score may have opened."""
    payload = event.payload
    gaps.withdraw_closed_gaps(
        standard_ids=payload.get("standard_ids") or [],
        location_id=payload.get("location_id"),
        employee_id=payload.get("employee_id"),
    )
    gaps.evaluate_touched(touched=_audit_touched(payload), sources=gaps.AUDIT_SOURCES, event_pk=event.pk)
