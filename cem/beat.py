"""The beat scheduler: django-celery-beat's database scheduler, plus a claim per due time.

Two beat processes (a deploy that briefly overlaps, a second replica started by mistake, a
failover that comes back) would each send every periodic job, and escalations, expiry,
reminders and the nightly rebuild would run twice. Before sending, the scheduler claims the
entry in PostgreSQL with one conditional upsert: it wins only when the entry's last claimed
send is older than most of the entry's interval. The loser logs and skips; either way its own
entry moves on to the next due time, so a beat that keeps running takes over seamlessly when
the other stops.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime, timedelta

from celery import schedules
from django.db import connection
from django_celery_beat.schedulers import DatabaseScheduler

from cem.tenancy import unscoped

logger = logging.getLogger(__name__)

# A claim blocks sends for this share of the entry's shortest interval: above one half, two beats
# at any phase cannot both win within one interval; below one, one beat's next regular send
# (never early) always wins even when its clock or tick runs a little late.
CLAIM_SHARE = 0.75
# Schedules we cannot measure (solar, custom) are claimed for this long.
DEFAULT_INTERVAL = timedelta(minutes=1)

_CLAIM_SQL = """
    INSERT INTO cem_beatclaim (name, sent_at, sent_by) VALUES (%s, %s, %s)
    ON CONFLICT (name) DO UPDATE SET sent_at = EXCLUDED.sent_at, sent_by = EXCLUDED.sent_by
     WHERE cem_beatclaim.sent_at <= EXCLUDED.sent_at - %s
    RETURNING name
"""


def shortest_interval(schedule, now: datetime | None = None) -> timedelta:
    """The smallest gap between two consecutive due times of a celery schedule."""
    if isinstance(schedule, schedules.crontab):
        # Irregular crontabs (e.g. hours 3 and 4) have uneven gaps: take the smallest of the
        # next eight, from the next due time on.
        start, delta, _ = schedule.remaining_delta(now or datetime.now(UTC))
        due = start + delta
        gaps = []
        for _ in range(8):
            start, delta, _ = schedule.remaining_delta(due)
            gaps.append(start + delta - due)
            due = start + delta
        positive = [g for g in gaps if g > timedelta(0)]
        return min(positive) if positive else DEFAULT_INTERVAL
    run_every = getattr(schedule, "run_every", None)
    if isinstance(run_every, timedelta) and run_every > timedelta(0):
        return run_every
    return DEFAULT_INTERVAL


def claim(name: str, *, interval: timedelta, now: datetime | None = None, holder: str = "") -> bool:
    """Whether this caller may send entry ``name`` now (and the claim is recorded if so)."""
    now = now or datetime.now(UTC)
    with unscoped(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, [name, now, holder[:200], interval * CLAIM_SHARE])
        return cursor.fetchone() is not None


class ClaimingScheduler(DatabaseScheduler):
    """DatabaseScheduler that sends an entry only when it wins that due time's claim."""

    holder = f"{socket.gethostname()}:{os.getpid()}"

    def apply_entry(self, entry, producer=None):
        try:
            won = claim(entry.name, interval=shortest_interval(entry.schedule), holder=self.holder)
        except Exception:
            # Without the database this beat cannot know whether another one sent the job; it
            # skips this due time rather than risk running it twice (the jobs catch up next time).
            logger.exception("beat claim for %s failed; not sent", entry.name)
            return
        if not won:
            logger.info("Scheduler: %s already sent by another beat for this due time", entry.name)
            return
        super().apply_entry(entry, producer=producer)
