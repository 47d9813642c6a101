"""Periodic tasks of the feedback app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py.

Plain data (no Django imports): settings load it before the app registry exists.
"""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {
    # Overdue cases move up a level (store → region → organization); minutes matter for SLAs.
    "feedback-cases-escalate": {"task": "feedback.cases_escalate", "schedule": timedelta(minutes=5)},
}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
