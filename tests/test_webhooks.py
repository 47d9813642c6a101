"""Outgoing webhooks: signatures, the replay window, retries with backoff, fan-out, redelivery, SSRF."""

from __future__ import annotations

import datetime as dt
import itertools
import json

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from cem import models as m
from cem import outbox, webhooks
from cem.principals import Actor
from cem.tenancy import tenant_context
from cem.webhook_tasks import webhooks_send_due
from tests.webhooks_support import (  # noqa: F401 - fixtures
    FakeReceiver,
    local_receiver_fixture,
    make_delivery,
    make_endpoint,
    make_event,
    receiver_fixture,
)

S = m.WebhookDelivery.Status


def _attempt(org, delivery, now, transport):
    with tenant_context(org):
        return webhooks.attempt(delivery.pk, now=now, transport=transport)


# --- signature and replay window -----------------------------------------------------------------


def test_signature_verifies_with_the_reference_verifier(world):
    org = world.a.org
    endpoint, secret = make_endpoint(org)
    delivery = make_delivery(org, endpoint, payload={"case_id": 42, "note": "é ünïcode"})
    fake = FakeReceiver([204])
    now = timezone.now()
    result = _attempt(org, delivery, now, fake)

    assert result.status == S.SUCCEEDED
    (call,) = fake.calls
    header = call.headers["CEM-Signature"]
    t = int(now.timestamp())
    assert header.startswith(f"t={t},v1=")
    assert webhooks.verify(secret, header, call.body, now=t)
    assert webhooks.verify(secret, header, call.body.decode(), now=t)  # str bodies too
    body = json.loads(call.body)
    assert body["id"] == delivery.event_id and body["type"] == "CaseOpened"
    assert body["data"] == {"case_id": 42, "note": "é ünïcode"}
    assert call.headers["CEM-Event-Id"] == str(delivery.event_id)
    assert call.headers["Content-Type"] == "application/json"


def test_tampered_body_wrong_secret_and_bad_headers_fail(world):
    secret = "whsec_test"
    body = b'{"id":1,"type":"CaseOpened"}'
    t = 1_767_261_600
    header = webhooks.signature_header([secret], t, body)
    assert webhooks.verify(secret, header, body, now=t)
    assert not webhooks.verify(secret, header, body.replace(b"1", b"2"), now=t)
    assert not webhooks.verify("whsec_other", header, body, now=t)
    forged_t = header.replace(f"t={t}", f"t={t + 1}")
    assert not webhooks.verify(secret, forged_t, body, now=t)
    for bad in (
        None,
        "",
        "garbage",
        f"t={t}",
        "v1=abc",
        f"t=x,v1={'0' * 64}",
        f"t={t},v1=ünï",
        "t=" + "9" * 5000,
    ):
        assert not webhooks.verify(secret, bad, body, now=t), bad


def test_replay_outside_the_tolerance_is_rejected(world):
    secret = "whsec_test"
    body = b'{"id":1}'
    t = 1_767_261_600
    header = webhooks.signature_header([secret], t, body)
    assert webhooks.verify(secret, header, body, now=t + 299)
    assert webhooks.verify(secret, header, body, now=t + 300)
    assert not webhooks.verify(secret, header, body, now=t + 301)  # replayed 5 min later
    assert not webhooks.verify(secret, header, body, now=t + 86_400)
    assert not webhooks.verify(secret, header, body, now=t - 301)  # from the future
    assert webhooks.verify(secret, header, body, tolerance=600, now=t + 599)
    # Without `now` it uses the clock: a signature made now passes, one from an hour ago does not.
    fresh = webhooks.signature_header([secret], int(timezone.now().timestamp()), body)
    stale = webhooks.signature_header([secret], int(timezone.now().timestamp()) - 3600, body)
    assert webhooks.verify(secret, fresh, body)
    assert not webhooks.verify(secret, stale, body)


def test_every_attempt_is_signed_at_its_own_time(world):
    org = world.a.org
    endpoint, secret = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    fake = FakeReceiver([500, 200])
    now = timezone.now()
    first = _attempt(org, delivery, now, fake)
    later = first.next_attempt_at + dt.timedelta(minutes=10)
    _attempt(org, delivery, later, fake)
    h1, h2 = (c.headers["CEM-Signature"] for c in fake.calls)
    assert h1 != h2
    assert fake.calls[0].body == fake.calls[1].body  # same event, same body
    assert webhooks.verify(secret, h2, fake.calls[1].body, now=later.timestamp())
    assert not webhooks.verify(secret, h1, fake.calls[0].body, now=later.timestamp())  # stale by then
    assert [c.headers["CEM-Delivery-Attempt"] for c in fake.calls] == ["1", "2"]


