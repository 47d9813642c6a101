"""Redis (cache, rate limits and Celery broker) stops during 10,000 API submissions (interactions
POSTed by an integrator) and starts again, empty: every accepted submission (2xx) is stored and
processed; a request during the
outage either succeeds (its event waits in the PostgreSQL outbox) or is a 503 with Retry-After.
No 500, and no 2xx is ever lost.

Real processes: gunicorn (production settings), a Celery worker, a Celery beat (its
events_sweep re-drives what the outage left: events committed without a doorbell, and the
broker's queues, which a restarted Redis without persistence has forgotten), and a
redis-server of the test's own that is SIGKILLed mid-run and started again on the same port.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from cem.events import handlers_for
from cem.models import HandlerDelivery, Interaction, OutboxEvent
from cem.tenancy import tenant_context, unscoped
from tests.faults.conftest import free_port, wait_for_outbox_drained

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

SUBMISSIONS = 10_000
CLIENTS = 8
DOWN_AT = 2_500  # submissions answered when Redis is killed
DOWN_FOR = 1_500  # submissions answered during the outage


class Outage:
    """Kills Redis once DOWN_AT submissions were answered; starts it again after the outage."""

    def __init__(self, redis_server):
        self.redis = redis_server
        self.answered = 0
        self.down_from: float | None = None
        self.down_until: float | None = None
        self.down_count = 0
        self.lock = threading.Lock()

    def tick(self) -> None:
        with self.lock:
            self.answered += 1
            now = time.monotonic()
            if self.down_from is None and self.answered >= DOWN_AT:
                self.redis.stop()
                self.down_from, self.down_count = now, self.answered
            elif (
                self.down_from is not None
                and self.down_until is None
                and self.answered >= self.down_count + DOWN_FOR
            ):
                self.redis.start()
                self.down_until = time.monotonic()

    def during(self, sent: float, answered: float) -> bool:
        """Whether the request was in flight only while Redis was down."""
        return (
            self.down_from is not None
            and sent >= self.down_from
            and (self.down_until is None or answered <= self.down_until)
        )


def test_redis_down_during_ten_thousand_submissions(world, redis_server, processes):
    org = world.a.org
    port = free_port()
    processes.beat()
    processes.worker()
    processes.wait_ready("worker")
    processes.gunicorn(port)

    url = f"http://127.0.0.1:{port}/api/v1/interactions/"
    headers = {"Authorization": f"Bearer {world.a.api_key}"}
    stores = list(world.a.locations)
    outage = Outage(redis_server)
    local = threading.local()

    def submit(i: int) -> tuple:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        store = stores[i % len(stores)]
        body = {
            "external_id": f"outage-{i}",
            "occurred_at": "2026-02-01T09:30:00Z",
            "location": store,
            "touchpoint": "checkout",
            "employees": [f"acme-emp-{store}"],
        }
        sent = time.monotonic()
        try:
            resp = session.post(url, json=body, headers=headers, timeout=60)
        except requests.RequestException as exc:
            outage.tick()
            return i, sent, time.monotonic(), None, repr(exc), None
        answered = time.monotonic()
        outage.tick()
        new_id = resp.json().get("id") if resp.status_code == 201 else None
        return i, sent, answered, resp.status_code, resp.headers.get("Retry-After"), new_id

    t0 = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(submit, range(SUBMISSIONS)))
    elapsed = time.monotonic() - t0
    assert outage.down_until is not None, "the outage never ended"
    if not redis_server.ping():
        redis_server.start()

    statuses: dict = {}
    for _, _, _, status, _, _ in results:
        statuses[status] = statuses.get(status, 0) + 1
    during = [r for r in results if outage.during(r[1], r[2])]
    print(
        f"{SUBMISSIONS} submissions in {elapsed:.0f} s; statuses {statuses}; Redis down "
        f"{outage.down_until - outage.down_from:.1f} s with {len(during)} requests wholly inside the outage"
    )

    # Nothing but 201 (stored) or 503 with Retry-After (nothing stored; retry): no 500, no error.
    unexpected = [r for r in results if r[3] != 201 and not (r[3] == 503 and r[4] and int(r[4]) > 0)]
    assert unexpected == [], unexpected[:5]
    assert len(during) >= 100 and outage.down_until - outage.down_from >= 3
    assert any(r[3] == 201 for r in during), "writes go on while Redis is down (outbox in PostgreSQL)"

    # Every 2xx is stored, once; a 503 stored nothing.
    accepted = {r[5]: f"outage-{r[0]}" for r in results if r[3] == 201}
    with tenant_context(org):
        stored = dict(
            Interaction.objects.filter(external_id__startswith="outage-").values_list("pk", "external_id")
        )
    assert stored == accepted

    # ... and eventually processed: each event's every handler ran once, the outage's events too.
    wait_for_outbox_drained(processes, timeout=1800)
    with unscoped():
        events = list(
            OutboxEvent.objects.filter(event_type="InteractionRecorded").values_list("pk", "payload")
        )
        delivered = set(HandlerDelivery.objects.values_list("event_id", "handler"))
    assert sorted(i for _, payload in events for i in payload["interaction_ids"]) == sorted(accepted)
    missing = {(pk, h) for pk, _ in events for h in handlers_for("InteractionRecorded")} - delivered
    assert missing == set()
    print(f"all processed {time.monotonic() - t0:.0f} s after the first submission")
