"""Optional TOTP two-factor sign-in: enrolment from the account page, the code step at login.

Codes are computed the way an authenticator app does (RFC 6238, django_otp.oath.TOTP) from the
secret the enrolment page shows; nothing in the login path is mocked.
"""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from cem import models as m
from cem.login import PENDING_KEY
from cem.tenancy import tenant_context
from tests.conftest import PASSWORD
from tests.factories import UserFactory


def code_for(device: TOTPDevice, *, steps_ahead: int = 0) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def _browser() -> Client:
    return Client(enforce_csrf_checks=True)


def _csrf(client: Client) -> str:
    return client.cookies["csrftoken"].value


def _password_step(client: Client, username: str, password: str = PASSWORD, next_url: str = ""):
    client.get("/login/" + (f"?next={next_url}" if next_url else ""))
    data = {"username": username, "password": password, "csrfmiddlewaretoken": _csrf(client)}
    if next_url:
        data["next"] = next_url
    return client.post("/login/", data)


def _code_step(client: Client, code: str):
    return client.post("/login/code/", {"code": code, "csrfmiddlewaretoken": _csrf(client)})


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _shown_key(html: str) -> str:
    return html.split('data-testid="two-factor-key">', 1)[1].split("<", 1)[0].replace(" ", "")


def _enrolled(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)


@pytest.fixture
def no_throttle(settings):
    # django-otp doubles a wait after each wrong code; tests that follow a wrong code with the
    # right one at once turn that off (test_wrong_codes_are_throttled proves it is on by default).
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


# --- enrolment ------------------------------------------------------------------------------------


def test_admin_enrols_an_authenticator_from_the_account_page(world, no_throttle):
    admin = world.users["admin"]
    client = _browser()
    assert _password_step(client, admin.username).status_code == 302
    account = client.get("/account/").content.decode()
    assert 'data-testid="two-factor-status">Off' in account and "/account/two-factor/" in account

    page = client.get("/account/two-factor/")
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=admin)
    assert not device.confirmed
    qr = html.split('data-testid="two-factor-qr"', 1)[1].split("</div>", 1)[0]
    assert "<svg" in qr and "<path" in qr
    shown_key = _shown_key(html)
    assert base64.b32decode(shown_key + "=" * (-len(shown_key) % 8)) == device.bin_key
    url = urlsplit(device.config_url)
    assert url.scheme == "otpauth" and url.netloc == "totp"
    assert parse_qs(url.query)["issuer"] == ["CEM"] and admin.username in unquote(url.path)
    # A reload shows the same secret: the app scanned a minute ago still matches.
    assert _shown_key(client.get("/account/two-factor/").content.decode()) == shown_key
    assert TOTPDevice.objects.filter(user=admin).count() == 1

    wrong = client.post("/account/two-factor/", {"code": "000000", "csrfmiddlewaretoken": _csrf(client)})
    assert wrong.status_code == 200
    field = wrong.content.decode().split('data-testid="field-code"', 1)[1].split("</div>", 1)[0]
    assert 'data-testid="error-code"' in field and "not right" in field
    device.refresh_from_db()
    assert not device.confirmed

    done = client.post(
        "/account/two-factor/", {"code": code_for(device), "csrfmiddlewaretoken": _csrf(client)}
    )
    assert done.status_code == 302 and done.url == "/account/"
    device.refresh_from_db()
    assert device.confirmed
    assert 'data-testid="two-factor-status">On' in client.get("/account/").content.decode()
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="two_factor.enabled", actor_user_id=admin.pk).count() == 1

    # From the next sign-in on, the password alone is not enough.
    fresh = _browser()
    resp = _password_step(fresh, admin.username)
    assert resp.status_code == 302 and resp.url == "/login/code/"
    assert not _signed_in(fresh)
    assert _code_step(fresh, code_for(device, steps_ahead=1)).status_code == 302
    assert _signed_in(fresh)


def test_enrolment_needs_a_signed_in_user(db, client):
    resp = client.get("/account/two-factor/")
    assert resp.status_code == 302 and resp.url.startswith("/login/")


def test_two_factor_is_optional_per_user(world):
    # Nobody is enrolled by default; enrolling one person changes nothing for the others.
    _enrolled(world.users["admin"])
    client = _browser()
    resp = _password_step(client, "manager@acme.test")
    assert resp.status_code == 302 and resp.url == "/" and _signed_in(client)


# --- the code step at login -------------------------------------------------------------------------


def test_login_asks_for_the_code_and_refuses_a_wrong_one(world, no_throttle):
    device = _enrolled(world.users["admin"])
    client = _browser()
    resp = _password_step(client, "admin@acme.test")
    assert resp.status_code == 302 and resp.url == "/login/code/"
    assert not _signed_in(client)
    # Between the steps nothing is reachable.
    assert client.get("/").status_code == 302
    assert client.get("/api/v1/regions/").status_code in (401, 403)

    page = client.get("/login/code/")
    assert page.status_code == 200 and 'name="code"' in page.content.decode()
    wrong = _code_step(client, "123456" if code_for(device) != "123456" else "654321")
    assert wrong.status_code == 200 and not _signed_in(client)
    assert 'data-testid="error-code"' in wrong.content.decode()
    assert _code_step(client, "not-a-code").status_code == 200 and not _signed_in(client)

    right = _code_step(client, code_for(device))
    assert right.status_code == 302 and right.url == "/"
    assert _signed_in(client)
    assert client.session["otp_device_id"] == device.persistent_id
    assert PENDING_KEY not in client.session
    assert client.get("/").status_code == 200