def test_rotation_signs_with_both_secrets_during_the_overlap(world):
    org = world.a.org
    endpoint, old = make_endpoint(org)
    with tenant_context(org):
        endpoint, new = webhooks.endpoint_rotate_secret(
            organization=org, actor=Actor.system(), endpoint=endpoint
        )
    assert new != old and new.startswith("whsec_") and len(new) >= 6 + 43  # 32 bytes, base64
    delivery = make_delivery(org, endpoint)
    fake = FakeReceiver([200, 200])
    now = timezone.now()
    _attempt(org, delivery, now, fake)
    header, body = fake.calls[0].headers["CEM-Signature"], fake.calls[0].body
    assert header.count("v1=") == 2
    assert webhooks.verify(new, header, body, now=now.timestamp())
    assert webhooks.verify(old, header, body, now=now.timestamp())
    # After the overlap only the new secret signs.
    with tenant_context(org):
        webhooks.redeliver(
            organization=org,
            actor=Actor.system(),
            delivery=delivery,
            now=now + dt.timedelta(hours=25),
            transport=fake,
        )
    header, body = fake.calls[1].headers["CEM-Signature"], fake.calls[1].body
    later = (now + dt.timedelta(hours=25)).timestamp()
    assert header.count("v1=") == 1
    assert webhooks.verify(new, header, body, now=later) and not webhooks.verify(old, header, body, now=later)


def test_secrets_carry_256_bits_and_differ(world):
    secrets = {make_endpoint(world.a.org, url=f"http://127.0.0.1:9/{n}")[1] for n in range(5)}
    assert len(secrets) == 5
    for secret in secrets:
        assert secret.startswith("whsec_") and len(secret.removeprefix("whsec_")) == 43  # token_urlsafe(32)


# --- outcomes and retries --------------------------------------------------------------------------


def test_2xx_marks_succeeded_with_code_and_time(world):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    now = timezone.now()
    result = _attempt(org, delivery, now, FakeReceiver([201]))
    assert result.status == S.SUCCEEDED and result.attempts == 1 and result.last_status_code == 201
    assert result.delivered_at == now and result.next_attempt_at is None and result.last_error == ""
    assert result.last_response_ms is not None
    # Not due any more: a second attempt does nothing.
    assert _attempt(org, delivery, now + dt.timedelta(days=1), FakeReceiver([200])) is None


def test_failures_retry_with_growing_backoff_and_give_up_after_three_days(world):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    fake = FakeReceiver([500, 503, webhooks.DeliveryError("Timed out: read timeout"), 502])
    now = delivery.next_attempt_at
    times = []
    while True:
        # Not yet due a second earlier: nothing is sent.
        assert _attempt(org, delivery, now - dt.timedelta(seconds=1), fake) is None
        assert len(fake.calls) == len(times)
        result = _attempt(org, delivery, now, fake)
        times.append(now)
        if result.status == S.GAVE_UP:
            break
        assert result.status == S.FAILED and result.next_attempt_at > now
        now = result.next_attempt_at
        assert len(times) < 40, "never gave up"

    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    capped = webhooks.RETRY_MAX_DELAY_SECONDS
    # Exponential until the cap: each wait more than the last (jitter is at most 10 %).
    exponential = [g for g in gaps if g < capped]
    assert exponential == sorted(exponential) and len(exponential) >= 8
    assert all(b > a * 1.7 for a, b in itertools.pairwise(exponential))
    assert 60 <= gaps[0] <= 66
    assert all(capped <= g <= capped * 1.1 for g in gaps[len(exponential) :])
    # Every attempt within 3 days of the event; the next one would have been past it.
    assert times[-1] - delivery.created_at <= dt.timedelta(days=3)
    assert times[-1] + dt.timedelta(seconds=capped * 1.1) > delivery.created_at + dt.timedelta(days=3)
    assert result.attempts == len(times) == len(fake.calls) and 17 <= len(times) <= 21
    assert result.next_attempt_at is None and result.last_status_code == 502
    assert result.last_error.startswith("HTTP 502")
    assert [c.headers["CEM-Delivery-Attempt"] for c in fake.calls] == [
        str(n) for n in range(1, len(times) + 1)
    ]


