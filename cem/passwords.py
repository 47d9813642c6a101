"""Choosing a password without knowing one: the forgotten-password reset and the invitation link.

Both use Django's one-time links: the user's id and an HMAC over their password hash and last
sign-in, so a link stops working once a password is set (or the person signs in). Reset links
last ``PASSWORD_RESET_TIMEOUT`` (three days); the invitation sent when a login is created without
a password (the member form or ``POST /api/v1/memberships/`` without one, a shopper's approval)
lasts ``PASSWORD_INVITATION_TIMEOUT`` (seven days) and is signed under another salt, so neither
link opens the other's page. An expired invitation is renewed with "Forgot password?": unlike
Django's form, ours also answers logins that have no usable password yet.

The emails leave from Celery tasks after the transaction commits (cem/password_tasks.py): the
reset page answers alike, and as fast, whether or not the address has an account, and a
rolled-back approval mails nobody. Neither link signs anyone in: the sign-in page still asks for
the password and, for those who turned it on, the two-factor code.
"""

from __future__ import annotations

import logging
import unicodedata

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm
from django.contrib.auth.tokens import PasswordResetTokenGenerator, default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.encoding import force_bytes
from django.utils.http import base36_to_int, urlsafe_base64_encode
from kombu.exceptions import OperationalError as KombuOperationalError

from cem.models import Membership
from cem.principals import Actor
from cem.services import audit_log_write
from cem.tenancy import tenant_context, unscoped

logger = logging.getLogger(__name__)

INVITATION_TIMEOUT_DEFAULT = 7 * 24 * 3600


def invitation_timeout() -> int:
    return getattr(settings, "PASSWORD_INVITATION_TIMEOUT", INVITATION_TIMEOUT_DEFAULT)


class InvitationTokenGenerator(PasswordResetTokenGenerator):
    key_salt = "cem.passwords.InvitationTokenGenerator"

    def check_token(self, user, token):
        # Django's check reads PASSWORD_RESET_TIMEOUT; an invitation waits longer to be opened.
        if not (user and token):
            return False
        try:
            ts_b36, _hash = token.split("-")
            ts = base36_to_int(ts_b36)
        except ValueError:
            return False
        if self._num_seconds(self._now()) - ts > invitation_timeout():
            return False
        return any(
            constant_time_compare(self._make_token_with_timestamp(user, ts, secret), token)
            for secret in [self.secret, *self.secret_fallbacks]
        )


invitation_token_generator = InvitationTokenGenerator()


def _same_email(a: str, b: str) -> bool:
    return unicodedata.normalize("NFKC", a).casefold() == unicodedata.normalize("NFKC", b).casefold()


class ResetRequestForm(PasswordResetForm):
    def get_users(self, email):
        # Django's form skips logins without a usable password; ours were created that way on
        # purpose (invited, approved) and may renew an invitation that expired here.
        users = get_user_model()._default_manager.filter(email__iexact=email, is_active=True)
        return [user for user in users if user.email and _same_email(email, user.email)]


def _link(name: str, user, token: str) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return settings.SITE_URL.rstrip("/") + reverse(name, kwargs={"uidb64": uid, "token": token})


def _hours(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    hours = max(1, round(seconds / 3600))
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _send(*, template: str, subject: str, context: dict, to: str) -> None:
    message = EmailMultiAlternatives(
        subject=subject[:200],
        body=render_to_string(f"registration/email/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    message.attach_alternative(render_to_string(f"registration/email/{template}.html", context), "text/html")
    message.send()


# --- sending (from the tasks) ---------------------------------------------------------------------


def reset_email_send(*, user_id: int) -> bool:
    """Mail a reset link to an active login; False when there is no one to mail."""
    user = get_user_model()._default_manager.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email:
        return False
    context = {
        "user": user,
        "url": _link("password_reset_confirm", user, default_token_generator.make_token(user)),
        "valid_for": _hours(settings.PASSWORD_RESET_TIMEOUT),
        "reset_url": settings.SITE_URL.rstrip("/") + reverse("password_reset"),
    }
    _send(template="password_reset", subject="Reset your CEM password", context=context, to=user.email)
    return True


def invitation_email_send(*, membership_id: int) -> bool:
    """Mail the set-your-password link of a new login (inside its organization's tenant).

    False when there is nothing to send: the membership is gone or inactive, or the person
    chose a password meanwhile (an earlier link, a reset).
    """
    membership = (
        Membership.objects.select_related("user", "organization")
        .filter(pk=membership_id, is_active=True)
        .first()
    )
    if membership is None:
        return False
    user, organization = membership.user, membership.organization
    if not user.is_active or not user.email or user.has_usable_password():
        return False
    context = {
        "user": user,
        "organization": organization,
        "role": membership.get_role_display(),
        "url": _link("password_set", user, invitation_token_generator.make_token(user)),
        "valid_for": _hours(invitation_timeout()),
        "reset_url": settings.SITE_URL.rstrip("/") + reverse("password_reset"),
    }
    _send(
        template="password_set",
        subject=f"{organization.name}: set your password for CEM",
        context=context,
        to=user.email,
    )
    return True


# --- scheduling (from the requests and services) --------------------------------------------------


def reset_email_schedule(user_id: int) -> None:
    from cem.password_tasks import password_reset_send

    try:
        password_reset_send.delay(user_id)
    except (KombuOperationalError, ConnectionError, OSError):
        # Without a broker, mail from here rather than not at all.
        logger.warning("broker unavailable; mailing password reset for user %s inline", user_id)
        reset_email_send(user_id=user_id)


def invitation_on_commit(*, organization_id: int, membership_id: int) -> None:
    """Send the set-your-password email once the transaction that created the login commits."""

    def kick():
        from cem.password_tasks import password_set_send

        try:
            password_set_send.delay(organization_id, membership_id)
        except (KombuOperationalError, ConnectionError, OSError):
            logger.warning("broker unavailable; mailing invitation for membership %s inline", membership_id)
            with tenant_context(organization_id):
                invitation_email_send(membership_id=membership_id)

    transaction.on_commit(kick)


def password_set_record(*, user, action: str) -> None:
    """Audit-log a password chosen through a link in every organization the person works in.

    The person is signed out (no tenant in the request), so each organization gets its row.
    """
    with unscoped():
        org_ids = list(
            Membership.objects.filter(user=user, is_active=True).values_list("organization_id", flat=True)
        )
    for org_id in org_ids:
        with tenant_context(org_id):
            audit_log_write(
                organization=org_id,
                actor=Actor(user_id=user.pk),
                action=action,
                object_type="auth.User",
                object_id=user.pk,
            )
