"""Periodic tasks of the alignment app, merged into CELERY_BEAT_SCHEDULE by cem/settings.py (plain data)."""

from datetime import timedelta

from celery.schedules import crontab

BEAT_SCHEDULE: dict[str, dict] = {}

# The nightly rollup check (alignment/rebuild.py): rebuild from raw data into scratch, compare,
# repair. 03:15 UTC: after the day's traffic in Europe and the Americas' evening, before Asia's.
BEAT_SCHEDULE["alignment-rollups-verify"] = {
    "task": "alignment.rollups_verify_dispatch",
    "schedule": crontab(minute=15, hour=3),
}

# Driver analysis (alignment/driver_tasks.py): a regression over months of answers moves slowly,
# so nightly is enough; 02:40 UTC keeps it clear of the 03:15 rollup check.
BEAT_SCHEDULE["alignment-drivers"] = {
    "task": "alignment.drivers_dispatch",
    "schedule": crontab(minute=40, hour=2),
}

# Alignment scores (alignment/score_tasks.py): the recent periods again after the rollup check, so
# changes that raise no event (a new standard, lesson or reward rule) reach the current scores;
# then last month's store scores are published once (the incentives' monthly alignment rules).
BEAT_SCHEDULE["alignment-scores-refresh"] = {
    "task": "alignment.scores_refresh_dispatch",
    "schedule": crontab(minute=45, hour=3),
}
# Scores queued by rollup changes whose drain did not come (alignment/score_queue.py).
BEAT_SCHEDULE["alignment-scores-drain-sweep"] = {
    "task": "alignment.scores_drain_sweep",
    "schedule": timedelta(minutes=1),
}
BEAT_SCHEDULE["alignment-month-close"] = {
    "task": "alignment.month_close_dispatch",
    "schedule": crontab(minute=30, hour=5),
}