def test_retry_delay_schedule():
    no_jitter = [webhooks.retry_delay(n, rand=lambda: 0).total_seconds() for n in range(1, 13)]
    assert no_jitter[:9] == [60, 120, 240, 480, 960, 1920, 3840, 7680, 15360]
    assert no_jitter[9:] == [21600] * 3
    assert webhooks.retry_delay(1, rand=lambda: 0.999).total_seconds() < 66
    assert webhooks.retry_delay(10_000, rand=lambda: 0).total_seconds() == 21600


def test_error_text_is_truncated(world):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    result = _attempt(org, delivery, timezone.now(), FakeReceiver([webhooks.DeliveryError("x" * 5000)]))
    assert result.status == S.FAILED and len(result.last_error) == 500 and result.last_status_code is None


def test_an_attempt_is_claimed_once(world):
    """The on-commit kick and the beat job may both hold the same id: only one sends."""
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    now = timezone.now()
    with tenant_context(org):
        assert webhooks._claim(delivery.pk, now)
    fake = FakeReceiver([200])
    assert _attempt(org, delivery, now, fake) is None and fake.calls == []
    # A worker that died holding the claim: the row is picked up once the lease runs out.
    assert _attempt(org, delivery, now + webhooks.CLAIM_LEASE, fake).status == S.SUCCEEDED


def test_beat_job_sends_what_is_due(world, receiver):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    due = make_delivery(org, endpoint)
    later = make_delivery(org, endpoint)
    with tenant_context(org):
        m.WebhookDelivery.objects.filter(pk=later.pk).update(
            next_attempt_at=timezone.now() + dt.timedelta(hours=1)
        )
    # Org B's due delivery is sent too, inside org B's tenant.
    b_endpoint, _ = make_endpoint(world.b.org)
    b_due = make_delivery(world.b.org, b_endpoint)
    assert webhooks_send_due() == 2
    assert len(receiver.calls) == 2
    with tenant_context(org):
        assert m.WebhookDelivery.objects.get(pk=due.pk).status == S.SUCCEEDED
        assert m.WebhookDelivery.objects.get(pk=later.pk).status == S.PENDING
    with tenant_context(world.b.org):
        assert m.WebhookDelivery.objects.get(pk=b_due.pk).status == S.SUCCEEDED


# --- redelivery ------------------------------------------------------------------------------------


def test_redeliver_makes_a_new_attempt_now(world):
    org = world.a.org
    endpoint, secret = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    now = timezone.now()
    _attempt(org, delivery, now, FakeReceiver([200]))
    fake = FakeReceiver([200])
    with tenant_context(org):
        result = webhooks.redeliver(organization=org, actor=Actor.system(), delivery=delivery, transport=fake)
        assert m.AuditLog.objects.filter(action="webhook.redeliver", object_id=str(delivery.pk)).exists()
    assert result.status == S.SUCCEEDED and result.attempts == 2 and len(fake.calls) == 1
    assert webhooks.verify(secret, fake.calls[0].headers["CEM-Signature"], fake.calls[0].body)


def test_redeliver_after_giving_up(world):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    with tenant_context(org):
        m.WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=S.GAVE_UP, attempts=19, next_attempt_at=None
        )
    late = delivery.created_at + dt.timedelta(days=4)
    with tenant_context(org):
        failed = webhooks.redeliver(
            organization=org, actor=Actor.system(), delivery=delivery, now=late, transport=FakeReceiver([500])
        )
        # Past the 3-day window a failed redelivery gives up again, with the attempt recorded.
        assert failed.status == S.GAVE_UP and failed.attempts == 20 and failed.last_status_code == 500
        ok = webhooks.redeliver(
            organization=org, actor=Actor.system(), delivery=delivery, now=late, transport=FakeReceiver([200])
        )
    assert ok.status == S.SUCCEEDED and ok.attempts == 21 and ok.delivered_at == late


