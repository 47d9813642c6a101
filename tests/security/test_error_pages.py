"""Error responses leak nothing: our own 400/403/404/500 pages, and problem+json for the API.

DEBUG is off (as in production) and the client returns the 500 response instead of re-raising,
so what is checked is exactly what a visitor would receive.
"""

from __future__ import annotations

import pytest
from django.test import Client

from cem import errors, views
from cem.api import views as api_views
from tests.conftest import PASSWORD

SECRET_DETAIL = "boom-internal-detail table=cem_secret password=hunter2"
LEAK_MARKERS = ("Traceback", "RuntimeError", SECRET_DETAIL, "File \"/", "site-packages", "DJANGO_SETTINGS")


def _assert_no_leak(body: str, settings):
    for marker in (*LEAK_MARKERS, settings.SECRET_KEY, "DATABASES", "cem.settings"):
        assert marker not in body, f"error response leaks {marker!r}"


@pytest.fixture
def production_like(settings):
    settings.DEBUG = False
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    return settings


def _boom(*args, **kwargs):
    raise RuntimeError(SECRET_DETAIL)


def test_a_page_that_raises_returns_the_500_page_without_internals(world, production_like, monkeypatch):
    monkeypatch.setattr(views.selectors, "home_summary", _boom)
    client = Client(raise_request_exception=False)
    client.force_login(world.users["admin"])
    resp = client.get("/", HTTP_X_REQUEST_ID="req-abc-123")
    assert resp.status_code == 500
    body = resp.content.decode()
    assert 'data-testid="error-page"' in body and "Something went wrong" in body
    assert "req-abc-123" in body  # the reference a report can quote, matched to the log line
    _assert_no_leak(body, production_like)
    assert resp["Content-Security-Policy"] and resp["X-Frame-Options"] == "DENY"


def test_an_api_view_that_raises_returns_a_problem_body_without_internals(
    world, api, production_like, monkeypatch
):
    monkeypatch.setattr(api_views.RegionViewSet, "list", _boom)
    client = api(world.users["admin"])
    client.raise_request_exception = False
    resp = client.get("/api/v1/regions/", HTTP_X_REQUEST_ID="req-api-500")
    assert resp.status_code == 500
    assert resp["Content-Type"] == "application/problem+json"
    assert resp.json() == {
        "type": "about:blank",
        "title": "Server error",
        "status": 500,
        "detail": errors.DETAILS[500],
        "request_id": "req-api-500",
    }
    _assert_no_leak(resp.content.decode(), production_like)


def test_the_same_holds_for_an_api_key_caller(world, api, production_like, monkeypatch):
    monkeypatch.setattr(api_views.RegionViewSet, "list", _boom)
    client = api(key=world.a.api_key)
    client.raise_request_exception = False
    resp = client.get("/api/v1/regions/")
    assert resp.status_code == 500 and resp.json()["title"] == "Server error"
    _assert_no_leak(resp.content.decode(), production_like)


def test_unknown_page_is_our_404_page(world, client, production_like):
    client.force_login(world.users["admin"])
    resp = client.get("/manage/regions/999999/edit/")
    assert resp.status_code == 404
    body = resp.content.decode()
    assert 'data-testid="error-page"' in body and "Page not found" in body
    assert "matches the given query" not in body and "Region" not in body.split("<main", 1)[1]
    _assert_no_leak(body, production_like)
    resp = client.get("/no/such/page/")
    assert resp.status_code == 404 and "Page not found" in resp.content.decode()
    assert "Using the URLconf" not in resp.content.decode()


def test_unknown_api_route_is_a_problem_body(world, api, production_like):
    resp = api(world.users["admin"]).get("/api/v1/no-such-thing/")
    assert resp.status_code == 404
    assert resp["Content-Type"] == "application/problem+json"
    assert resp.json()["title"] == "Not found" and resp.json()["status"] == 404


def test_forbidden_page_is_our_403_page(world, client, production_like):
    client.force_login(world.users["manager"])
    resp = client.get("/manage/api-keys/")
    assert resp.status_code == 403
    body = resp.content.decode()
    assert 'data-testid="error-page"' in body and "Not allowed" in body
    _assert_no_leak(body, production_like)


def test_bad_request_page_is_our_400_page(world, production_like):
    production_like.ALLOWED_HOSTS = ["testserver"]
    client = Client(raise_request_exception=False)
    resp = client.get("/login/", HTTP_HOST="evil.example")
    assert resp.status_code == 400
    body = resp.content.decode()
    assert 'data-testid="error-page"' in body and "Bad request" in body
    assert "evil.example" not in body and "ALLOWED_HOSTS" not in body
    api_resp = client.get("/api/v1/regions/", HTTP_HOST="evil.example")
    assert api_resp.status_code == 400 and api_resp.json()["title"] == "Bad request"


def test_missing_csrf_token_is_a_friendly_403(world, production_like):
    client = Client(enforce_csrf_checks=True)
    resp = client.post("/login/", {"username": "admin@acme.test", "password": PASSWORD})
    assert resp.status_code == 403
    body = resp.content.decode()
    assert 'data-testid="error-page"' in body and "Form expired" in body
    assert "CSRF_COOKIE" not in body and "Reason given" not in body
