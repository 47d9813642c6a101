"""Outages in one process (tests/faults does it with real processes): Redis unreachable keeps API
writes a 2xx, a lost database or Redis is a 503 with Retry-After, and the beat claim."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from celery.schedules import crontab, schedule
from django.db import OperationalError

from cem import throttle
from cem.beat import CLAIM_SHARE, claim, shortest_interval
from cem.celery import app
from cem.models import OutboxEvent
from cem.tenancy import tenant_context
from tests.feedback.conftest import make_survey


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on leaving: nothing listens there


@pytest.fixture
def redis_down(settings):
    """The cache (rate limits, doorbell) on a Redis that is not there; Celery not eager."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    settings.CELERY_TASK_ALWAYS_EAGER = False


def test_counters_fail_open_without_redis(redis_down):
    assert throttle.count_hit("faults:window", ttl=30) == 0
    assert throttle.set_once("faults:once", ttl=30) is False


@pytest.mark.django_db(transaction=True)
def test_api_write_is_stored_and_answered_201_while_redis_is_down(world, api, redis_down):
    survey, _, _ = make_survey(world.a.org, name="redis down survey")
    resp = api(key=world.a.api_key).post(
        "/api/v1/responses/",
        {"survey": survey.pk, "location": "a-n1", "source": "api", "answers": {"nps": 9}},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    with tenant_context(world.a.org):
        # The event waits, undispatched, in the outbox for the doorbell's next drain or the sweep.
        event = OutboxEvent.objects.get(event_type="ResponseReceived")
        assert event.dispatch_count == 0 and event.completed_at is None


def test_a_lost_database_is_a_503_with_retry_after(world, api, monkeypatch):
    def lost(*args, **kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr("cem.api.base.scope_queryset", lost)
    resp = api(key=world.a.api_key).get("/api/v1/responses/")
    assert resp.status_code == 503
    assert int(resp["Retry-After"]) > 0
    assert "administrator" not in resp.content.decode()


def test_shortest_interval_of_schedules():
    daily = crontab(minute=15, hour=3)
    weekly = crontab(minute=0, hour=3, day_of_week="mon")
    uneven = crontab(minute=0, hour="3,4")
    for s in (daily, weekly, uneven):
        s.app = app
    assert shortest_interval(daily) == timedelta(days=1)
    assert shortest_interval(weekly) == timedelta(days=7)
    assert shortest_interval(uneven) == timedelta(hours=1)
    assert shortest_interval(schedule(timedelta(seconds=30))) == timedelta(seconds=30)


@pytest.mark.django_db
def test_one_claim_per_due_time():
    every = timedelta(minutes=5)
    t = datetime(2026, 3, 1, 3, 15, tzinfo=UTC)
    assert claim("job", interval=every, now=t, holder="beat-1") is True
    # The other beat, for the same due time (up to most of an interval later): no.
    assert claim("job", interval=every, now=t + timedelta(seconds=1), holder="beat-2") is False
    assert claim("job", interval=every, now=t + every * (CLAIM_SHARE - 0.01), holder="beat-2") is False
    # The next due time: whichever beat comes first.
    assert claim("job", interval=every, now=t + every, holder="beat-2") is True
    assert claim("job", interval=every, now=t + every, holder="beat-1") is False
    assert claim("other job", interval=every, now=t, holder="beat-1") is True


@pytest.fixture
def four_events(world, django_capture_on_commit_callbacks):
    from cem.events import emit

    with tenant_context(world.a.org), django_capture_on_commit_callbacks(execute=False):
        return [
            emit(organization=world.a.org, event_type="InteractionRecorded", payload={"n": i}).pk
            for i in range(4)
        ]


def test_two_drains_claim_different_events(four_events):
    from cem import outbox
    from cem.tenancy import unscoped

    with unscoped():
        first = outbox.claim_undispatched(2)
        second = outbox.claim_undispatched(10)
        assert outbox.claim_undispatched(10) == []
    assert [pk for _, pk in first] == four_events[:2]
    assert [pk for _, pk in second] == four_events[2:]


def test_sweep_leaves_dispatched_events_alone_while_the_broker_has_a_backlog(four_events):
    from django.utils import timezone

    from cem import outbox
    from cem.tenancy import unscoped

    later = timezone.now() + timedelta(minutes=1)
    with unscoped():
        outbox.claim_undispatched(1)  # dispatched, not complete: probably queued, maybe lost
        queued = outbox.stale_events(later, 10, backlog=outbox.SWEEP_BACKLOG_LIMIT + 1)
        unknown = outbox.stale_events(later, 10, backlog=None)
        idle = outbox.stale_events(later, 10, backlog=0)
    assert [pk for _, pk in queued] == [pk for _, pk in unknown] == four_events[1:]
    assert [pk for _, pk in idle] == four_events
