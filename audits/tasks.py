"""Celery tasks of the audits app. Each area keeps its tasks in its own module, imported here."""
