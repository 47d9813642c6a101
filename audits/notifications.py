"""Telling people about published audits: the store's managers get an email the moment one publishes.

Runs as a handler of ``AuditPublished`` (shop visits; evaluations publish ``EvaluationPublished``
and reach agents in their queue). The email goes out after the handler's transaction commits, so
a handler retried after a failure never sends it twice.
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from audits.models import Audit
from cem.events import handles
from cem.models import Membership, Role


@handles("AuditPublished", name="audits.notify_store_managers")
def notify_store_managers(event) -> None:
    audit = (
        Audit.objects.select_related("location", "version__form").filter(pk=event.payload["audit_id"]).first()
    )
    if audit is None or audit.location_id is None:
        return
    recipients = sorted(
        {
            email
            for email in Membership.objects.filter(
                role=Role.STORE_MANAGER, location_id=audit.location_id, is_active=True
            ).values_list("user__email", flat=True)
            if email
        }
    )
    if not recipients:
        return
    context = {
        "audit": audit,
        "url": settings.SITE_URL.rstrip("/") + reverse("audit_result", args=[audit.pk]),
    }
    subject = f"New audit result for {audit.location.name}: {audit.score if audit.score is not None else '—'}"
    body = render_to_string("audits/email/audit_published.txt", context)
    transaction.on_commit(lambda: send_mail(subject, body, None, recipients))