def test_a_code_cannot_be_used_twice(world, no_throttle):
    device = _enrolled(world.users["admin"])
    code = code_for(device)
    first = _browser()
    _password_step(first, "admin@acme.test")
    assert _code_step(first, code).status_code == 302
    second = _browser()
    _password_step(second, "admin@acme.test")
    assert _code_step(second, code).status_code == 200
    assert not _signed_in(second)


def test_wrong_codes_are_throttled(world):
    device = _enrolled(world.users["admin"])
    client = _browser()
    _password_step(client, "admin@acme.test")
    _code_step(client, "000000" if code_for(device) != "000000" else "111111")
    # Right after a wrong code even the right one waits (django-otp's exponential back-off).
    assert _code_step(client, code_for(device)).status_code == 200
    assert not _signed_in(client)


def test_wrong_codes_lock_the_account_like_wrong_passwords(world, settings, no_throttle):
    settings.AXES_FAILURE_LIMIT = 3
    device = _enrolled(world.users["admin"])
    client = _browser()
    _password_step(client, "admin@acme.test")
    wrong = "000000" if code_for(device) != "000000" else "111111"
    assert _code_step(client, wrong).status_code == 200
    assert _code_step(client, wrong).status_code == 200
    locked = _code_step(client, wrong)
    assert locked.status_code == 429 and 'data-testid="lockout"' in locked.content.decode()
    assert _code_step(client, code_for(device)).status_code == 429
    assert not _signed_in(client)
    # The password step is locked too.
    assert _password_step(_browser(), "admin@acme.test").status_code == 429


def test_the_code_step_expires(world, no_throttle):
    device = _enrolled(world.users["admin"])
    client = _browser()
    _password_step(client, "admin@acme.test")
    session = client.session
    session[PENDING_KEY] = {**session[PENDING_KEY], "at": time.time() - 301}
    session.save()
    resp = _code_step(client, code_for(device))
    assert resp.status_code == 302 and resp.url == "/login/"
    assert not _signed_in(client)


def test_code_page_without_a_password_step_goes_back_to_login(db):
    client = _browser()
    client.get("/login/")
    assert client.get("/login/code/").url == "/login/"
    assert _code_step(client, "123456").url == "/login/"


def test_login_keeps_next_through_the_code_step(world, no_throttle):
    device = _enrolled(world.users["admin"])
    client = _browser()
    _password_step(client, "admin@acme.test", next_url="/interactions/")
    resp = _code_step(client, code_for(device))
    assert resp.status_code == 302 and resp.url == "/interactions/"


# --- turning it off ------------------------------------------------------------------------------


def test_turning_two_factor_off_needs_a_current_code(world, no_throttle):
    admin = world.users["admin"]
    device = _enrolled(admin)
    client = _browser()
    _password_step(client, admin.username)
    _code_step(client, code_for(device))
    page = client.get("/account/two-factor/").content.decode()
    assert 'data-testid="two-factor-disable"' in page
    wrong = client.post("/account/two-factor/", {"code": "000000", "csrfmiddlewaretoken": _csrf(client)})
    assert wrong.status_code == 200 and TOTPDevice.objects.filter(user=admin, confirmed=True).exists()
    off = client.post(
        "/account/two-factor/",
        {"code": code_for(device, steps_ahead=1), "csrfmiddlewaretoken": _csrf(client)},
    )
    assert off.status_code == 302
    assert not TOTPDevice.objects.filter(user=admin).exists()
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="two_factor.disabled", actor_user_id=admin.pk).exists()
    fresh = _browser()
    assert _password_step(fresh, admin.username).url == "/"


# --- staff on /admin/ -----------------------------------------------------------------------------


def test_staff_admin_signs_in_through_the_site_login_and_its_code_step(db, no_throttle):
    staff = UserFactory(username="staff@cem.test", is_staff=True, is_superuser=True, password=PASSWORD)
    device = _enrolled(staff)
    client = _browser()
    resp = client.get("/admin/login/?next=/admin/")
    assert resp.status_code == 302 and resp.url.startswith("/login/") and "next=/admin/" in resp.url
    assert client.get("/admin/").status_code == 302
    resp = _password_step(client, staff.username, next_url="/admin/")
    assert resp.url == "/login/code/"
    assert client.get("/admin/").status_code == 302  # still not in
    resp = _code_step(client, code_for(device))
    assert resp.status_code == 302 and resp.url == "/admin/"
    assert client.get("/admin/").status_code == 200
