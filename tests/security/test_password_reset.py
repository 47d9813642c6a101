"""Forgotten password and the first password of a new login: one-time links by email.

Every step goes through the pages with CSRF enforced and the mail in Django's test outbox; the
emails are sent by the Celery tasks (eager in tests) after the transaction commits.
"""

from __future__ import annotations

import re

from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import models as am
from cem import models as m
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_shopper
from tests.conftest import PASSWORD
from tests.factories import UserFactory

NEW_PASSWORD = "plum-orchard-lantern-42"
LINK = re.compile(r"https?://\S+?(/login/(?:reset|welcome)/[^/\s]+/[^/\s]+/)")


def _browser(address: str = "198.51.100.20") -> Client:
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=address)


def _csrf(client: Client) -> str:
    return client.cookies["csrftoken"].value


def _request_reset(client: Client, email: str):
    client.get("/login/reset/")
    return client.post("/login/reset/", {"email": email, "csrfmiddlewaretoken": _csrf(client)})


def _link_in(message) -> str:
    found = LINK.search(message.body)
    assert found, message.body
    html = message.alternatives[0][0]
    assert found.group(0) in html  # the HTML part carries the same link
    return found.group(1)


def _open_form(client: Client, link: str):
    """Open the emailed link: it redirects to the form at an address without the token."""
    opened = client.get(link)
    assert opened.status_code == 302 and opened.url.endswith("/set-password/"), opened.status_code
    form = client.get(opened.url)
    assert form.status_code == 200 and 'data-testid="set-password-form"' in form.content.decode()
    return opened.url


def _choose(client: Client, url: str, password: str):
    return client.post(
        url, {"new_password1": password, "new_password2": password, "csrfmiddlewaretoken": _csrf(client)}
    )


def _sign_in(username: str, password: str, address: str = "198.51.100.20"):
    client = _browser(address)
    client.get("/login/")
    resp = client.post(
        "/login/", {"username": username, "password": password, "csrfmiddlewaretoken": _csrf(client)}
    )
    return client, resp


def _without_token(response) -> str:
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", response.content.decode())


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


# --- the reset ------------------------------------------------------------------------------------


def test_login_page_links_to_the_reset(world):
    html = _browser().get("/login/").content.decode()
    assert 'href="/login/reset/"' in html and "Forgot password?" in html


def test_reset_end_to_end(world):
    user = world.users["manager"]
    client = _browser()
    resp = _request_reset(client, "Manager@ACME.test")  # typed with other capitals
    assert resp.status_code == 302 and resp.url == "/login/reset/sent/"
    assert 'data-testid="password-reset-sent"' in client.get(resp.url).content.decode()
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [user.email] and message.subject == "Reset your CEM password"
    link = _link_in(message)

    form_url = _open_form(client, link)
    weak = _choose(client, form_url, "12345678")
    html = weak.content.decode()
    assert weak.status_code == 200
    field = html.split('data-testid="field-new_password2"', 1)[1].split("</div>", 1)[0]
    assert 'data-testid="error-new_password2"' in field and "too short" in field
    done = _choose(client, form_url, NEW_PASSWORD)
    assert done.status_code == 302 and done.url == "/login/reset/done/"
    assert 'data-testid="password-set-complete"' in client.get(done.url).content.decode()

    signed, resp = _sign_in(user.username, NEW_PASSWORD)
    assert resp.status_code == 302 and _signed_in(signed)
    old, resp = _sign_in(user.username, PASSWORD)
    assert resp.status_code == 200 and not _signed_in(old)
    # The link worked once.
    again = _browser().get(link)
    assert again.status_code == 200 and 'data-testid="link-invalid"' in again.content.decode()
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="password.reset", actor_user_id=user.pk).count() == 1


def test_an_unknown_address_gets_the_same_answer_and_no_mail(world):
    known, unknown = _browser(), _browser("198.51.100.21")
    a = _request_reset(known, "trainer@acme.test")
    b = _request_reset(unknown, "nobody@acme.test")
    assert (a.status_code, a.url) == (b.status_code, b.url) == (302, "/login/reset/sent/")
    assert _without_token(known.get(a.url)) == _without_token(unknown.get(b.url))
    assert [msg.to for msg in mail.outbox] == [["trainer@acme.test"]]


