"""Periodic tasks of the feedback app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py.

Plain data (no Django imports): settings load it before the app registry exists.
"""

from datetime import timedelta

BEAT_SCHEDULE: dict[str, dict] = {}

__all__ = ["BEAT_SCHEDULE", "timedelta"]
