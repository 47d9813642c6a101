"""Periodic tasks of the feedback app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py.

Plain data (no Django imports): settings load it before the app registry exists.
"""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {
    # Overdue cases move up a level (store → region → organization); minutes matter for SLAs.
    "feedback-cases-escalate": {"task": "feedback.cases_escalate", "schedule": timedelta(minutes=5)},
    # Invitations: sends every minute keep the configured delay honest; reminders and expiry are coarse.
    "feedback-invitations-send-due": {
        "task": "feedback.invitations_send_due_dispatch",
        "schedule": timedelta(minutes=1),
    },
    "feedback-invitations-remind": {
        "task": "feedback.invitations_remind_dispatch",
        "schedule": timedelta(minutes=15),
    },
    "feedback-invitations-expire": {
        "task": "feedback.invitations_expire_dispatch",
        "schedule": timedelta(hours=1),
    },
}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
