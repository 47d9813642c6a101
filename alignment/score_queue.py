"""Alignment scores after a rollup change: queued in the change's transaction, computed after it.

The rollup handlers (alignment.handlers) do not recompute scores: :func:`enqueue` adds the
(local day, location, employee) keys a change touched to ``PendingScore`` in the handler's
transaction, and once that commits rings the organization's doorbell (SET NX with a TTL, as the
outbox does): the first commit after a drain schedules ``alignment.scores_drain`` ``DEBOUNCE``
seconds later, and every commit until that task starts rides along. :func:`drain` takes the
organization's advisory lock (the one every recompute takes), deletes the pending keys and
recomputes their scopes and periods (alignment.scores.recompute_touched) in one transaction.

So a rollup change commits in milliseconds whatever the scores cost, a burst of events is scored
once, and nothing is lost: a drain that fails rolls its deletion back with it and the keys wait
for the next one; a doorbell rung while the broker was down is covered by the sweep
(``alignment.scores_drain_sweep``, every minute). Draining is idempotent: recomputing the same
keys twice writes the same scores.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from alignment.models import PendingScore
from cem.services import _check_tenant

logger = logging.getLogger(__name__)

DEBOUNCE = 0.25  # seconds a drain waits for more events of its organization
DOORBELL = "alignment:scores:doorbell:{}"
# Bounds the wait when a scheduled drain is lost (worker killed); the sweep drains anyway.
DOORBELL_TTL = 60


def _day(value) -> dt.date:
    return dt.date.fromisoformat(value) if isinstance(value, str) else value


def enqueue(org, touched: Iterable[tuple]) -> int:
    """Queue the (day, location, employee) keys for scoring once the current transaction commits."""
    org_id = _check_tenant(org)
    keys = sorted(
        {(_day(d), loc, emp) for d, loc, emp in touched}, key=lambda k: (k[0], k[1] or 0, k[2] or 0)
    )
    if not keys:
        return 0
    PendingScore.objects.bulk_create(
        PendingScore(organization_id=org_id, day=d, location_id=loc, employee_id=emp) for d, loc, emp in keys
    )
    transaction.on_commit(partial(ring, org_id))
    return len(keys)


def ring(org_id: int) -> None:
    """Schedule a drain unless one is already waiting to start."""
    from alignment.score_tasks import scores_drain
    from cem.throttle import set_once

    try:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            scores_drain.delay(org_id)  # tests and one-process runs: here and now
        elif set_once(DOORBELL.format(org_id), ttl=DOORBELL_TTL):
            scores_drain.apply_async((org_id,), countdown=DEBOUNCE)
    except (KombuOperationalError, ConnectionError, OSError):
        # A broker outage must not fail a committed change: the sweep drains the keys.
        logger.warning("broker unavailable; alignment scores of organization %s left for the sweep", org_id)


_TAKE = (
    "DELETE FROM alignment_pendingscore WHERE organization_id = %s RETURNING day, location_id, employee_id"
)


def drain(org) -> int:
    """Recompute the scores of every pending key of the organization; returns how many keys."""
    from alignment import scores

    org_id = _check_tenant(org)
    with transaction.atomic():
        # Before taking the keys: a drain that waited for another sees everything it left.
        scores.lock(org_id)
        with connection.cursor() as cur:
            cur.execute(_TAKE, [org_id])
            keys = set(cur.fetchall())
        if keys:
            scores.recompute_touched(org_id, keys)
    return len(keys)
