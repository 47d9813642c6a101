from django.apps import AppConfig


class IncentivesConfig(AppConfig):
    name = "incentives"
    verbose_name = "Incentives"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from incentives import handlers  # noqa: F401 - registers the app's event handlers
