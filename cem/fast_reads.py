"""Repeated reads of an unchanged dashboard panel, answered in front of Django.

A store dashboard polls its panels; most polls ask again for rows that have not changed. Django
answers those from the panel cache (alignment.panel_cache) in ~5 ms, nearly all of it the
authenticated request itself: session, user, membership, the scoped store, DRF. This WSGI layer
answers them in well under a millisecond with one Redis round trip, and only ever replays a
response Django itself produced for the same credential, request and data:

1. **Django answers first.** A GET on a registered route that carries a session cookie and no
   ``Authorization`` header goes through Django as usual. When the view says the response may be
   replayed (:func:`offer`: a session caller, the versions of the data it read), this layer keeps
   the complete 200 response (its headers, body) under (tenant, viewer's role and scope, host,
   path, query, Accept), and a **principal** for the session: sha256(session key) → (tenant,
   user, rate limit, viewer), exactly as Django resolved them.
2. **Replayed while nothing changed.** The next identical request with that session is answered
   by one Lua script: principal → stored response → each version it was computed under still
   current → the API rate limit counted in the same counter Django uses. Anything missing or
   different, or Redis unreachable, and the request goes to Django, which is always right.

What keeps a replay from being stale or over-permissive:

- **Versions** are Redis counters the writers raise after they commit (:func:`changed`): the
  rollup's writers for the store and the organization (alignment.panel_cache), and the
  organization's structure and names (locations, regions, standards, memberships: the tenant's
  counter). The view reads them *before* it reads the database, so a change that commits while it
  computes leaves the stored response already outdated, never wrongly current.
- **Principals** are dropped on logout, on switching organization, and when the user, their
  memberships or the organization change (cem.fast_reads_signals); a response is only replayed
  to the viewer scope it was computed for, and only for the store Django already found in scope.
- **Time bounds** for what a signal cannot see (a ``QuerySet.update``, a process killed between
  its commit and the counter): principals live at most ``WHO_TTL`` seconds, responses at most
  ``BODY_TTL`` seconds and never past the organization's local midnight, when relative periods
  ("last 90 days") move.

Single Redis (or Sentinel): the script computes its key names, which Redis Cluster would refuse.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from contextvars import ContextVar

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.http.cookie import parse_cookie
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cem.throttle import _cache_unavailable, _redis_client

WHO_TTL = 30
BODY_TTL = 60
RATE_WINDOW = 60  # cem.middleware.ApiRateLimitMiddleware's window
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Set by Django's response, per request: never replayed.
_PER_REQUEST = {
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "content-length",
}

_routes: list[re.Pattern] = []
# The request being answered by Django on the fast path's behalf: what the view offers to keep.
_offer: ContextVar[dict | None] = ContextVar("cem_fast_reads_offer", default=None)

# ARGV: prefix, principal digest, request digest, rate-limit key prefix, window, rate-limit ttl.
# Returns {0} without a principal, {1} on a miss, {2, headers, body, used, limit} on a hit.
_LOOKUP = """
local who = redis.call('GET', ARGV[1] .. 'who:' .. ARGV[2])
if not who then return {0} end
local tid, uid, limit, viewer = string.match(who, '^(%d+)|(%d+)|(%d+)|(.+)$')
if not tid then return {0} end
local bk = ARGV[1] .. 'body:' .. tid .. ':' .. viewer .. ':' .. ARGV[3]
local e = redis.call('HMGET', bk, 'deps', 'head', 'body')
if not e[3] then return {1} end
for name, seen in string.gmatch(e[1], '(%S+)=(%S*)') do
  local now = redis.call('GET', ARGV[1] .. 'v:' .. name) or ''
  if now ~= seen then return {1} end
