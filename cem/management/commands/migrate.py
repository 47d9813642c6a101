from django.core.management.commands.migrate import Command as MigrateCommand

from cem.db.base import owner_session


class Command(MigrateCommand):
    """Django's migrate, run as the schema owner; RLS, grants and the app role follow (post_migrate)."""

    def execute(self, *args, **options):
        # The system checks that run before handle() connect too: as the owner as well.
        with owner_session():
            return super().execute(*args, **options)
