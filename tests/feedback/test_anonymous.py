"""Anonymous links / QR codes: public form, ballot-stuffing defence, and the signed-in link pages."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.test import Client, override_settings

from cem import models as m
from cem.ip_hashing import hash_ip
from cem.tenancy import tenant_context, unscoped
from feedback import ballot
from feedback import models as fm


@pytest.fixture
def link(sw):
    world = sw.world
    with tenant_context(world.a.org):
        return fm.AnonymousLink.objects.create(
            organization=world.a.org,
            survey=sw.survey,
            location=world.a.locations["a-n2"],
            touchpoint=world.a.touchpoint,
        )


def url_of(link) -> str:
    return f"/r/a/{link.token}/"


def responses():
    with unscoped():
        return list(fm.Response.objects.all())


def test_get_creates_nothing_and_issues_a_device_cookie(sw, client, link):
    with unscoped():
        before = (fm.Response.objects.count(), fm.Answer.objects.count(), m.OutboxEvent.objects.count())
    resp = client.get(url_of(link))
    assert resp.status_code == 200 and 'data-testid="question-nps"' in resp.content.decode()
    assert ballot.DEVICE_COOKIE in resp.cookies and resp.cookies[ballot.DEVICE_COOKIE]["httponly"]
    with unscoped():
        after = (fm.Response.objects.count(), fm.Answer.objects.count(), m.OutboxEvent.objects.count())
    assert after == before


def test_post_stores_a_qr_response_with_the_link_dimensions(sw, client, link):
    client.get(url_of(link))
    resp = client.post(url_of(link), {"q-nps": "8", "q-comment": "quick"}, REMOTE_ADDR="203.0.113.7")
    assert resp.status_code == 200 and 'data-testid="thank-you"' in resp.content.decode()
    [response] = responses()
    world = sw.world
    assert response.organization_id == world.a.org.pk and response.source == "qr"
    assert response.location_id == world.a.locations["a-n2"].pk
    assert response.touchpoint_id == world.a.touchpoint.pk and response.channel_id == world.a.channel.pk
    assert response.category == "critical"
    assert len(response.device_hash) == 64 and len(response.ip_hash) == 64
    assert "203.0.113.7" not in response.ip_hash and response.ip_hash == hash_ip("203.0.113.7")
    # The same device sees a friendly notice on its next visit today.
    again = client.get(url_of(link))
    assert 'data-testid="notice-today"' in again.content.decode()


# The per-address limits (the survey's and cem.public_throttle's) would answer most of them 429
# first: lifted, so the device guard alone is under test.
@override_settings(
    FEEDBACK_PUBLIC_IP_LIMIT_PER_HOUR=100_000, PUBLIC_RATE_LIMITS={"respond_post": (10_000, 600)}
)
def test_a_thousand_posts_from_one_device_count_once(sw, client, link):
    client.get(url_of(link))
    statuses = {}
    for i in range(1000):
        resp = client.post(url_of(link), {"q-nps": str(i % 11)})
        statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
    assert statuses == {200: 1, 409: 999}
    assert len(responses()) == 1
    assert 'data-testid="notice-today"' in resp.content.decode()


def test_device_may_answer_again_the_next_local_day(sw, client, link):
    client.post(url_of(link), {"q-nps": "9"})
    with tenant_context(sw.world.a.org):
        fm.Response.objects.update(submitted_at=fm.Response.objects.get().submitted_at - dt.timedelta(days=1))
    resp = client.post(url_of(link), {"q-nps": "7"})
    assert 'data-testid="thank-you"' in resp.content.decode()
    assert len(responses()) == 2


def test_forged_device_cookie_is_replaced(sw, client, link):
    client.cookies[ballot.DEVICE_COOKIE] = "chosen-by-me"
    resp = client.post(url_of(link), {"q-nps": "9"})
    assert ballot.device_id_from(resp.cookies[ballot.DEVICE_COOKIE].value) is not None
    [response] = responses()
    assert response.device_hash != ballot.device_hash("chosen-by-me")


def test_per_ip_limit_is_a_429_with_retry_after(sw, link):
    limit = ballot.ip_limit()
    for _ in range(limit):  # fresh devices (cleared cookies), one address
        resp = Client().post(url_of(link), {"q-nps": "10"}, REMOTE_ADDR="198.51.100.9")
        assert resp.status_code == 200
    resp = Client().post(url_of(link), {"q-nps": "10"}, REMOTE_ADDR="198.51.100.9")
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0
    assert 'data-testid="notice-slow_down"' in resp.content.decode()
    assert len(responses()) == limit
    # Another address is not affected.
    assert Client().post(url_of(link), {"q-nps": "10"}, REMOTE_ADDR="198.51.100.10").status_code == 200


def test_inactive_link_or_inactive_survey_is_closed(sw, client, link):
    with tenant_context(sw.world.a.org):
        fm.AnonymousLink.objects.filter(pk=link.pk).update(active=False)
    resp = client.get(url_of(link))
    assert resp.status_code == 410 and 'data-testid="notice-closed"' in resp.content.decode()
    with tenant_context(sw.world.a.org):
        fm.AnonymousLink.objects.filter(pk=link.pk).update(active=True)
        fm.Survey.objects.filter(pk=sw.survey.pk).update(status="draft")
    assert client.post(url_of(link), {"q-nps": "9"}).status_code == 410
    assert responses() == []


def test_browser_language_and_fallback(sw, client, link):
    html = client.get(url_of(link), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "¿Qué probabilidad hay de que nos recomiende?" in html
    assert "How easy was it to find what you needed?" in html  # no Spanish text for "ces"


def test_link_of_org_a_never_shows_or_writes_org_b(sw, client, link):
    world = sw.world
    with tenant_context(world.b.org):
        fm.Question.objects.filter(version__survey=sw.survey_b).update(text={"en": "Beta secret question"})
        b_ids = list(fm.Question.objects.filter(version__survey=sw.survey_b).values_list("pk", flat=True))
        link_b = fm.AnonymousLink.objects.create(
            organization=world.b.org, survey=sw.survey_b, location=world.b.locations["b-1"]
        )
    client.force_login(world.users["outsider"])  # tenant B in the session must not matter
    html = client.get(url_of(link)).content.decode()
    assert "Beta secret question" not in html and "Store visit" in html
    resp = client.post(url_of(link), {"q-nps": "9", **{f"q-{pk}": "5" for pk in b_ids}})
    assert resp.status_code == 400
    assert responses() == []
    client.post(url_of(link), {"q-nps": "9"})
    assert [(r.organization_id, r.survey_id) for r in responses()] == [(world.a.org.pk, sw.survey.pk)]
    html = Client().get(url_of(link_b)).content.decode()
    assert "Beta secret question" in html and "Store visit" not in html


# --- signed-in pages ------------------------------------------------------------------------


def test_admin_lists_creates_and_downloads_qr_codes(sw, client, link):
    world = sw.world
    client.force_login(world.users["admin"])
    resp = client.get(f"/feedback/links/{sw.survey.pk}/")
    html = resp.content.decode()
    assert resp.status_code == 200 and link.token in html and 'data-testid="qr-png"' in html

    resp = client.post(
        f"/feedback/links/{sw.survey.pk}/new/",
        {"location": world.a.locations["a-s1"].pk, "touchpoint": world.a.touchpoint.pk},
    )
    assert resp.status_code == 302
    client.post(
        f"/feedback/links/{sw.survey.pk}/new/",
        {"location": world.a.locations["a-s1"].pk, "touchpoint": world.a.touchpoint.pk},
    )
    with tenant_context(world.a.org):
        assert fm.AnonymousLink.objects.filter(location=world.a.locations["a-s1"]).count() == 1
        assert m.AuditLog.objects.filter(action="anonymous_link.create").count() == 1

    png = client.get(f"/feedback/links/link/{link.pk}/qr.png")
    assert png.status_code == 200 and png["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG") and "attachment" in png["Content-Disposition"]
    svg = client.get(f"/feedback/links/link/{link.pk}/qr.svg")
    assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    poster = client.get(f"/feedback/links/link/{link.pk}/print/").content.decode()
    assert "<svg" in poster and link.token in poster and "<script" not in poster

    client.post(f"/feedback/links/link/{link.pk}/active/", {"active": "0"})
    assert Client().get(url_of(link)).status_code == 410


def test_link_pages_respect_role_scope_and_tenant(sw, client, link):
    world = sw.world
    client.force_login(world.users["manager"])  # store a-n1: may view, not change; link is at a-n2
    html = client.get(f"/feedback/links/{sw.survey.pk}/").content.decode()
    assert link.token not in html
    assert client.get(f"/feedback/links/link/{link.pk}/qr.png").status_code == 404
    resp = client.post(f"/feedback/links/{sw.survey.pk}/new/", {"location": world.a.locations["a-n1"].pk})
    assert resp.status_code == 403
    client.force_login(world.users["outsider"])
    for url in (
        f"/feedback/links/{sw.survey.pk}/",
        f"/feedback/links/link/{link.pk}/qr.svg",
        f"/feedback/links/link/{link.pk}/print/",
    ):
        assert client.get(url).status_code == 404
    assert client.post(f"/feedback/links/link/{link.pk}/active/", {"active": "0"}).status_code == 404
    with tenant_context(world.a.org):
        assert fm.AnonymousLink.objects.get(pk=link.pk).active


@pytest.mark.django_db(transaction=True)
@override_settings(FEEDBACK_PUBLIC_IP_LIMIT_PER_HOUR=1000)
def test_concurrent_posts_from_one_device_count_once(sw, link):
    """The advisory lock serialises check + insert: simultaneous submissions cannot both count."""
    token = ballot.new_device_token()
    barrier = threading.Barrier(8)
    results = []

    def submit():
        c = Client()
        c.cookies[ballot.DEVICE_COOKIE] = token
        barrier.wait()
        results.append(c.post(url_of(link), {"q-nps": "9"}).status_code)
        connection.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [409] * 7
    assert len(responses()) == 1