end
local rk = ARGV[4] .. uid .. ':' .. ARGV[5]
local used = redis.call('INCR', rk)
if used == 1 then redis.call('EXPIRE', rk, ARGV[6]) end
if used > tonumber(limit) then return {1} end
return {2, e[2], e[3], used, tonumber(limit)}
"""


def tenant_version(tenant_id: int) -> str:
    """The version every response kept for the tenant depends on: its structure and names."""
    return f"t:{tenant_id}"


def register_route(pattern: str) -> None:
    """Paths (full match) whose GETs may be replayed; their views decide per request (:func:`offer`)."""
    _routes.append(re.compile(pattern))


class _Redis:
    """The Redis behind the shared cache, its lookup script and our key prefixes, resolved once per
    process: the cache proxy's per-call look-ups cost more than the replay's own Python."""

    def __init__(self):
        redis_cache = getattr(cache, "_cache", None)
        self.on = getattr(settings, "FAST_READS", True) and hasattr(redis_cache, "get_client")
        # Under the cache's prefix and version, as every other key of ours.
        self.prefix = cache.make_key("fr:")
        self.rate_prefix = cache.make_key("ratelimit:user:")
        self.client = _redis_client(redis_cache, self.prefix) if self.on else None
        # EVALSHA names a script by the SHA-1 of its text (a name, not a security measure).
        self.sha = hashlib.sha1(_LOOKUP.encode(), usedforsecurity=False).hexdigest()
        self._connections = threading.local()

    def lookup(self, args: list) -> list:
        """The lookup script on this thread's own connection (a replay's one round trip).

        Not through the client: its pool check-out, command building and script wrapper cost a
        third of a replay (25-40 µs of ~100); the connection is redis-py's, made by the cache's
        pool (same address, database, TLS and credentials), one per server thread."""
        connection = getattr(self._connections, "connection", None)
        if connection is None:
            connection = self._connections.connection = self.client.connection_pool.make_connection()
        command = connection.pack_command("EVALSHA", self.sha, 0, *args)
        for attempt in (1, 2):
            try:
                connection.send_packed_command(command, check_health=False)
                return connection.read_response()
            except NoScriptError:
                if attempt == 2:
                    raise
                self.client.script_load(_LOOKUP)  # a restarted or flushed Redis forgot it
            except (RedisConnectionError, RedisTimeoutError):
                connection.disconnect()  # closed by the server while idle: connect again, once
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


_resolved: _Redis | None = None


def _redis() -> _Redis:
    global _resolved
    if _resolved is None:
        _resolved = _Redis()
    return _resolved


@receiver(setting_changed)
def _settings_changed(setting, **kwargs):
    global _resolved
    if setting in ("CACHES", "FAST_READS"):
        _resolved = None


def _client():
    """Redis behind the shared cache, or None when the cache is not Redis (tests, LocMem)."""
    return _redis().client


def _prefix() -> str:
    return _redis().prefix


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:40]


# --- versions: raised by writers, read by views ---------------------------------------------------


def versions(names: list[str]) -> dict[str, str] | None:
    """The current versions of ``names`` ('' when never raised); None when they cannot be read."""
    client = _client()
    if client is None:
        return None
    prefix = _prefix()
    try:
        values = client.mget([f"{prefix}v:{name}" for name in names])
    except RedisError as exc:
        _cache_unavailable(exc, "fast reads are off")
        return None
    return {name: (v.decode() if v is not None else "") for name, v in zip(names, values, strict=True)}


def changed(names: list[str]) -> None:
    """Raise versions now: every response kept under an older one is no longer replayed."""
    client = _client()
    if client is None or not names:
        return
    prefix = _prefix()
    try:
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.incr(f"{prefix}v:{name}")
        pipe.execute()
    except RedisError as exc:
        # Responses kept under the old versions expire within BODY_TTL.
        _cache_unavailable(exc, f"versions {names} not raised")


def changed_on_commit(names: list[str]) -> None:
    """Raise versions once the current transaction commits (at once outside one)."""
    names = list(names)
    transaction.on_commit(lambda: changed(names))


# --- principals -----------------------------------------------------------------------------------


def _forget(set_key: str) -> None:
    client = _client()
    if client is None:
        return
    prefix = _prefix()
    try:
        digests = client.smembers(prefix + set_key)
        pipe = client.pipeline(transaction=False)
        for digest in digests:
            pipe.delete(f"{prefix}who:{digest.decode()}")
        pipe.delete(prefix + set_key)
        pipe.execute()
    except RedisError as exc:
        _cache_unavailable(exc, f"principals of {set_key} not dropped")


def forget_session(session_key: str | None) -> None:
    client = _client()
    if client is None or not session_key:
        return
    try:
        client.delete(f"{_prefix()}who:{_digest(session_key)}")
    except RedisError as exc:
        _cache_unavailable(exc, "a session's principal not dropped")


def forget_user(user_id: int) -> None:
    _forget(f"users:{user_id}")


def forget_tenant(tenant_id: int) -> None:
    _forget(f"tenants:{tenant_id}")


# --- the view's side --------------------------------------------------------------------------------


def offer(request, *, viewer: str, seen: dict[str, str] | None, expires_at: float) -> None:
    """Let this response be replayed to ``viewer`` while the ``seen`` versions stay current.

    Only when the request came through :class:`FastReads` (a registered route with a session
    cookie), was authenticated by that session (not an API key) and ``seen`` was read before the
    view read the database."""
    pending = _offer.get()
    if pending is None or seen is None or not viewer or "|" in viewer or " " in viewer:
        return
    django_request = getattr(request, "_request", request)
    session = getattr(django_request, "session", None)
    user = getattr(django_request, "user", None)
    tenant = getattr(django_request, "tenant", None)
    if (
        getattr(django_request, "api_key", None) is not None
        or tenant is None
        or user is None
        or not user.is_authenticated
        or session is None
        or session.session_key != pending["session_key"]
    ):
        return
    pending.update(
        tenant=tenant.pk,
        user=user.pk,
        limit=settings.API_RATE_LIMIT_PER_MINUTE,
        viewer=viewer,
        deps=" ".join(f"{name}={value}" for name, value in sorted(seen.items())),
        expires_at=expires_at,
        session_age=session.get_expiry_age(),
    )


# --- the WSGI layer ---------------------------------------------------------------------------------


class FastReads:
    """WSGI middleware in front of Django (cem.wsgi)."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        request = self._eligible(environ)
        if request is None:
            return self.app(environ, start_response)
        who, key, session_key = request
        redis = _redis()
        client = redis.client
        if client is None:
            return self.app(environ, start_response)
        window = int(time.time() // RATE_WINDOW)
        try:
            found = redis.lookup(args=[redis.prefix, who, key, redis.rate_prefix, window, RATE_WINDOW + 5])
        except RedisError as exc:
            _cache_unavailable(exc, "fast reads are off")
            return self.app(environ, start_response)
        if found[0] == 2:
            return self._replay(environ, start_response, found, (window + 1) * RATE_WINDOW)
        return self._through_django(environ, start_response, client, who, key, session_key)

    @staticmethod
    def _eligible(environ) -> tuple[str, str, str] | None:
        """(principal digest, request digest, session key) for a request that may be replayed."""
        if environ.get("REQUEST_METHOD") != "GET" or not _routes or environ.get("HTTP_AUTHORIZATION"):
            return None
        path = environ.get("PATH_INFO", "")
        if not any(route.fullmatch(path) for route in _routes):
            return None
        secure = _is_secure(environ)
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None  # Django answers with its redirect
        session_key = parse_cookie(environ.get("HTTP_COOKIE", "")).get(settings.SESSION_COOKIE_NAME, "")
        if not session_key:
            return None
        request = "\n".join(
            [
                "https" if secure else "http",  # Django's headers differ (HSTS)
                environ.get("HTTP_HOST", ""),
                environ.get("SCRIPT_NAME", "") + path,
                environ.get("QUERY_STRING", ""),
                environ.get("HTTP_ACCEPT", ""),
            ]
        )
        return _digest(session_key), _digest(request), session_key

    @staticmethod
    def _replay(environ, start_response, found, reset: int):
        _, head, body, used, limit = found
        headers = [(name, value) for name, value in json.loads(head)]
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        headers += [
            ("Content-Length", str(len(body))),
            ("X-Request-ID", incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex),
            ("X-RateLimit-Limit", str(limit)),
            ("X-RateLimit-Remaining", str(max(0, limit - used))),
            ("X-RateLimit-Reset", str(reset)),
        ]
        start_response("200 OK", headers)
        return [body]

    def _through_django(self, environ, start_response, client, who, key, session_key):
        pending = {"session_key": session_key}
        token = _offer.set(pending)
        answered = {}

        def capture(status, headers, exc_info=None):
            answered["status"], answered["headers"] = status, headers
            return start_response(status, headers, exc_info)

        try:
            result = self.app(environ, capture)
            if "viewer" not in pending or not answered.get("status", "").startswith("200 "):
                return result
            try:
                body = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        finally:
            _offer.reset(token)
        self._keep(client, pending, answered["headers"], who, key, body)
        return [body]

    @staticmethod
    def _keep(client, pending: dict, headers: list, who: str, key: str, body: bytes) -> None:
        if any(name.lower() == "set-cookie" for name, _ in headers):
            return  # a response that changes the client's cookies is never replayed
        content_type = next((v for n, v in headers if n.lower() == "content-type"), "")
        if not content_type.startswith("application/json"):
            return  # e.g. the browsable API's HTML, which names the user and carries their CSRF token
        now = time.time()
        body_ttl = int(min(BODY_TTL, pending["expires_at"] - now))
        who_ttl = int(min(WHO_TTL, pending["session_age"]))
        if body_ttl < 1 or who_ttl < 1:
            return
        prefix, tenant, user = _prefix(), pending["tenant"], pending["user"]
        kept = json.dumps([[n, v] for n, v in headers if n.lower() not in _PER_REQUEST])
        body_key = f"{prefix}body:{tenant}:{pending['viewer']}:{key}"
        try:
            pipe = client.pipeline(transaction=False)
            pipe.set(
                f"{prefix}who:{who}", f"{tenant}|{user}|{pending['limit']}|{pending['viewer']}", ex=who_ttl
            )
            for index in (f"users:{user}", f"tenants:{tenant}"):
                pipe.sadd(prefix + index, who)
                pipe.expire(prefix + index, WHO_TTL + 5)
            pipe.hset(body_key, mapping={"deps": pending["deps"], "head": kept, "body": body})
            pipe.expire(body_key, body_ttl)
            pipe.execute()
        except RedisError as exc:
            _cache_unavailable(exc, "a response not kept for fast reads")


def _is_secure(environ) -> bool:
    header = settings.SECURE_PROXY_SSL_HEADER
    if header:
        name, value = header
        forwarded = environ.get(name)
        if forwarded is not None:
            return forwarded.split(",", 1)[0].strip() == value
    return environ.get("wsgi.url_scheme") == "https"
