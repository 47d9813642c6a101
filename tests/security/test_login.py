"""Login proofs: lockout through the real page, password rules wherever a password is set, cookies.

Every login here goes through /login/ as a browser would: GET the page, send its CSRF token back.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cem import models as m
from cem.tenancy import tenant_context
from tests.conftest import PASSWORD
from tests.factories import UserFactory
from tests.security.production_settings import production_settings

WEAK_PASSWORDS = ["short1", "password123", "1234567890123"]  # too short / common / all digits


def _browser() -> Client:
    return Client(enforce_csrf_checks=True)


def _login(client: Client, username: str, password: str):
    page = client.get("/login/")
    assert page.status_code == 200
    token = client.cookies["csrftoken"].value
    return client.post("/login/", {"username": username, "password": password, "csrfmiddlewaretoken": token})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- lockout (django-axes) --------------------------------------------------------------------


def test_repeated_failures_lock_the_account_with_a_friendly_page(world, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = _browser()
    for _ in range(2):
        resp = _login(client, "manager@acme.test", "wrong-password")
        assert resp.status_code == 200
        assert "Please enter a correct" in resp.content.decode()
    resp = _login(client, "manager@acme.test", "wrong-password")
    assert resp.status_code == 429
    html = resp.content.decode()
    assert 'data-testid="lockout"' in html and "Too many sign-in attempts" in html
    assert "Try again in 15 minutes" in html
    assert "<html" in html and "Traceback" not in html and "axes" not in html.lower()
    # Locked: even the right password is refused, with the same page, and nobody is signed in.
    resp = _login(client, "manager@acme.test", PASSWORD)
    assert resp.status_code == 429 and 'data-testid="lockout"' in resp.content.decode()
    assert not _signed_in(client)
    # Another account from the same address is not locked ([username, ip] lockout).
    resp = _login(_browser(), "admin@acme.test", PASSWORD)
    assert resp.status_code == 302 and resp.url == "/"


def test_a_successful_login_resets_the_failure_count(world, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = _browser()
    for _ in range(2):
        assert _login(client, "manager@acme.test", "wrong-password").status_code == 200
    resp = _login(client, "manager@acme.test", PASSWORD)
    assert resp.status_code == 302 and _signed_in(client)
    client.post("/logout/", {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert not _signed_in(client)
    # Two more failures: without the reset this would be the 4th and 5th (locked at 3).
    for _ in range(2):
        assert _login(client, "manager@acme.test", "wrong-password").status_code == 200
    resp = _login(client, "manager@acme.test", PASSWORD)
    assert resp.status_code == 302 and _signed_in(client)


def test_the_cool_off_ends_the_lockout(world, settings):
    import datetime as dt

    from axes.models import AccessAttempt

    settings.AXES_FAILURE_LIMIT = 2
    client = _browser()
    for _ in range(2):
        _login(client, "manager@acme.test", "wrong-password")
    assert _login(client, "manager@acme.test", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=16))
    assert _login(client, "manager@acme.test", PASSWORD).status_code == 302


# --- password rules: every place a password is set --------------------------------------------


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_member_page_refuses_a_weak_password_on_the_password_field(world, client, weak):
    client.force_login(world.users["admin"])
    resp = client.post(
        "/manage/users/new/", {"email": "new.person@acme.test", "role": m.Role.EXECUTIVE, "password": weak}
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    field = html.split('data-testid="field-password"', 1)[1].split("</div>", 1)[0]
    assert "Password" in field and 'data-testid="error-password"' in field
    assert "This password is" in field
    assert not get_user_model().objects.filter(username="new.person@acme.test").exists()


def test_member_page_accepts_a_strong_password(world, client):
    client.force_login(world.users["admin"])
    resp = client.post(
        "/manage/users/new/",
        {"email": "new.person@acme.test", "role": m.Role.EXECUTIVE, "password": "amber-kettle-orbit-42"},
    )
    assert resp.status_code == 302
    created = get_user_model().objects.get(username="new.person@acme.test")
    assert created.check_password("amber-kettle-orbit-42")


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_membership_api_refuses_a_weak_password_naming_the_field(world, api, weak):
    resp = api(world.users["admin"]).post(
        "/api/v1/memberships/",
        {"email": "api.person@acme.test", "role": m.Role.EXECUTIVE, "password": weak},
        format="json",
    )
    assert resp.status_code == 400
    assert list(resp.json()) == ["password"], resp.json()
    assert any("This password is" in e for e in resp.json()["password"])
    assert not get_user_model().objects.filter(username="api.person@acme.test").exists()


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_account_page_refuses_a_weak_new_password(world, client, weak):
    user = world.users["manager"]
    client.force_login(user)
    resp = client.post(
        "/account/password/",
        {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak},
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    field = html.split('data-testid="field-new_password2"', 1)[1].split("</div>", 1)[0]
    assert "New password confirmation" in field and 'data-testid="error-new_password2"' in field
    assert "This password is" in field
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_account_page_changes_the_password_and_logs_it(world, client):
    user = world.users["manager"]
    client.force_login(user)
    new = "amber-kettle-orbit-42"
    resp = client.post(
        "/account/password/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert resp.status_code == 302 and resp.url == "/account/"
    user.refresh_from_db()
    assert user.check_password(new)
    assert _signed_in(client)  # the session survives its own password change
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="password.changed", actor_user_id=user.pk).exists()


def test_account_page_needs_the_old_password(world, client):
    user = world.users["manager"]
    client.force_login(user)
    new = "amber-kettle-orbit-42"
    resp = client.post(
        "/account/password/", {"old_password": "not-it", "new_password1": new, "new_password2": new}
    )
    assert resp.status_code == 200 and 'data-testid="error-old_password"' in resp.content.decode()


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_staff_admin_refuses_a_weak_password(db, client, weak):
    staff = UserFactory(username="staff@cem.test", is_staff=True, is_superuser=True, password=PASSWORD)
    client.force_login(staff)
    resp = client.post(
        "/admin/auth/user/add/",
        {"username": "someone", "usable_password": "true", "password1": weak, "password2": weak},
    )
    assert resp.status_code == 200
    assert "This password is" in resp.content.decode()
    assert resp.context["adminform"].form.errors.get("password2")
    assert not get_user_model().objects.filter(username="someone").exists()


# --- session cookie -----------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_lax(world):
    resp = _login(_browser(), "admin@acme.test", PASSWORD)
    cookie = resp.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


def test_session_cookie_is_secure_when_the_setting_is_on(world, settings):
    settings.SESSION_COOKIE_SECURE = True
    resp = _login(_browser(), "admin@acme.test", PASSWORD)
    assert resp.cookies["sessionid"]["secure"] is True


def test_production_settings_make_cookies_secure_and_https_only():
    got = production_settings(
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_SAMESITE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "DEBUG",
    )
    assert got == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "DEBUG": False,
    }


@pytest.mark.parametrize("weak", WEAK_PASSWORDS)
def test_staff_admin_password_change_refuses_a_weak_password(world, client, weak):
    staff = UserFactory(username="staff@cem.test", is_staff=True, is_superuser=True, password=PASSWORD)
    client.force_login(staff)
    target = world.users["manager"]
    resp = client.post(
        f"/admin/auth/user/{target.pk}/password/",
        {"usable_password": "true", "password1": weak, "password2": weak},
    )
    assert resp.status_code == 200
    assert "This password is" in resp.content.decode()
    assert resp.context["form"].errors.get("password2")
    target.refresh_from_db()
    assert target.check_password(PASSWORD)
