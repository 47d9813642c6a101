"""Webhook pages (/manage/webhooks/…): list, create with the secret once, edit, rotate, disable,
the delivery log with redeliver (POST + CSRF), scope and query counts."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from cem import models as m
from cem import webhooks
from cem.tenancy import tenant_context
from tests.webhooks_support import (  # noqa: F401 - fixtures
    make_delivery,
    make_endpoint,
    receiver_fixture,
)

S = m.WebhookDelivery.Status


def _admin(client, world):
    client.force_login(world.users["admin"])
    return client


def test_nav_and_list(world, client):
    endpoint, secret = make_endpoint(
        world.a.org, description="acme CRM", events=["CaseOpened", "AuditPublished"]
    )
    make_delivery(world.a.org, endpoint)
    resp = _admin(client, world).get(reverse("webhooks"))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert f'href="{reverse("webhooks")}"' in html  # nav entry
    assert endpoint.url in html and "acme CRM" in html and "AuditPublished" in html
    assert secret not in html and endpoint.secret_hint in html
    # One delivery waiting.
    assert '<td data-label="Waiting" data-testid="waiting">1</td>' in html


def test_roles_without_webhooks_get_no_link_and_403(world, client):
    client.force_login(world.users["manager"])
    home = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("webhooks")}"' not in home
    assert client.get(reverse("webhooks")).status_code == 403


def test_create_shows_the_secret_once(world, client):
    _admin(client, world)
    form = client.get(reverse("webhook_create")).content.decode()
    assert 'name="url"' in form and 'value="AlignmentThresholdCrossed"' in form
    assert 'name="active"' not in form
    resp = client.post(
        reverse("webhook_create"),
        {
            "url": "http://127.0.0.1:9/acme-new",
            "description": "ERP",
            "event_types": ["LessonAssigned", "PointsRedeemed"],
        },
    )
    assert resp.status_code == 200 and resp["Cache-Control"] == "no-store"
    with tenant_context(world.a.org):
        endpoint = m.WebhookEndpoint.objects.get(url="http://127.0.0.1:9/acme-new")
    assert endpoint.secret in resp.content.decode()
    assert (
        endpoint.event_types == ["LessonAssigned", "PointsRedeemed"]
        and endpoint.created_by == world.users["admin"]
    )
    detail = client.get(reverse("webhook_detail", args=[endpoint.pk])).content.decode()
    assert endpoint.secret not in detail


def test_create_errors_name_the_field(world, client, settings):
    _admin(client, world)
    resp = client.post(
        reverse("webhook_create"), {"url": "file:///etc/passwd", "event_types": ["CaseOpened"]}
    )
    assert resp.status_code == 200 and 'data-testid="error-url"' in resp.content.decode()
    resp = client.post(reverse("webhook_create"), {"url": "http://127.0.0.1:9/x"})
    assert 'data-testid="error-event_types"' in resp.content.decode()
    settings.WEBHOOKS_ALLOW_PRIVATE = False
    resp = client.post(
        reverse("webhook_create"), {"url": "http://127.0.0.1:9/x", "event_types": ["CaseOpened"]}
    )
    assert 'data-testid="error-url"' in resp.content.decode() and "private" in resp.content.decode()
    with tenant_context(world.a.org):
        assert not m.WebhookEndpoint.objects.exists()


def test_edit_subscribed_events(world, client):
    endpoint, _ = make_endpoint(world.a.org)
    _admin(client, world)
    page = client.get(reverse("webhook_edit", args=[endpoint.pk]))
    assert page.status_code == 200 and endpoint.url in page.content.decode()
    resp = client.post(
        reverse("webhook_edit", args=[endpoint.pk]),
        {"url": endpoint.url, "description": "now audits", "event_types": ["AuditPublished"], "active": "on"},
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    with tenant_context(world.a.org):
        endpoint.refresh_from_db()
    assert (
        endpoint.event_types == ["AuditPublished"]
        and endpoint.description == "now audits"
        and endpoint.active
    )


def test_rotate_shows_the_new_secret_once(world, client):
    endpoint, old = make_endpoint(world.a.org)
    _admin(client, world)
    assert client.get(reverse("webhook_rotate", args=[endpoint.pk])).status_code == 200
    resp = client.post(reverse("webhook_rotate", args=[endpoint.pk]))
    assert resp.status_code == 200 and resp["Cache-Control"] == "no-store"
    with tenant_context(world.a.org):
        endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.secret in resp.content.decode()


def test_disable(world, client):
    endpoint, _ = make_endpoint(world.a.org)
    delivery = make_delivery(world.a.org, endpoint)
    _admin(client, world)
    resp = client.post(reverse("webhook_disable", args=[endpoint.pk]))
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        endpoint.refresh_from_db()
        assert not endpoint.active
        assert m.WebhookDelivery.objects.get(pk=delivery.pk).status == S.GAVE_UP


def test_delivery_log_and_redeliver_with_csrf(world, receiver):
    org = world.a.org
    endpoint, _ = make_endpoint(org)
    delivery = make_delivery(org, endpoint)
    with tenant_context(org):
        webhooks.attempt(delivery.pk, transport=lambda *a: webhooks.Reply(503, "busy"))
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["admin"])
    page = client.get(reverse("webhook_detail", args=[endpoint.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="delivery-status"' in html and "Failed (will retry)" in html
    assert '<td data-label="Attempts" data-testid="attempts">1</td>' in html
    assert '<td data-label="Last code" data-testid="last-code">503</td>' in html
    redeliver_url = reverse("webhook_redeliver", args=[delivery.pk])
    assert f'action="{redeliver_url}"' in html and "csrfmiddlewaretoken" in html

    assert client.post(redeliver_url).status_code == 403  # no CSRF token
    assert client.get(redeliver_url).status_code == 405
    token = page.context["csrf_token"]
    resp = client.post(redeliver_url, {"csrfmiddlewaretoken": str(token)}, follow=True)
    assert resp.status_code == 200 and "Delivered event" in resp.content.decode()
    with tenant_context(org):
        stored = m.WebhookDelivery.objects.get(pk=delivery.pk)
    assert stored.status == S.SUCCEEDED and stored.attempts == 2 and len(receiver.calls) == 1
    # Filter by status.
    failed_only = client.get(
        reverse("webhook_detail", args=[endpoint.pk]) + "?status=failed"
    ).content.decode()
    assert 'data-testid="empty"' in failed_only


def test_org_b_gets_404_on_org_a_webhooks(world, client, receiver):
    endpoint, _ = make_endpoint(world.a.org)
    delivery = make_delivery(world.a.org, endpoint)
    client.force_login(world.users["outsider"])
    assert endpoint.url not in client.get(reverse("webhooks")).content.decode()
    for name in ("webhook_detail", "webhook_edit", "webhook_rotate", "webhook_disable", "webhook_delete"):
        assert client.get(reverse(name, args=[endpoint.pk])).status_code == 404, name
        assert client.post(reverse(name, args=[endpoint.pk])).status_code in (404, 405), name
    assert client.post(reverse("webhook_redeliver", args=[delivery.pk])).status_code == 404
    assert receiver.calls == []
    with tenant_context(world.a.org):
        endpoint.refresh_from_db()
        assert endpoint.active and m.WebhookDelivery.objects.get(pk=delivery.pk).attempts == 0


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    assert resp.status_code == 200
    return len(ctx)


def test_page_query_counts_do_not_grow(world, client):
    org = world.a.org
    endpoint, _ = make_endpoint(org, events=list(webhooks.WEBHOOK_EVENTS))
    make_delivery(org, endpoint)
    _admin(client, world)
    urls = [reverse("webhooks"), reverse("webhook_detail", args=[endpoint.pk])]
    small = {u: _queries(client, u) for u in urls}
    for n in range(12):
        make_endpoint(org, url=f"http://127.0.0.1:9/more-{n}")
        make_delivery(org, endpoint, list(webhooks.WEBHOOK_EVENTS)[n % 5])
    large = {u: _queries(client, u) for u in urls}
    assert large == small
    assert max(large.values()) <= 14, large
