"""Organization-enforced two-factor for admins: the setting, the wall in front of unenrolled admins.

Codes are computed the way an authenticator app does (tests/security/test_two_factor.py's
``code_for``) from the device the enrolment page creates; nothing in the path is mocked.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from cem import models as m
from cem.tenancy import tenant_context
from tests.conftest import PASSWORD
from tests.security.test_two_factor import code_for

WALLED = ["/", "/interactions/", "/manage/users/", "/account/", "/account/password/", "/feedback/cases/"]


@pytest.fixture
def no_throttle(settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def _require(org, on: bool = True) -> None:
    with tenant_context(org):
        m.Organization.objects.filter(pk=org.pk).update(require_admin_two_factor=on)


def _browser() -> Client:
    return Client(enforce_csrf_checks=True)


def _csrf(client: Client) -> str:
    return client.cookies["csrftoken"].value


def _sign_in(username: str) -> tuple[Client, object]:
    client = _browser()
    client.get("/login/")
    resp = client.post(
        "/login/", {"username": username, "password": PASSWORD, "csrfmiddlewaretoken": _csrf(client)}
    )
    return client, resp


def _walled(resp) -> bool:
    return resp.status_code == 302 and resp.url == "/account/two-factor/"


def test_off_by_default_admins_sign_in_with_the_password_alone(world):
    client, resp = _sign_in("admin@acme.test")
    assert resp.status_code == 302 and resp.url == "/"
    assert client.get("/").status_code == 200
    assert client.get("/manage/users/").status_code == 200


def test_on_an_unenrolled_admin_reaches_only_enrolment_then_everything(world, no_throttle):
    _require(world.a.org)
    client, resp = _sign_in("admin@acme.test")
    assert resp.status_code == 302 and resp.url == "/"
    for url in WALLED:
        assert _walled(client.get(url)), url
    assert _walled(client.post("/manage/users/new/", {"csrfmiddlewaretoken": _csrf(client)}))
    htmx = client.get("/interactions/", HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == "/account/two-factor/"
    api = client.get("/api/v1/regions/")
    assert api.status_code == 403 and "two-factor" in api.json()["detail"]
    assert not _walled(client.get("/static/cem/app.css"))

    page = client.get("/account/two-factor/")
    html = page.content.decode()
    assert page.status_code == 200 and 'data-testid="two-factor-required"' in html
    assert 'data-testid="two-factor-qr"' in html
    device = TOTPDevice.objects.get(user=world.users["admin"], confirmed=False)
    done = client.post(
        "/account/two-factor/", {"code": code_for(device), "csrfmiddlewaretoken": _csrf(client)}
    )
    assert done.status_code == 302 and done.url == "/account/"
    for url in WALLED:
        assert client.get(url).status_code == 200, url
    assert client.get("/api/v1/regions/").status_code == 200

    # Next time the sign-in asks for the code, and the admin cannot turn two-factor off.
    fresh, resp = _sign_in("admin@acme.test")
    assert resp.url == "/login/code/"
    device.refresh_from_db()
    assert 'data-testid="two-factor-disable"' not in fresh.get("/account/two-factor/").content.decode()
    fresh.post("/login/code/", {"code": code_for(device, steps_ahead=1), "csrfmiddlewaretoken": _csrf(fresh)})
    assert fresh.get("/manage/users/").status_code == 200
    refused = fresh.post(
        "/account/two-factor/", {"code": code_for(device, steps_ahead=2), "csrfmiddlewaretoken": _csrf(fresh)}
    )
    assert refused.status_code == 200 and 'data-testid="two-factor-required"' in refused.content.decode()
    assert TOTPDevice.objects.filter(user=world.users["admin"], confirmed=True).exists()


def test_logout_stays_open_behind_the_wall(world):
    _require(world.a.org)
    client, _resp = _sign_in("admin@acme.test")
    resp = client.post("/logout/", {"csrfmiddlewaretoken": _csrf(client)})
    assert resp.status_code == 302 and resp.url == "/login/"
    assert "_auth_user_id" not in client.session


def test_an_enrolled_admin_signs_in_with_the_code_and_is_not_walled(world, no_throttle):
    _require(world.a.org)
    device = TOTPDevice.objects.create(user=world.users["admin"], name="Authenticator app", confirmed=True)
    client, resp = _sign_in("admin@acme.test")
    assert resp.url == "/login/code/"
    client.post("/login/code/", {"code": code_for(device), "csrfmiddlewaretoken": _csrf(client)})
    assert client.get("/manage/users/").status_code == 200


def test_an_enrolled_admin_whose_session_gave_no_code_signs_in_again(world):
    _require(world.a.org)
    TOTPDevice.objects.create(user=world.users["admin"], name="Authenticator app", confirmed=True)
    client = _browser()
    client.force_login(world.users["admin"])  # a session from before the code, not verified
    resp = client.get("/manage/users/")
    assert resp.status_code == 302 and resp.url == "/login/?next=%2Fmanage%2Fusers%2F"
    assert "_auth_user_id" not in client.session


def test_other_roles_other_organizations_and_api_keys_are_not_affected(world, api):
    _require(world.a.org)
    for username in ("manager@acme.test", "exec@acme.test", "admin@beta.test"):
        client, _resp = _sign_in(username)
        assert client.get("/").status_code == 200, username
    assert api(key=world.a.api_key).get("/api/v1/regions/").status_code == 200


def test_the_api_shows_the_setting_and_never_changes_it(world, api):
    url = f"/api/v1/organization/{world.a.org.pk}/"
    assert api(key=world.a.api_key).get(url).json()["require_admin_two_factor"] is False
    resp = api(world.users["admin"]).patch(url, {"require_admin_two_factor": True}, format="json")
    assert resp.status_code == 200 and resp.json()["require_admin_two_factor"] is False
    with tenant_context(world.a.org):
        assert m.Organization.objects.get(pk=world.a.org.pk).require_admin_two_factor is False


# --- the organization settings page ------------------------------------------------------------------


def test_an_admin_turns_it_on_from_the_settings_page_and_is_walled_next(world):
    client, _resp = _sign_in("admin@acme.test")
    page = client.get("/manage/organization/")
    html = page.content.decode()
    assert page.status_code == 200 and "Require two-factor authentication for administrators" in html
    assert (
        'href="/manage/organization/"' in client.get("/manage/users/").content.decode()
    )  # in the admin subnav
    bad = client.post(
        "/manage/organization/",
        {"name": "Acme", "time_zone": "Mars/Olympus", "csrfmiddlewaretoken": _csrf(client)},
    )
    assert bad.status_code == 200 and 'data-testid="error-time_zone"' in bad.content.decode()
    resp = client.post(
        "/manage/organization/",
        {
            "name": "Acme",
            "time_zone": "Europe/Madrid",
            "require_admin_two_factor": "on",
            "csrfmiddlewaretoken": _csrf(client),
        },
    )
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        org = m.Organization.objects.get(pk=world.a.org.pk)
        assert org.require_admin_two_factor and org.time_zone == "Europe/Madrid"
        log = m.AuditLog.objects.filter(action="update", object_type="cem.Organization").latest("pk")
        assert log.changes["require_admin_two_factor"] == {"before": False, "after": True}
    assert _walled(client.get("/manage/organization/"))


def test_only_admins_open_the_settings_page(world):
    for username in ("exec@acme.test", "manager@acme.test", "trainer@acme.test"):
        client, _resp = _sign_in(username)
        assert client.get("/manage/organization/").status_code == 403, username
