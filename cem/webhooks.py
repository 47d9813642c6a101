"""Outgoing webhooks: signed POSTs of an organization's key events to the URLs it registered.

Flow: a service writes an event to the outbox (cem.events) → one handler per subscribable event
type (registered at the bottom of this module) writes one WebhookDelivery per active endpoint
subscribed to that type, in the handler's transaction, unique on (organization, endpoint,
event), so a redelivered event adds nothing → after commit ``cem.webhooks_send`` makes the
first attempt; beat's ``cem.webhooks_send_due`` (every 30 s) makes every later one.

Signing (Stripe's scheme): each attempt is signed afresh at send time,

    CEM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>

with a second ``v1`` while a rotated-out secret is still honoured. Receivers check it with
:func:`verify`, which the README quotes verbatim (tests/test_webhooks_docs.py keeps the two in
step): a signature older or newer than the tolerance (5 minutes) is a replay and refused.

Retries: any answer but 2xx, a timeout or a refused connection is a failure; the next attempt
waits 1 min * 2^(attempt - 1), at most 6 h, plus up to 10 % jitter so a receiver coming back up
is not hit by every delivery in the same second. A delivery whose next attempt would fall more
than 3 days after it was created gives up. Manual redelivery makes one more attempt at once.

Attempts are claimed with a conditional UPDATE that pushes ``next_attempt_at`` a lease ahead,
so the on-commit kick, the beat job and a manual redelivery never send the same attempt twice,
and a worker killed mid-attempt leaves a row the beat job picks up once the lease runs out.

SSRF guard: only http and https; unless ``settings.WEBHOOKS_ALLOW_PRIVATE`` (off in
production) every address the host resolves to must be public, checked when the endpoint is
saved and again when connecting — to the very address that was checked, so a DNS answer that
changes in between (rebinding) cannot point a delivery inside the network. Redirects are not
followed and proxies from the environment are ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cem.events import EVENT_TYPES, handles
from cem.models import WebhookDelivery, WebhookEndpoint
from cem.models.webhooks import new_webhook_secret
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write

logger = logging.getLogger(__name__)

# The key events the issue names, as the outbox calls them: what an endpoint may subscribe to.
WEBHOOK_EVENTS: dict[str, str] = {
    "CaseOpened": "Case opened",
    "AuditPublished": "Audit published",
    "LessonAssigned": "Lesson assigned",
    "PointsRedeemed": "Points redeemed",
    "AlignmentThresholdCrossed": "Alignment threshold crossed",
}
if _unknown := set(WEBHOOK_EVENTS) - set(EVENT_TYPES):
    raise ImproperlyConfigured(f"webhook events missing from cem.events.EVENT_TYPES: {sorted(_unknown)}")

SIGNATURE_HEADER = "CEM-Signature"
TOLERANCE_SECONDS = 300
RETRY_WINDOW = timedelta(days=3)
RETRY_BASE_SECONDS = 60
RETRY_MAX_DELAY_SECONDS = 6 * 3600
RETRY_JITTER = 0.10
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 10
# Longer than one attempt can take (connect + read timeouts), so a live attempt is never re-claimed.
CLAIM_LEASE = timedelta(seconds=60)
ROTATION_OVERLAP = timedelta(hours=24)
ERROR_MAX_CHARS = 500
USER_AGENT = "CEM-Webhooks/1.0"

WAITING = (WebhookDelivery.Status.PENDING, WebhookDelivery.Status.FAILED)


# --- signing and the reference verifier ------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={sign(secret, timestamp, body)}" for secret in secrets)])


def verify(secret, header, body, tolerance=300, now=None):
    """True if `header` (the CEM-Signature value) signs `body` (the raw request bytes) with
    `secret`, and was made within `tolerance` seconds of `now` (default: the current time)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return False
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        return False  # too old (a replay) or from the future
    signed = str(timestamp).encode() + b"." + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, s.encode("utf-8", "replace")) for s in signatures)


