"""Periodic tasks of the audits app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

from datetime import timedelta

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {}

# Monitoring: last week's sample per programme, drawn early on Monday (a re-run draws nothing new).
BEAT_SCHEDULE["audits-monitoring-sample"] = {
    "task": "audits.monitoring_sample_dispatch",
    "schedule": crontab(minute=0, hour=3, day_of_week="mon"),
}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
