"""``manage.py ledger_check``: reconcile the points ledger of every organization.

Read-only and unscoped (it runs across tenants, like the outbox sweep). Each check is one SQL
statement, so each sees one consistent snapshot even while points move. Exits non-zero with one
line per problem when any check fails:

- every transaction's entries sum to zero, and every transaction has entries;
- every account's stored balance equals the sum of its entries, and its latest entry's
  ``balance_after``;
- no account is negative where that is not allowed (wallets in debt carry ``allow_negative``;
  ISSUANCE and WRITE_OFF are contra accounts and may never be positive);
- each wallet's open lots hold exactly its spendable points (``max(balance, 0)``);
- each organization's balances sum to zero.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from cem.tenancy import unscoped

CHECKS = [
    (
        "unbalanced transaction",
        """
        SELECT t.organization_id, t.id, COALESCE(SUM(e.amount), 0) AS total, COUNT(e.id) AS n
          FROM incentives_ledgertransaction t
          LEFT JOIN incentives_ledgerentry e
            ON e.transaction_id = t.id AND e.organization_id = t.organization_id
         {where_t}
         GROUP BY t.organization_id, t.id
        HAVING COALESCE(SUM(e.amount), 0) <> 0 OR COUNT(e.id) = 0
        """,
        lambda r: f"org {r[0]}: transaction {r[1]} entries sum to {r[2]} ({r[3]} entries)",
    ),
    (
        "stored balance differs from its entries",
        """
        SELECT a.organization_id, a.id, a.name, a.balance, COALESCE(s.total, 0), l.last_after
          FROM incentives_account a
          LEFT JOIN (
                SELECT account_id, SUM(amount) AS total FROM incentives_ledgerentry GROUP BY account_id
               ) s ON s.account_id = a.id
          LEFT JOIN (
                SELECT DISTINCT ON (account_id) account_id, balance_after AS last_after
                  FROM incentives_ledgerentry ORDER BY account_id, id DESC
               ) l ON l.account_id = a.id
         {where_a}
           AND (a.balance <> COALESCE(s.total, 0) OR a.balance <> COALESCE(l.last_after, 0))
        """,
        lambda r: (
            f"org {r[0]}: account {r[1]} ({r[2]}) stores {r[3]}, entries sum to {r[4]}, "
            f"latest balance_after {r[5]}"
        ),
    ),
    (
        "negative where not allowed",
        """
        SELECT a.organization_id, a.id, a.name, a.kind, a.balance, a.allow_negative
          FROM incentives_account a
         {where_a}
           AND (
                (a.kind IN ('budget', 'clearing', 'redeemed', 'expired') AND a.balance < 0)
             OR (a.kind = 'wallet' AND a.balance < 0 AND NOT a.allow_negative)
             OR (a.kind IN ('issuance', 'write_off') AND a.balance > 0)
           )
        """,
        lambda r: (
            f"org {r[0]}: account {r[1]} ({r[2]}, {r[3]}) has balance {r[4]}"
            f"{' (allow_negative)' if r[5] else ''}"
        ),
    ),
    (
        "lots do not match the wallet",
        """
        SELECT a.organization_id, a.id, a.name, a.balance, COALESCE(l.open, 0)
          FROM incentives_account a
          LEFT JOIN (
                SELECT wallet_id, SUM(remaining) AS open FROM incentives_pointslot GROUP BY wallet_id
               ) l ON l.wallet_id = a.id
         {where_a} AND a.kind = 'wallet' AND GREATEST(a.balance, 0) <> COALESCE(l.open, 0)
        """,
        lambda r: f"org {r[0]}: wallet {r[1]} ({r[2]}) holds {r[3]} but its open lots hold {r[4]}",
    ),
    (
        "organization does not sum to zero",
        """
        SELECT a.organization_id, SUM(a.balance) FROM incentives_account a
         {where_a}
         GROUP BY a.organization_id HAVING SUM(a.balance) <> 0
        """,
        lambda r: f"org {r[0]}: balances sum to {r[1]}",
    ),
]


def run_checks(organization_id: int | None = None) -> list[str]:
    """Every problem found, one line each (empty: the ledger reconciles)."""
    problems: list[str] = []
    params = [organization_id] if organization_id is not None else []
    where_a = "WHERE a.organization_id = %s" if organization_id is not None else "WHERE TRUE"
    where_t = "WHERE t.organization_id = %s" if organization_id is not None else ""
    with unscoped(), connection.cursor() as cursor:
        for title, sql, describe in CHECKS:
            cursor.execute(sql.format(where_a=where_a, where_t=where_t), params)
            problems.extend(f"{title}: {describe(row)}" for row in cursor.fetchall())
    return problems


class Command(BaseCommand):
    help = "Reconcile the points ledger: balanced transactions, stored balances, lots, signs."

    def add_arguments(self, parser):
        parser.add_argument("--organization", type=int, help="Check one organization only.")

    def handle(self, *args, **options):
        problems = run_checks(options.get("organization"))
        if problems:
            for line in problems:
                self.stderr.write(line)
            raise CommandError(f"ledger_check: {len(problems)} problem(s)", returncode=2)
        self.stdout.write("ledger_check: every transaction balances and every balance reconciles")
