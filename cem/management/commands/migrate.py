from django.core.management.commands.migrate import Command as MigrateCommand

from cem.db.base import owner_session


class Command(MigrateCommand):
    """Django's migrate, run as the schema owner; RLS, grants and the app role follow (post_migrate)."""

    def handle(self, *args, **options):
        with owner_session():
            return super().handle(*args, **options)
