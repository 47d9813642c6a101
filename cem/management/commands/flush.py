from django.core.management.commands.flush import Command as FlushCommand

from cem.db.base import owner_session


class Command(FlushCommand):
    """Django's flush (TRUNCATE) as the schema owner: the app role holds no TRUNCATE grant."""

    def execute(self, *args, **options):
        with owner_session():
            return super().execute(*args, **options)
