"""Periodic tasks of the audits app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
