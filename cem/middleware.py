import hashlib
import re
import time
import uuid

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from cem.context import request_id_var
from cem.models import IdempotencyRecord
from cem.principals import api_key_from_header, memberships_of, pick_membership, touch_api_key
from cem.tenancy import tenant_context, unscoped
from cem.throttle import count_hit

API_PREFIX = "/api/v1/"
SESSION_ORG_KEY = "cem_organization_id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _problem(status: int, detail: str, **extra) -> JsonResponse:
    return JsonResponse({"detail": detail, **extra}, status=status)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class TenantMiddleware:
    """Resolve the caller's organization once and hold the tenant context for the whole request.

    A Bearer API key wins over the session. An invalid key is a 401 at once, never a fallback
    to the session. Staff on the Django admin get the system context (the admin is for staff).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = None
        request.membership = None
        request.api_key = None
        request.memberships = []

        auth_header = request.headers.get("Authorization", "")
        if auth_header:
            key = api_key_from_header(auth_header)
            if key is None:
                response = _problem(401, "Invalid, revoked or malformed API key.")
                response["WWW-Authenticate"] = 'Bearer realm="api"'
                return response
            request.api_key = key
            request.tenant = key.organization
            with tenant_context(key.organization_id):
                touch_api_key(key)
                return self.get_response(request)

        user = request.user
        if user.is_authenticated:
            request.memberships = memberships_of(user)
            membership = pick_membership(request.memberships, request.session.get(SESSION_ORG_KEY))
            if membership is not None:
                request.membership = membership
                request.tenant = membership.organization
                with tenant_context(membership.organization_id):
                    return self.get_response(request)
            if user.is_staff and request.path.startswith("/admin/"):
                with unscoped():
                    return self.get_response(request)
        return self.get_response(request)


def principal_of(request) -> str | None:
    if getattr(request, "api_key", None) is not None:
        return f"key:{request.api_key.pk}"
    if getattr(request, "tenant", None) is not None and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return None


class ApiRateLimitMiddleware:
    """Fixed one-minute window per API key (or per user), counted in the shared cache."""

    WINDOW = 60

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        principal = principal_of(request) if request.path.startswith(API_PREFIX) else None
        if principal is None:
            return self.get_response(request)
        key = getattr(request, "api_key", None)
        limit = (key.rate_limit_per_minute if key is not None else None) or settings.API_RATE_LIMIT_PER_MINUTE
        now = time.time()
        window = int(now // self.WINDOW)
        reset = (window + 1) * self.WINDOW
        used = count_hit(f"ratelimit:{principal}:{window}", ttl=self.WINDOW + 5)
        remaining = max(0, limit - used)
        if used > limit:
            retry_after = max(1, int(reset - now))
            response = _problem(429, f"Rate limit of {limit} requests per minute exceeded.")
            response["Retry-After"] = str(retry_after)
        else:
            response = self.get_response(request)
        response["X-RateLimit-Limit"] = str(limit)
        response["X-RateLimit-Remaining"] = str(remaining)
        response["X-RateLimit-Reset"] = str(int(reset))
        return response


class _Busy(Exception):
    """The record's row lock is held: the request that holds it is still running."""


