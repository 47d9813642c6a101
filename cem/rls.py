"""Row-level security: the second wall behind the scoped managers.

Applied after every ``migrate`` (post_migrate), so a tenant model added by any later app is
covered without anyone remembering to write a migration for it. Idempotent.
"""

from django.conf import settings
from psycopg import sql

from cem.tenancy import tenant_models

POLICY = "tenant_isolation"


def app_role() -> str:
    return settings.DATABASES["default"]["OPTIONS"].get("assume_role") or ""


def _policy_predicate(column: str) -> sql.Composable:
    # The settings are wrapped in scalar sub-selects so PostgreSQL evaluates them once per query
    # (an InitPlan) instead of once per row: a quarter of the time of a million-row aggregate.
    return sql.SQL(
        "({col} = (SELECT NULLIF(current_setting('app.tenant_id', true), '')::bigint)"
        " OR (SELECT current_setting('app.system', true)) = 'on')"
    ).format(col=sql.Identifier(column))


def ensure_app_role(cursor) -> None:
    role = app_role()
    if not role:
        return
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
    if cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN NOSUPERUSER NOBYPASSRLS").format(sql.Identifier(role)))
    # The owner must be a member to SET ROLE to it (superusers are implicitly).
    cursor.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(role)))


def apply_grants(cursor) -> None:
    role = app_role()
    if not role:
        return
    ident = sql.Identifier(role)
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(ident))
    # No TRUNCATE and no DDL: TRUNCATE ignores row-level security.
    cursor.execute(
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(ident)
    )
    cursor.execute(sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(ident))


def apply_policies(cursor) -> list[str]:
    tables = []
    for model in tenant_models():
        table = model._meta.db_table
        column = model._meta.get_field(model.TENANT_FIELD.removesuffix("_id")).column
        predicate = _policy_predicate(column)
        t = sql.Identifier(table)
        cursor.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(t))
        cursor.execute(sql.SQL("ALTER TABLE {} FORCE ROW LEVEL SECURITY").format(t))
        cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(POLICY), t))
        cursor.execute(
            sql.SQL("CREATE POLICY {} ON {} USING {} WITH CHECK {}").format(
                sql.Identifier(POLICY), t, predicate, predicate
            )
        )
        tables.append(table)
    return tables


def apply_all(using: str = "default") -> list[str]:
    from django.db import connections

    with connections[using].cursor() as cursor:
        ensure_app_role(cursor)
        tables = apply_policies(cursor)
        apply_grants(cursor)
    return tables