def encode_body(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def event_body(event) -> dict:
    return {
        "id": event.pk,
        "type": event.event_type,
        "created_at": event.created_at.isoformat(),
        "organization_id": event.organization_id,
        "data": event.payload,
    }


def signing_secrets(endpoint: WebhookEndpoint, now) -> list[str]:
    keep_previous = (
        endpoint.previous_secret
        and endpoint.previous_secret_expires_at is not None
        and endpoint.previous_secret_expires_at > now
    )
    return [endpoint.secret, endpoint.previous_secret] if keep_previous else [endpoint.secret]


# --- SSRF guard ------------------------------------------------------------------------------------


class UnsafeDestination(ValueError):
    """The URL may not be called: wrong scheme, or a private, loopback or reserved address."""


def private_allowed() -> bool:
    return bool(getattr(settings, "WEBHOOKS_ALLOW_PRIVATE", False))


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def public_address(host: str, port: int) -> str:
    """The address to connect to; refuses a host any of whose addresses is not public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeDestination(f"{host} does not resolve ({exc}).") from exc
    addresses = [info[4][0] for info in infos]
    blocked = [a for a in addresses if not is_public_address(a)]
    if blocked or not addresses:
        raise UnsafeDestination(f"{host} resolves to a private, loopback or reserved address ({blocked[0]}).")
    return addresses[0]


def check_url(url: str, *, resolve: bool = True) -> None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise UnsafeDestination("Only http:// and https:// URLs can receive webhooks.")
    if not parts.hostname:
        raise UnsafeDestination("The URL has no host.")
    if resolve and not private_allowed():
        public_address(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


class _AddressGuard:
    """Connects only to the public address it has just checked (see the module docstring)."""

    def _new_conn(self):
        if private_allowed():
            return super()._new_conn()
        checked = public_address(self._dns_host, self.port)
        hostname, self._dns_host = self._dns_host, checked
        try:
            return super()._new_conn()  # TLS still verifies and sends SNI for self.host
        finally:
            self._dns_host = hostname


class _GuardedHTTPConnection(_AddressGuard, HTTPConnection):
    pass


class _GuardedHTTPSConnection(_AddressGuard, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


# --- transport -------------------------------------------------------------------------------------


class DeliveryError(Exception):
    """The request did not get an HTTP answer (refused, timed out, blocked)."""


@dataclass(frozen=True)
class Reply:
    status_code: int
    body_excerpt: str = ""


def http_post(url: str, body: bytes, headers: dict) -> Reply:
    """POST with short timeouts through the SSRF guard; reads at most a few hundred bytes back."""
    try:
        check_url(url, resolve=False)  # the address itself is checked when connecting
        with requests.Session() as session:
            session.trust_env = False
            adapter = _GuardedAdapter(max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            with session.post(
                url,
                data=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
                allow_redirects=False,
                stream=True,
            ) as resp:
                excerpt = next(resp.iter_content(chunk_size=300), b"")
                return Reply(resp.status_code, excerpt.decode("utf-8", "replace"))
    except UnsafeDestination as exc:
        raise DeliveryError(f"Refused: {exc}") from exc
    except requests.Timeout as exc:
        raise DeliveryError(f"Timed out: {exc}") from exc
    except requests.RequestException as exc:
        raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc


# The transport every attempt uses unless one is passed in; tests swap it for a fake receiver.
TRANSPORT = http_post


# --- retry schedule --------------------------------------------------------------------------------


def retry_delay(attempts: int, rand=random.random) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: exponential, capped, jittered."""
    exponent = min(max(attempts - 1, 0), 20)
    base = min(RETRY_BASE_SECONDS * 2**exponent, RETRY_MAX_DELAY_SECONDS)
    return timedelta(seconds=base * (1 + RETRY_JITTER * rand()))


# --- fan-out: one handler per subscribable event type ----------------------------------------------


def _kick(tenant_id: int, delivery_ids: list[int]) -> None:
    from cem.webhook_tasks import webhooks_send

    for delivery_id in delivery_ids:
        try:
            webhooks_send.delay(tenant_id, delivery_id)
        except (KombuOperationalError, ConnectionError, OSError):
            # Committed rows are not lost: the beat job sends whatever is due.
            logger.warning("broker unavailable; webhook delivery %s left for the beat job", delivery_id)


def fan_out(event) -> int:
    """Write one delivery per active endpoint subscribed to the event's type; returns how many are new."""
    endpoint_ids = list(
        WebhookEndpoint.objects.filter(active=True, event_types__contains=[event.event_type]).values_list(
            "pk", flat=True
        )
    )
    if not endpoint_ids:
        return 0
    done = set(
        WebhookDelivery.objects.filter(event_id=event.pk, endpoint_id__in=endpoint_ids).values_list(
            "endpoint_id", flat=True
        )
    )
    new_endpoint_ids = [pk for pk in endpoint_ids if pk not in done]
    if not new_endpoint_ids:
        return 0
    now = timezone.now()
    body = event_body(event)
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                organization_id=event.organization_id,
                endpoint_id=endpoint_id,
                event_id=event.pk,
                event_type=event.event_type,
                payload=body,
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at=now,
            )
            for endpoint_id in new_endpoint_ids
        ],
        # A concurrent run of the same event loses on the unique (organization, endpoint, event).
        ignore_conflicts=True,
    )
    created = list(
        WebhookDelivery.objects.filter(event_id=event.pk, endpoint_id__in=new_endpoint_ids).values_list(
            "pk", flat=True
        )
    )
    transaction.on_commit(lambda: _kick(event.organization_id, created))
    return len(created)


