"""What feedback adds to privacy requests (cem.privacy): comments, cases, invitations, hashes.

- Export: a customer's answers and the cases (and their notes) about their responses, which no
  foreign key to the customer reaches.
- Erasure: a customer's comments and the notes on their cases are redacted, their cases lose the
  contact details, scheduled invitations are withdrawn; with ``delete_responses`` the responses
  go and ``ResponseErased`` takes them out of the rollups and reverses what they earned. An
  employee's name is redacted from every comment and case note of the organization, by the
  erasure's sweep after the request (``sweep``).
- Consent withdrawn: invitations still to be sent on that channel are suppressed, reminders
  called off, and the case contact details for the channel cleared.
- Retention: comment text, invitations, closed cases' contact details and the abuse-control
  hashes older than the policy allows.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q

from cem.events import emit
from cem.models.privacy import ConsentChannel
from cem.privacy import EMPLOYEE, Contributor, SweepTarget, months_before, register
from cem.tenancy import current_tenant_id
from feedback.models import Answer, Case, CaseNote, DeliveryChannel, Invitation, QuestionType, Response

# The reason written on the reversals' ledger notes, which are append-only: never the requester's
# words, which may name the person.
ERASED_REASON = "erased at the data subject's request"
_CHANNELS = {
    ConsentChannel.ALL: list(DeliveryChannel.values),
    ConsentChannel.EMAIL: [DeliveryChannel.EMAIL],
    ConsentChannel.SMS: [DeliveryChannel.SMS, DeliveryChannel.IVR],
}
_CONTACT_KEYS = {ConsentChannel.EMAIL: ("email",), ConsentChannel.SMS: ("phone",)}
DELETE_BATCH = 2000


def _customer_responses(customer_id: int):
    return Response.objects.filter(customer_id=customer_id).values("pk")


class FeedbackPrivacy(Contributor):
    name = "feedback"

    def export(self, subject):
        if subject.type == EMPLOYEE:
            return []
        responses = _customer_responses(subject.pk)
        return [
            (Answer, Answer.objects.filter(response_id__in=responses)),
            (Case, Case.objects.filter(response_id__in=responses)),
            (CaseNote, CaseNote.objects.filter(case__response_id__in=responses)),
        ]

    def erase(self, subject, *, redactor, reason, options):
        if subject.type == EMPLOYEE:
            return {}  # no row of theirs here; what names them is swept (below)
        response_ids = list(_customer_responses(subject.pk).values_list("pk", flat=True))
        counts = {
            "comments_redacted": redactor.rewrite(
                Answer.objects.filter(response_id__in=response_ids, question_type=QuestionType.TEXT),
                text_fields=["text"],
            ),
            "case_notes_redacted": redactor.rewrite(
                CaseNote.objects.filter(case__response_id__in=response_ids), text_fields=["text"]
            ),
            "case_contacts_cleared": Case.objects.filter(response_id__in=response_ids)
            .exclude(customer_contact={})
            .update(customer_contact={}),
            "invitations_withdrawn": Invitation.objects.filter(
                customer_id=subject.pk, status=Invitation.Status.SCHEDULED
            ).update(status=Invitation.Status.SUPPRESSED, suppressed_reason="customer erased"),
        }
        if options.get("delete_responses") and response_ids:
            counts.update(self._delete_responses(response_ids))
        return counts

    def sweep(self, subject_type):
        if subject_type != EMPLOYEE:
            return []
        return [
            SweepTarget(
                "comments_redacted", Answer.objects.filter(question_type=QuestionType.TEXT), ("text",)
            ),
            SweepTarget("case_notes_redacted", CaseNote.objects.all(), ("text",)),
        ]

    def _delete_responses(self, response_ids: list[int]) -> dict:
        cases = Case.objects.filter(response_id__in=response_ids)
        counts = {
            "case_notes_deleted": CaseNote.objects.filter(case__in=cases).delete()[0],
            "cases_deleted": cases.delete()[0],
            "answers_deleted": Answer.objects.filter(response_id__in=response_ids).delete()[0],
            "responses_deleted": Response.objects.filter(pk__in=response_ids).delete()[0],
        }
        # The rollups drop what the responses added and their awards are reversed (their handlers).
        emit(
            organization=current_tenant_id(),
            event_type="ResponseErased",
            payload={"response_ids": response_ids, "reason": ERASED_REASON},
        )
        return counts

    def consent_withdrawn(self, customer, channel, reason):
        channels = _CHANNELS[channel]
        mine = Invitation.objects.filter(customer=customer, delivery_channel__in=channels)
        counts = {
            "invitations_suppressed": mine.filter(status=Invitation.Status.SCHEDULED).update(
                status=Invitation.Status.SUPPRESSED, suppressed_reason=reason[:200]
            ),
            "reminders_cancelled": mine.filter(
                status=Invitation.Status.SENT, reminded_at__isnull=True, reminder_due_at__isnull=False
            ).update(reminder_due_at=None),
        }
        cases = Case.objects.filter(response_id__in=_customer_responses(customer.pk)).exclude(
            customer_contact={}
        )
        cleared = 0
        for case in cases.only("pk", "customer_contact"):
            keys = _CONTACT_KEYS.get(channel)
            contact = (
                {} if keys is None else {k: v for k, v in case.customer_contact.items() if k not in keys}
            )
            if set(contact) <= {"locale"}:
                contact = {}
            if contact != case.customer_contact:
                Case.objects.filter(pk=case.pk).update(customer_contact=contact)
                cleared += 1
        counts["case_contacts_cleared"] = cleared
        return counts

    def retention(self, policy, now: dt.datetime):
        counts = {}
        if policy.comments_months:
            cutoff = months_before(now, policy.comments_months)
            counts["comments_deleted"] = (
                Answer.objects.filter(question_type=QuestionType.TEXT, submitted_at__lt=cutoff)
                .exclude(text="")
                .update(text="")
            )
        if policy.invitations_months:
            cutoff = months_before(now, policy.invitations_months)
            old = Invitation.objects.filter(created_at__lt=cutoff)
            deleted = 0
            while ids := list(old.order_by("pk").values_list("pk", flat=True)[:DELETE_BATCH]):
                # The collector unlinks the responses that answered them (they stay).
                deleted += Invitation.objects.filter(pk__in=ids).delete()[1].get(Invitation._meta.label, 0)
            counts["invitations_deleted"] = deleted
        if policy.case_contacts_months:
            cutoff = months_before(now, policy.case_contacts_months)
            counts["case_contacts_cleared"] = (
                Case.objects.filter(
                    created_at__lt=cutoff, status__in=[Case.Status.RESOLVED, Case.Status.CLOSED]
                )
                .exclude(customer_contact={})
                .update(customer_contact={})
            )
        if policy.abuse_hashes_days:
            cutoff = now - dt.timedelta(days=policy.abuse_hashes_days)
            counts["abuse_hashes_cleared"] = (
                Response.objects.filter(submitted_at__lt=cutoff)
                .filter(~Q(ip_hash="") | ~Q(device_hash=""))
                .update(ip_hash="", device_hash="")
            )
        return counts


register(FeedbackPrivacy())
