"""Every endpoint that answers without a sign-in is rate-limited: past its limit it answers 429
with a Retry-After, and another address is not affected.

Limits are lowered through their settings so each case takes a handful of requests; the
numbers in force are in cem/public_throttle.py, feedback/ballot.py (per survey and address),
audits/public_application.py and django-axes (per account and address).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.tokens import new_token
from feedback.unsubscribe import unsubscribe_token
from tests.conftest import PASSWORD
from tests.feedback.conftest import make_survey

SHOP = "https://shop.acme.example"
ADDRESS, OTHER_ADDRESS = "203.0.113.7", "203.0.113.8"
APPLICATION = {
    "name": "Ana Diaz",
    "phone": "+34 600 000 000",
    "home_area": "Madrid centro",
    "radius_km": "30",
    "languages": "es, en",
    "availability": ["weekend"],
    "consent": "on",
}


class Public:
    """Org A's public links: one of each kind."""

    def __init__(self, world):
        org = world.a.org
        self.world = world
        self.survey, version, _ = make_survey(org, name="Public limits")
        with tenant_context(org):
            fm.Survey.objects.filter(pk=self.survey.pk).update(allowed_origins=[SHOP])
            self.link = fm.AnonymousLink.objects.create(
                organization=org, survey=self.survey, location=world.a.locations["a-n1"]
            )
            self.invitation_token, hashed = new_token()
            fm.Invitation.objects.create(
                organization=org,
                survey=self.survey,
                version=version,
                location=world.a.locations["a-n1"],
                delivery_channel="email",
                token_hash=hashed,
                status=fm.Invitation.Status.SENT,
                send_at=timezone.now(),
                expires_at=timezone.now() + dt.timedelta(days=7),
            )
        self.unsubscribe = unsubscribe_token(org.pk, world.a.customer.pk)
        from tests.learning import factories as lf

        with tenant_context(org):
            from learning.models import PathCertificate

            self.certificate = PathCertificate.objects.create(
                organization=org,
                path=lf.LearningPathFactory(organization=org, name="limits path"),
                learner_name="Ana",
                issued_at=timezone.now(),
            )


@pytest.fixture
def public(world):
    return Public(world)


def _client(address=ADDRESS) -> Client:
    return Client(REMOTE_ADDR=address)


def _assert_limited(resp):
    assert resp.status_code == 429, (resp.status_code, resp.content[:300])
    assert int(resp["Retry-After"]) >= 1
    assert b"Traceback" not in resp.content


def _run(send, allowed: int, *, ok=lambda r: r.status_code < 429):
    """``allowed`` requests pass, the next is a 429 with Retry-After; another address still passes."""
    for i in range(allowed):
        resp = send(_client(), i)
        assert ok(resp), (i, resp.status_code, resp.content[:300])
    _assert_limited(send(_client(), allowed))
    resp = send(_client(OTHER_ADDRESS), allowed + 1)
    assert ok(resp), (resp.status_code, resp.content[:300])


# --- survey respondents ----------------------------------------------------------------------


def test_invitation_post(public, settings):
    settings.PUBLIC_RATE_LIMITS = {"respond_post": (3, 600)}
    url = f"/r/i/{public.invitation_token}/"
    _run(lambda c, i: c.post(url, {}), 3)


def test_anonymous_link_post_page_cap(public, settings):
    settings.PUBLIC_RATE_LIMITS = {"respond_post": (3, 600)}
    url = f"/r/a/{public.link.token}/"
    _run(lambda c, i: c.post(url, {}), 3)


def test_anonymous_link_answers_per_survey_cap(public, settings):
    settings.FEEDBACK_PUBLIC_IP_LIMIT_PER_HOUR = 2
    url = f"/r/a/{public.link.token}/"
    # Fresh clients: a new device each time, so only the address cap stops them.
    _run(lambda c, i: c.post(url, {"q-nps": "9"}), 2)


def test_widget_post(public, settings):
    settings.FEEDBACK_PUBLIC_IP_LIMIT_PER_HOUR = 2
    key = public.survey.public_key

    def send(client, i):
        device = client.get(f"/r/w/{key}/survey.json", HTTP_ORIGIN=SHOP).json()["device"]
        body = json.dumps({"answers": {"nps": 9}, "device": device})
        return client.post(f"/r/w/{key}/responses", body, content_type="application/json", HTTP_ORIGIN=SHOP)

    _run(send, 2, ok=lambda r: r.status_code == 201)


