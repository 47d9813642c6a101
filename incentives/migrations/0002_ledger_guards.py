"""Database guards of the points ledger, so no code path (ORM, raw SQL, a future bug) can break it:

- ledger transactions and entries are append-only: UPDATE and DELETE raise;
- the entries of a transaction sum to zero, checked at commit (a deferred constraint trigger, so
  a service can insert the entries one by one inside its transaction).
"""

from django.db import migrations

SQL = """
CREATE FUNCTION incentives_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the points ledger is append-only: % on % refused (write a reversing transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER incentives_ledgertransaction_append_only
    BEFORE UPDATE OR DELETE ON incentives_ledgertransaction
    FOR EACH ROW EXECUTE FUNCTION incentives_ledger_append_only();
CREATE TRIGGER incentives_ledgerentry_append_only
    BEFORE UPDATE OR DELETE ON incentives_ledgerentry
    FOR EACH ROW EXECUTE FUNCTION incentives_ledger_append_only();

CREATE FUNCTION incentives_ledger_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total bigint;
BEGIN
    SELECT COALESCE(SUM(amount), 0) INTO total
      FROM incentives_ledgerentry
     WHERE organization_id = NEW.organization_id AND transaction_id = NEW.transaction_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'ledger transaction % does not balance (entries sum to %)', NEW.transaction_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER incentives_ledgerentry_balanced
    AFTER INSERT ON incentives_ledgerentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION incentives_ledger_balanced();
"""

REVERSE = """
DROP TRIGGER IF EXISTS incentives_ledgerentry_balanced ON incentives_ledgerentry;
DROP FUNCTION IF EXISTS incentives_ledger_balanced();
DROP TRIGGER IF EXISTS incentives_ledgerentry_append_only ON incentives_ledgerentry;
DROP TRIGGER IF EXISTS incentives_ledgertransaction_append_only ON incentives_ledgertransaction;
DROP FUNCTION IF EXISTS incentives_ledger_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("incentives", "0001_initial")]

    operations = [migrations.RunSQL(SQL, REVERSE)]
