"""Celery tasks of the feedback app. Each area keeps its tasks in its own module, imported here."""

from feedback.case_tasks import *  # noqa: F403
from feedback.export_tasks import *  # noqa: F403
from feedback.invitation_tasks import *  # noqa: F403
