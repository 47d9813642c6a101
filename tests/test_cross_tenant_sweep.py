"""Org B's user and API key against every route that exists, holding org A's ids.

The sweep walks the DRF router and the page URL conf, so a route added later is swept without
anyone editing this file. Every piece of org A's data carries "acme" in a name or code, so
"no data" is checked on the raw bytes of each response.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.routers import DefaultRouter

from cem import models as m
from cem.api.urls import router
from cem.passwords import invitation_token_generator
from cem.tenancy import tenant_context, tenant_models, unscoped
from tests import factories as f

MARK = b"acme"
PUBLIC_TOKEN_PARAMS = {"token", "public_key", "uidb64"}
WRITE_METHODS = ("patch", "put", "delete")


def _fingerprint() -> str:
    """A digest of every tenant row of org A, to prove nothing changed."""
    digest = hashlib.sha256()
    with unscoped():
        for model in sorted(tenant_models(), key=lambda mm: mm._meta.db_table):
            if model in (m.IdempotencyRecord, m.ApiKey):
                # last_used_at of B's key and B's idempotency rows change legitimately.
                continue
            field = "id" if model is m.Organization else "organization"
            rows = model.objects.filter(**{field: _org_a_id}).order_by("pk").values()
            digest.update(json.dumps(list(rows), default=str, sort_keys=True).encode())
        keys = (
            m.ApiKey.objects.filter(organization_id=_org_a_id)
            .order_by("pk")
            .values("pk", "revoked_at", "name")
        )
        digest.update(json.dumps(list(keys), default=str).encode())
    return digest.hexdigest()


_org_a_id = None


def _populators():
    import importlib
    import pkgutil

    import tests

    found = []
    for info in pkgutil.walk_packages(tests.__path__, prefix="tests."):
        if info.name.rsplit(".", 1)[-1].startswith("sweep_"):
            found.append(importlib.import_module(info.name).populate)
    return found


@pytest.fixture
def sweep_world(world, api):
    """Make sure org A has at least one row of every model behind a route."""
    global _org_a_id
    _org_a_id = world.a.org.pk
    org = world.a.org
    f.SegmentFactory(organization=org, name="acme-segment")
    f.BrandMessageFactory(organization=org, title="acme-brand")
    f.TeamFactory(organization=org, name="acme-team", location=world.a.locations["a-n1"])
    # Each app adds rows for its own routes in a tests/<app>/sweep_<area>.py with populate(world).
    for populate in _populators():
        populate(world)
    # One write through the API leaves an audit-log row and an outbox event in org A.
    resp = api(key=world.a.api_key).post(
        "/api/v1/interactions/",
        {
            "external_id": "acme-sweep-1",
            "occurred_at": "2026-01-01T10:00:00Z",
            "location": "a-n1",
            "touchpoint": "checkout",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    return world


def _a_object_for(model):
    with tenant_context(_org_a_id):
        obj = model.objects.order_by("pk").first()
    assert obj is not None, f"Org A has no {model.__name__}: add one to sweep_world so its routes are swept"
    return obj


def _routes():
    yield from router.registry


def _clients(world, api):
    return {"session": api(world.users["outsider"]), "key": api(key=world.b.api_key)}


@pytest.mark.parametrize("auth", ["session", "key"])
def test_every_api_route_hides_org_a(sweep_world, api, auth):
    world = sweep_world
    client = _clients(world, api)[auth]
    before = _fingerprint()
    swept = []
    for prefix, viewset, _basename in _routes():
        model = viewset.queryset.model
        obj = _a_object_for(model)
        base = f"/api/v1/{prefix}/"

        # List: B sees no A rows; filters with A's ids find nothing.
        resp = client.get(base)
        assert resp.status_code in (200, 403), (base, resp.status_code)
        assert MARK not in resp.content.lower(), f"{base} leaked org A data"

        detail = f"{base}{obj.pk}/"
        resp = client.get(detail)
        assert resp.status_code in (403, 404), (detail, resp.status_code, resp.content[:200])
        assert MARK not in resp.content.lower()
        for method in WRITE_METHODS:
            resp = getattr(client, method)(detail, {"name": "hijacked", "title": "hijacked"}, format="json")
            assert resp.status_code in (403, 404, 405), (method, detail, resp.status_code, resp.content[:200])

        for extra in viewset.get_extra_actions():
            url_path = extra.url_path
            for http_method in extra.mapping:
                if extra.detail:
                    url = f"{detail}{url_path}/"
                    resp = getattr(client, http_method)(url, {}, format="json")
                    assert resp.status_code in (403, 404, 405), (http_method, url, resp.status_code)
                else:
                    url = f"{base}{url_path}/"
                    if http_method == "get":
                        resp = client.get(url)
                        assert resp.status_code in (200, 403), (url, resp.status_code)
                        assert MARK not in resp.content.lower(), f"{url} leaked org A data"
        swept.append(prefix)

    assert _fingerprint() == before, "org B changed org A's data"
    assert len(swept) == len(router.registry)


def _fk_payload(viewset, world) -> dict:
    """A create payload whose every relation points at one of org A's rows."""
    serializer = viewset.serializer_class()
    payload = {}
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        queryset = getattr(field, "queryset", None)
        if queryset is None and hasattr(field, "child_relation"):
            queryset = field.child_relation.queryset
        if queryset is not None:
            target = _a_object_for(queryset.model)
            payload[name] = [target.pk] if hasattr(field, "child_relation") else target.pk
        elif name in {"name", "title", "code", "external_id"}:
            payload[name] = f"smuggled-{name}"
    return payload


