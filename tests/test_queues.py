"""Celery queues by priority (cem/queues.py): every task routed, each to the queue meant for it."""

import re
from pathlib import Path

import pytest
import yaml
from kombu import Connection

from cem import events, queues
from cem.celery import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def registered_tasks() -> set[str]:
    app.loader.import_default_modules()
    return {name for name in app.tasks if not name.startswith("celery.")}


def _queue_of(name, args=(), kwargs=None) -> str:
    route = app.amqp.router.route({}, name, args=args, kwargs=kwargs or {})
    return route["queue"].name


def test_every_registered_task_is_named_and_no_name_is_stale(registered_tasks):
    assert registered_tasks - set(queues.TASK_QUEUES) == set(), "add new tasks to cem/queues.py TASK_QUEUES"
    assert set(queues.TASK_QUEUES) - registered_tasks == set(), "TASK_QUEUES names a task that is gone"
    assert set(queues.TASK_QUEUES.values()) <= set(queues.QUEUES)
    for name in registered_tasks:
        assert _queue_of(name) == queues.TASK_QUEUES[name]


@pytest.mark.parametrize(
    ("task", "args", "queue"),
    [
        ("feedback.case_notify", (1, 2), "alerts"),
        ("feedback.cases_escalate", (), "alerts"),
        ("cem.webhooks_send", (1, 2), "alerts"),
        ("learning.assignments_notify", (1,), "alerts"),
        ("cem.events_deliver_pending", (), "alerts"),
        ("cem.events_handle", (1, 2, "feedback.cases_open"), "alerts"),
        ("cem.events_handle", (1, 2, "audits.notify_store_managers"), "alerts"),
        ("cem.events_handle", (1, 2, "alignment.rollup_response"), "rollups"),
        ("cem.events_handle", (1, 2, "alignment.rollup_audit"), "rollups"),
        ("alignment.scores_recompute", (1,), "rollups"),
        ("alignment.month_close", (1,), "rollups"),
        ("feedback.export_build", (1, 2), "bulk"),
        ("alignment.rollups_verify", (1,), "bulk"),
        ("cem.events_handle", (1, 2, "incentives.rewards_after_response"), "default"),
        ("cem.events_handle", (1, 2, "learning.gaps_after_response"), "default"),
        ("cem.idempotency_purge", (), "default"),
        ("celery.chord_unlock", (), "default"),  # Celery's own tasks fall to the default queue
    ],
)
def test_named_tasks_go_to_their_queue(task, args, queue):
    assert _queue_of(task, args) == queue


def test_event_handlers_route_by_name_keyword_too():
    assert _queue_of("cem.events_handle", kwargs={"handler_name": "feedback.cases_open"}) == "alerts"


def test_every_registered_event_handler_goes_to_a_queue(registered_tasks):
    names = {name for by_type in events._handlers.values() for name in by_type}
    assert "feedback.cases_open" in names and "alignment.rollup_response" in names
    for name in names:
        queue = _queue_of("cem.events_handle", (1, 2, name))
        expected = "rollups" if name.startswith("alignment.") else queues.HANDLER_QUEUES.get(name, "default")
        assert queue == expected, name
    # Every explicitly routed handler exists (a renamed handler would silently fall to default).
    assert set(queues.HANDLER_QUEUES) <= names


def test_a_message_lands_in_its_queue_only():
    """Published through a real (in-memory) broker: each queue has its own binding."""
    with Connection("memory://") as conn:
        channel = conn.default_channel
        bound = {name: q.bind(channel) for name, q in app.amqp.queues.items()}
        for q in bound.values():
            q.declare()
        with app.producer_or_acquire(app.amqp.Producer(channel)) as producer:
            for task, args, queue in [
                ("feedback.case_notify", (1, 2), "alerts"),
                ("cem.events_handle", (1, 2, "alignment.rollup_response"), "rollups"),
                ("feedback.export_build", (1, 2), "bulk"),
                ("cem.idempotency_purge", (), "default"),
            ]:
                app.send_task(task, args=args, producer=producer)
                got = {name: q.get(no_ack=True) for name, q in bound.items()}
                assert {name for name, message in got.items() if message is not None} == {queue}, task
                assert got[queue].headers["task"] == task


def test_a_worker_without_dash_q_consumes_every_queue():
    assert set(app.amqp.queues.consume_from) == set(queues.QUEUES)
    assert app.conf.task_default_queue == "default"


def test_dev_runner_worker_consumes_every_queue():
    """./run starts one worker; it must not narrow itself to some queues."""
    source = (ROOT / "cem" / "devservices.py").read_text()
    start = source.index('supervisor.start("worker"')
    command = source[start : source.index(")", start)]
    assert "-Q" not in command and "--queues" not in command


def test_compose_runs_a_worker_pool_per_queue():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    consumed = []
    for service in compose["services"].values():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "cem", "worker"]:
            joined = " ".join(command)
            match = re.search(r"(?:-Q|--queues)[ =](\S+)", joined)
            assert match, f"a worker service without -Q: {joined}"
            consumed += match.group(1).split(",")
    assert sorted(consumed) == sorted(queues.QUEUES), "each queue consumed by exactly one pool"
