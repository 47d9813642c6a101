"""Delivery mechanics behind cem.tasks: which handlers still owe an event, and running one once."""

from django.db import IntegrityError, connection, transaction
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


def mark_dispatched(event_id: int, *, complete: bool, count: bool = True) -> None:
    updates = {"dispatch_count": F("dispatch_count") + 1} if count else {}
    if complete:
        updates["completed_at"] = timezone.now()
    if updates:
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


def claim_undispatched(limit: int) -> list[tuple[int, int]]:
    """Count as dispatched, and return, up to ``limit`` events no delivery has picked up yet.

    One statement claims them (SKIP LOCKED), so two drains running at once (the doorbell rang
    again while one was reading) take different events instead of both fanning out the same ones.
    A drain that dies after claiming leaves them to the sweep.
    """
    table = OutboxEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET dispatch_count = dispatch_count + 1
             WHERE id IN (SELECT id FROM {table} WHERE completed_at IS NULL AND dispatch_count = 0
                           ORDER BY created_at, id LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING organization_id, id, created_at
            """,  # noqa: S608 - the model's own table name  # nosec B608
            [limit],
        )
        rows = cursor.fetchall()
    return [(org_id, pk) for org_id, pk, _ in sorted(rows, key=lambda r: (r[2], r[1]))]


# With more messages than this waiting in the broker, the sweep leaves dispatched events alone.
SWEEP_BACKLOG_LIMIT = 200


def broker_backlog() -> int | None:
    """Messages waiting in the broker's queues (Redis lists), or None when it cannot tell."""
    from django.conf import settings

    from cem.celery import app

    if settings.CELERY_TASK_ALWAYS_EAGER:
        return 0
    names = [q.name for q in (app.conf.task_queues or ())] or [app.conf.task_default_queue]
    # kombu keeps one Redis list per queue and priority step: "name", "name\x06\x163", ...
    keys = [name + suffix for name in names for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")]
    try:
        with app.connection_for_read() as conn:
            pipe = conn.default_channel.client.pipeline(transaction=False)
            for key in keys:
                pipe.llen(key)
            return sum(pipe.execute())
    except Exception:
        return None


_ASK_BROKER = object()


def stale_events(cutoff, limit: int, *, backlog=_ASK_BROKER) -> list[tuple[int, int]]:
    """Incomplete events older than ``cutoff`` that may have lost their tasks.

    An event that was dispatched but is not complete is usually just queued behind a backlog:
    re-dispatching it then would add one more fan-out per sweep to that very backlog, and a
    worker catching up after an outage would never get ahead. So while the broker holds a
    backlog (or cannot say), only events never dispatched (their doorbell was lost) go again;
    dispatched ones whose tasks a killed worker or a restarted broker lost follow once the
    queues are short.
    """
    if backlog is _ASK_BROKER:
        backlog = broker_backlog()
    events = OutboxEvent.objects.filter(
        completed_at__isnull=True, created_at__lt=cutoff, dispatch_count__lt=MAX_DISPATCHES
    )
    if backlog is None or backlog > SWEEP_BACKLOG_LIMIT:
        events = events.filter(dispatch_count=0)
    return list(events.order_by("created_at").values_list("organization_id", "pk")[:limit])
