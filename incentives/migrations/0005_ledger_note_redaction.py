"""Let an erasure redact a person's name out of ledger transaction notes without opening the
append-only guard to anything else.

A note is free text (a manager's adjustment, a declined redemption's reason) and may name the
person; GDPR erasure must reach it, while the amounts, accounts and ids stay exactly as written
(the ledger keeps balancing: entries are never touched). So UPDATE passes only when

- ``cem.ledger_redaction`` is on *and* the statement runs as the table's owner, as with the purge
  (0003): the application role owns nothing, so setting the GUC alone does not help it; the one
  code path is ``cem.db.purge.ledger_redaction()``, used by the privacy erasure;
- it is a transaction row (entries carry no text: still refused);
- nothing but ``note`` differs between the old and the new row.
"""

from django.db import migrations

SQL = """
CREATE OR REPLACE FUNCTION incentives_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    is_owner boolean := current_user = (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                                         WHERE c.oid = TG_RELID);
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('cem.ledger_purge', true) = 'on' AND is_owner THEN
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'incentives_ledgertransaction'
       AND current_setting('cem.ledger_redaction', true) = 'on' AND is_owner
       AND (to_jsonb(NEW) - 'note') = (to_jsonb(OLD) - 'note') THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'the points ledger is append-only: % on % refused (write a reversing transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
"""

# 0003's function.
REVERSE = """
CREATE OR REPLACE FUNCTION incentives_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('cem.ledger_purge', true) = 'on'
       AND current_user = (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
                            WHERE c.oid = TG_RELID) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'the points ledger is append-only: % on % refused (write a reversing transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("incentives", "0004_bonus_team_scope")]

    operations = [migrations.RunSQL(SQL, REVERSE)]
