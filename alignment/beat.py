"""Periodic tasks of the alignment app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

BEAT_SCHEDULE: dict[str, dict] = {}