for _event_type in WEBHOOK_EVENTS:
    handles(_event_type, name=f"cem.webhooks.{_event_type}")(fan_out)


# --- attempts --------------------------------------------------------------------------------------


def due_deliveries(now, limit: int) -> list[tuple[int, int]]:
    """(tenant id, delivery id) of deliveries whose next attempt is due; the beat job runs this unscoped."""
    return list(
        WebhookDelivery.objects.filter(status__in=WAITING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("organization_id", "pk")[:limit]
    )


def _claim(delivery_id: int, now) -> bool:
    return bool(
        WebhookDelivery.objects.filter(pk=delivery_id, status__in=WAITING, next_attempt_at__lte=now).update(
            next_attempt_at=now + CLAIM_LEASE
        )
    )


def attempt(delivery_id: int, *, now=None, transport=None) -> WebhookDelivery | None:
    """Make the delivery's due attempt and record it; None when it is not due or another worker has it.

    No transaction is held open while the receiver answers: the claim and the result are two
    short UPDATEs.
    """
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    endpoint = delivery.endpoint
    if not endpoint.active:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=WebhookDelivery.Status.GAVE_UP,
            next_attempt_at=None,
            last_error="The endpoint is disabled.",
        )
        delivery.refresh_from_db()
        return delivery

    number = delivery.attempts + 1
    body = encode_body(delivery.payload)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature_header(signing_secrets(endpoint, now), timestamp, body),
        "CEM-Event-Id": str(delivery.event_id),
        "CEM-Event-Type": delivery.event_type,
        "CEM-Delivery-Id": str(delivery.pk),
        "CEM-Delivery-Attempt": str(number),
    }
    status_code, error = None, ""
    started = time.monotonic()
    try:
        reply = (transport or TRANSPORT)(endpoint.url, body, headers)
        status_code = reply.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}: {reply.body_excerpt}".strip()
    except DeliveryError as exc:
        error = str(exc)
    except Exception as exc:
        # Whatever the transport raised, the attempt is over: record it and keep the schedule.
        logger.exception("webhook delivery %s failed unexpectedly", delivery_id)
        error = f"{type(exc).__name__}: {exc}"
    elapsed_ms = round((time.monotonic() - started) * 1000)

    updates = {
        "attempts": F("attempts") + 1,
        "last_attempt_at": now,
        "last_status_code": status_code,
        "last_error": error[:ERROR_MAX_CHARS],
        "last_response_ms": elapsed_ms,
    }
    if not error:
        updates.update(status=WebhookDelivery.Status.SUCCEEDED, next_attempt_at=None, delivered_at=now)
    else:
        retry_at = now + retry_delay(number)
        if retry_at > delivery.created_at + RETRY_WINDOW:
            updates.update(status=WebhookDelivery.Status.GAVE_UP, next_attempt_at=None)
        else:
            updates.update(status=WebhookDelivery.Status.FAILED, next_attempt_at=retry_at)
    WebhookDelivery.objects.filter(pk=delivery_id).update(**updates)
    delivery.refresh_from_db()
    return delivery


# --- services: endpoints ---------------------------------------------------------------------------


def _clean_event_types(event_types) -> list[str]:
    chosen = sorted(set(event_types or []))
    unknown = [t for t in chosen if t not in WEBHOOK_EVENTS]
    if unknown:
        known = ", ".join(WEBHOOK_EVENTS)
        raise ValidationError(
            {"event_types": f"Unknown event type(s): {', '.join(unknown)}; choose from {known}."}
        )
    if not chosen:
        raise ValidationError({"event_types": "Subscribe to at least one event type."})
    return chosen


def clean_url(url: str) -> str:
    url = (url or "").strip()
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError({"url": "Enter a full http:// or https:// URL."}) from None
    try:
        check_url(url)
    except UnsafeDestination as exc:
        raise ValidationError({"url": str(exc)}) from None
    return url


