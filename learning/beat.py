"""Periodic tasks of the learning app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

BEAT_SCHEDULE: dict[str, dict] = {}
