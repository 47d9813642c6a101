from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "learning"
    verbose_name = "Learning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from learning import handlers  # noqa: F401 - registers the app's event handlers