@pytest.mark.parametrize("auth", ["session", "key"])
def test_posts_referencing_org_a_ids_are_rejected(sweep_world, api, auth):
    world = sweep_world
    client = _clients(world, api)[auth]
    before = _fingerprint()
    checked = 0
    for prefix, viewset, _basename in _routes():
        if "post" not in viewset.http_method_names or not hasattr(viewset, "create"):
            continue
        payload = _fk_payload(viewset, world)
        if not any(isinstance(v, int | list) for v in payload.values()):
            continue
        resp = client.post(f"/api/v1/{prefix}/", payload, format="json")
        assert resp.status_code in (400, 403, 404), (prefix, resp.status_code, resp.content[:300])
        checked += 1
    # Interactions reference A's rows by code: B's view of the codes is empty.
    resp = client.post(
        "/api/v1/interactions/",
        {
            "external_id": "smuggle",
            "occurred_at": "2026-01-01T10:00:00Z",
            "location": "a-n1",
            "channel": "in_store",
        },
        format="json",
    )
    assert resp.status_code in (400, 403), resp.content
    assert checked >= 5
    assert _fingerprint() == before


def _page_patterns(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if route.startswith(("api/", "admin/")):
                continue
            yield from _page_patterns(entry, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def test_every_page_hides_org_a(sweep_world, client):
    world = sweep_world
    client.force_login(world.users["outsider"])
    before = _fingerprint()
    visited = 0
    for route, pattern in _page_patterns():
        if route.startswith(("api/", "admin/", "logout")) or route in {"healthz"}:
            continue
        view_class = getattr(pattern.callback, "view_class", None)
        params = pattern.pattern.converters if hasattr(pattern.pattern, "converters") else {}
        if params and set(params) <= PUBLIC_TOKEN_PARAMS:
            # Public respondent links carry an unguessable token, not an id: the tenant comes
            # from the token. tests/feedback/test_respondent*.py and test_widget.py prove an
            # org A token never shows or writes org B's survey.
            continue
        if params:
            model = getattr(view_class, "model", None)
            assert model is not None, f"page {route} takes ids but declares no model: sweep cannot cover it"
            obj = _a_object_for(model)
            url = "/" + route
            for name in params:
                url = url.replace(f"<int:{name}>", str(obj.pk)).replace(f"<{name}>", str(obj.pk))
            for method in ("get", "post"):
                resp = getattr(client, method)(url)
                assert resp.status_code in (403, 404, 405), (method, url, resp.status_code)
        else:
            url = "/" + route
            resp = client.get(url)
            assert resp.status_code in (200, 301, 302, 403, 404, 405), (url, resp.status_code)
            assert MARK not in resp.content.lower(), f"page {url} leaked org A data"
        visited += 1
    assert visited >= 5
    assert _fingerprint() == before


def test_router_is_the_only_api_surface():
    """Every API route comes from the router the sweep walks (no hand-written API paths)."""
    assert isinstance(router, DefaultRouter)
    api_patterns = [
        str(p.pattern) for p in get_resolver().url_patterns if str(p.pattern).startswith("api/v1/")
    ]
    assert api_patterns == ["api/v1/"]


# --- public respondent routes ------------------------------------------------------------------
# Public routes take a token instead of a session: the tenant is whatever the token belongs to.
# Sweep them from the other side: with org A's tokens (org B's admin signed in, to show the
# session plays no part), nothing of org B is ever shown, and answers aimed at org B's survey
# are refused without touching org B's rows. Every token route must have a provider here.


def _org_b_fingerprint(world) -> str:
    global _org_a_id
    saved, _org_a_id = _org_a_id, world.b.org.pk
    try:
        return _fingerprint()
    finally:
        _org_a_id = saved


def _public_tokens(world) -> dict[str, str]:
    import datetime as dt

    from django.utils import timezone

    from feedback import models as fm
    from feedback.tokens import new_token
    from feedback.unsubscribe import unsubscribe_token

    org = world.a.org
    with tenant_context(org):
        survey = fm.Survey.objects.get(name="Sweep links acme")
        version = survey.versions.order_by("-number").first()
        raw, hashed = new_token()
        fm.Invitation.objects.create(
            organization=org,
            survey=survey,
            version=version,
            location=world.a.locations["a-n1"],
            delivery_channel="email",
            token_hash=hashed,
            status=fm.Invitation.Status.SENT,
            send_at=timezone.now(),
            expires_at=timezone.now() + dt.timedelta(days=7),
        )
        link = fm.AnonymousLink.objects.filter(survey=survey).first()
        fm.Survey.objects.filter(pk=survey.pk).update(allowed_origins=["https://shop.acme.test"])
    return {
        "respond_invitation": raw,
        "respond_anonymous": link.token,
        "widget_survey": survey.public_key,
        "widget_submit": survey.public_key,
        "unsubscribe": unsubscribe_token(org.pk, world.a.customer.pk),
        # The password links name a user and carry a token: one value per parameter.
        "password_reset_confirm": _password_link(world, default_token_generator),
        "password_set": _password_link(world, invitation_token_generator),
    }


def _password_link(world, generator) -> dict[str, str]:
    user = world.users["shopper"]
    return {"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": generator.make_token(user)}


def public_url(route: str, params, token) -> str:
    """``route`` with its token parameters filled (``token``: one value, or one per parameter)."""
    values = token if isinstance(token, dict) else dict.fromkeys(params, token)
    url = "/" + route
    for param in params:
        url = url.replace(f"<str:{param}>", values[param]).replace(f"<{param}>", values[param])
    return url


def test_public_routes_never_cross_tenants(sweep_world, client):
    from feedback import models as fm
    from tests.feedback.conftest import make_survey

    world = sweep_world
    _, _, b_questions = make_survey(world.b.org, name="Beta public survey")
    tokens = _public_tokens(world)
    client.force_login(world.users["outsider"])
    before_b = _org_b_fingerprint(world)
    swept = set()
    for route, pattern in _page_patterns():
        params = set(pattern.pattern.converters)
        if not params or not params <= PUBLIC_TOKEN_PARAMS:
            continue
        name = pattern.name
        assert name in tokens, f"public route {route} ({name}) has no token provider in this sweep"
        url = public_url(route, params, tokens[name])
        get = client.get(url, HTTP_ORIGIN="https://shop.acme.test")
        assert get.status_code < 500, (url, get.status_code)
        assert b"beta" not in get.content.lower(), f"{url} showed org B data"
        # Org B's question ids and keys, posted through org A's token.
        smuggled = {f"q-{q.pk}": "10" for q in b_questions.values()} | {"q-nps": "10"}
        post = client.post(url, smuggled, HTTP_ORIGIN="https://shop.acme.test")
        assert post.status_code < 500 and b"beta" not in post.content.lower(), (url, post.status_code)
        body = {"answers": {str(q.pk): 10 for q in b_questions.values()}, "device": "x"}
        post = client.post(url, body, content_type="application/json", HTTP_ORIGIN="https://shop.acme.test")
        assert post.status_code < 500 and b"beta" not in post.content.lower(), (url, post.status_code)
        swept.add(name)
    assert swept == set(tokens), swept
    assert _org_b_fingerprint(world) == before_b, "a public route changed org B's data"
    with tenant_context(world.b.org):
        assert not fm.Response.objects.exists()
