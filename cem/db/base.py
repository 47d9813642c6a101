"""PostgreSQL backend that keeps the session's role and tenant in step with the Python context.

Every connection drops to the unprivileged application role (``OPTIONS["assume_role"]``)
unless it was opened inside :func:`owner_session` (migrations, flush, test database set-up).
Whenever Django hands the connection out — every cursor goes through ``ensure_connection()``,
and so does code that takes ``connection.connection`` after calling it — the tenant GUCs are
brought in line with the Python context, so row-level security policies see the same tenant
as the ORM's scoped managers. Rollbacks make the wrapper forget what it last wrote.
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

    _cem_ready = False  # set once the new connection has its role and GUCs

    def connect(self):
        self._cem_ready = False
        super().connect()

    def init_connection_state(self):
        super().init_connection_state()
        from cem.tenancy import apply_tenant_to_connection

        apply_tenant_to_connection(self, force=True)
        self._cem_ready = True

    def ensure_connection(self):
        super().ensure_connection()
        # connect() itself passes through here (set_autocommit) before the role is assumed.
        if self._cem_ready:
            from cem.tenancy import apply_tenant_to_connection

            apply_tenant_to_connection(self)

    def get_autocommit(self):
        # Asked after every request (close_old_connections): a question, not a statement, so
        # it must not write the GUCs of whatever context happens to be current then.
        if self.connection is not None:
            return self.autocommit
        return super().get_autocommit()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._cem_gucs = None

    def _savepoint_rollback(self, sid):
        try:
            return super()._savepoint_rollback(sid)
        finally:
            self._cem_gucs = None

    def _close(self):
        try:
            return super()._close()
        finally:
            self._cem_gucs = None
            self._cem_ready = False
