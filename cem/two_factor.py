"""TOTP two-factor sign-in (django-otp's TOTP plugin): each user chooses it for themselves, and an
organization may require it of its admins.

A user with a confirmed device is asked for a code after the password (cem/login.py); a user
without one signs in with the password alone. Enrolling (account page) creates an unconfirmed
device, shows it as a QR code, and confirms it only once the user types a code it produced, so a
mis-scanned QR never locks anyone out. Wrong codes are slowed down by django-otp's throttling
(each failure doubles the wait) and counted by django-axes like wrong passwords.

``Organization.require_admin_two_factor``: an org admin working in that organization whose session
was not verified with a code reaches only the enrolment page, logout and the organization switch
(``AdminTwoFactorMiddleware``) — pages redirect there, the API answers 403 — until they enrol.
API keys are not people and are not affected. Admins of such an organization cannot turn their
two-factor off.
"""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import segno
from django.conf import settings
from django.contrib.auth import logout
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django_otp import devices_for_user, match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from cem.middleware import API_PREFIX
from cem.models import Role
from cem.principals import Actor
from cem.services import audit_log_write

DEVICE_NAME = "Authenticator app"


def has_two_factor(user) -> bool:
    return any(True for _ in devices_for_user(user, confirmed=True))


def pending_device(user) -> TOTPDevice:
    """The unconfirmed device being enrolled: the same one (and QR code) until it is confirmed."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    return device or TOTPDevice.objects.create(user=user, name=DEVICE_NAME, confirmed=False)


def manual_key(device: TOTPDevice) -> str:
    """The secret as authenticator apps accept it when typed (base32, in groups of four)."""
    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(device: TOTPDevice) -> SafeString:
    """The otpauth:// URL as an inline SVG (no image request, no data: URL, nothing to cache)."""
    svg = segno.make(device.config_url, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    # segno writes only rects and paths of its own; the URL is encoded as modules, never as text.
    drawing = mark_safe(svg)  # noqa: S308
    return format_html('<span role="img" aria-label="QR code for your authenticator app">{}</span>', drawing)


def verify(user, token: str):
    """The confirmed device that accepts ``token`` for ``user``, or None."""
    token = (token or "").replace(" ", "")
    if not token.isdigit():
        return None
    return match_token(user, token)


def _audit(organization, actor: Actor, action: str, user) -> None:
    # Two-factor belongs to the person, not to one organization: the change is logged in the
    # organization they were working in (staff outside every organization leave no tenant row).
    if organization is not None:
        audit_log_write(
            organization=organization, actor=actor, action=action, object_type="auth.User", object_id=user.pk
        )


def two_factor_enable(*, organization, actor: Actor, user, device: TOTPDevice, token: str) -> bool:
    """Confirm ``device`` with a code it produced; False (nothing changes) for a wrong code."""
    token = (token or "").replace(" ", "")
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
        if device.confirmed or not token.isdigit() or not device.verify_token(token):
            return False
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        # One authenticator at a time: enrolling again replaces the previous one.
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        _audit(organization, actor, "two_factor.enabled", user)
    return True


def two_factor_disable(*, organization, actor: Actor, user, token: str) -> bool:
    """Turn two-factor off; a current code is needed, so a borrowed session cannot do it."""
    with transaction.atomic():
        if verify(user, token) is None:
            return False
        TOTPDevice.objects.filter(user=user).delete()
        _audit(organization, actor, "two_factor.disabled", user)
    return True


# --- required for admins -------------------------------------------------------------------------

# What a walled admin may still reach: enrolment, leaving, and another organization of theirs.
OPEN_TO_UNENROLLED = {"account_two_factor", "logout", "organization_switch", "login", "login_code"}


def required_for(membership) -> bool:
    return bool(
        membership is not None
        and membership.role == Role.ORG_ADMIN
        and membership.organization.require_admin_two_factor
    )


def required_anywhere(memberships) -> bool:
    """Whether any organization the person administers requires two-factor of its admins."""
    return any(required_for(m) for m in memberships)


def _open_path(request) -> bool:
    if request.path.startswith((settings.STATIC_URL, "/favicon.ico")):
        return True
    try:
        return resolve(request.path_info).url_name in OPEN_TO_UNENROLLED
    except Resolver404:
        return False


class AdminTwoFactorMiddleware:
    """After TenantMiddleware: the wall in front of an admin whose organization requires a code."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            getattr(request, "api_key", None) is None
            and required_for(getattr(request, "membership", None))
            and not request.user.is_verified()
            and not _open_path(request)
        ):
            return self.wall(request)
        return self.get_response(request)

    def wall(self, request):
        if request.path.startswith(API_PREFIX):
            return JsonResponse(
                {
                    "detail": "Your organization requires two-factor sign-in for administrators. "
                    "Set it up at /account/two-factor/ first, or use an API key.",
                },
                status=403,
            )
        if has_two_factor(request.user):
            # Enrolled, but this session never gave a code (it began before they enrolled, or
            # was made without the sign-in page): sign in again, with the code this time.
            logout(request)
            target = f"{reverse('login')}?{urlencode({'next': request.get_full_path()})}"
        else:
            target = reverse("account_two_factor")
        if request.headers.get("HX-Request"):
            response = HttpResponse(status=204)
            response["HX-Redirect"] = target
            return response
        return redirect(target)
