"""The suppression list: an erased or opted-out customer's identifiers, kept as keyed hashes only,
stop every later import (customers API, interaction ingest by JSON or CSV) from making them
contactable again, and every channel (email, SMS, IVR; invitations and reminders) from reaching
them — until their fresh consent. Organization B is never affected by organization A's list."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.core import mail
from django.utils import timezone

from cem import models as m
from cem import suppression
from cem.models.privacy import ConsentRecord, SuppressedIdentifier
from cem.tenancy import tenant_context
from feedback import invitations as inv
from feedback import models as fm
from feedback import senders
from feedback.tokens import hash_token
from feedback.unsubscribe import unsubscribe_token
from tests.feedback.conftest import make_survey
from tests.privacy.helpers import CUSTOMER_EMAIL, CUSTOMER_PHONE, db_columns_containing

pytestmark = pytest.mark.django_db
CHANNELS = ("email", "sms", "ivr")
ERASURES = "/api/v1/privacy/erasures/"
SUPPRESSIONS = "/api/v1/privacy/suppressions/"


def _sent() -> int:
    return len(mail.outbox) + len(senders.sms_outbox) + len(senders.ivr_outbox)


def _erase(pw, api, capture):
    with capture(execute=True):
        resp = api(pw.admin).post(
            ERASURES,
            {
                "subject_type": "customer",
                "external_id": "acme-cust-rv",
                "reason": "Erasure request, ticket 4711",
                "confirm": "acme-cust-rv",
            },
            format="json",
        )
    assert resp.status_code == 201, resp.content


def _customer(org, external_id) -> m.Customer:
    with tenant_context(org):
        return m.Customer.objects.get(external_id=external_id)


_SERIAL = itertools.count()


def _every_channel(org, survey, customer) -> list[fm.Invitation]:
    """For each channel: an invitation due now and a sent one whose reminder is due."""
    now = timezone.now()
    made = []
    with tenant_context(org):
        version = fm.SurveyVersion.objects.filter(survey=survey).first()
        for channel in CHANNELS:
            for sent in (False, True):
                invitation = fm.Invitation.objects.create(
                    organization=org,
                    survey=survey,
                    version=version,
                    customer=customer,
                    delivery_channel=channel,
                    token_hash=f"t-{customer.pk}-{channel}-{sent}-{next(_SERIAL)}",
                    send_at=now - dt.timedelta(minutes=1),
                    expires_at=now + dt.timedelta(days=5),
                )
                if sent:
                    fm.Invitation.objects.filter(pk=invitation.pk).update(
                        status=fm.Invitation.Status.SENT,
                        sent_at=now - dt.timedelta(days=3),
                        token_hash=hash_token(inv.invitation_token(invitation)),
                        reminder_due_at=now - dt.timedelta(minutes=1),
                    )
                made.append(invitation)
    return made


def _run_every_channel(org) -> None:
    with tenant_context(org):
        # No contact cap: only the suppression rules decide here.
        organization = m.Organization.objects.get(pk=org.pk)
        organization.settings["contact_rules"] = {"max_invitations_per_customer_days": 0}
        organization.save(update_fields=["settings"])
        inv.invitations_send_due(organization=org)
        inv.invitations_remind(organization=org)


def _messages_to(customer_email="", phone="") -> int:
    emails = [msg for msg in mail.outbox if customer_email and customer_email in msg.to]
    texts = [msg for msg in senders.sms_outbox + senders.ivr_outbox if phone and msg["to"] == phone]
    return len(emails) + len(texts)


def test_normalised_before_hashing():
    assert suppression.normalise("email", "  Jane.Doe@Example.COM ") == "jane.doe@example.com"
    assert suppression.normalise("phone", "+1 (555) 019-9321") == "15550199321"
    assert suppression.normalise("phone", "0044 20 7946 0958") == "442079460958"
    assert suppression.normalise("phone", "12-34") == ""
    a = suppression.identifier_hash(1, "email", "Jane@Example.com")
    assert a == suppression.identifier_hash(1, "email", " jane@example.com")
    assert len(a) == 64 and "jane" not in a
    # Per organization: org 2's hash of the same address is another value.
    assert a != suppression.identifier_hash(2, "email", "jane@example.com")


def test_the_hashes_are_keyed_by_privacy_hash_key_so_a_secret_key_rotation_keeps_the_list(settings):
    settings.PRIVACY_HASH_KEY = "pinned-" + "p" * 50
    pinned = suppression.identifier_hash(1, "email", "jane@example.com")
    settings.SECRET_KEY = "rotated-" + "s" * 50
    assert suppression.identifier_hash(1, "email", "jane@example.com") == pinned
    settings.PRIVACY_HASH_KEY = "another-" + "p" * 50
    assert suppression.identifier_hash(1, "email", "jane@example.com") != pinned


def test_erasure_keeps_only_hashes_and_a_reimport_by_api_is_kept_but_never_contacted(
    pw, api, django_capture_on_commit_callbacks
):
    _erase(pw, api, django_capture_on_commit_callbacks)
    with tenant_context(pw.org):
        rows = list(SuppressedIdentifier.objects.values_list("kind", "reason"))
    assert sorted(rows) == [("email", "erasure"), ("external_id", "erasure"), ("phone", "erasure")]
    # Nothing identifying is kept, the list included.
    for needle in (CUSTOMER_EMAIL, CUSTOMER_PHONE, "15550199321", "acme-cust-rv"):
        assert db_columns_containing(needle) == [], needle

    # The CRM sends them again, differently written, under another id.
    resp = api(key=pw.world.a.api_key).post(
        "/api/v1/customers/",
        {
            "external_id": "acme-cust-rv-2",
            "email": CUSTOMER_EMAIL.upper(),
            "phone": "+1 (555) 019-9321",
            "consent_email": True,
            "consent_sms": True,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    # Kept (their interactions will link to it), opted out, and the erased address and number
    # are not stored again.
    assert body["opted_out_at"] and not body["consent_email"] and not body["consent_sms"]
    assert body["email"] == "" and body["phone"] == ""
    again = _customer(pw.org, "acme-cust-rv-2")
    with tenant_context(pw.org):
        [record] = ConsentRecord.objects.filter(customer=again)
    assert (record.channel, record.granted, record.source) == ("all", False, "suppression")
    assert "email" in record.detail and CUSTOMER_EMAIL not in record.detail

    # A sync that tries to put the contact details and an opt-in back changes nothing of that.
    resp = api(key=pw.world.a.api_key).patch(
        f"/api/v1/customers/{again.pk}/",
        {"email": CUSTOMER_EMAIL, "opted_out_at": None, "consent_email": True},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["email"] == "" and resp.json()["opted_out_at"] and not resp.json()["consent_email"]

    _every_channel(pw.org, pw.survey, _customer(pw.org, "acme-cust-rv-2"))
    _run_every_channel(pw.org)
    assert _sent() == 0


def test_a_reimport_by_csv_and_the_invitations_it_triggers_reach_nobody(
    pw, api, django_capture_on_commit_callbacks
):
    _erase(pw, api, django_capture_on_commit_callbacks)
    org, t = pw.org, pw.world.a
    for channel in CHANNELS:
        survey, _, _ = make_survey(org, name=f"Visit by {channel}", touchpoint=t.touchpoint)
        with tenant_context(org):
            fm.Survey.objects.filter(pk=survey.pk).update(delivery_channel=channel, send_delay_minutes=0)
    csv_text = (
        "external_id,occurred_at,location,touchpoint,customer\n"
        f"acme-csv-1,{(timezone.now() - dt.timedelta(hours=1)).isoformat()},a-n1,checkout,acme-cust-rv\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        resp = api(key=t.api_key).post("/api/v1/interactions/bulk/", csv_text, content_type="text/csv")
    assert resp.status_code == 200, resp.content
    assert [r["status"] for r in resp.json()["results"]] == ["created"]
    again = _customer(org, "acme-cust-rv")
    assert again.opted_out_at is not None and not again.consent_email
    with tenant_context(org):
        assert ConsentRecord.objects.get(customer=again).source == "suppression"
        invitations = list(fm.Invitation.objects.filter(customer=again))
    assert sorted(i.delivery_channel for i in invitations) == sorted(CHANNELS)
    assert {i.status for i in invitations} == {"suppressed"}
    # The same through the JSON ingest, for one row.
    with django_capture_on_commit_callbacks(execute=True):
        resp = api(key=t.api_key).post(
            "/api/v1/interactions/",
            {
                "external_id": "acme-json-1",
                "occurred_at": (timezone.now() - dt.timedelta(hours=1)).isoformat(),
                "location": "a-n1",
                "touchpoint": "checkout",
                "customer": "acme-cust-rv",
            },
            format="json",
        )
    assert resp.status_code == 201, resp.content
    _run_every_channel(org)
    assert _sent() == 0


@pytest.mark.parametrize("channel", CHANNELS)
def test_an_identifier_suppressed_under_another_record_stops_the_send_in_its_claim(pw, channel, api):
    """A second record of the same person (same email and phone) is not opted out itself: the
    list stops it, at scheduling, at sending and in the claiming UPDATE."""
    org = pw.org
    with tenant_context(org):
        twin = m.Customer.objects.create(
            organization=org,
            external_id="acme-twin",
            email=CUSTOMER_EMAIL,
            phone=CUSTOMER_PHONE,
            consent_email=True,
            consent_sms=True,
        )
    due, _reminder = (i for i in _every_channel(org, pw.survey, twin) if i.delivery_channel == channel)
    with tenant_context(org):
        batch = list(fm.Invitation.objects.filter(pk=due.pk).select_related("customer", "survey"))
    # The other record opts out after the batch was read: the claim still refuses.
    assert _unsubscribe(api, pw) == 200
    with tenant_context(org):
        assert inv._send(org, batch[0], timezone.now(), reminder=False) == "skipped"
    _run_every_channel(org)
    with tenant_context(org):
        due.refresh_from_db()
    assert due.status == "suppressed" and due.suppressed_reason == inv.SUPPRESSED_IDENTIFIER
    assert _sent() == 0


def _unsubscribe(api, pw) -> int:
    return api().post(f"/r/u/{unsubscribe_token(pw.org.pk, pw.customer.pk)}/").status_code


def test_opt_out_then_reimport_is_not_contacted_until_consent_is_recorded_again(pw, api):
    org, key = pw.org, pw.world.a.api_key
    assert _unsubscribe(api, pw) == 200
    with tenant_context(org):
        assert SuppressedIdentifier.objects.filter(reason="opt_out").count() == 3
    # Re-imported under a new id: stored as given (an opt-out is not an erasure) but opted out.
    resp = api(key=key).post(
        "/api/v1/customers/",
        {
            "external_id": "acme-cust-new",
            "email": CUSTOMER_EMAIL,
            "phone": CUSTOMER_PHONE,
            "consent_email": True,
            "consent_sms": True,
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["email"] == CUSTOMER_EMAIL and resp.json()["opted_out_at"]
    new = _customer(org, "acme-cust-new")
    _every_channel(org, pw.survey, new)
    _run_every_channel(org)
    assert _sent() == 0

    # They agree again (recorded with its source), and to email and SMS.
    admin = api(pw.admin)
    for channel in ("all", "email", "sms"):
        resp = admin.post(
            "/api/v1/privacy/consents/",
            {"customer": new.pk, "channel": channel, "granted": True, "detail": "signed form, 3 March"},
            format="json",
        )
        assert resp.status_code == 201, resp.content
    with tenant_context(org):
        log = m.AuditLog.objects.filter(action="customer.consent", object_id=str(new.pk)).order_by("pk")
        assert log.filter(changes__channel="all").get().changes["suppression_lifted"] >= 2
    _every_channel(org, pw.survey, _customer(org, "acme-cust-new"))
    _run_every_channel(org)
    # Every channel reaches them again (an invitation and a reminder each); the old record stays
    # opted out.
    assert _messages_to(CUSTOMER_EMAIL, CUSTOMER_PHONE) == 6
    assert _customer(org, "acme-cust-rv").opted_out_at is not None


def test_an_admin_lifts_an_erased_address_on_fresh_consent_and_org_b_is_unaffected(
    pw, api, django_capture_on_commit_callbacks
):
    _erase(pw, api, django_capture_on_commit_callbacks)
    admin, outsider = api(pw.admin), api(pw.world.users["outsider"])
    summary = admin.get(f"{SUPPRESSIONS}summary/").json()
    assert summary["total"] == 3 and summary["by_reason"]["erasure"] == 3
    listed = admin.get(SUPPRESSIONS).json()
    assert listed["count"] == 3 and set(listed["results"][0]) == {"id", "kind", "reason", "created_at"}

    # Org B: its own list is empty; A's address is neither visible nor liftable there, and a
    # customer of B with the same address and id is contacted as usual.
    assert outsider.get(f"{SUPPRESSIONS}summary/").json()["total"] == 0
    assert outsider.get(SUPPRESSIONS).json()["count"] == 0
    resp = outsider.post(
        f"{SUPPRESSIONS}lift/", {"email": CUSTOMER_EMAIL, "reason": "consent form"}, format="json"
    )
    assert resp.status_code == 400 and "email" in resp.json()
    resp = api(key=pw.world.b.api_key).post(
        "/api/v1/customers/",
        {"external_id": "acme-cust-rv", "email": CUSTOMER_EMAIL, "consent_email": True},
        format="json",
    )
    assert resp.status_code == 201 and resp.json()["opted_out_at"] is None
    survey_b, _, _ = make_survey(pw.world.b.org, name="Beta survey")
    _every_channel(pw.world.b.org, survey_b, _customer(pw.world.b.org, "acme-cust-rv"))
    _run_every_channel(pw.world.b.org)
    assert _messages_to(CUSTOMER_EMAIL) == 2  # B's email invitation and its reminder
    mail.outbox.clear()

    # A's admin, on the person's fresh consent: a reason is needed, the value must be listed.
    resp = admin.post(f"{SUPPRESSIONS}lift/", {"email": CUSTOMER_EMAIL}, format="json")
    assert resp.status_code == 400 and "reason" in resp.json()
    resp = admin.post(f"{SUPPRESSIONS}lift/", {"email": "other@example.com", "reason": "x"}, format="json")
    assert resp.status_code == 400 and "email" in resp.json()
    resp = admin.post(
        f"{SUPPRESSIONS}lift/",
        {"email": f" {CUSTOMER_EMAIL.upper()}", "reason": f"Consent email from {CUSTOMER_EMAIL}, 3 March"},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["removed"] == 1 and resp.json()["summary"]["total"] == 2
    with tenant_context(pw.org):
        log = m.AuditLog.objects.get(action="privacy.suppression.lift")
    assert log.actor_user_id == pw.admin.pk and log.changes["kind"] == "email"
    assert log.changes["reason"] == "Consent email from [identifier], 3 March"
    assert CUSTOMER_EMAIL not in str(log.changes)

    # Now the address may be stored and used again (the phone number stays suppressed).
    resp = api(key=pw.world.a.api_key).post(
        "/api/v1/customers/",
        {"external_id": "acme-cust-rv-3", "email": CUSTOMER_EMAIL, "consent_email": True},
        format="json",
    )
    assert resp.status_code == 201 and resp.json()["opted_out_at"] is None
    _every_channel(pw.org, pw.survey, _customer(pw.org, "acme-cust-rv-3"))
    _run_every_channel(pw.org)
    assert _messages_to(CUSTOMER_EMAIL) == 2


def test_store_managers_cannot_read_or_lift_the_list(pw, api, client):
    manager = api(pw.world.users["manager"])
    assert manager.get(SUPPRESSIONS).status_code == 403
    resp = manager.post(f"{SUPPRESSIONS}lift/", {"email": CUSTOMER_EMAIL, "reason": "x"}, format="json")
    assert resp.status_code == 403
    client.force_login(pw.world.users["manager"])
    assert client.get("/manage/privacy/suppressions/").status_code == 403


def test_the_page_counts_the_list_and_lifts_an_identifier(pw, api, client):
    assert _unsubscribe(api, pw) == 200
    client.force_login(pw.admin)
    page = client.get("/manage/privacy/suppressions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="suppressed-total">3<' in html and CUSTOMER_EMAIL not in html
    resp = client.post(
        "/manage/privacy/suppressions/",
        {"kind": "phone", "value": "nope-123", "reason": "signed form"},
    )
    assert resp.status_code == 200 and "Not a usable phone number" in resp.content.decode()
    resp = client.post(
        "/manage/privacy/suppressions/",
        {"kind": "phone", "value": CUSTOMER_PHONE, "reason": "signed form, 3 March"},
    )
    assert resp.status_code == 302
    with tenant_context(pw.org):
        assert SuppressedIdentifier.objects.count() == 2
        assert not SuppressedIdentifier.objects.filter(kind="phone").exists()


def test_a_bulk_ingest_stores_only_the_suppressed_refs_opted_out(world, api):
    org = world.a.org
    with tenant_context(org):
        for ref in ("acme-s-0", "acme-s-1", "acme-s-2"):
            suppression.add(org.pk, suppression.identifiers(org.pk, external_id=ref), "erasure")
    rows = [
        {
            "external_id": f"acme-bulk-{i}",
            "occurred_at": "2026-01-01T10:00:00Z",
            "location": "a-n1",
            "touchpoint": "checkout",
            "customer": f"acme-s-{i}" if i < 3 else f"acme-ok-{i}",
        }
        for i in range(10)
    ]
    resp = api(key=world.a.api_key).post("/api/v1/interactions/bulk/", rows, format="json")
    assert resp.status_code == 200, resp.content
    with tenant_context(org):
        out = dict(
            m.Customer.objects.filter(external_id__startswith="acme-").values_list(
                "external_id", "opted_out_at"
            )
        )
    assert {ref for ref, at in out.items() if at is not None} == {"acme-s-0", "acme-s-1", "acme-s-2"}
    assert len(out) == 11  # the world's own customer, and ten from the batch
