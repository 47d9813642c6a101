"""Tenant context: the one place that decides which organization's rows code may touch.

Two walls, kept in step:

1. The ORM: every tenant-owned model's default manager is :class:`TenantManager`, which
   filters on the current tenant and *raises* :class:`TenantNotSet` when there is none.
2. PostgreSQL row-level security: every tenant table has ENABLE + FORCE RLS with a policy on
   ``current_setting('app.tenant_id')``. The GUC is brought in line with the context before
   anything runs on a connection: ``cem/db/base.py`` checks it whenever Django hands out the
   connection (every cursor, every ``ensure_connection()``) and writes it only when the
   connection holds another value. Entering and leaving a context costs no round trip, and a
   persistent connection that serves the same tenant again is not written at all.

The GUC is session-level rather than ``SET LOCAL`` because Django runs in autocommit, where a
transaction-local value would vanish after each statement. set_config is itself transactional:
a rollback (or a rollback to a savepoint) restores an older value, so the backend forgets what
it believes the connection holds and writes it again before the next statement.

``unscoped()`` is the explicit, grep-able escape hatch for system jobs (outbox sweep, seeding,
authentication look-ups). It opens both walls at once, so use it only around the narrowest
query that needs it.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.utils.text import capfirst
from psycopg.pq import TransactionStatus


class TenantNotSet(RuntimeError):
    """A tenant-owned table was queried with no tenant in context (fail closed)."""


@dataclass(frozen=True)
class _State:
    tenant_id: int | None = None
    system: bool = False

    def as_gucs(self) -> tuple[str, str]:
        return ("" if self.tenant_id is None else str(self.tenant_id), "on" if self.system else "off")


_NO_TENANT = _State()  # frozen, so sharing it as the default is safe
_state: ContextVar[_State] = ContextVar("cem_tenant_state", default=_NO_TENANT)


def current_tenant_id(required: bool = True) -> int | None:
    state = _state.get()
    if state.tenant_id is None and required:
        raise TenantNotSet("No tenant in context: wrap the code in tenant_context(org) or unscoped().")
    return state.tenant_id


def is_unscoped() -> bool:
    return _state.get().system


def apply_tenant_to_connection(conn, *, force: bool = False) -> None:
    """Write the context's tenant to the session GUCs of one open connection, if it differs."""
    raw = conn.connection
    if raw is None:
        return
    wanted = _state.get().as_gucs()
    if not force and getattr(conn, "_cem_gucs", None) == wanted:
        return
    # In a failed transaction nothing can run; the rollback that must follow makes the backend
    # forget the value, so the next statement writes it.
    if raw.info.transaction_status == TransactionStatus.INERROR:
        return
    with raw.cursor() as cur:
        cur.execute(
            "SELECT set_config('app.tenant_id', %s, false), set_config('app.system', %s, false)", wanted
        )
    # Django's own flag, not get_autocommit(): that would ask for the connection again.
    if not conn.autocommit and not conn.in_atomic_block:
        raw.commit()
    conn._cem_gucs = wanted


@contextmanager
def _enter(state: _State):
    token = _state.set(state)
    try:
        yield
    finally:
        _state.reset(token)


def _tenant_id_of(organization) -> int:
    tenant_id = getattr(organization, "pk", organization)
    if not isinstance(tenant_id, int) or isinstance(tenant_id, bool):
        raise TypeError(f"tenant must be an Organization or its integer id, not {organization!r}")
    return tenant_id


@contextmanager
def tenant_context(organization):
    """Scope everything inside to one organization (an instance or its id)."""
    with _enter(_State(tenant_id=_tenant_id_of(organization))):
        yield


@contextmanager
def unscoped():
    """System context: every tenant's rows are visible. Keep the block as small as possible."""
    with _enter(_State(tenant_id=None, system=True)):
        yield


class TenantQuerySet(models.QuerySet):
    pass


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """Default manager of every tenant-owned model: scoped, and raising when no tenant is set."""

    def get_queryset(self):
        qs = super().get_queryset()
        state = _state.get()
        if state.system:
            return qs
        if state.tenant_id is None:
            raise TenantNotSet(
                f"{self.model.__name__} queried with no tenant in context; "
                "use tenant_context(org) or, for system jobs, unscoped()."
            )
        return qs.filter(**{self.model.TENANT_FIELD: state.tenant_id})

    def none(self):
        # An empty queryset reads nothing, so it needs no tenant (schema generators build them).
        return super().get_queryset().none()


class TenantModel(models.Model):
    """Base for every tenant-owned table: carries organization_id and is scoped by default.

    Subclasses should lead their indexes and unique constraints with ``organization`` so the
    schema can be distributed by tenant (Citus) later.
    """

    TENANT_FIELD = "organization_id"
    # Hierarchy scope (cem.scoping): {} = only organization-wide roles see rows; None = reference
    # data every member sees; otherwise {level: ORM path to that level's id}.
    SCOPE_PATHS: dict[str, str] | None = {}

    organization = models.ForeignKey("cem.Organization", on_delete=models.CASCADE, related_name="+")

    objects = TenantManager()

    class Meta:
        abstract = True
        base_manager_name = "objects"
        default_manager_name = "objects"

    def save(self, *args, **kwargs):
        if self.organization_id is None:
            self.organization_id = current_tenant_id()
        elif not is_unscoped() and self.organization_id != current_tenant_id():
            raise TenantNotSet(
                f"Refusing to save {type(self).__name__} for organization {self.organization_id} "
                f"inside tenant {current_tenant_id()}"
            )
        super().save(*args, **kwargs)

    def validate_constraints(self, exclude=None):
        """Report a per-tenant unique clash under the field that clashes, not as a non-field error."""
        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict({})
            for error in errors.pop(NON_FIELD_ERRORS, []):
                check = (
                    (error.params or {}).get("unique_check")
                    if error.code in {"unique", "unique_together"}
                    else None
                )
                if check and check[0] == "organization" and len(check) > 1:
                    name = check[-1]
                    label = self._meta.get_field(name).verbose_name
                    message = f"{capfirst(self._meta.verbose_name)} with this {label} already exists."
                    errors.setdefault(name, []).append(ValidationError(message, code="unique"))
                else:
                    errors.setdefault(NON_FIELD_ERRORS, []).append(error)
            raise ValidationError(errors) from None


def tenant_models() -> list[type[models.Model]]:
    from django.apps import apps

    return [
        m
        for m in apps.get_models()
        if getattr(m, "TENANT_FIELD", None) and not m._meta.proxy and m._meta.managed
    ]
