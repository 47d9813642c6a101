"""Periodic tasks of the learning app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {}

# Assignments (learning/assignment_tasks.py): reminders, overdue notices and escalations are
# day-grained, so hourly is plenty; held-out gap cases are released within the hour too.
BEAT_SCHEDULE.update(
    {
        "learning-assignments-notify": {
            "task": "learning.assignments_notify_dispatch",
            "schedule": timedelta(hours=1),
        },
        "learning-holdouts-release": {
            "task": "learning.holdouts_release_dispatch",
            "schedule": timedelta(hours=1),
        },
    }
)

# xAPI (learning/xapi_tasks.py): statements a failed or lost delivery left behind go again.
BEAT_SCHEDULE["learning-xapi-forward-sweep"] = {
    "task": "learning.xapi_forward_sweep",
    "schedule": timedelta(minutes=30),
}

# Analytics (learning/analytics_tasks.py): lesson effectiveness moves with weeks of data; hourly
# keeps the page current without a page request ever gathering it.
BEAT_SCHEDULE["learning-lesson-effects"] = {
    "task": "learning.lesson_effects_dispatch",
    "schedule": timedelta(hours=1),
}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
