"""kill -9 the Celery worker 20 times at random moments while 1,000 events flow: after a restart
every event is processed and every derived effect exists exactly once.

The events (survey responses, published audits, lesson completions) are written through the
real services in this process, which rings the outbox doorbell in a Redis of the test's own; a
real ``celery worker`` (prefork, acks_late) processes them and is SIGKILLed, with its pool, at
random moments — mid-task, mid-drain, mid-retry — and started again. A real ``celery beat``
runs alongside, as in production: its events_sweep re-drives what the kills lost.
"""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import connection

from alignment import rebuild
from cem.events import handlers_for
from cem.models import HandlerDelivery, OutboxEvent
from cem.tenancy import tenant_context, unscoped
from tests.faults.conftest import outbox_state, wait_for_outbox_drained
from tests.faults.spine_world import SpineWorld
from tests.incentives.rewards_helpers import ledger_check

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

RESPONSES, AUDITS, COMPLETIONS = 600, 200, 200
KILLS = 20


def _generate(sw: SpineWorld, stop_at: float, errors: list) -> None:
    """The 1,000 events in a shuffled order, spread over the time the kills take."""
    plan = (
        [("respond", i) for i in range(RESPONSES)]
        + [("audit", i) for i in range(AUDITS)]
        + [("complete", i) for i in range(COMPLETIONS)]
    )
    random.Random(9).shuffle(plan)
    try:
        for n, (kind, i) in enumerate(plan):
            getattr(sw, kind)(i)
            # Keep pace with the kills: the last events go in before the last kill.
            behind = stop_at - time.monotonic()
            time.sleep(max(0.0, min(0.5, behind / max(1, len(plan) - n) - 0.01)))
    except BaseException as exc:
        errors.append(exc)
    finally:
        connection.close()


def test_kill_9_worker_twenty_times_while_events_flow(world, processes, live_spine):
    sw = SpineWorld(world, lessons=COMPLETIONS)
    rng = random.Random(20)
    processes.beat()
    processes.worker()
    processes.wait_ready("worker")

    errors: list = []
    generator = threading.Thread(target=_generate, args=(sw, time.monotonic() + 100, errors))
    t0 = time.monotonic()
    generator.start()
    kills = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(0.3, 4.0))
        kills.append((round(time.monotonic() - t0, 1), outbox_state()["pending"]))
        processes.kill("worker")
        processes.worker()
        processes.wait_ready("worker")
    generator.join(timeout=600)
    assert not generator.is_alive() and errors == [], errors

    state = wait_for_outbox_drained(processes, timeout=900)
    print(f"kills at (s, events pending): {kills}; drained after {time.monotonic() - t0:.0f} s: {state}")

    # Every event is processed: each handler of each event ran (one HandlerDelivery, unique).
    with unscoped():
        events = list(OutboxEvent.objects.values_list("pk", "event_type"))
        delivered = set(HandlerDelivery.objects.values_list("event_id", "handler"))
    wanted = {(pk, name) for pk, kind in events for name in handlers_for(kind)}
    assert wanted - delivered == set()
    assert len(delivered) == len(wanted)

    # Every derived effect exists exactly once.
    out = sw.outcome()
    assert out["responses"] == RESPONSES and out["audits"] == AUDITS and out["completions"] == COMPLETIONS
    assert sorted(out["case_responses"]) == sorted(out["detractors"])  # one case per detractor
    employees_per_store = 1
    expected_awards = out["promoters"] + AUDITS * employees_per_store + COMPLETIONS
    assert out["awards"] == out["award_keys"] == expected_awards
    assert len(out["gap_assignments"]) == len(set(out["gap_assignments"])) == out["gap_triggers_assigned"]
    assert out["gap_assignments"], "the low CSAT scores assigned the gap lesson"
    assert out["rollup_sources"] == {
        "response": RESPONSES,
        "audit": AUDITS,
        "completion": COMPLETIONS,
        "award": expected_awards,
    }
    # The rollup equals a rebuild from the raw rows: nothing was counted twice or left out. (The
    # world fixture's own interactions are factory rows that never raised an event: not compared.)
    with tenant_context(sw.org):
        comparison, _ = rebuild.check(sw.org)
    differing = [key for key in comparison.differences if "interactions" not in key]
    assert comparison.complete and differing == [], comparison.sample()
    assert ledger_check() == (0, "ledger_check: every transaction balances and every balance reconciles\n")
