"""Counting requests in fixed windows, and the request facts public endpoints limit on.

Used by the API rate limit (per key or user), the public respondent pages and the public
shopper application (per hashed IP). Counters live in the shared cache, so every web process
sees the same count.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

_redis_clients: dict = {}
_last_outage_log = 0.0


def _cache_unavailable(exc: Exception, what: str) -> None:
    # Once every few seconds: an outage under load would otherwise log every request.
    global _last_outage_log
    now = time.monotonic()
    if now - _last_outage_log > 5:
        _last_outage_log = now
        logger.warning("cache unavailable (%r): %s", exc, what)


def _redis_client(redis_cache, full_key: str):
    # Django builds a new client object around its pool on every call, which cost a third of
    # the counter; the client is thread-safe, so keep one per pool.
    pool = redis_cache._get_connection_pool(write=True)
    client = _redis_clients.get(pool)
    if client is None:
        client = _redis_clients[pool] = redis_cache.get_client(full_key, write=True)
    return client


def count_hit(key: str, *, ttl: int) -> int:
    """Add one to a counter that expires; one round trip on Redis (this runs on every API call).

    Fails open: with Redis unreachable the hit counts as 0, so a cache outage never turns
    requests away (writes land in PostgreSQL and its outbox; limits resume with Redis).
    """
    redis_cache = getattr(cache, "_cache", None)
    if hasattr(redis_cache, "get_client"):
        full_key = cache.make_and_validate_key(key)
        try:
            pipe = _redis_client(redis_cache, full_key).pipeline(transaction=False)
            # The window's expiry set as it is created, then counted: any Redis version (EXPIRE NX
            # needs Redis 7, and the embedded Redis of ./run and ./test is 6).
            pipe.set(full_key, 0, ex=ttl, nx=True)
            pipe.incr(full_key)
            _, used = pipe.execute()
        except RedisError as exc:
            _cache_unavailable(exc, "rate limits are not counted")
            return 0
        return int(used)
    cache.add(key, 0, timeout=ttl)
    try:
        return cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1


def set_once(key: str, *, ttl: int) -> bool:
    """SET NX with an expiry: whether this call set it (one round trip on Redis; False without it)."""
    redis_cache = getattr(cache, "_cache", None)
    if hasattr(redis_cache, "get_client"):
        full_key = cache.make_and_validate_key(key)
        try:
            return bool(_redis_client(redis_cache, full_key).set(full_key, 1, nx=True, ex=ttl))
        except RedisError as exc:
            _cache_unavailable(exc, f"{key} not set")
            return False
    return cache.add(key, 1, timeout=ttl)


def window_limited(key: str, *, limit: int, window: int) -> int | None:
    """Count one hit in the current window; the seconds to wait when over ``limit``, else None."""
    now = time.time()
    current = int(now // window)
    used = count_hit(f"{key}:{current}", ttl=window + 60)
    if used > limit:
        return max(1, int((current + 1) * window - now))
    return None


def keyed_hash(purpose: str, value: str) -> str:
    """HMAC(SECRET_KEY, value) per purpose: lets us count and compare without keeping the value."""
    key = f"{settings.SECRET_KEY}:{purpose}".encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def client_ip(request) -> str:
    """REMOTE_ADDR, or the address the N-th trusted proxy saw (settings.NUM_PROXIES, default 0).

    X-Forwarded-For is only believed as far as our own proxies append to it, otherwise anyone
    could dodge a per-IP limit by sending a made-up header.
    """
    proxies = getattr(settings, "NUM_PROXIES", 0)
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        if len(hops) >= proxies:
            return hops[-proxies]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def ip_hash(request) -> str:
    # Under a rotating salt (cem.ip_hashing): the hash is unlinkable to the address once it expires.
    from cem.ip_hashing import hash_ip

    return hash_ip(client_ip(request))


def content_length(request) -> int:
    """The declared body size; public views refuse big bodies before Django reads them."""
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0
