"""The one code path allowed to delete a whole tenant's append-only rows (the points ledger).

``tenant_purge()`` runs its block as the schema owner (``SET LOCAL ROLE session_user``: the
login role owns the tables; the application connection only ``SET ROLE``-d away from it) with
``cem.ledger_purge`` on, then puts the role and the setting back. The ledger's trigger
(incentives/migrations/0003_ledger_purge.py) lets DELETE through only for that combination, so
application code that sets the GUC is still refused. Both settings are LOCAL and the block is a
savepoint: a failure inside rolls them back with the rows.

Unlike ``owner_session`` it does not reconnect, so it works inside an enclosing transaction
(the demo reset runs in one; tests run inside one).
"""

from contextlib import contextmanager

from django.db import connection, transaction
from psycopg import sql


@contextmanager
def tenant_purge():
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT current_user, session_user")
        previous, owner = cur.fetchone()
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        cur.execute("SET LOCAL cem.ledger_purge = 'on'")
        yield cur
        cur.execute("SET LOCAL cem.ledger_purge = 'off'")
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(previous)))
