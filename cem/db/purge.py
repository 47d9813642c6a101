"""The only code paths allowed past the points ledger's append-only guard: deleting a whole
tenant's ledger (``tenant_purge``) and redacting a person out of transaction notes on erasure
(``ledger_redaction``).

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
def _as_owner_with(flag: str):
    """The block as the schema owner with the guard's ``flag`` GUC on; both put back after."""
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT current_user, session_user")
        previous, owner = cur.fetchone()
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        cur.execute(sql.SQL("SET LOCAL {} = 'on'").format(sql.SQL(flag)))
        yield cur
        cur.execute(sql.SQL("SET LOCAL {} = 'off'").format(sql.SQL(flag)))
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(previous)))


def tenant_purge():
    return _as_owner_with("cem.ledger_purge")


def ledger_redaction():
    """Run the block as the schema owner with ``cem.ledger_redaction`` on: the ledger's trigger
    (incentives/migrations/0005_ledger_note_redaction.py) then lets an UPDATE of a transaction's
    ``note`` through, and nothing else (amounts, accounts, ids and entries stay refused)."""
    return _as_owner_with("cem.ledger_redaction")
