"""Consent is recorded with its time, channel and source wherever it is given or withdrawn, and an
opted-out customer is never contacted: email, SMS and IVR invitations, their reminders, and the
case's "customer contacted" step."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import mail
from django.utils import timezone

from cem import models as m
from cem.models.privacy import ConsentRecord
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import invitations as inv
from feedback import models as fm
from feedback import senders
from feedback.tokens import hash_token
from feedback.unsubscribe import unsubscribe_token

pytestmark = pytest.mark.django_db
CHANNELS = ("email", "sms", "ivr")


def _records(pw, **filters) -> list[ConsentRecord]:
    with tenant_context(pw.org):
        return list(ConsentRecord.objects.filter(customer=pw.customer, **filters).order_by("pk"))


def _sent() -> int:
    return len(mail.outbox) + len(senders.sms_outbox) + len(senders.ivr_outbox)


def _invitation(pw, channel, *, sent=False) -> fm.Invitation:
    now = timezone.now()
    with tenant_context(pw.org):
        version = fm.SurveyVersion.objects.filter(survey=pw.survey).first()
        invitation = fm.Invitation.objects.create(
            organization=pw.org,
            survey=pw.survey,
            version=version,
            customer=pw.customer,
            delivery_channel=channel,
            token_hash=f"t-{channel}-{sent}-{now.timestamp()}",
            send_at=now - dt.timedelta(minutes=1),
            expires_at=now + dt.timedelta(days=5),
        )
        if sent:
            raw = inv.invitation_token(invitation)
            fm.Invitation.objects.filter(pk=invitation.pk).update(
                status=fm.Invitation.Status.SENT,
                sent_at=now - dt.timedelta(days=3),
                token_hash=hash_token(raw),
                reminder_due_at=now - dt.timedelta(minutes=1),
            )
        invitation.refresh_from_db()
    return invitation


def test_consent_given_at_creation_is_recorded_with_time_and_source(pw):
    records = _records(pw)
    assert [(r.channel, r.granted, r.source, r.detail) for r in records] == [
        ("email", True, "import", "loyalty sign-up form"),
        ("sms", True, "import", "loyalty sign-up form"),
    ]
    assert all(r.recorded_at for r in records)


def test_consent_changed_through_the_customers_api_is_recorded(pw, api):
    client = api(key=pw.world.a.api_key)
    resp = client.patch(
        f"/api/v1/customers/{pw.customer.pk}/",
        {"consent_email": False, "consent_detail": "customer called the hotline"},
        format="json",
    )
    assert resp.status_code == 200 and "consent_detail" not in resp.json()
    [record] = _records(pw, granted=False)
    assert (record.channel, record.source, record.detail) == ("email", "api", "customer called the hotline")
    assert record.actor_api_key_id == pw.world.a.api_key_obj.pk
    resp = client.post(
        "/api/v1/customers/",
        {"external_id": "acme-new", "email": "new@example.com", "consent_email": True},
        format="json",
    )
    assert resp.status_code == 201
    with tenant_context(pw.org):
        new = ConsentRecord.objects.get(customer__external_id="acme-new")
    assert (new.channel, new.granted, new.source) == ("email", True, "api")
    # The case about them no longer carries the email address; the phone stays (SMS consent stands).
    with tenant_context(pw.org):
        assert fm.Case.objects.get(pk=pw.case.pk).customer_contact == {"phone": "+15550199321"}


def test_consent_api_records_and_applies_and_is_tenant_scoped(pw, api):
    client = api(pw.admin)
    resp = client.post(
        "/api/v1/privacy/consents/",
        {"customer": pw.customer.pk, "channel": "all", "granted": False, "detail": "asked in store"},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["source"] == "api" and body["recorded_at"] and body["actor_user"] == pw.admin.pk
    with tenant_context(pw.org):
        pw.customer.refresh_from_db()
        assert pw.customer.opted_out_at is not None
        assert m.AuditLog.objects.filter(action="customer.consent", object_id=str(pw.customer.pk)).exists()
    listed = client.get("/api/v1/privacy/consents/", {"customer": pw.customer.pk}).json()["results"]
    assert [r["channel"] for r in listed] == ["all", "sms", "email"]
    resp = client.post(
        "/api/v1/privacy/consents/", {"customer": pw.customer.pk, "channel": "fax"}, format="json"
    )
    assert resp.status_code == 400 and "channel" in resp.json()
    outsider = api(pw.world.users["outsider"])
    resp = outsider.post(
        "/api/v1/privacy/consents/",
        {"customer": pw.customer.pk, "channel": "all", "granted": True},
        format="json",
    )
    assert resp.status_code == 400 and "customer" in resp.json()
    assert outsider.get("/api/v1/privacy/consents/").json()["results"] == []


def test_unsubscribe_link_records_the_withdrawal(pw, client):
    resp = client.post(f"/r/u/{unsubscribe_token(pw.org.pk, pw.customer.pk)}/")
    assert resp.status_code == 200
    [record] = _records(pw, granted=False)
    assert (record.channel, record.source) == ("all", "unsubscribe_link")
    assert record.actor_user_id is None


@pytest.mark.parametrize("channel", CHANNELS)
def test_opted_out_customers_get_no_invitation_on_any_channel(pw, channel, api):
    invitation = _invitation(pw, channel)
    resp = api(pw.admin).post(
        "/api/v1/privacy/consents/",
        {"customer": pw.customer.pk, "channel": "all", "granted": False},
        format="json",
    )
    assert resp.status_code == 201
    with tenant_context(pw.org):
        assert inv.invitations_send_due(organization=pw.org).get("sent", 0) == 0
        invitation.refresh_from_db()
    assert invitation.status == "suppressed" and invitation.suppressed_reason == "customer opted out"
    assert _sent() == 0


@pytest.mark.parametrize("channel", CHANNELS)
def test_opted_out_customers_get_no_reminder_on_any_channel(pw, channel, client):
    invitation = _invitation(pw, channel, sent=True)
    assert client.post(f"/r/u/{unsubscribe_token(pw.org.pk, pw.customer.pk)}/").status_code == 200
    with tenant_context(pw.org):
        assert inv.invitations_remind(organization=pw.org).get("reminded", 0) == 0
        invitation.refresh_from_db()
    assert invitation.reminded_at is None and invitation.reminder_due_at is None
    assert _sent() == 0


@pytest.mark.parametrize("channel", CHANNELS)
def test_an_opt_out_racing_the_send_still_wins(pw, channel):
    """The batch was read while the customer could be reached; the claim re-checks in the UPDATE."""
    invitation = _invitation(pw, channel)
    with tenant_context(pw.org):
        batch = list(fm.Invitation.objects.filter(pk=invitation.pk).select_related("customer", "survey"))
        m.Customer.objects.filter(pk=pw.customer.pk).update(opted_out_at=timezone.now())
        assert inv._send(pw.org, batch[0], timezone.now(), reminder=False) == "skipped"
    assert _sent() == 0


@pytest.mark.parametrize(
    ("withdrawn", "blocked", "allowed"), [("email", "email", "sms"), ("sms", "ivr", "email")]
)
def test_withdrawing_one_channel_blocks_only_that_channel(pw, api, withdrawn, blocked, allowed):
    stopped, going = _invitation(pw, blocked), _invitation(pw, allowed)
    api(pw.admin).post(
        "/api/v1/privacy/consents/",
        {"customer": pw.customer.pk, "channel": withdrawn, "granted": False},
        format="json",
    )
    with tenant_context(pw.org):
        org = m.Organization.objects.get(pk=pw.org.pk)
        org.settings["contact_rules"] = {"max_invitations_per_customer_days": 0}
        org.save(update_fields=["settings"])
        inv.invitations_send_due(organization=pw.org)
        stopped.refresh_from_db()
        going.refresh_from_db()
    assert stopped.status == "suppressed" and going.status == "sent"
    assert _sent() == 1


def test_case_customer_contacted_is_refused_for_an_opted_out_customer(pw, api, client):
    from feedback import cases

    with tenant_context(pw.org):
        m.Customer.objects.filter(pk=pw.customer.pk).update(opted_out_at=None)
    manager = api(pw.world.users["manager"])
    client.force_login(pw.world.users["manager"])
    page = client.get(f"/feedback/cases/{pw.case.pk}/").content.decode()
    assert f"/feedback/cases/{pw.case.pk}/contacted/" in page

    with tenant_context(pw.org):
        from cem.services import customer_opt_out

        customer_opt_out(organization=pw.org, actor=Actor.system(), customer=pw.customer, source="admin")
        case = fm.Case.objects.get(pk=pw.case.pk)
        assert case.customer_contact == {}
        assert cases.contact_refusal(case)
    resp = manager.post(f"/api/v1/cases/{pw.case.pk}/contacted/")
    assert resp.status_code == 400 and "customer" in resp.json()
    page = client.get(f"/feedback/cases/{pw.case.pk}/").content.decode()
    assert f"/feedback/cases/{pw.case.pk}/contacted/" not in page
    with tenant_context(pw.org):
        assert fm.Case.objects.get(pk=pw.case.pk).customer_contacted_at is None
    [record] = _records(pw, granted=False)
    assert record.source == "admin"


def test_bulk_imported_customers_have_their_consent_recorded(world):
    from cem.privacy import imported_consent_records

    org = world.a.org
    at = timezone.now()
    with tenant_context(org):
        rows = m.Customer.objects.bulk_create(
            [
                m.Customer(organization=org, external_id="imp-1", consent_email=True, consent_sms=True),
                m.Customer(organization=org, external_id="imp-2", opted_out_at=at - dt.timedelta(days=3)),
                m.Customer(organization=org, external_id="imp-3"),
            ]
        )
        ConsentRecord.objects.bulk_create(imported_consent_records(rows, at=at, detail="CRM sync"))
        got = sorted(
            ConsentRecord.objects.filter(customer__in=rows).values_list(
                "customer__external_id", "channel", "granted", "source", "detail"
            )
        )
    assert got == [
        ("imp-1", "email", True, "import", "CRM sync"),
        ("imp-1", "sms", True, "import", "CRM sync"),
        ("imp-2", "all", False, "import", "CRM sync"),
    ]
