"""Periodic tasks of the incentives app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {}

# Points expiry (incentives/tasks.py): lots expire N months after they were earned, so a day's
# grain is all the promise there is; the dispatcher reads only the partial index of open lots.
BEAT_SCHEDULE["incentives-points-expire"] = {
    "task": "incentives.points_expire_dispatch",
    "schedule": timedelta(days=1),
}