@pytest.mark.parametrize("prefix", ["/r/i/", "/r/a/"])
def test_unknown_respondent_tokens_then_even_a_real_one_is_refused(public, settings, prefix):
    settings.PUBLIC_RATE_LIMITS = {"unknown_token": (3, 600)}
    for _ in range(3):
        assert _client().get(f"{prefix}{uuid.uuid4().hex}/").status_code == 404
    real = f"/r/i/{public.invitation_token}/" if prefix == "/r/i/" else f"/r/a/{public.link.token}/"
    _assert_limited(_client().get(real))  # a found token answers the same as a guessed one now
    assert _client(OTHER_ADDRESS).get(real).status_code == 200


# --- other public pages ------------------------------------------------------------------------


def test_shopper_application(public, settings):
    settings.AUDITS_APPLY_IP_LIMIT_PER_HOUR = 2
    send = lambda c, i: c.post("/shop/acme/apply/", {**APPLICATION, "email": f"p{i}@example.com"})  # noqa: E731
    _run(send, 2, ok=lambda r: r.status_code == 201)


def test_certificate_verify(public, settings):
    settings.PUBLIC_RATE_LIMITS = {"certificate_verify": (3, 600)}
    url = f"/learning/certificates/verify/{public.certificate.code}/"
    _run(lambda c, i: c.get(url), 3, ok=lambda r: r.status_code == 200)


def test_certificate_codes_that_match_nothing(public, settings):
    settings.PUBLIC_RATE_LIMITS = {"unknown_token": (3, 600)}
    for _ in range(3):
        assert _client().get(f"/learning/certificates/verify/{uuid.uuid4()}/").status_code == 404
    _assert_limited(_client().get(f"/learning/certificates/verify/{public.certificate.code}/"))


def test_unsubscribe(public, settings):
    settings.PUBLIC_RATE_LIMITS = {"unsubscribe": (3, 600)}
    url = f"/r/u/{public.unsubscribe}/"
    _run(lambda c, i: c.get(url), 3, ok=lambda r: r.status_code == 200)


def test_tampered_unsubscribe_tokens(public, settings):
    settings.PUBLIC_RATE_LIMITS = {"unknown_token": (3, 600)}
    for i in range(3):
        assert _client().post(f"/r/u/{public.unsubscribe[:-3]}x{i}y/").status_code == 404
    _assert_limited(_client().post(f"/r/u/{public.unsubscribe}/"))
    with tenant_context(public.world.a.org):
        public.world.a.customer.refresh_from_db()
        assert public.world.a.customer.opted_out_at is None


# --- sign-in -------------------------------------------------------------------------------------


def test_login_from_one_address_across_accounts(world, settings):
    settings.PUBLIC_RATE_LIMITS = {"login": (3, 600)}
    names = ["manager@acme.test", "admin@acme.test", "employee@acme.test", "trainer@acme.test"]
    send = lambda c, i: c.post("/login/", {"username": names[i % 4], "password": "wrong-password"})  # noqa: E731
    _run(send, 3, ok=lambda r: r.status_code == 200)
    # Limited means refused: the right password is not even checked.
    resp = _client().post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    _assert_limited(resp)
    assert "Too many sign-in attempts from your network" in resp.content.decode()


def test_login_lockout_per_account_has_retry_after(world, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = _client()
    for _ in range(2):
        resp = client.post("/login/", {"username": "manager@acme.test", "password": "wrong-password"})
    _assert_limited(resp)
    assert 60 <= int(resp["Retry-After"]) <= 15 * 60


# --- nothing public is left out -------------------------------------------------------------------

COVERED = {
    "respond_invitation": "test_invitation_post, test_unknown_respondent_tokens_…",
    "respond_anonymous": "test_anonymous_link_*",
    "widget_submit": "test_widget_post",
    "shopper_apply": "test_shopper_application",
    "learning_certificate_verify": "test_certificate_*",
    "unsubscribe": "test_unsubscribe, test_tampered_unsubscribe_tokens",
    "login": "test_login_*",
    "password_reset": "test_password_reset.py: test_reset_requests_are_limited_per_network, …_per_inbox_…",
    "password_reset_confirm": "test_password_reset.py: test_a_tampered_link_is_refused_and_counted",
    "password_set": "the same view and unknown_token limit as password_reset_confirm",
}
EXEMPT = {
    # Public by design (the key sits in the host page), the same answer for everyone; each
    # submission it enables is capped per address and survey (test_widget_post).
    "widget_survey": "no secret, no write",
    # Reached only with a session that passed the password; wrong codes count as axes failures.
    "login_code": "behind the password step",
}
PUBLIC_PARAMS = {"token", "public_key", "code", "org_slug"}


def _patterns(resolver=None, prefix=""):
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def test_every_public_route_is_covered():
    found = {}
    for route, pattern in _patterns():
        params = set(getattr(pattern.pattern, "converters", {}))
        if params & PUBLIC_PARAMS or pattern.name in {"login", "login_code", "password_reset"}:
            found[pattern.name] = route
    assert set(found) == set(COVERED) | set(EXEMPT), found
