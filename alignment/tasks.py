"""Celery tasks of the alignment app. Each area keeps its tasks in its own module, imported here."""

from alignment.rebuild_tasks import *  # noqa: F403
