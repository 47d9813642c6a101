from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.core import signals
from django.db import close_old_connections, transaction


@pytest.fixture(scope="module")
def seeded_world(django_db_setup, django_db_blocker):
    """tests.security.api_schema.seed() once per module, in a transaction rolled back at its end.

    Each test's own ``db`` transaction nests inside (a savepoint), so what one test writes or
    deletes is gone before the next. Requests go through the WSGI app in process, on this same
    connection.
    """
    from tests.security.api_schema import seed

    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield seed()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@contextmanager
def connection_kept_across_requests():
    """Django closes a connection that is inside a transaction at each request's start and end; its
    test client unhooks that for each request, and so must requests sent through the WSGI app, or
    the first one would drop the test's (and the seed's) transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def integrator(seeded_world, db, settings):
    """Headers of org A's integrator: its API key with every scope."""
    # Hundreds of requests a test; the limit itself is tested in test_rate_limits.py.
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000
    with connection_kept_across_requests():
        yield {"Authorization": f"Bearer {seeded_world.a.api_key}"}
