"""``celery -A tests.faults.beat_app beat``: the real app and scheduler, with the periodic jobs
named in FAULTS_BEAT_JOBS due every FAULTS_BEAT_SECONDS instead of every minutes or night."""

import os
from datetime import timedelta

from django.conf import settings

from cem.celery import app

__all__ = ["app"]

_every = timedelta(seconds=float(os.environ.get("FAULTS_BEAT_SECONDS", "4")))
_jobs = os.environ.get("FAULTS_BEAT_JOBS", "").split(",")
app.conf.beat_schedule = {
    name: {**settings.CELERY_BEAT_SCHEDULE[name], "schedule": _every} for name in _jobs if name
}
