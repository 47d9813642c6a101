"""Celery tasks of the learning app. Each area keeps its tasks in its own module, imported here."""

from learning.analytics_tasks import *  # noqa: F403  (lesson effectiveness snapshots)
from learning.assignment_tasks import *  # noqa: F403  (reminders, overdue, escalation, holdouts)
from learning.xapi_tasks import *  # noqa: F403  (xAPI forwarding to an LRS, and its sweep)
