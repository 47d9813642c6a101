"""Let a whole tenant's ledger be purged (``seed_demo --reset``, erasing an organization) without
opening the append-only guard to the application.

A custom setting alone would not do: any role may ``SET cem.ledger_purge = 'on'``. So DELETE
passes only when the setting is on *and* the statement runs as the table's owner (the schema
owner that runs migrations); the application role (``cem_app``) owns nothing, so it is refused
whatever it sets. UPDATE stays refused for everyone. See ``cem/db/purge.py``.
"""

from django.db import migrations

SQL = """
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

REVERSE = """
CREATE OR REPLACE FUNCTION incentives_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the points ledger is append-only: % on % refused (write a reversing transaction)',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("incentives", "0002_ledger_guards")]

    operations = [migrations.RunSQL(SQL, REVERSE)]
