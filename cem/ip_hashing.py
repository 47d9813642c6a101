"""IP addresses are never stored: only HMACs under a rotating salt, where abuse control needs one.

The per-IP limits of the public pages, the ``ip_hash`` kept on anonymous responses (ballot
stuffing) and django-axes' login lockout (``AXES_CLIENT_IP_CALLABLE``) all see
``HMAC(salt of the period, address)``. The salt is random, drawn once per period
(``IP_HASH_ROTATION_SECONDS``, a day by default), kept only in the shared cache so every web
process uses the same one, and expires two periods later. Within a period one address hashes the
same, which is all the limits need; once the salt is gone nobody, not even someone holding
SECRET_KEY and a copy of the database, can tell which address a stored hash came from (IPv4 is
small enough to brute-force any hash whose key is known, so a fixed key would not do).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

DEFAULT_IP_HASH_ROTATION_SECONDS = 24 * 3600
# A process re-reads the shared salt this often, so all processes agree again soon after the
# cache lost it (eviction, a Redis restart) and one of them drew a new one.
_SALT_MEMO_SECONDS = 60
_salts: dict[int, tuple[float, bytes]] = {}


def rotation_seconds() -> int:
    return max(60, int(getattr(settings, "IP_HASH_ROTATION_SECONDS", DEFAULT_IP_HASH_ROTATION_SECONDS)))


def _shared_salt(key: str, ttl: int) -> str:
    try:
        cache.add(key, secrets.token_hex(32), timeout=ttl)
        value = cache.get(key)
    except Exception as exc:  # a cache outage must not stop the public pages
        logger.warning("cache unavailable for the IP salt (%r): this process draws its own", exc)
        value = None
    return value or secrets.token_hex(32)


def ip_salt(at: float | None = None) -> bytes:
    """The random salt of the period ``at`` (default now) falls in; never written anywhere durable."""
    now = time.time() if at is None else at
    rotation = rotation_seconds()
    period = int(now // rotation)
    memo = _salts.get(period)
    if memo is not None and time.monotonic() - memo[0] < _SALT_MEMO_SECONDS:
        return memo[1]
    salt = bytes.fromhex(_shared_salt(f"cem:ip-salt:{rotation}:{period}", 2 * rotation))
    for old in [p for p in _salts if p < period - 1]:
        del _salts[old]
    _salts[period] = (time.monotonic(), salt)
    return salt


def hash_ip(ip: str, at: float | None = None) -> str:
    return hmac.new(ip_salt(at), ip.encode(), hashlib.sha256).hexdigest()


def pseudonymous_ip(request) -> str:
    """django-axes' client address: a unique-local IPv6 address (fd00::/8) made of the rotating
    hash, so its lockout per address still works and its tables never hold a real one."""
    from cem.throttle import ip_hash

    digest = bytes.fromhex(ip_hash(request))
    return str(ipaddress.IPv6Address(b"\xfd" + digest[:15]))
