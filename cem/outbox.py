"""Delivery mechanics behind cem.tasks: which handlers still owe an event, and running one once."""

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from cem.events import handlers_for
from cem.models import HandlerDelivery, OutboxEvent

# After this many dispatches an event is a dead letter: visible in /api/v1/events/ with its
# last_error, and left alone by the sweep until someone fixes the handler and resets it.
MAX_DISPATCHES = 50


class UnknownHandler(LookupError):
    pass


def pending_handlers(event_id: int) -> list[str]:
    event = OutboxEvent.objects.get(pk=event_id)
    done = set(HandlerDelivery.objects.filter(event_id=event_id).values_list("handler", flat=True))
    return [name for name in handlers_for(event.event_type) if name not in done]


def mark_dispatched(event_id: int, *, complete: bool) -> None:
    updates = {"dispatch_count": F("dispatch_count") + 1}
    if complete:
        updates["completed_at"] = timezone.now()
    OutboxEvent.objects.filter(pk=event_id).update(**updates)


def run_handler(event_id: int, handler_name: str) -> bool:
    """Run one handler for one event at most once. Returns False when it had already run.

    The delivery row is inserted first, in the same transaction as the handler's writes: a
    concurrent duplicate blocks on the unique key and then sees the conflict; a crash or an
    exception rolls both back so the retry starts clean.
    """
    event = OutboxEvent.objects.get(pk=event_id)
    func = handlers_for(event.event_type).get(handler_name)
    if func is None:
        raise UnknownHandler(handler_name)
    try:
        with transaction.atomic():
            HandlerDelivery.objects.create(
                organization_id=event.organization_id, event_id=event.pk, handler=handler_name
            )
            func(event)
    except IntegrityError:
        if HandlerDelivery.objects.filter(event_id=event_id, handler=handler_name).exists():
            return False
        raise
    _complete_if_done(event)
    return True


def _complete_if_done(event: OutboxEvent) -> None:
    wanted = set(handlers_for(event.event_type))
    done = set(HandlerDelivery.objects.filter(event_id=event.pk).values_list("handler", flat=True))
    if wanted <= done:
        OutboxEvent.objects.filter(pk=event.pk, completed_at__isnull=True).update(completed_at=timezone.now())


def record_failure(event_id: int, handler_name: str, exc: Exception) -> None:
    OutboxEvent.objects.filter(pk=event_id).update(last_error=f"{handler_name}: {exc!r}"[:2000])


def undispatched_events(limit: int) -> list[tuple[int, int]]:
    """Events no delivery has picked up yet, oldest first (read through the pending partial index)."""
    return list(
        OutboxEvent.objects.filter(completed_at__isnull=True, dispatch_count=0)
        .order_by("created_at", "pk")
        .values_list("organization_id", "pk")[:limit]
    )


def stale_events(cutoff, limit: int) -> list[tuple[int, int]]:
    return list(
        OutboxEvent.objects.filter(
            completed_at__isnull=True, created_at__lt=cutoff, dispatch_count__lt=MAX_DISPATCHES
        )
        .order_by("created_at")
        .values_list("organization_id", "pk")[:limit]
    )
