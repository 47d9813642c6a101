"""Webhook API: CRUD with the secret shown once, rotation, the delivery log, redelivery, isolation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cem import models as m
from cem import webhooks
from cem.tenancy import tenant_context
from tests.webhooks_support import (  # noqa: F401 - fixtures
    make_delivery,
    make_endpoint,
    receiver_fixture,
)

URL = "/api/v1/webhooks/"
DELIVERIES = "/api/v1/webhook-deliveries/"
S = m.WebhookDelivery.Status


def _create(client, **body):
    payload = {"url": "http://127.0.0.1:9/acme-hook", "event_types": ["CaseOpened"], **body}
    return client.post(URL, payload, format="json")


def test_create_shows_the_secret_once(world, api):
    client = api(world.users["admin"])
    resp = _create(client, description="CRM", event_types=["CaseOpened", "PointsRedeemed"])
    assert resp.status_code == 201, resp.content
    body = resp.json()
    secret = body["secret"]
    assert secret.startswith("whsec_") and body["secret_hint"] == f"whsec_…{secret[-4:]}"
    assert body["event_types"] == ["CaseOpened", "PointsRedeemed"] and body["active"] is True
    assert body["created_by"] == world.users["admin"].pk
    detail = client.get(f"{URL}{body['id']}/")
    assert detail.status_code == 200 and "secret" not in detail.json()
    assert secret not in detail.content.decode() and secret not in client.get(URL).content.decode()
    with tenant_context(world.a.org):
        assert m.WebhookEndpoint.objects.get(pk=body["id"]).secret == secret
        log = m.AuditLog.objects.get(action="webhook.create", object_id=str(body["id"]))
        assert secret not in str(log.changes)


def test_integrator_key_manages_webhooks(world, api):
    client = api(key=world.a.api_key)
    resp = _create(client)
    assert resp.status_code == 201, resp.content
    assert resp.json()["created_by"] is None
    assert client.get(URL).json()["count"] == 1


@pytest.mark.parametrize(
    "body,field",
    [
        ({"url": "file:///etc/passwd"}, "url"),
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["InteractionRecorded"]}, "event_types"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(world, api, body, field):
    resp = _create(api(world.users["admin"]), **body)
    assert resp.status_code == 400 and field in resp.json(), resp.content
    with tenant_context(world.a.org):
        assert not m.WebhookEndpoint.objects.exists()


def test_private_addresses_refused_when_not_allowed(world, api, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    resp = _create(api(world.users["admin"]), url="http://127.0.0.1:8080/hook")
    assert resp.status_code == 400 and "private" in resp.json()["url"][0]


def test_update_rotate_disable_delete(world, api):
    client = api(world.users["admin"])
    created = _create(client).json()
    url = f"{URL}{created['id']}/"
    resp = client.patch(url, {"event_types": ["AuditPublished", "LessonAssigned"]}, format="json")
    assert resp.status_code == 200 and resp.json()["event_types"] == ["AuditPublished", "LessonAssigned"]
    resp = client.patch(url, {"url": "gopher://x/"}, format="json")
    assert resp.status_code == 400 and "url" in resp.json()

    rotated = client.post(f"{url}rotate-secret/", {"overlap_hours": 0}, format="json")
    assert rotated.status_code == 200, rotated.content
    assert (
        rotated.json()["secret"] != created["secret"] and rotated.json()["previous_secret_expires_at"] is None
    )
    overlapping = client.post(f"{url}rotate-secret/", {}, format="json").json()
    assert overlapping["previous_secret_expires_at"] is not None
    assert client.post(f"{url}rotate-secret/", {"overlap_hours": -1}, format="json").status_code == 400

    assert client.patch(url, {"active": False}, format="json").json()["active"] is False
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="webhook.update", object_id=str(created["id"])).count() == 2
    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404


def test_event_types_catalogue(world, api):
    resp = api(world.users["admin"]).get(f"{URL}event-types/")
    assert resp.status_code == 200
    assert [row["type"] for row in resp.json()] == list(webhooks.WEBHOOK_EVENTS)


def test_delivery_log_and_redeliver(world, api, receiver):
    org = world.a.org
    endpoint, secret = make_endpoint(org, events=["CaseOpened", "AuditPublished"])
    first = make_delivery(org, endpoint, "CaseOpened")
    second = make_delivery(org, endpoint, "AuditPublished")
    client = api(world.users["admin"])

    log = client.get(f"{URL}{endpoint.pk}/deliveries/")
    assert log.status_code == 200
    rows = log.json()["results"]
    assert [r["id"] for r in rows] == [second.pk, first.pk]
    assert {
        "status",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "last_response_ms",
    } <= set(rows[0])
    only = client.get(f"{URL}{endpoint.pk}/deliveries/?event_type=AuditPublished").json()["results"]
    assert [r["id"] for r in only] == [second.pk]
    assert client.get(f"{DELIVERIES}?status=pending").json()["results"][0]["status"] == "pending"

    receiver.codes = [500]
    resp = client.post(f"{DELIVERIES}{first.pk}/redeliver/")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["attempts"] == 1 and body["status"] == "failed" and body["last_status_code"] == 500
    assert body["next_attempt_at"] is not None
    receiver.codes = [200]
    body = client.post(f"{DELIVERIES}{first.pk}/redeliver/").json()
    assert body["attempts"] == 2 and body["status"] == "succeeded" and body["delivered_at"]
    assert len(receiver.calls) == 2
    assert webhooks.verify(secret, receiver.calls[-1].headers["CEM-Signature"], receiver.calls[-1].body)


def test_redeliver_with_idempotency_key_sends_once(world, api, receiver):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    client = api(world.users["admin"])
    for _ in range(2):
        resp = client.post(f"{DELIVERIES}{delivery.pk}/redeliver/", HTTP_IDEMPOTENCY_KEY="redeliver-1")
        assert resp.status_code == 200
    assert len(receiver.calls) == 1


def test_roles_without_webhooks_are_refused(world, api):
    endpoint, _ = make_endpoint(world.a.org)
    for persona in ("manager", "executive", "trainer", "employee"):
        client = api(world.users[persona])
        assert client.get(URL).status_code == 403, persona
        assert client.get(f"{URL}{endpoint.pk}/deliveries/").status_code == 403, persona
        assert _create(client).status_code == 403, persona


@pytest.mark.parametrize("auth", ["session", "key"])
def test_org_b_cannot_see_or_redeliver_org_a(world, api, receiver, auth):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    client = api(world.users["outsider"]) if auth == "session" else api(key=world.b.api_key)
    assert client.get(URL).json()["count"] == 0
    assert client.get(DELIVERIES).json()["results"] == []
    assert client.get(f"{URL}{endpoint.pk}/").status_code == 404
    assert client.get(f"{URL}{endpoint.pk}/deliveries/").status_code == 404
    assert client.post(f"{URL}{endpoint.pk}/rotate-secret/", {}, format="json").status_code == 404
    assert client.patch(f"{URL}{endpoint.pk}/", {"active": False}, format="json").status_code == 404
    assert client.delete(f"{URL}{endpoint.pk}/").status_code == 404
    assert client.get(f"{DELIVERIES}{delivery.pk}/").status_code == 404
    assert client.post(f"{DELIVERIES}{delivery.pk}/redeliver/").status_code == 404
    assert receiver.calls == []
    with tenant_context(org):
        stored = m.WebhookDelivery.objects.get(pk=delivery.pk)
        assert stored.attempts == 0 and stored.status == S.PENDING
        assert m.WebhookEndpoint.objects.get(pk=endpoint.pk).active


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200, (url, resp.status_code)
    return len(ctx)


def test_list_query_counts_do_not_grow(world, api):
    org = world.a.org
    client = api(world.users["admin"])
    endpoint, _ = make_endpoint(org, events=list(webhooks.WEBHOOK_EVENTS))
    make_delivery(org, endpoint)
    urls = [URL, DELIVERIES, f"{URL}{endpoint.pk}/deliveries/"]
    small = {u: _queries(client, u) for u in urls}
    for n in range(12):
        make_endpoint(org, url=f"http://127.0.0.1:9/more-{n}")
        make_delivery(org, endpoint, list(webhooks.WEBHOOK_EVENTS)[n % 5])
    large = {u: _queries(client, u) for u in urls}
    assert large == small
    assert max(large.values()) <= 8, large
