"""What audits adds to an employee's erasure (cem.privacy): their name out of evaluators' comments,
answers and disputes, by the erasure's sweep after the request. Audits, scores and score changes
stay attributed to the employee row."""

from __future__ import annotations

from audits.models import AuditAnswer, Dispute, ScoreChange
from cem.privacy import EMPLOYEE, Contributor, SweepTarget, register


class AuditsPrivacy(Contributor):
    name = "audits"

    def sweep(self, subject_type):
        if subject_type != EMPLOYEE:
            return []
        return [
            SweepTarget("audit_answers_redacted", AuditAnswer.objects.all(), ("text", "comment")),
            SweepTarget("disputes_redacted", Dispute.objects.all(), ("reason", "resolution")),
            SweepTarget("score_changes_redacted", ScoreChange.objects.all(), ("reason",)),
        ]


register(AuditsPrivacy())
