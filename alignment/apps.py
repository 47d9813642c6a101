from django.apps import AppConfig


class AlignmentConfig(AppConfig):
    name = "alignment"
    verbose_name = "Alignment"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from alignment import handlers  # noqa: F401 - registers the app's event handlers
        from alignment.score_settings import stored_category_weights
        from cem.category_weights import register_reader

        # The weights live in the alignment settings; feedback reads them through cem.
        register_reader(stored_category_weights)

        from alignment.panel_cache import PANEL_ROUTE
        from cem import fast_reads

        fast_reads.register_route(PANEL_ROUTE)
