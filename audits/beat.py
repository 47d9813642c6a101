"""Periodic tasks of the audits app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

from datetime import timedelta

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {}

# Shopper jobs (audits/job_tasks.py): lapsed jobs go back on the board promptly; reminders are coarse.
BEAT_SCHEDULE.update(
    {
        "audits-assignments-release-overdue": {
            "task": "audits.assignments_release_overdue_dispatch",
            "schedule": timedelta(minutes=10),
        },
        "audits-assignments-expire-revisions": {
            "task": "audits.assignments_expire_revisions_dispatch",
            "schedule": timedelta(minutes=10),
        },
        "audits-assignments-auto-assign": {
            "task": "audits.assignments_auto_assign_dispatch",
            "schedule": timedelta(minutes=10),
        },
        "audits-assignments-remind": {
            "task": "audits.assignments_remind_dispatch",
            "schedule": timedelta(hours=1),
        },
    }
)

# Monitoring: last week's sample per programme, drawn early on Monday (a re-run draws nothing new).
BEAT_SCHEDULE["audits-monitoring-sample"] = {
    "task": "audits.monitoring_sample_dispatch",
    "schedule": crontab(minute=0, hour=3, day_of_week="mon"),
}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
