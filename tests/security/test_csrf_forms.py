"""CSRF on every form: the page URL conf the cross-tenant sweep walks, walked with org A's own people.

For every page route (ids filled with org A's rows, public routes with org A's tokens) the first
persona that may open it GETs it; every ``<form method=post>`` it renders must carry the CSRF
token, and every htmx write (hx-post…) must sit under the ``hx-headers`` that send it. Then a
POST without the token, to the page and to each form's action, must be refused with 403 — for
every route, whether or not a form was found. New routes are swept without editing this file.
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import pytest
from django.test import Client
from django.urls import Resolver404, resolve

from tests.test_cross_tenant_sweep import (  # noqa: F401 - sweep_world is a fixture
    PUBLIC_TOKEN_PARAMS,
    _a_object_for,
    _page_patterns,
    _public_tokens,
    sweep_world,
)

# The order people are tried in: the first one who gets a 200 is the page's persona.
PERSONAS = ["admin", "trainer", "evaluator", "manager", "employee", "shopper", "executive", "regional"]
# Deliberately without CSRF, each for a reason given where it is declared:
CSRF_EXEMPT = {
    "widget_survey",  # feedback/widget.py: cross-origin JSON, no cookies or session; Origin-checked
    "widget_submit",
    "unsubscribe",  # feedback/unsubscribe.py: RFC 8058 one-click POST; the signed token is the credential
    # DRF views (OpenAPI schema and Swagger UI, GET only): DRF's session authentication enforces
    # CSRF itself on unsafe methods (tests/test_auth.py proves it on the API).
    "schema",
    "api_docs",
}
FORM = re.compile(r"<form\b([^>]*)>(.*?)</form>", re.IGNORECASE | re.DOTALL)
HTMX_WRITE = re.compile(r"\bhx-(post|put|patch|delete)=\"([^\"]+)\"")
HX_HEADERS = re.compile(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'")


def _attr(attrs: str, name: str) -> str:
    found = re.search(rf"\b{name}\s*=\s*[\"']([^\"']*)[\"']", attrs, re.IGNORECASE)
    return found.group(1) if found else ""


def _routes(tokens: dict[str, str]):
    """(url name, URL) of every page route, with org A's ids or tokens in it."""
    for route, pattern in _page_patterns():
        params = set(pattern.pattern.converters)
        url = "/" + route
        if params and params <= PUBLIC_TOKEN_PARAMS:
            token = tokens[pattern.name]
            values = token if isinstance(token, dict) else dict.fromkeys(params, token)
        elif params:
            model = getattr(getattr(pattern.callback, "view_class", None), "model", None)
            assert model is not None, f"page {route} takes ids but declares no model"
            obj = _a_object_for(model)
            # An id, or the field the route names (a certificate's code, an organization's slug).
            values = {
                name: str(getattr(obj, name, None) or getattr(obj, name.removeprefix("org_"), None) or obj.pk)
                for name in params
            }
        for name in params:
            url = re.sub(rf"<(\w+:)?{name}>", values[name], url)
        resolve(urlsplit(url).path)  # every route is really reached (Resolver404 otherwise)
        yield pattern.name, url


def _open(clients: dict[str, Client], url: str, errored: list[str]):
    for persona in [*PERSONAS, "anonymous"]:
        resp = clients[persona].get(url)
        if resp.status_code == 302 and _same_page(url, resp.url):
            # The password links move their token into the session: the form is one hop on.
            resp = clients[persona].get(resp.url)
        if resp.status_code >= 500:
            errored.append(f"GET {url} ({persona}) -> {resp.status_code}")
        elif resp.status_code == 200 and "text/html" in resp.get("Content-Type", ""):
            return persona, resp.content.decode()
    return None, ""


def _same_page(url: str, target: str) -> bool:
    try:
        return resolve(urlsplit(target).path).url_name == resolve(urlsplit(url).path).url_name
    except Resolver404:
        return False


def _client() -> Client:
    # A page that fails is reported with the others at the end instead of stopping the walk.
    return Client(enforce_csrf_checks=True, raise_request_exception=False)


@pytest.mark.slow
def test_every_post_form_carries_the_csrf_token_and_a_post_without_it_is_refused(sweep_world):  # noqa: F811
    world = sweep_world
    tokens = _public_tokens(world)
    clients = {"anonymous": _client()}
    for persona in PERSONAS:
        clients[persona] = _client()
        clients[persona].force_login(world.users[persona])

    forms_checked, pages_with_forms, htmx_checked, posts_refused = 0, set(), 0, 0
    missing, accepted, errored = [], [], []
    for name, url in _routes(tokens):
        if name in CSRF_EXEMPT:
            continue
        persona, html = _open(clients, url, errored)
        targets = {url}
        for attrs, body in FORM.findall(html):
            if _attr(attrs, "method").lower() != "post":
                continue
            forms_checked += 1
            pages_with_forms.add(name)
            if 'name="csrfmiddlewaretoken"' not in body:
                missing.append(f"{url} ({persona}): <form{attrs}>")
            action = _attr(attrs, "action")
            if action and not urlsplit(action).netloc:
                targets.add(urljoin(url, action))
        writes = HTMX_WRITE.findall(html)
        if writes:
            header = HX_HEADERS.search(html)
            htmx_checked += len(writes)
            if header is None or not header.group(1).strip():
                missing.append(f"{url} ({persona}): hx-{writes[0][0]} without the X-CSRFToken hx-headers")
            targets.update(urljoin(url, target) for _verb, target in writes if not urlsplit(target).netloc)
        # Without the token nothing is accepted, by whoever may open the page (or by admin).
        poster = clients[persona or "admin"]
        for target in sorted(targets):
            resp = poster.post(target, {"name": "csrf-less"})
            posts_refused += resp.status_code == 403
            if resp.status_code != 403:
                accepted.append(f"POST {target} ({persona or 'admin'}) -> {resp.status_code}")

    assert errored == [], "\n".join(errored)
    assert missing == [], "\n".join(missing)
    assert accepted == [], "\n".join(accepted)
    # The walk really saw the forms (login, account, manage pages, surveys, audits, learning, …).
    # (306 forms on 176 pages when written; every signed-in page has at least the logout form.)
    assert forms_checked >= 200, forms_checked
    assert len(pages_with_forms) >= 120, sorted(pages_with_forms)
    assert {
        "login",
        "account_password",
        "account_two_factor",
        "respond_anonymous",
        "respond_invitation",
        "shopper_apply",
        "member_create",
        "rewards_portal",
        "learning_take",
        "password_reset",
        "password_reset_confirm",
        "password_set",
    } <= pages_with_forms
    assert posts_refused >= 300, posts_refused
    assert htmx_checked >= 10, htmx_checked


def test_the_exempt_routes_are_the_known_ones():
    """A new csrf_exempt page route fails here until it is justified in CSRF_EXEMPT."""
    found = set()
    for _route, pattern in _page_patterns():
        callback = pattern.callback
        view_class = getattr(callback, "view_class", None)
        exempt = getattr(callback, "csrf_exempt", False) or getattr(
            getattr(view_class, "dispatch", None), "csrf_exempt", False
        )
        if exempt:
            found.add(pattern.name)
    assert found == CSRF_EXEMPT
