"""Celery tasks of the audits app. Each area keeps its tasks in its own module, imported here."""

from audits.job_tasks import *  # noqa: F403  (shopper job board upkeep)
from audits.monitoring_tasks import *  # noqa: F403