def _lock_not_available(exc: DatabaseError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "55P03"


class IdempotencyMiddleware:
    """Honour ``Idempotency-Key`` on every API POST (the IETF draft's semantics).

    A retry with the same key and body replays the stored status and body for 24 hours
    (``Idempotent-Replayed: true``); the same key with another body is 422; a retry while the
    first is still running is 409 with Retry-After. 5xx outcomes are not stored, so the client
    may retry them.

    The key is claimed by committing an in-flight row. The view then runs in ONE transaction
    that starts by locking that row and ends by marking it done, so the write and the stored
    outcome commit together or not at all. A process killed or a connection lost anywhere in
    between leaves the row in flight with no lock held (PostgreSQL released it with the
    transaction); the next retry finds it unlocked (NOWAIT), knows nothing of the first attempt
    was kept, and runs the view itself under the lock. A held lock means the first request is
    still running: 409. Work deferred to ``transaction.on_commit`` (outbox doorbells, mails,
    export builds) runs after this outer commit, once the outcome is stored. No API view commits
    partial progress (every write request, bulk ingests included, is one transaction already:
    cem.api.base), so nesting the view in this transaction changes nothing it relies on.
    """

    HEADER = "Idempotency-Key"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get(self.HEADER)
        if key is None or request.method != "POST" or not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        principal = principal_of(request)
        if principal is None:
            return self.get_response(request)
        if not key or len(key) > 255 or not key.isprintable():
            return _problem(400, "Idempotency-Key must be 1-255 printable characters.", field=self.HEADER)

        digest = hashlib.sha256(
            b"POST\n" + request.get_full_path().encode() + b"\n" + request.body
        ).hexdigest()
        records = IdempotencyRecord.objects.filter(principal=principal, key=key)
        records.filter(created_at__lt=timezone.now() - settings.IDEMPOTENCY_TTL).delete()
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    principal=principal, key=key, method="POST", path=request.path[:500], request_hash=digest
                )
            claimed = True
        except IntegrityError:
            claimed = False
            record = records.first()
            outcome = self._settled(record, digest)
            if outcome is not None:
                return outcome

        failed = False
        try:
            with transaction.atomic():
                # Our own claim waits for the lock: a retry may have taken the row over in the
                # moment between our claim's commit and this statement. A retry never waits.
                try:
                    record = records.select_for_update(nowait=not claimed).first()
                except DatabaseError as exc:
                    if _lock_not_available(exc):
                        raise _Busy from exc
                    raise
                # Whoever held the lock before us may have finished (done) or failed (deleted).
                outcome = self._settled(record, digest)
                if outcome is not None:
                    return outcome
                response = self.get_response(request)
                if response.status_code >= 500:
                    # Nothing of a failed request is kept, the view's writes included, so the
                    # client's retry starts from clean.
                    transaction.set_rollback(True)
                    failed = True
                    return response
                if getattr(response, "streaming", False):
                    record.delete()  # a stream cannot be replayed: the key is free again
                    return response
                if hasattr(response, "render") and not response.is_rendered:
                    response.render()
                record.state = IdempotencyRecord.State.DONE
                record.response_status = response.status_code
                record.response_body = bytes(response.content)
                record.response_content_type = response.get("Content-Type", "")
                record.save(
                    update_fields=["state", "response_status", "response_body", "response_content_type"]
                )
                return response
        except _Busy:
            response = _problem(
                409, "A request with this Idempotency-Key is still being processed.", field=self.HEADER
            )
            response["Retry-After"] = "1"
            return response
        finally:
            if failed:
                # After the rollback, on whatever connection is left. Should this fail too, the
                # row stays in flight without a lock and the retry takes it over.
                IdempotencyRecord.objects.filter(
                    pk=record.pk, state=IdempotencyRecord.State.IN_FLIGHT
                ).delete()

    def _settled(self, record: IdempotencyRecord | None, digest: str) -> HttpResponse | None:
        """The answer for a key already used, or None when its request must (still) be run."""
        if record is None:  # deleted by a concurrent failure: ask the client to retry
            return _problem(
                409, "A request with this Idempotency-Key just failed; retry it.", field=self.HEADER
            )
        if record.request_hash != digest:
            return _problem(
                422, "This Idempotency-Key was already used with a different request body.", field=self.HEADER
            )
        if record.state == IdempotencyRecord.State.IN_FLIGHT:
            return None
        response = HttpResponse(
            bytes(record.response_body or b""),
            status=record.response_status,
            content_type=record.response_content_type or "application/json",
        )
        response["Idempotent-Replayed"] = "true"
        return response
