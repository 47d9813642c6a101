"""The worker keeps its PostgreSQL connections between tasks, as web processes do between
requests, and still drops one that failed (cem/celery.py)."""

from types import SimpleNamespace

import pytest
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from cem.celery import _close_unusable_connections, app

pytestmark = pytest.mark.django_db(transaction=True)


def _task(eager: bool):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_the_fixup_reuses_connections_instead_of_opening_one_per_task():
    assert DjangoWorkerFixup(app).db_reuse_max == 500


def test_a_healthy_connection_is_kept_between_tasks():
    connection.ensure_connection()
    backend = connection.connection
    _close_unusable_connections(task=_task(eager=False))
    connection.ensure_connection()
    assert connection.connection is backend


def test_a_connection_that_failed_and_cannot_answer_is_closed():
    connection.ensure_connection()
    backend = connection.connection
    connection.errors_occurred = True
    backend.close()  # what a restarted server or a cut network leaves behind
    _close_unusable_connections(task=_task(eager=False))
    assert connection.connection is None


def test_eager_tasks_never_touch_the_callers_connection():
    connection.ensure_connection()
    backend = connection.connection
    connection.errors_occurred = True
    backend.close()
    _close_unusable_connections(task=_task(eager=True))
    assert connection.connection is backend
    connection.close()
