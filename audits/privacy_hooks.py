"""What audits adds to an employee's erasure (cem.privacy): their name out of evaluators' comments,
answers and disputes. Audits, scores and score changes stay attributed to the employee row."""

from __future__ import annotations

from audits.models import AuditAnswer, Dispute, ScoreChange
from cem.privacy import EMPLOYEE, Contributor, register


class AuditsPrivacy(Contributor):
    name = "audits"

    def erase(self, subject, *, redactor, reason, options):
        if subject.type != EMPLOYEE:
            return {}
        return {
            "audit_answers_redacted": redactor.rewrite(
                AuditAnswer.objects.all(), text_fields=["text", "comment"]
            ),
            "disputes_redacted": redactor.rewrite(
                Dispute.objects.all(), text_fields=["reason", "resolution"]
            ),
            "score_changes_redacted": redactor.rewrite(ScoreChange.objects.all(), text_fields=["reason"]),
        }


register(AuditsPrivacy())
