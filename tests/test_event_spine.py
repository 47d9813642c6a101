"""Outbox → Celery → handlers: exactly one delivery per handler, whatever the worker does."""

import pytest
from celery.exceptions import Retry

from cem import events, outbox
from cem import models as m
from cem.tasks import events_deliver, events_handle, events_sweep
from cem.tenancy import tenant_context, unscoped

CALLS: list[tuple[str, int]] = []


@pytest.fixture
def handlers():
    """Two handlers on InteractionRecorded, one of which fails on its first attempt."""
    CALLS.clear()
    state = {"fail_once": True}

    def counting(event):
        CALLS.append(("counting", event.pk))
        # A side effect that must exist exactly once: a row in the audit log.
        m.AuditLog.objects.create(
            organization_id=event.organization_id,
            action="test.counting",
            object_type="event",
            object_id=str(event.pk),
        )

    def flaky(event):
        CALLS.append(("flaky", event.pk))
        m.AuditLog.objects.create(
            organization_id=event.organization_id,
            action="test.flaky",
            object_type="event",
            object_id=str(event.pk),
        )
        if state["fail_once"]:
            state["fail_once"] = False
            raise RuntimeError("worker died mid-task")

    saved = dict(events._handlers["InteractionRecorded"])
    events._handlers["InteractionRecorded"].clear()
    events.handles("InteractionRecorded", name="test.counting")(counting)
    events.handles("InteractionRecorded", name="test.flaky")(flaky)
    yield state
    events._handlers["InteractionRecorded"].clear()
    events._handlers["InteractionRecorded"].update(saved)


def _post_interaction(api, world, external_id="spine-1"):
    return api(key=world.a.api_key).post(
        "/api/v1/interactions/",
        {
            "external_id": external_id,
            "occurred_at": "2026-02-01T09:30:00Z",
            "location": "a-n1",
            "touchpoint": "checkout",
            "employees": ["acme-emp-a-n1"],
        },
        format="json",
    )


def _effects(org, action):
    with tenant_context(org):
        return m.AuditLog.objects.filter(action=action).count()


def test_api_write_emits_one_event_in_the_same_transaction(
    world, api, handlers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = _post_interaction(api, world)
    assert resp.status_code == 201
    with tenant_context(world.a.org):
        [event] = m.OutboxEvent.objects.filter(event_type="InteractionRecorded")
        assert event.payload == {"interaction_ids": [resp.json()["id"]]}
        assert event.completed_at is None
        assert m.AuditLog.objects.filter(action="interactions.ingest").count() == 1
    # Delivery is kicked only once the transaction commits.
    assert len(callbacks) == 1


def test_each_handler_runs_once_despite_retries_and_duplicates(
    world, api, handlers, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        resp = _post_interaction(api, world)
    assert resp.status_code == 201
    with tenant_context(world.a.org):
        event = m.OutboxEvent.objects.get(event_type="InteractionRecorded")
    org_id = world.a.org.pk

    # First attempt of "flaky" dies mid-task: its writes roll back and Celery schedules a retry.
    with pytest.raises(Retry):
        events_handle.apply(args=(org_id, event.pk, "test.flaky"))
    assert _effects(world.a.org, "test.flaky") == 0
    with tenant_context(world.a.org):
        event.refresh_from_db()
        assert "worker died mid-task" in event.last_error
        assert event.completed_at is None

    # The retry succeeds; then the broker redelivers everything (acks_late after a crash)
    # and the deliver task runs twice: no handler runs a second time.
    events_handle.apply(args=(org_id, event.pk, "test.flaky"))
    for _ in range(2):
        events_deliver.apply(args=(org_id, event.pk))
        events_handle.apply(args=(org_id, event.pk, "test.counting"))
        events_handle.apply(args=(org_id, event.pk, "test.flaky"))
    assert _effects(world.a.org, "test.counting") == 1
    assert _effects(world.a.org, "test.flaky") == 1
    with tenant_context(world.a.org):
        assert outbox.run_handler(event.pk, "test.counting") is False
        event.refresh_from_db()
        assert event.completed_at is not None
        assert sorted(m.HandlerDelivery.objects.filter(event=event).values_list("handler", flat=True)) == [
            "test.counting",
            "test.flaky",
        ]
    assert CALLS.count(("counting", event.pk)) == 1
    assert CALLS.count(("flaky", event.pk)) == 2  # the attempt that raised, and the one that succeeded


def test_delivery_on_commit_reaches_every_handler(world, api, handlers, django_capture_on_commit_callbacks):
    handlers["fail_once"] = False
    with django_capture_on_commit_callbacks(execute=True):
        resp = _post_interaction(api, world, "spine-commit")
    assert resp.status_code == 201
    assert _effects(world.a.org, "test.counting") == 1
    assert _effects(world.a.org, "test.flaky") == 1


def test_sweep_delivers_events_whose_kick_was_lost(world, api, handlers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        resp = _post_interaction(api, world, "spine-lost")
    assert resp.status_code == 201
    assert _effects(world.a.org, "test.counting") == 0
    handlers["fail_once"] = False
    assert events_sweep(older_than_seconds=-60) >= 1
    assert _effects(world.a.org, "test.counting") == 1
    assert _effects(world.a.org, "test.flaky") == 1
    events_sweep(older_than_seconds=-60)
    assert _effects(world.a.org, "test.counting") == 1
    with unscoped():
        assert not m.OutboxEvent.objects.filter(completed_at__isnull=True).exists()


def test_task_refuses_missing_tenant_id(world):
    with pytest.raises(TypeError):
        events_deliver(None, 1)


def test_task_for_one_tenant_cannot_see_another(world, api, handlers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        resp = _post_interaction(api, world, "spine-cross")
    with tenant_context(world.a.org):
        event = m.OutboxEvent.objects.get(event_type="InteractionRecorded")
    with pytest.raises(m.OutboxEvent.DoesNotExist):
        events_deliver.delay(world.b.org.pk, event.pk)
    assert resp.status_code == 201
    assert _effects(world.a.org, "test.counting") == 0


def test_with_a_broker_one_doorbell_task_drains_every_committed_event(
    world, handlers, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """Outside eager mode a commit rings a doorbell (SET NX) instead of sending a message per event:
    three events committed before the drain starts cost one task, which dispatches all three; a
    commit after the drain started rings again."""
    from django.core.cache import cache

    from cem import tasks

    rung = []
    monkeypatch.setattr(tasks.events_deliver_pending, "delay", lambda *a: rung.append(a))
    settings.CELERY_TASK_ALWAYS_EAGER = False
    org = world.a.org
    with tenant_context(org), django_capture_on_commit_callbacks(execute=True):
        ids = [
            events.emit(organization=org, event_type="InteractionRecorded", payload={"n": i}).pk
            for i in range(3)
        ]
    assert len(rung) == 1
    assert cache.get(events.DOORBELL_KEY) is not None

    settings.CELERY_TASK_ALWAYS_EAGER = True  # run the drain's handler tasks in this process
    assert tasks.events_deliver_pending() >= 3
    assert cache.get(events.DOORBELL_KEY) is None
    # Every event reached its handlers (the fixture's flaky handler fails once; its retry is the
    # sweep's business, as with per-event delivery).
    assert sorted(pk for kind, pk in CALLS if kind == "counting") == ids

    settings.CELERY_TASK_ALWAYS_EAGER = False
    with tenant_context(org), django_capture_on_commit_callbacks(execute=True):
        events.emit(organization=org, event_type="InteractionRecorded", payload={"n": 3})
    assert len(rung) == 2
