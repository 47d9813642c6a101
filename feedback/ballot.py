"""Ballot-stuffing defence for the anonymous sources (QR / anonymous links and the web widget).

- One counted response per device, survey and local day (the organization's time zone). The
  device is a random id we issue, signed so a client cannot pick its own; it travels in a
  first-party cookie on our respondent pages and, for the widget (third-party cookies are often
  blocked), as a token the script keeps in the host page's localStorage and sends in the body.
  Only ``HMAC(SECRET_KEY, device id)`` is stored on the response.
- The check and the insert run under a transaction-scoped advisory lock on (org, survey,
  device), so concurrent submissions from one device serialise and only the first counts.
- A per-IP, per-survey hourly counter in the shared cache caps what fresh devices (cleared
  cookies, scripted clients) can add. IPs are only ever kept as HMACs under a rotating salt
  (cem.ip_hashing), unlinkable to the address once the period's salt has expired.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import zoneinfo

from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.utils import timezone

from cem.throttle import content_length, ip_hash, keyed_hash, window_limited
from feedback.models import Response

__all__ = ["content_length", "ip_hash"]  # the public views read them from here

DEVICE_COOKIE = "cem_rd"
DEVICE_COOKIE_AGE = 2 * 365 * 24 * 3600
_DEVICE_SALT = "feedback.ballot.device"
RATE_WINDOW = 3600


class AlreadyAnswered(Exception):
    """This device already has a counted response for this survey today."""


def _signer() -> signing.Signer:
    return signing.Signer(salt=_DEVICE_SALT)


def new_device_token() -> str:
    return _signer().sign(secrets.token_urlsafe(16))


def device_id_from(token: str | None) -> str | None:
    if not token or len(token) > 200:
        return None
    try:
        return _signer().unsign(token)
    except signing.BadSignature:
        return None


def device_hash(device_id: str) -> str:
    return keyed_hash("device", device_id)


def ip_limit() -> int:
    return getattr(settings, "FEEDBACK_PUBLIC_IP_LIMIT_PER_HOUR", 20)


def rate_limited(survey_id: int, hashed_ip: str) -> int | None:
    """Count one submission; return the seconds to wait when over the limit, else None."""
    return window_limited(f"feedback:ip:{survey_id}:{hashed_ip}", limit=ip_limit(), window=RATE_WINDOW)


def local_day_bounds(organization, at=None) -> tuple[dt.datetime, dt.datetime]:
    try:
        zone = zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    local = timezone.localtime(at or timezone.now(), zone)
    start = dt.datetime.combine(local.date(), dt.time.min, tzinfo=zone)
    end = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
    return start, end


def _lock_key(org_id: int, survey_id: int, hashed_device: str) -> int:
    digest = hashlib.sha256(f"ballot:{org_id}:{survey_id}:{hashed_device}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def record_once_per_day(*, organization, survey, hashed_device: str, record):
    """Run ``record()`` (which writes the response) unless this device already answered today.

    Raises AlreadyAnswered. Must be the outermost transaction so the lock is held until commit.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s)", [_lock_key(organization.pk, survey.pk, hashed_device)]
            )
        start, end = local_day_bounds(organization)
        if Response.objects.filter(
            survey=survey, device_hash=hashed_device, submitted_at__gte=start, submitted_at__lt=end
        ).exists():
            raise AlreadyAnswered
        return record()
