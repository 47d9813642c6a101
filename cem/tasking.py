"""Base for every Celery task that touches tenant data (after Sentry's thin, named tasks).

Tasks take ids, never model instances, and the tenant's id first; the base class opens the
tenant context (ORM scoping and the RLS GUC) for the task's whole run and closes it after.
"""

from celery import Task

from cem.tenancy import tenant_context


class TenantTask(Task):
    abstract = True
    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, tenant_id: int, *args, **kwargs):
        if not isinstance(tenant_id, int):
            raise TypeError(f"{self.name} takes tenant_id (an int) first, got {tenant_id!r}")
        with tenant_context(tenant_id):
            return super().__call__(tenant_id, *args, **kwargs)
