from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate


class CoreConfig(AppConfig):
    name = "cem"
    label = "cem"
    verbose_name = "CEM core"

    def ready(self):
        from cem import handlers  # noqa: F401 - registers the core's event handlers
        from cem.fast_reads_signals import connect as connect_fast_reads

        connect_fast_reads()

        post_migrate.connect(_apply_rls, dispatch_uid="cem.rls")
        checks.register(check_tenant_models, checks.Tags.models)


def _apply_rls(sender, app_config, using="default", **kwargs):
    # post_migrate fires once per app; the last one (alphabetical order is not guaranteed)
    # is indistinguishable, so apply on every signal: the statements are idempotent and cheap.
    from cem.rls import apply_all

    apply_all(using)


def check_tenant_models(app_configs=None, **kwargs):
    """Keep the tenancy rules mechanical: scoped managers and organization-led indexes."""
    from cem.tenancy import TenantManager, tenant_models

    errors = []
    for model in tenant_models():
        label = model._meta.label
        if not isinstance(model._default_manager, TenantManager):
            errors.append(checks.Error(f"{label}'s default manager is not a TenantManager", id="cem.E001"))
        if not isinstance(model._base_manager, TenantManager):
            errors.append(
                checks.Error(
                    f"{label}'s base manager is not scoped; declare class Meta(TenantModel.Meta)",
                    id="cem.E002",
                )
            )
        if model.TENANT_FIELD == "id":
            continue
        for index in model._meta.indexes:
            if index.fields and index.fields[0] != "organization":
                errors.append(
                    checks.Error(f"{label} index {index.name} does not lead with organization", id="cem.E003")
                )
        for constraint in model._meta.constraints:
            fields = getattr(constraint, "fields", None)
            if fields and fields[0] != "organization":
                errors.append(
                    checks.Error(
                        f"{label} unique {constraint.name} does not lead with organization", id="cem.E004"
                    )
                )
    return errors
