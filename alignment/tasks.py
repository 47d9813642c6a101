"""Celery tasks of the alignment app. Each area keeps its tasks in its own module, imported here."""

from alignment.driver_tasks import *  # noqa: F403  (driver analysis: nightly and on demand)
from alignment.rebuild_tasks import *  # noqa: F403
from alignment.score_tasks import *  # noqa: F403  (alignment scores: recompute, nightly refresh, month close)
