"""What learning adds to an employee's erasure (cem.privacy): the name printed on their path
certificates and the actor (name, mailbox) inside their xAPI statements. Assignments,
completions and quiz scores stay attributed to the employee row."""

from __future__ import annotations

from cem.privacy import EMPLOYEE, Contributor, register
from learning.models import PathCertificate, Statement


class LearningPrivacy(Contributor):
    name = "learning"

    def erase(self, subject, *, redactor, reason, options):
        if subject.type != EMPLOYEE:
            return {}
        return {
            "certificates_anonymised": PathCertificate.objects.filter(employee_id=subject.pk).update(
                learner_name=f"Erased employee #{subject.pk}"
            ),
            "statements_redacted": redactor.rewrite(
                Statement.objects.filter(employee_id=subject.pk), json_fields=["body"]
            ),
        }


register(LearningPrivacy())