@transaction.atomic
def endpoint_create(
    *, organization, actor: Actor, url: str, event_types, description: str = "", active: bool = True
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its signing secret, which no response shows again."""
    org_id = _check_tenant(organization)
    endpoint = WebhookEndpoint(
        organization_id=org_id,
        url=clean_url(url),
        description=description,
        event_types=_clean_event_types(event_types),
        active=active,
        created_by_id=actor.user_id,
    )
    endpoint.full_clean()
    endpoint.save()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="webhook.create",
        instance=endpoint,
        changes={"url": endpoint.url, "event_types": endpoint.event_types, "active": endpoint.active},
    )
    return endpoint, endpoint.secret


UPDATABLE = ("url", "description", "event_types", "active")


@transaction.atomic
def endpoint_update(*, organization, actor: Actor, endpoint: WebhookEndpoint, data: dict) -> WebhookEndpoint:
    org_id = _check_tenant(organization)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    changes = {}
    for name in UPDATABLE:
        if name not in data:
            continue
        value = data[name]
        if name == "url":
            value = clean_url(value)
        elif name == "event_types":
            value = _clean_event_types(value)
        if getattr(endpoint, name) != value:
            changes[name] = {"before": getattr(endpoint, name), "after": value}
            setattr(endpoint, name, value)
    if not changes:
        return endpoint
    endpoint.full_clean()
    endpoint.save()
    if changes.get("active", {}).get("after") is False:
        _stop_waiting(endpoint)
    audit_log_write(
        organization=org_id, actor=actor, action="webhook.update", instance=endpoint, changes=changes
    )
    return endpoint


def _stop_waiting(endpoint: WebhookEndpoint) -> None:
    WebhookDelivery.objects.filter(endpoint=endpoint, status__in=WAITING).update(
        status=WebhookDelivery.Status.GAVE_UP, next_attempt_at=None, last_error="The endpoint is disabled."
    )


def endpoint_disable(*, organization, actor: Actor, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """No more deliveries; the ones still waiting give up. Re-enable by editing the endpoint."""
    return endpoint_update(organization=organization, actor=actor, endpoint=endpoint, data={"active": False})


@transaction.atomic
def endpoint_rotate_secret(
    *, organization, actor: Actor, endpoint: WebhookEndpoint, overlap: timedelta = ROTATION_OVERLAP
) -> tuple[WebhookEndpoint, str]:
    """A new secret signs from now on; the old one also signs for ``overlap`` (0: not at all)."""
    org_id = _check_tenant(organization)
    endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    now = timezone.now()
    if overlap > timedelta(0):
        endpoint.previous_secret, endpoint.previous_secret_expires_at = endpoint.secret, now + overlap
    else:
        endpoint.previous_secret, endpoint.previous_secret_expires_at = "", None
    endpoint.secret = new_webhook_secret()
    endpoint.secret_rotated_at = now
    endpoint.save(
        update_fields=["secret", "previous_secret", "previous_secret_expires_at", "secret_rotated_at"]
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="webhook.rotate_secret",
        instance=endpoint,
        changes={"previous_secret_expires_at": _iso(endpoint.previous_secret_expires_at)},
    )
    return endpoint, endpoint.secret


def _iso(value):
    return value.isoformat() if value is not None else None


@transaction.atomic
def endpoint_delete(*, organization, actor: Actor, endpoint: WebhookEndpoint) -> None:
    """Remove the endpoint and its delivery log."""
    org_id = _check_tenant(organization)
    pk, url = endpoint.pk, endpoint.url
    endpoint.delete()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="webhook.delete",
        object_type=WebhookEndpoint._meta.label,
        object_id=pk,
        changes={"url": url},
    )


# --- services: redelivery --------------------------------------------------------------------------


@transaction.atomic
def _queue_now(*, organization, actor: Actor, delivery: WebhookDelivery, now) -> None:
    org_id = _check_tenant(organization)
    delivery = WebhookDelivery.objects.select_for_update().select_related("endpoint").get(pk=delivery.pk)
    if not delivery.endpoint.active:
        raise ValidationError({"endpoint": "The endpoint is disabled; enable it before redelivering."})
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.PENDING, next_attempt_at=now
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="webhook.redeliver",
        instance=delivery,
        changes={"event_id": delivery.event_id, "previous_status": delivery.status},
    )


def redeliver(
    *, organization, actor: Actor, delivery: WebhookDelivery, now=None, transport=None
) -> WebhookDelivery:
    """Send the delivery again now, whatever its state; the answer is recorded like any attempt.

    A failure keeps to the automatic schedule: it retries while the 3-day window lasts and
    gives up after it.
    """
    now = now or timezone.now()
    _queue_now(organization=organization, actor=actor, delivery=delivery, now=now)
    # After the commit above, outside any transaction: the receiver may take seconds to answer.
    result = attempt(delivery.pk, now=now, transport=transport)
    if result is None:  # a worker claimed it in between and is sending it right now
        result = WebhookDelivery.objects.get(pk=delivery.pk)
    return result
