"""PostgreSQL backend that keeps the session's role and tenant in step with the Python context.

Every connection drops to the unprivileged application role (``OPTIONS["assume_role"]``)
unless it was opened inside :func:`owner_session` (migrations, flush, test database set-up).
Every new connection also gets the current tenant's GUCs so row-level security policies see
the same tenant as the ORM's scoped managers.
"""

import threading
from contextlib import contextmanager

import psycopg
from django.db import connections
from django.db.backends.postgresql import base
from django.db.backends.postgresql.base import NO_DB_ALIAS

_owner = threading.local()


def owner_mode() -> bool:
    return getattr(_owner, "active", False)


@contextmanager
def owner_session():
    """Run schema work as the connecting (owner) role instead of the application role."""
    previous = owner_mode()
    for conn in connections.all(initialized_only=True):
        conn.close()
    _owner.active = True
    try:
        yield
    finally:
        _owner.active = previous
        for conn in connections.all(initialized_only=True):
            if not conn.in_atomic_block:
                conn.close()


class DatabaseWrapper(base.DatabaseWrapper):
    def _configure_role(self, connection):
        if owner_mode() or self.alias == NO_DB_ALIAS:
            return False
        try:
            return super()._configure_role(connection)
        except psycopg.errors.InvalidParameterValue:
            # A cluster no migrate has run on yet (a fresh machine): system checks connect before
            # any migration could create the role. Create it as the connecting owner, then drop to
            # it; the grants follow with migrate's post_migrate.
            from cem.rls import ensure_app_role

            with connection.cursor() as cursor:
                ensure_app_role(cursor)
            return super()._configure_role(connection)

    def init_connection_state(self):
        super().init_connection_state()
        from cem.tenancy import apply_tenant_to_connection

        apply_tenant_to_connection(self, force=True)
