"""Two ``celery beat`` processes at once: every periodic job still runs once per due time.

Both beats use the production scheduler (cem.beat.ClaimingScheduler) against the same database;
the jobs are the real escalation, expiry, reminder and nightly-rebuild dispatchers, due every
few seconds here (tests/faults/beat_app.py). A real worker runs what is sent, and its log says
when each job ran.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import defaultdict
from datetime import datetime

import pytest

from cem.models.events import BeatClaim
from tests.faults.conftest import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.django_db(transaction=True)]

EVERY = 4.0
WINDOW = 30.0
JOBS = {
    "feedback-cases-escalate": "feedback.cases_escalate",
    "feedback-invitations-expire": "feedback.invitations_expire_dispatch",
    "feedback-invitations-remind": "feedback.invitations_remind_dispatch",
    "learning-assignments-notify": "learning.assignments_notify_dispatch",
    "incentives-points-expire": "incentives.points_expire_dispatch",
    "alignment-rollups-verify": "alignment.rollups_verify_dispatch",
}
_RECEIVED = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}): INFO/MainProcess\] Task ([\w.]+)\[[^]]+\] received"
)


def _runs(log_text: str) -> dict[str, list[float]]:
    runs: dict[str, list[float]] = defaultdict(list)
    for line in log_text.splitlines():
        match = _RECEIVED.match(line)
        if match:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            runs[match.group(2)].append(when)
    return runs


def test_two_beats_run_each_due_job_once(world, processes):
    processes.worker()
    processes.wait_ready("worker")
    env = {"FAULTS_BEAT_SECONDS": str(EVERY), "FAULTS_BEAT_JOBS": ",".join(JOBS)}
    processes.beat("beat-1", app="tests.faults.beat_app", **env)
    processes.beat("beat-2", app="tests.faults.beat_app", **env)
    wait_until(
        lambda: all("beat: Starting" in processes.logs[n].read_text() for n in ("beat-1", "beat-2")),
        timeout=90,
        what="both beats started",
    )
    time.sleep(WINDOW)
    processes.stop("beat-1")
    processes.stop("beat-2")
    time.sleep(3)  # the last sends reach the worker
    runs = _runs(processes.logs["worker"].read_text())
    beats = {n: processes.logs[n].read_text() for n in ("beat-1", "beat-2")}
    logs = processes.tails()

    for entry, task in JOBS.items():
        times = sorted(runs[task])
        # Once per due time: about WINDOW / EVERY runs, not twice that, and never two for one due
        # time (two beats' sends for the same due time come well under a second apart).
        assert WINDOW / EVERY - 2 <= len(times) <= WINDOW / EVERY + 3, (entry, len(times), logs)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= EVERY * 0.6, (entry, gaps)
        assert BeatClaim.objects.filter(name=entry).exists()

    # Both beats were live and wanted to send: each sent some due times and skipped others.
    for name, text in beats.items():
        assert "Sending due task" in text, f"{name} never sent\n{logs}"
    skipped = sum(text.count("already sent by another beat") for text in beats.values())
    assert skipped >= len(JOBS) * (WINDOW / EVERY) * 0.5, f"only {skipped} skips\n{logs}"