def test_disabled_endpoint_sends_nothing_and_cannot_be_redelivered(world):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    with tenant_context(org):
        webhooks.endpoint_disable(organization=org, actor=Actor.system(), endpoint=endpoint)
        assert m.WebhookDelivery.objects.get(pk=delivery.pk).status == S.GAVE_UP
        with pytest.raises(ValidationError) as exc:
            webhooks.redeliver(
                organization=org, actor=Actor.system(), delivery=delivery, transport=FakeReceiver([200])
            )
        assert "endpoint" in exc.value.message_dict
    event = make_event(org)
    with tenant_context(org):
        assert webhooks.fan_out(event) == 0


# --- events fan out --------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", list(webhooks.WEBHOOK_EVENTS))
def test_each_key_event_creates_one_delivery_per_subscribed_endpoint_once(world, event_type):
    org = world.a.org
    wanted_1, _ = make_endpoint(org, events=[event_type], url="http://127.0.0.1:9/one")
    wanted_2, _ = make_endpoint(org, events=[event_type, "CaseOpened"], url="http://127.0.0.1:9/two")
    other = "LessonAssigned" if event_type != "LessonAssigned" else "CaseOpened"
    make_endpoint(org, events=[other], url="http://127.0.0.1:9/other")
    make_endpoint(org, events=[event_type], url="http://127.0.0.1:9/off", active=False)
    make_endpoint(world.b.org, events=[event_type], url="http://127.0.0.1:9/beta")

    event = make_event(org, event_type, {"thing_id": 3})
    handler = f"cem.webhooks.{event_type}"
    with tenant_context(org):
        assert outbox.run_handler(event.pk, handler) is True
        rows = list(m.WebhookDelivery.objects.filter(event_id=event.pk).order_by("endpoint_id"))
        assert [r.endpoint_id for r in rows] == [wanted_1.pk, wanted_2.pk]
        assert all(r.status == S.PENDING and r.event_type == event_type for r in rows)
        assert rows[0].payload["data"] == {"thing_id": 3} and rows[0].payload["type"] == event_type
        # Redelivery of the event: the handler has run (HandlerDelivery), and even run again by hand
        # the unique key adds nothing.
        assert outbox.run_handler(event.pk, handler) is False
        assert webhooks.fan_out(event) == 0
        assert m.WebhookDelivery.objects.filter(event_id=event.pk).count() == 2
    with tenant_context(world.b.org):
        assert not m.WebhookDelivery.objects.exists()


def test_case_opened_through_the_outbox_is_delivered_after_commit(
    world, receiver, django_capture_on_commit_callbacks
):
    org = world.a.org
    endpoint, secret = make_endpoint(org, events=["CaseOpened"])
    with django_capture_on_commit_callbacks(execute=True):
        event = make_event(org, "CaseOpened", {"case_id": 99})
    with tenant_context(org):
        delivery = m.WebhookDelivery.objects.get(endpoint=endpoint, event_id=event.pk)
    assert delivery.status == S.SUCCEEDED and delivery.attempts == 1
    (call,) = receiver.calls
    assert json.loads(call.body)["data"] == {"case_id": 99}
    assert webhooks.verify(secret, call.headers["CEM-Signature"], call.body)


def test_points_redeemed_by_an_employee_reaches_the_endpoint(
    world, api, receiver, django_capture_on_commit_callbacks
):
    from tests.incentives.redemption_helpers import fund, item

    org = world.a.org
    endpoint, _ = make_endpoint(org, events=["PointsRedeemed"])
    fund(org, world.a.employees["a-n1"], 300)
    mug = item(org, name="acme mug", cost=50, stock=3)
    with django_capture_on_commit_callbacks(execute=True):
        resp = api(world.users["employee"]).post("/api/v1/redemptions/", {"item": mug.pk}, format="json")
    assert resp.status_code == 201, resp.content
    with tenant_context(org):
        delivery = m.WebhookDelivery.objects.get(endpoint=endpoint)
    assert delivery.event_type == "PointsRedeemed" and delivery.status == S.SUCCEEDED
    data = json.loads(receiver.calls[0].body)["data"]
    assert data["redemption_id"] == resp.json()["id"] and data["points"] == 50


# --- SSRF guard and endpoint validation -----------------------------------------------------------


@pytest.mark.parametrize(
    "address,public",
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),  # noqa: S104
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("224.0.0.1", False),
    ],
)
def test_public_addresses(address, public):
    assert webhooks.is_public_address(address) is public


