"""A dependency that is down is a 503 with Retry-After, never a 500.

PostgreSQL dropping the connection mid-request (failover, restart, pg_terminate_backend) and
Redis or the broker being unreachable are outages the client can wait out: the request's
transaction rolled back with the connection, so nothing of it was stored, and a retry (with the
same Idempotency-Key) is safe. The API's exception handler and the site's handler500 both
answer these with 503 and a Retry-After header instead of a 500.
"""

from __future__ import annotations

from django.db import InterfaceError, OperationalError
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

RETRY_AFTER_SECONDS = 5
DETAIL = "A service this request needs is briefly unavailable. Retry shortly (with the same Idempotency-Key)."

UNAVAILABLE_ERRORS = (
    OperationalError,  # lost or refused connection, server shutting down, deadlock, serialization
    InterfaceError,  # the connection was already closed when the request used it
    RedisConnectionError,
    RedisTimeoutError,
    KombuOperationalError,
)


def is_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


def unavailable_body(request=None) -> dict:
    return {
        "type": "about:blank",
        "title": "Service unavailable",
        "status": 503,
        "detail": DETAIL,
        "request_id": getattr(request, "request_id", ""),
    }