def test_an_invalid_address_is_refused_naming_the_field(world):
    client = _browser()
    resp = _request_reset(client, "not-an-email")
    assert resp.status_code == 200 and 'data-testid="error-email"' in resp.content.decode()
    assert mail.outbox == []


def test_inactive_logins_get_no_mail(world):
    get_user_model().objects.filter(pk=world.users["trainer"].pk).update(is_active=False)
    _request_reset(_browser(), "trainer@acme.test")
    assert mail.outbox == []


def test_a_link_is_refused_once_the_password_changed_another_way(world):
    user = world.users["manager"]
    _request_reset(_browser(), user.email)
    link = _link_in(mail.outbox[0])
    user.set_password("another-good-password-9")
    user.save()
    resp = _browser().get(link)
    assert resp.status_code == 200 and 'data-testid="link-invalid"' in resp.content.decode()


def test_a_tampered_link_is_refused_and_counted(world, settings):
    settings.PUBLIC_RATE_LIMITS = {"unknown_token": (2, 600)}
    user = world.users["manager"]
    _request_reset(_browser(), user.email)
    link = _link_in(mail.outbox[0])
    client = _browser()
    for i in range(2):
        resp = client.get(link[:-4] + f"x{i}y/")
        assert resp.status_code == 200 and 'data-testid="link-invalid"' in resp.content.decode()
    limited = client.get(link)  # even the good link, from this address, for now
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert _browser("198.51.100.99").get(link).status_code == 302


def test_a_reset_does_not_skip_two_factor(world):
    user = world.users["admin"]
    TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    client = _browser()
    _request_reset(client, user.email)
    _choose(client, _open_form(client, _link_in(mail.outbox[0])), NEW_PASSWORD)
    assert not _signed_in(client)  # the link never signs anyone in
    fresh, resp = _sign_in(user.username, NEW_PASSWORD)
    assert resp.status_code == 302 and resp.url == "/login/code/" and not _signed_in(fresh)


def test_axes_lockout_still_applies_and_a_reset_from_that_address_lifts_it(world, settings):
    settings.AXES_FAILURE_LIMIT = 2
    user = world.users["manager"]
    for _ in range(2):
        _client, resp = _sign_in(user.username, "wrong-password")
    assert resp.status_code == 429 and 'data-testid="lockout"' in resp.content.decode()
    assert 'href="/login/reset/"' in resp.content.decode()
    _client, resp = _sign_in(user.username, PASSWORD)
    assert resp.status_code == 429  # locked: even the right password waits

    client = _browser()
    _request_reset(client, user.email)
    _choose(client, _open_form(client, _link_in(mail.outbox[0])), NEW_PASSWORD)
    signed, resp = _sign_in(user.username, NEW_PASSWORD)
    assert resp.status_code == 302 and _signed_in(signed)


# --- limits ---------------------------------------------------------------------------------------


def test_reset_requests_are_limited_per_network(world, settings):
    settings.PUBLIC_RATE_LIMITS = {"password_reset": (2, 3600)}
    client = _browser()
    for email in ("a@acme.test", "b@acme.test"):
        assert _request_reset(client, email).status_code == 302
    limited = _request_reset(client, "manager@acme.test")
    assert limited.status_code == 429 and int(limited["Retry-After"]) >= 1
    assert "Too many reset requests" in limited.content.decode()
    assert mail.outbox == []
    assert _request_reset(_browser("198.51.100.30"), "manager@acme.test").status_code == 302
    assert len(mail.outbox) == 1


def test_reset_mail_is_limited_per_inbox_without_saying_so(world, settings):
    settings.PUBLIC_RATE_LIMITS = {"password_reset_email": (2, 3600)}
    for i in range(4):
        resp = _request_reset(_browser(f"198.51.100.{40 + i}"), "manager@acme.test")
        assert resp.status_code == 302 and resp.url == "/login/reset/sent/"
    assert len(mail.outbox) == 2


# --- the first password of a new login ------------------------------------------------------------