def test_ssrf_guard_refuses_non_http_schemes(world):
    for url in ("file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "javascript:alert(1)"):
        with pytest.raises(webhooks.UnsafeDestination):
            webhooks.check_url(url)
        with tenant_context(world.a.org), pytest.raises(ValidationError) as exc:
            webhooks.endpoint_create(
                organization=world.a.org, actor=Actor.system(), url=url, event_types=["CaseOpened"]
            )
        assert "url" in exc.value.message_dict
    with pytest.raises(webhooks.DeliveryError):
        webhooks.http_post("file:///etc/passwd", b"{}", {})


def test_ssrf_guard_refuses_loopback_unless_allowed(world, settings, local_receiver):
    org = world.a.org
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    for url in (
        "http://127.0.0.1:8000/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/x",
    ):
        with tenant_context(org), pytest.raises(ValidationError) as exc:
            webhooks.endpoint_create(
                organization=org, actor=Actor.system(), url=url, event_types=["CaseOpened"]
            )
        assert "private" in exc.value.message_dict["url"][0]
    # At send time too, whatever the stored URL: a name resolving to loopback is not connected to.
    with pytest.raises(webhooks.DeliveryError, match="private"):
        webhooks.http_post(local_receiver.url(host="localhost"), b"{}", {})
    with pytest.raises(webhooks.DeliveryError, match="private"):
        webhooks.http_post(local_receiver.url(), b"{}", {})
    assert local_receiver.requests == []
    # Allowed (dev and tests): the same receiver gets it.
    settings.WEBHOOKS_ALLOW_PRIVATE = True
    assert webhooks.http_post(local_receiver.url(), b"{}", {}).status_code == 200
    assert len(local_receiver.requests) == 1


def test_endpoint_validation_names_the_field(world):
    org = world.a.org
    with tenant_context(org):
        for kwargs, field in (
            ({"url": "not a url", "event_types": ["CaseOpened"]}, "url"),
            ({"url": "http://127.0.0.1:9/x", "event_types": []}, "event_types"),
            ({"url": "http://127.0.0.1:9/x", "event_types": ["InteractionRecorded"]}, "event_types"),
        ):
            with pytest.raises(ValidationError) as exc:
                webhooks.endpoint_create(organization=org, actor=Actor.system(), **kwargs)
            assert field in exc.value.message_dict
        assert not m.WebhookEndpoint.objects.exists()


# --- a real receiver over HTTP -------------------------------------------------------------------------


def test_real_http_delivery_verifies_on_the_receiving_side(world, local_receiver):
    org = world.a.org
    endpoint, secret = make_endpoint(org, url=local_receiver.url())
    delivery = make_delivery(org, endpoint, payload={"case_id": 5})
    result = _attempt(org, delivery, timezone.now(), None)
    assert result.status == S.SUCCEEDED and result.last_status_code == 200
    ((headers, body),) = local_receiver.requests
    assert webhooks.verify(secret, headers["CEM-Signature"], body)
    assert headers["User-Agent"] == webhooks.USER_AGENT and json.loads(body)["data"] == {"case_id": 5}


def test_real_http_errors_and_timeouts_are_failures(world, local_receiver, monkeypatch):
    org = world.a.org
    endpoint, _ = make_endpoint(org, url=local_receiver.url())
    local_receiver.status = 500
    delivery = make_delivery(org, endpoint)
    result = _attempt(org, delivery, timezone.now(), None)
    assert result.status == S.FAILED and result.last_status_code == 500
    assert result.last_error.startswith("HTTP 500: boom") and len(result.last_error) <= 500
    # A receiver slower than the read timeout.
    monkeypatch.setattr(webhooks, "READ_TIMEOUT_SECONDS", 0.3)
    local_receiver.status, local_receiver.delay = 200, 1.0
    result = _attempt(org, delivery, result.next_attempt_at, None)
    assert result.status == S.FAILED and result.last_status_code is None
    assert "Timed out" in result.last_error and result.attempts == 2
    # Nobody listening.
    local_receiver.close()
    result = _attempt(org, delivery, result.next_attempt_at, None)
    assert result.status == S.FAILED and result.attempts == 3 and "Connection" in result.last_error


def test_redirects_are_not_followed(world, local_receiver):
    org = world.a.org
    endpoint, _ = make_endpoint(org, url=local_receiver.url())
    local_receiver.status = 302
    delivery = make_delivery(org, endpoint)
    result = _attempt(org, delivery, timezone.now(), None)
    assert result.status == S.FAILED and result.last_status_code == 302 and len(local_receiver.requests) == 1
