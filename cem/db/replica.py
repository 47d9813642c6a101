"""Dashboard reads on a read replica; everything else on the primary.

Only code inside :func:`replica_reads` reads from the ``replica`` alias: the dashboard and chart
views declare ``reads_from_replica = True`` and the page mixin / base viewset wrap their GET in
it (cem/pages.py, cem/api/base.py). Everything else — services, handlers, every write, the
outbox — stays on ``default``, so a replica's lag can only make a chart a moment old, never
make a service decide on stale rows. Inside a transaction on the primary (a service that reads
then writes) reads stay on the primary even within the context.

The ``replica`` alias uses the same backend as ``default`` (cem/db/base.py), so its connections
also drop to the application role and carry the tenant GUC: row-level security holds there as
on the primary (tests/test_read_replica.py). With ``DATABASE_REPLICA_URL`` unset the alias
points at the primary's server and routing is off (``READ_REPLICA``), so one process keeps one
connection.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"

_active: ContextVar[bool] = ContextVar("cem_replica_reads", default=False)


@contextmanager
def replica_reads():
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)


def reads_from_replica(func):
    """Decorator form of :func:`replica_reads`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with replica_reads():
            return func(*args, **kwargs)

    return wrapper


def read_alias() -> str:
    """The alias a read in the current context goes to (also for raw cursors: ``connections[...]``)."""
    if (
        _active.get()
        and getattr(settings, "READ_REPLICA", False)
        and REPLICA in settings.DATABASES
        and not connections[DEFAULT_DB_ALIAS].in_atomic_block
    ):
        return REPLICA
    return DEFAULT_DB_ALIAS


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # Both aliases hold the same rows: an object read from the replica may be linked and saved.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == DEFAULT_DB_ALIAS
