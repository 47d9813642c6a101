import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cem.settings")

app = Celery("cem")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Celery's Django fixup closes every database connection before and after each task unless this
# is set, so each task paid for a new PostgreSQL backend and its role/tenant set-up (~8 ms here,
# more than most handlers cost). With it, the fixup recycles connections every this many tasks,
# and the handlers below keep Django's per-request rules instead: a connection that failed, or is
# older than CONN_MAX_AGE, is closed; a reused one is pinged first (CONN_HEALTH_CHECKS). The
# tenant GUCs are re-checked whenever a connection is handed out (cem/db/base.py), so a reused
# connection never carries the previous task's tenant. (The fixup reads the old-style name;
# the namespaced settings never reach it.)
app.conf.CELERY_DB_REUSE_MAX = 500


@task_prerun.connect
@task_postrun.connect
def _close_unusable_connections(task=None, **kwargs) -> None:
    # Eager tasks run inside the caller's (or a test's) transaction: never touch its connection.
    if task is not None and not getattr(task.request, "is_eager", False):
        from django.db import close_old_connections

        close_old_connections()
