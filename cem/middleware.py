import hashlib
import re
import time
import uuid

from django.conf import settings
from django.db import IntegrityError, transaction
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


class IdempotencyMiddleware:
    """Honour ``Idempotency-Key`` on every API POST (the IETF draft's semantics).

    First request: an in-flight row is committed before the view runs. A retry with the same
    key and body replays the stored status and body for 24 hours; the same key with another
    body is 422; a retry while the first is still running is 409. 5xx outcomes are not stored,
    so the client may retry them.
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
        expired_before = timezone.now() - settings.IDEMPOTENCY_TTL
        IdempotencyRecord.objects.filter(principal=principal, key=key, created_at__lt=expired_before).delete()
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    principal=principal, key=key, method="POST", path=request.path[:500], request_hash=digest
                )
        except IntegrityError:
            return self._replay(principal, key, digest)

        try:
            response = self.get_response(request)
        except BaseException:
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            raise
        if response.status_code >= 500 or getattr(response, "streaming", False):
            IdempotencyRecord.objects.filter(pk=record.pk).delete()
            return response
        if hasattr(response, "render") and not response.is_rendered:
            response.render()
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            state=IdempotencyRecord.State.DONE,
            response_status=response.status_code,
            response_body=bytes(response.content),
            response_content_type=response.get("Content-Type", ""),
        )
        return response

    def _replay(self, principal: str, key: str, digest: str) -> HttpResponse:
        record = IdempotencyRecord.objects.filter(principal=principal, key=key).first()
        if record is None:  # deleted by a concurrent failure: ask the client to retry
            return _problem(
                409, "A request with this Idempotency-Key just failed; retry it.", field=self.HEADER
            )
        if record.request_hash != digest:
            return _problem(
                422, "This Idempotency-Key was already used with a different request body.", field=self.HEADER
            )
        if record.state == IdempotencyRecord.State.IN_FLIGHT:
            response = _problem(
                409, "A request with this Idempotency-Key is still being processed.", field=self.HEADER
            )
            response["Retry-After"] = "1"
            return response
        response = HttpResponse(
            bytes(record.response_body or b""),
            status=record.response_status,
            content_type=record.response_content_type or "application/json",
        )
        response["Idempotent-Replayed"] = "true"
        return response
