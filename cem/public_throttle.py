"""Per-address limits for the endpoints anyone can call without signing in.

Each public view asks ``wait_seconds(request, name)`` before doing work; over the limit it
answers 429 with ``Retry-After``. The numbers are abuse caps, well above what one person (or one
shop's shared Wi-Fi) does; the anonymous survey sources also keep their tighter per-survey cap
(feedback.ballot), and sign-in failures are locked out per account by django-axes.

``unknown_token`` is counted by every public view whose token, code or signature matched
nothing: 256-bit tokens cannot be guessed anyway, but an address that keeps trying is told to
stop long before it could learn anything.

Override a limit with ``settings.PUBLIC_RATE_LIMITS = {"name": (requests, window seconds)}``.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse
from redis.exceptions import RedisError

from cem.throttle import ip_hash, keyed_hash, window_limited

LIMITS: dict[str, tuple[int, int]] = {
    "respond_post": (300, 600),  # survey pages POSTed (invitation and anonymous links)
    "unknown_token": (30, 600),  # respondent, unsubscribe and certificate look-ups that found nothing
    "unsubscribe": (120, 600),  # mail scanners of one company follow many links from one address
    "certificate_verify": (60, 600),
    "login": (50, 600),  # sign-in POSTs from one address, whichever accounts they name
    "password_reset": (20, 3600),  # reset requests from one address, whichever emails they name
    "password_reset_email": (3, 3600),  # reset emails to one address (over it: quietly none)
}


def limit_of(name: str) -> tuple[int, int]:
    return getattr(settings, "PUBLIC_RATE_LIMITS", {}).get(name, LIMITS[name])


def _key(request, name: str) -> str:
    return f"public:{name}:{ip_hash(request)}"


def wait_seconds(request, name: str) -> int | None:
    """Count this request against ``name``; the seconds to wait when over the limit, else None."""
    limit, window = limit_of(name)
    return window_limited(_key(request, name), limit=limit, window=window)


def subject_wait_seconds(name: str, subject: str) -> int | None:
    """As ``wait_seconds``, counted per ``subject`` (an email address) instead of per address.

    The subject is kept only as a keyed hash in the cache key, never as it was typed.
    """
    limit, window = limit_of(name)
    return window_limited(f"public:{name}:{keyed_hash(name, subject)}", limit=limit, window=window)


def blocked_for(request, name: str) -> int | None:
    """The seconds to wait when the address already used up ``name``, without counting a hit.

    For limits on failures (``unknown_token``): they are counted only when a look-up fails,
    but once over, every look-up is refused, found or not, so the answer tells nothing.
    Reads the counter ``cem.throttle.window_limited`` keeps (``<key>:<window number>``).
    """
    limit, window = limit_of(name)
    now = time.time()
    current = int(now // window)
    try:
        used = int(cache.get(f"{_key(request, name)}:{current}") or 0)
    except (RedisError, ValueError, TypeError):
        return None  # as cem.throttle: a cache outage never turns requests away
    if used >= limit:
        return max(1, int((current + 1) * window - now))
    return None


def with_retry_after(response: HttpResponse, wait: int) -> HttpResponse:
    response["Retry-After"] = str(wait)
    return response