def test_an_approved_shopper_is_emailed_a_link_and_signs_in(world, django_capture_on_commit_callbacks):
    applicant = make_shopper(
        world.a.org, email="nina@example.com", name="Nina Applicant", status=am.Shopper.Status.APPLIED
    )
    admin = _browser()
    admin.force_login(world.users["admin"])
    admin.get(f"/audits/shoppers/{applicant.pk}/")
    with django_capture_on_commit_callbacks(execute=True):
        resp = admin.post(f"/audits/shoppers/{applicant.pk}/approve/", {"csrfmiddlewaretoken": _csrf(admin)})
    assert resp.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["nina@example.com"]
    assert message.subject == "Acme: set your password for CEM"
    assert "Acme" in message.body and "Mystery shopper" in message.body and "7 days" in message.body
    link = _link_in(message)
    assert link.startswith("/login/welcome/")
    user = get_user_model().objects.get(username="nina@example.com")
    assert not user.has_usable_password()
    # A password cannot be guessed meanwhile: there is none.
    _client, resp = _sign_in("nina@example.com", "")
    assert resp.status_code == 200

    client = _browser()
    form_url = _open_form(client, link)
    page = client.get(form_url).content.decode()
    assert "Welcome" in page and "nina@example.com" in page
    assert _choose(client, form_url, NEW_PASSWORD).status_code == 302
    signed, resp = _sign_in("nina@example.com", NEW_PASSWORD)
    assert resp.status_code == 302 and _signed_in(signed)
    assert signed.get("/").status_code == 200
    again = _browser().get(link)
    assert 'data-testid="link-invalid"' in again.content.decode()
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="password.set", actor_user_id=user.pk).count() == 1


def test_a_member_added_without_a_password_is_invited_with_one_is_not(
    world, django_capture_on_commit_callbacks
):
    admin = _browser()
    admin.force_login(world.users["admin"])
    admin.get("/manage/users/new/")
    for email, password in (("new.trainer@example.com", ""), ("set.trainer@example.com", NEW_PASSWORD)):
        with django_capture_on_commit_callbacks(execute=True):
            resp = admin.post(
                "/manage/users/new/",
                {
                    "email": email,
                    "role": "trainer",
                    "password": password,
                    "csrfmiddlewaretoken": _csrf(admin),
                },
            )
        assert resp.status_code == 302, resp.content.decode()[:500]
    assert [msg.to for msg in mail.outbox] == [["new.trainer@example.com"]]
    assert "Trainer" in mail.outbox[0].body


def test_links_of_one_kind_do_not_open_the_other(world, django_capture_on_commit_callbacks):
    user = UserFactory(username="x@example.com", email="x@example.com")
    user.set_unusable_password()
    user.save()
    from cem import services
    from cem.principals import Actor

    with django_capture_on_commit_callbacks(execute=True), tenant_context(world.a.org):
        services.membership_create(
            organization=world.a.org, actor=Actor.system(), email=user.email, role="trainer"
        )
    invitation = _link_in(mail.outbox[0])
    _uid, token = invitation.rstrip("/").split("/")[-2:]
    resp = _browser().get(invitation.replace("/welcome/", "/reset/"))
    assert resp.status_code == 200 and 'data-testid="link-invalid"' in resp.content.decode()
    # An invitation that is not used is renewed with "Forgot password?".
    _request_reset(_browser(), user.email)
    reset = _link_in(mail.outbox[1])
    assert reset.startswith("/login/reset/") and token not in reset
    resp = _browser().get(reset.replace("/reset/", "/welcome/"))
    assert resp.status_code == 200 and 'data-testid="link-invalid"' in resp.content.decode()
    client = _browser()
    assert _choose(client, _open_form(client, reset), NEW_PASSWORD).status_code == 302


def test_an_expired_invitation_is_refused(world, settings, django_capture_on_commit_callbacks):
    from cem import services
    from cem.principals import Actor

    with django_capture_on_commit_callbacks(execute=True), tenant_context(world.a.org):
        services.membership_create(
            organization=world.a.org, actor=Actor.system(), email="late@example.com", role="trainer"
        )
    link = _link_in(mail.outbox[0])
    settings.PASSWORD_INVITATION_TIMEOUT = -1  # every invitation is past its time
    resp = _browser().get(link)
    assert resp.status_code == 200 and 'data-testid="link-invalid"' in resp.content.decode()


def test_a_rolled_back_membership_mails_nobody(world, django_capture_on_commit_callbacks):
    from django.db import transaction

    from cem import services
    from cem.principals import Actor

    with django_capture_on_commit_callbacks(execute=True), tenant_context(world.a.org):
        try:
            with transaction.atomic():
                services.membership_create(
                    organization=world.a.org, actor=Actor.system(), email="gone@example.com", role="trainer"
                )
                raise RuntimeError("the caller failed after the service")
        except RuntimeError:
            pass
    assert mail.outbox == []
