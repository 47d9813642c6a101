"""Invitations: created after interactions under contact rules, sent, reminded, expired; unsubscribe."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading

import pytest
from django.core import mail
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cem import models as m
from cem.ingest import interactions_ingest
from cem.outbox import run_handler
from cem.principals import Actor
from cem.services import customer_opt_out
from cem.tasks import events_deliver
from cem.tenancy import tenant_context, unscoped
from feedback import invitations as inv
from feedback import models as fm
from feedback import senders
from feedback.invitation_tasks import (
    invitations_expire_dispatch,
    invitations_remind_dispatch,
    invitations_send_due,
    invitations_send_due_dispatch,
)
from feedback.tokens import hash_token
from feedback.unsubscribe import read_unsubscribe_token, unsubscribe_token
from tests import factories as f

HANDLER = "feedback.invitations_create"
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)  # a Tuesday; outside quiet hours in UTC
S = fm.Invitation.Status


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(timezone, "now", c)
    return c


@pytest.fixture(autouse=True)
def _clear_outboxes():
    senders.sms_outbox.clear()
    senders.ivr_outbox.clear()
    yield
    senders.sms_outbox.clear()
    senders.ivr_outbox.clear()


@pytest.fixture
def a(clock, sw):
    """Org A with the store-visit survey and a reachable customer (email + consent)."""
    org = sw.world.a.org
    customer = f.CustomerFactory(
        organization=org, external_id="acme-ana", email="ana@example.com", consent_email=True, locale="en"
    )
    return sw, org, customer


def _row(ext, when, customer="acme-ana", touchpoint="checkout"):
    return {
        "external_id": ext,
        "occurred_at": when.isoformat(),
        "location": "a-n1",
        "touchpoint": touchpoint,
        "customer": customer,
        "employees": ["acme-emp-a-n1"],
    }


def _ingest(org, rows) -> list[int]:
    """Ingest through the real service and return the InteractionRecorded events it emitted."""
    with tenant_context(org):
        before = m.OutboxEvent.objects.aggregate(top=Max("pk"))["top"] or 0
        results = interactions_ingest(organization=org, actor=Actor.system(), rows=rows)
        assert {r.status for r in results} == {"created"}, [r.as_dict() for r in results]
        return list(
            m.OutboxEvent.objects.filter(pk__gt=before, event_type="InteractionRecorded").values_list(
                "pk", flat=True
            )
        )


def _invite(org, rows) -> list[int]:
    events = _ingest(org, rows)
    with tenant_context(org):
        for event_id in events:
            assert run_handler(event_id, HANDLER) is True
    return events


def _invitations(org, **filters):
    with tenant_context(org):
        return list(fm.Invitation.objects.filter(**filters).order_by("pk"))


def _send_due(org, now=None):
    with tenant_context(org):
        return inv.invitations_send_due(organization=org, now=now)


# --- creation and contact rules ----------------------------------------------------------------


def test_twenty_interactions_in_a_day_make_one_invitation(a):
    sw, org, customer = a
    rows = [
        _row(f"acme-visit-{i}", NOW - dt.timedelta(hours=10) + dt.timedelta(minutes=20 * i))
        for i in range(20)
    ]
    _invite(org, rows)
    invitations = _invitations(org, customer=customer)
    assert len(invitations) == 20
    scheduled = [i for i in invitations if i.status == S.SCHEDULED]
    assert len(scheduled) == 1
    assert {i.suppressed_reason for i in invitations if i.status == S.SUPPRESSED} == {
        "contact cap: already invited within 30 days"
    }
    first = scheduled[0]
    # The earliest interaction wins; its delay has passed, so it goes out now, not in the past.
    assert first.send_at == NOW
    assert first.expires_at == NOW + dt.timedelta(days=7)
    assert first.reminder_due_at == NOW + dt.timedelta(days=3)
    assert first.locale == "en" and first.delivery_channel == "email"
    assert first.location_id == sw.world.a.locations["a-n1"].pk
    assert first.employee_id == sw.world.a.employees["a-n1"].pk
    assert first.version_id == sw.version.pk


def test_cap_holds_across_separate_events_and_days(a, clock):
    _, org, customer = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    clock.advance(days=5)
    _invite(org, [_row("acme-v-2", clock.now - dt.timedelta(hours=2))])
    statuses = [i.status for i in _invitations(org, customer=customer)]
    assert statuses == [S.SCHEDULED, S.SUPPRESSED]
    # Once the window has passed the customer may be asked again.
    clock.advance(days=31)
    _invite(org, [_row("acme-v-3", clock.now - dt.timedelta(minutes=5))])
    assert [i.status for i in _invitations(org, customer=customer)][-1] == S.SCHEDULED


def test_cap_window_comes_from_contact_rules(a):
    _, org, customer = a
    with tenant_context(org):
        org.settings["contact_rules"]["max_invitations_per_customer_days"] = 0  # no cap
        org.save(update_fields=["settings"])
    _invite(org, [_row(f"acme-v-{i}", NOW - dt.timedelta(hours=i + 1)) for i in range(3)])
    assert [i.status for i in _invitations(org, customer=customer)] == [S.SCHEDULED] * 3


def test_delay_and_locale(a):
    sw, org, customer = a
    with tenant_context(org):
        fm.Survey.objects.filter(pk=sw.survey.pk).update(send_delay_minutes=90, reminder_after_days=None)
        m.Customer.objects.filter(pk=customer.pk).update(locale="")
        org.locale = "es"
        org.save(update_fields=["locale"])
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(minutes=30))])
    (invitation,) = _invitations(org)
    assert invitation.send_at == NOW + dt.timedelta(minutes=60)
    assert invitation.reminder_due_at is None
    assert invitation.locale == "es"  # customer has none: the organization's


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"email": ""}, "no email address"),
        ({"consent_email": False}, "no email consent"),
        ({"opted_out_at": NOW - dt.timedelta(days=1)}, "customer opted out"),
    ],
)
def test_unreachable_customers_are_suppressed(a, changes, reason):
    _, org, customer = a
    with tenant_context(org):
        m.Customer.objects.filter(pk=customer.pk).update(**changes)
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    (invitation,) = _invitations(org)
    assert (invitation.status, invitation.suppressed_reason) == (S.SUPPRESSED, reason)


def test_interaction_without_customer_is_suppressed_and_stale_ones_are_skipped(a):
    _, org, _ = a
    row = _row("acme-anon", NOW - dt.timedelta(hours=2))
    del row["customer"]
    _invite(org, [row, _row("acme-old", NOW - dt.timedelta(days=30))])
    (invitation,) = _invitations(org)
    assert (invitation.status, invitation.suppressed_reason) == (S.SUPPRESSED, "no customer")


def test_only_active_surveys_triggered_by_touchpoint_or_channel(a):
    sw, org, _customer = a
    world = sw.world
    with tenant_context(org):
        other_tp = f.TouchpointFactory(organization=org, channel=world.a.channel, code="returns")
        by_channel = fm.Survey.objects.create(organization=org, name="Any in-store contact", status="active")
        fm.SurveyVersion.objects.create(organization=org, survey=by_channel, number=1)
        fm.SurveyTrigger.objects.create(organization=org, survey=by_channel, channel=world.a.channel)
        draft = fm.Survey.objects.create(organization=org, name="Draft", status="draft")
        fm.SurveyVersion.objects.create(organization=org, survey=draft, number=1)
        fm.SurveyTrigger.objects.create(organization=org, survey=draft, touchpoint=world.a.touchpoint)
        org.settings["contact_rules"]["max_invitations_per_customer_days"] = 0
        org.save(update_fields=["settings"])
    _invite(
        org,
        [
            _row("acme-checkout", NOW - dt.timedelta(hours=2)),
            _row("acme-returns", NOW - dt.timedelta(hours=2), touchpoint=other_tp.code),
        ],
    )
    with tenant_context(org):
        pairs = set(fm.Invitation.objects.values_list("survey__name", "interaction__external_id"))
    assert pairs == {
        ("Store visit", "acme-checkout"),
        ("Any in-store contact", "acme-checkout"),
        ("Any in-store contact", "acme-returns"),
    }


def test_handler_is_idempotent(a):
    _, org, _ = a
    events = _invite(org, [_row(f"acme-v-{i}", NOW - dt.timedelta(hours=2)) for i in range(3)])
    with tenant_context(org):
        before = list(fm.Invitation.objects.order_by("pk").values("pk", "status", "token_hash"))
        # Redelivery of the event is a no-op ...
        assert run_handler(events[0], HANDLER) is False
        # ... and so is running the service again for the same interactions.
        ids = list(
            m.Interaction.objects.filter(external_id__startswith="acme-v-").values_list("pk", flat=True)
        )
        assert inv.invitations_create(organization=org, actor=Actor.system(), interaction_ids=ids) == {
            "scheduled": 0,
            "suppressed": 0,
        }
        after = list(fm.Invitation.objects.order_by("pk").values("pk", "status", "token_hash"))
    assert before == after and len(after) == 3


def test_handler_queries_do_not_grow_with_the_batch(a):
    _, org, _ = a
    counts = []
    for size in (3, 60):
        rows = [
            _row(f"acme-bulk-{size}-{i}", NOW - dt.timedelta(hours=2), customer=f"acme-c-{size}-{i}")
            for i in range(size)
        ]
        (event,) = _ingest(org, rows)
        with tenant_context(org), CaptureQueriesContext(connection) as queries:
            run_handler(event, HANDLER)
        counts.append(len(queries))
    assert counts[0] == counts[1] <= 20
    assert len(_invitations(org)) == 63


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_for_one_customer_make_one_invitation(clock, sw, monkeypatch):
    org = sw.world.a.org
    f.CustomerFactory(organization=org, external_id="acme-ana", email="ana@example.com", consent_email=True)
    # Commits are real here: hold the eager on-commit delivery back so the two runs can race.
    monkeypatch.setattr(events_deliver, "delay", lambda *args: None)
    events = _ingest(org, [_row("acme-r-1", NOW - dt.timedelta(hours=2))])
    events += _ingest(org, [_row("acme-r-2", NOW - dt.timedelta(hours=1))])
    barrier = threading.Barrier(2)
    real_cap_days = inv.cap_days
    both_counting = threading.Barrier(2, timeout=1)

    def slow_cap_days(org):
        # Without the customer lock both runs meet here, both count zero contacts and both
        # invite; with it the second run waits on the lock and the first passes on timeout.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_counting.wait()
        return real_cap_days(org)

    monkeypatch.setattr(inv, "cap_days", slow_cap_days)
    errors = []

    def handle(event_id):
        try:
            barrier.wait()
            with tenant_context(org):
                run_handler(event_id, HANDLER)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=handle, args=(e,)) for e in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    statuses = sorted(i.status for i in _invitations(org))
    assert statuses == [S.SCHEDULED, S.SUPPRESSED]


# --- sending -----------------------------------------------------------------------------------


def test_send_due_sends_once_even_when_run_twice(a, clock):
    _, org, _customer = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(minutes=10))])
    (invitation,) = _invitations(org)
    assert invitation.send_at == NOW + dt.timedelta(minutes=50)
    assert _send_due(org) == {}  # not due yet
    clock.advance(hours=1)
    assert invitations_send_due_dispatch() == 1
    assert invitations_send_due_dispatch() == 0
    with tenant_context(org):
        assert invitations_send_due(org.pk, [invitation.pk]) == {}
    assert len(mail.outbox) == 1
    (invitation,) = _invitations(org)
    assert invitation.status == S.SENT and invitation.sent_at == clock.now


def test_email_has_html_text_links_and_english_by_default(a, clock):
    _, org, customer = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    assert _send_due(org) == {"sent": 1}
    (message,) = mail.outbox
    (invitation,) = _invitations(org)
    assert message.to == ["ana@example.com"]
    assert "How was your visit?" in message.subject and "Acme" in message.subject
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    token = re.search(r"/r/i/([A-Za-z0-9_-]+)/", message.body).group(1)
    assert hash_token(token) == invitation.token_hash  # the link opens exactly this invitation
    assert f"/r/i/{token}/" in html
    unsub = re.search(r"http://[^/]+(/r/u/[^/\s]+/)", message.body).group(1)
    assert unsub in html and unsub in message.extra_headers["List-Unsubscribe"]
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert read_unsubscribe_token(unsub.split("/")[3]) == (org.pk, customer.pk)
    assert "Answer the survey" in message.body and "Answer the survey" in html
    assert "{{" not in message.body + html and "{%" not in message.body + html


def test_spanish_customer_gets_spanish_email(a):
    _, org, customer = a
    with tenant_context(org):
        m.Customer.objects.filter(pk=customer.pk).update(locale="es-MX")
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    _send_due(org)
    (message,) = mail.outbox
    html = message.alternatives[0][0]
    assert "¿Qué tal su visita?" in message.subject
    assert "Responder la encuesta" in message.body and "Responder la encuesta" in html
    assert "Darse de baja" in message.body
    assert "17 de marzo de 2026" in message.body  # expiry date in Spanish
    assert message.extra_headers["Content-Language"] == "es"


@pytest.mark.parametrize("locale", ["fr", "de-AT"])
def test_missing_translation_falls_back_to_english(a, locale):
    sw, org, customer = a
    with tenant_context(org):
        # French is offered by the survey but has no message templates; German is not offered.
        fm.Survey.objects.filter(pk=sw.survey.pk).update(locales=["en", "es", "fr"])
        m.Customer.objects.filter(pk=customer.pk).update(locale=locale)
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    _send_due(org)
    (message,) = mail.outbox
    assert "Answer the survey" in message.body and "How was your visit?" in message.subject
    assert "invitation" not in message.subject.lower() and "{{" not in message.body
    assert message.extra_headers["Content-Language"] == "en"


def test_sms_and_ivr_go_through_their_backends(a):
    sw, org, customer = a
    with tenant_context(org):
        m.Customer.objects.filter(pk=customer.pk).update(phone="+34600000000", consent_sms=True, locale="es")
        fm.Survey.objects.filter(pk=sw.survey.pk).update(delivery_channel="sms")
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    assert _send_due(org) == {"sent": 1}
    (sms,) = senders.sms_outbox
    assert sms["to"] == "+34600000000" and "Encuesta de 1 minuto" in sms["text"] and "/r/i/" in sms["text"]
    with tenant_context(org):
        fm.Survey.objects.filter(pk=sw.survey.pk).update(delivery_channel="ivr")
        org.settings["contact_rules"]["max_invitations_per_customer_days"] = 0
        org.save(update_fields=["settings"])
    _invite(org, [_row("acme-v-2", NOW - dt.timedelta(hours=2))])
    assert _send_due(org) == {"sent": 1}
    (call,) = senders.ivr_outbox
    invitation = _invitations(org, delivery_channel="ivr")[0]
    assert call["locale"] == "es" and hash_token(call["token"]) == invitation.token_hash
    assert not mail.outbox


def test_no_phone_consent_suppresses_sms(a):
    sw, org, customer = a
    with tenant_context(org):
        m.Customer.objects.filter(pk=customer.pk).update(phone="+34600000000")
        fm.Survey.objects.filter(pk=sw.survey.pk).update(delivery_channel="sms")
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    (invitation,) = _invitations(org)
    assert invitation.suppressed_reason == "no phone consent"


# --- quiet hours -------------------------------------------------------------------------------


@pytest.fixture
def madrid(a):
    """Org A in Madrid (UTC+1 in March), quiet hours 21:00-08:00 local."""
    _, org, _ = a
    with tenant_context(org):
        org.time_zone = "Europe/Madrid"
        org.settings["contact_rules"]["quiet_hours"] = ["21:00", "08:00"]
        org.save(update_fields=["time_zone", "settings"])
    return a


def test_send_time_in_quiet_hours_moves_to_next_morning(madrid, clock):
    _, org, _ = madrid
    clock.now = dt.datetime(2026, 3, 10, 19, 30, tzinfo=dt.UTC)  # 20:30 in Madrid
    _invite(org, [_row("acme-v-1", clock.now - dt.timedelta(minutes=10))])  # + 60 min = 21:20 local
    (invitation,) = _invitations(org)
    assert invitation.status == S.SCHEDULED
    assert invitation.send_at == dt.datetime(2026, 3, 11, 7, 0, tzinfo=dt.UTC)  # 08:00 in Madrid
    assert invitation.expires_at == invitation.send_at + dt.timedelta(days=7)


def test_due_invitation_is_delayed_during_quiet_hours_not_dropped(madrid, clock):
    _, org, _ = madrid
    clock.now = dt.datetime(2026, 3, 10, 18, 0, tzinfo=dt.UTC)  # 19:00 in Madrid
    _invite(org, [_row("acme-v-1", clock.now - dt.timedelta(minutes=30))])
    (invitation,) = _invitations(org)
    assert invitation.send_at == dt.datetime(2026, 3, 10, 18, 30, tzinfo=dt.UTC)
    # The worker was down; the send job runs at 23:30 local, inside quiet hours.
    clock.now = dt.datetime(2026, 3, 10, 22, 30, tzinfo=dt.UTC)
    invitations_send_due_dispatch()
    assert not mail.outbox
    (invitation,) = _invitations(org)
    assert invitation.status == S.SCHEDULED
    assert invitation.send_at == dt.datetime(2026, 3, 11, 7, 0, tzinfo=dt.UTC)
    clock.now = dt.datetime(2026, 3, 11, 6, 59, tzinfo=dt.UTC)
    invitations_send_due_dispatch()
    assert not mail.outbox
    clock.now = dt.datetime(2026, 3, 11, 7, 0, tzinfo=dt.UTC)
    invitations_send_due_dispatch()
    assert len(mail.outbox) == 1
    assert _invitations(org)[0].status == S.SENT


def test_quiet_until_handles_both_sides_of_midnight(a):
    _, org, _ = a
    org.time_zone = "America/Mexico_City"  # UTC-6
    org.settings["contact_rules"]["quiet_hours"] = ["21:00", "08:00"]
    eight = dt.datetime(2026, 3, 11, 14, 0, tzinfo=dt.UTC)  # 08:00 local on the 11th
    assert inv.quiet_until(org, dt.datetime(2026, 3, 11, 3, 30, tzinfo=dt.UTC)) == eight  # 21:30 on the 10th
    assert inv.quiet_until(org, dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC)) == eight  # 06:00 on the 11th
    assert inv.quiet_until(org, eight) is None
    assert inv.quiet_until(org, dt.datetime(2026, 3, 11, 2, 59, tzinfo=dt.UTC)) is None  # 20:59
    org.settings["contact_rules"]["quiet_hours"] = []
    assert inv.quiet_until(org, dt.datetime(2026, 3, 11, 3, 30, tzinfo=dt.UTC)) is None


# --- reminders and expiry ----------------------------------------------------------------------


def test_reminder_is_sent_once_with_the_same_link(a, clock):
    _, org, _ = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    _send_due(org)
    first_link = re.search(r"/r/i/\S+/", mail.outbox[0].body).group(0)
    clock.advance(days=2)
    assert invitations_remind_dispatch() == 0
    clock.advance(days=1, minutes=1)
    assert invitations_remind_dispatch() == 1
    assert invitations_remind_dispatch() == 0
    with tenant_context(org):
        # Even a task holding stale ids does not remind twice.
        invitation = fm.Invitation.objects.get()
        assert inv.invitations_remind(organization=org, invitation_ids=[invitation.pk]) == {}
    assert len(mail.outbox) == 2
    reminder = mail.outbox[1]
    assert reminder.subject.startswith("Reminder:")
    assert first_link in reminder.body
    assert invitation.reminded_at == clock.now and invitation.status == S.SENT


def test_answered_or_opted_out_invitations_get_no_reminder(a, clock):
    _, org, customer = a
    with tenant_context(org):
        org.settings["contact_rules"]["max_invitations_per_customer_days"] = 0
        org.save(update_fields=["settings"])
        other = f.CustomerFactory(
            organization=org, external_id="acme-bo", email="bo@example.com", consent_email=True
        )
    _invite(
        org,
        [
            _row("acme-v-1", NOW - dt.timedelta(hours=2)),
            _row("acme-v-2", NOW - dt.timedelta(hours=2), customer="acme-bo"),
        ],
    )
    _send_due(org)
    assert len(mail.outbox) == 2
    with tenant_context(org):
        answered = fm.Invitation.objects.get(customer=customer)
        assert inv.invitation_mark_responded(organization=org, invitation=answered) is True
        assert inv.invitation_mark_responded(organization=org, invitation=answered) is False
        customer_opt_out(organization=org, actor=Actor.system(), customer=other)
    clock.advance(days=4)
    invitations_remind_dispatch()
    assert len(mail.outbox) == 2
    statuses = {i.customer_id: (i.status, i.reminded_at) for i in _invitations(org)}
    assert statuses == {customer.pk: (S.RESPONDED, None), other.pk: (S.SENT, None)}


def test_expiry(a, clock):
    _, org, _customer = a
    with tenant_context(org):
        org.settings["contact_rules"]["max_invitations_per_customer_days"] = 0
        org.save(update_fields=["settings"])
    _invite(org, [_row(f"acme-v-{i}", NOW - dt.timedelta(hours=2)) for i in range(3)])
    _send_due(org)
    first, second, third = _invitations(org)
    with tenant_context(org):
        inv.invitation_mark_responded(organization=org, invitation=first)
        # One never went out: the workers were down until after it expired.
        fm.Invitation.objects.filter(pk=third.pk).update(status=S.SCHEDULED, sent_at=None)
    clock.advance(days=7, seconds=-1)
    assert invitations_expire_dispatch() == 0
    clock.advance(seconds=1)
    assert invitations_expire_dispatch() == 1  # one tenant
    assert invitations_expire_dispatch() == 0
    assert [i.status for i in _invitations(org)] == [S.RESPONDED, S.EXPIRED, S.EXPIRED]
    assert invitations_send_due_dispatch() == 0 and invitations_remind_dispatch() == 0
    assert len(mail.outbox) == 3
    with tenant_context(org):
        # A late answer cannot reopen an expired invitation.
        assert inv.invitation_mark_responded(organization=org, invitation=second) is False


# --- unsubscribe -------------------------------------------------------------------------------


def test_unsubscribe_through_the_pages_stops_every_send(a, client, clock):
    _, org, customer = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    _send_due(org)
    url = re.search(r"http://[^/]+(/r/u/\S+/)", mail.outbox[0].body).group(1)

    page = client.get(url)
    assert page.status_code == 200 and b"Yes, unsubscribe me" in page.content
    with tenant_context(org):
        customer.refresh_from_db()
    assert customer.opted_out_at is None  # GET changes nothing (link scanners)

    done = client.post(url)
    assert done.status_code == 200 and b"You are unsubscribed" in done.content
    with tenant_context(org):
        customer.refresh_from_db()
        assert customer.opted_out_at == clock.now
        assert m.AuditLog.objects.filter(action="customer.opt_out", object_id=str(customer.pk)).count() == 1
    assert client.post(url).status_code == 200  # a second click is harmless
    assert b"You are unsubscribed" in client.get(url).content

    # New interactions long after the cap window: suppressed, and nothing is ever sent.
    clock.advance(days=40)
    _invite(org, [_row("acme-v-2", clock.now - dt.timedelta(hours=2))])
    latest = _invitations(org)[-1]
    assert (latest.status, latest.suppressed_reason) == (S.SUPPRESSED, "customer opted out")
    invitations_send_due_dispatch()
    clock.advance(days=5)
    invitations_send_due_dispatch()
    invitations_remind_dispatch()
    assert len(mail.outbox) == 1


def test_send_task_rechecks_opt_out_at_send_time(a, clock):
    _, org, customer = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(minutes=5))])
    with tenant_context(org):
        # Opted out by a path that did not withdraw the scheduled invitation (a direct update):
        # the send still checks. (customer_opt_out itself withdraws them: cem.privacy.)
        m.Customer.objects.filter(pk=customer.pk).update(opted_out_at=clock.now)
    clock.advance(hours=2)
    assert invitations_send_due_dispatch() == 1
    assert not mail.outbox
    (invitation,) = _invitations(org)
    assert (invitation.status, invitation.suppressed_reason) == (S.SUPPRESSED, "customer opted out")


def test_unsubscribe_post_withdraws_scheduled_invitations(a, client):
    _, org, customer = a
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(minutes=5))])
    assert client.post(f"/r/u/{unsubscribe_token(org.pk, customer.pk)}/").status_code == 200
    (invitation,) = _invitations(org)
    assert invitation.status == S.SUPPRESSED


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_unsubscribe_token_is_a_friendly_404(a, client, method):
    _, org, customer = a
    good = unsubscribe_token(org.pk, customer.pk)
    for token in (good[:-2] + "xx", "nonsense", unsubscribe_token(org.pk, 999_999_999)):
        resp = getattr(client, method)(f"/r/u/{token}/")
        assert resp.status_code == 404
        assert b"This link is not valid" in resp.content
    with tenant_context(org):
        customer.refresh_from_db()
    assert customer.opted_out_at is None


def test_org_b_token_cannot_touch_org_a(a, client):
    sw, org, customer = a
    world = sw.world
    b_customer = world.b.customer
    # A token signed for B's org naming A's customer id finds nothing in B.
    resp = client.post(f"/r/u/{unsubscribe_token(world.b.org.pk, customer.pk)}/")
    assert resp.status_code == 404
    assert client.post(f"/r/u/{unsubscribe_token(world.b.org.pk, b_customer.pk)}/").status_code == 200
    with tenant_context(org):
        customer.refresh_from_db()
    assert customer.opted_out_at is None


# --- tenancy -----------------------------------------------------------------------------------


def test_org_b_never_gets_org_a_invitations(a, clock):
    sw, org, _ = a
    world = sw.world
    _invite(org, [_row("acme-v-1", NOW - dt.timedelta(hours=2))])
    (invitation,) = _invitations(org)
    with tenant_context(world.b.org):
        assert not fm.Invitation.objects.exists()
        # A task for tenant B holding A's ids sees nothing and sends nothing.
        assert invitations_send_due(world.b.org.pk, [invitation.pk]) == {}
        assert inv.invitations_expire(organization=world.b.org, now=NOW + dt.timedelta(days=30)) == 0
    assert not mail.outbox
    with unscoped():
        owners = set(fm.Invitation.objects.values_list("organization_id", "survey__organization_id"))
    assert owners == {(org.pk, org.pk)}
    # The dispatcher sends A's invitation inside A's own context.
    invitations_send_due_dispatch()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ana@example.com"]
    assert "Beta" not in mail.outbox[0].body
