"""Celery queues by priority, and which task (or event handler) goes to which.

A long job must never make an alert wait: a 20-minute export or the nightly rollup check on the
same queue as "a detractor just opened a case" would hold that case back for as long as it runs.
So work is split by how soon it matters:

- ``alerts``: seconds matter and each task is small — cases opened, escalated and notified,
  outgoing webhooks and notifications, and the event spine's own dispatch (every alert goes
  through it first);
- ``rollups``: dashboard figures — the alignment rollup handlers and score recomputes (a few
  seconds of lag is fine, but they come in bursts after imports and must not delay alerts);
- ``bulk``: minutes-long batch work — exports, the nightly rollup rebuild-and-compare;
- ``default``: everything else (other apps' event handlers, housekeeping sweeps).

``celery worker`` without ``-Q`` consumes every queue in ``CELERY_TASK_QUEUES`` (``./run``, the
benches); in production each queue gets its own worker pool (docker-compose.yml, README
"Running at scale"). Every registered task must be named in ``TASK_QUEUES``, and event
handlers are routed by their name (``HANDLER_QUEUES``, else by app) — a test walks both.

This module is imported by the settings, so it must not import Django models.
"""

from __future__ import annotations

ALERTS = "alerts"
ROLLUPS = "rollups"
BULK = "bulk"
DEFAULT = "default"
QUEUES = (ALERTS, ROLLUPS, BULK, DEFAULT)

TASK_QUEUES: dict[str, str] = {
    # The event spine. Dispatch is tiny and on the path of every alert; handlers route by name.
    "cem.events_deliver": ALERTS,
    "cem.events_deliver_pending": ALERTS,
    "cem.events_sweep": ALERTS,
    "cem.events_handle": DEFAULT,  # see route(): the handler's name decides
    "cem.idempotency_purge": DEFAULT,
    # Alerts and notifications.
    "cem.webhooks_send": ALERTS,
    "cem.webhooks_send_due": ALERTS,
    "feedback.case_notify": ALERTS,
    # Someone is waiting at the sign-in page for these.
    "cem.password_reset_send": ALERTS,
    "cem.password_set_send": ALERTS,
    "feedback.cases_escalate": ALERTS,
    "feedback.cases_escalate_tenant": ALERTS,
    "learning.assignments_notify": ALERTS,
    "learning.assignments_notify_dispatch": ALERTS,
    "audits.assignments_remind": ALERTS,
    "audits.assignments_remind_dispatch": ALERTS,
    # Rollups and scores.
    "alignment.scores_recompute": ROLLUPS,
    "alignment.scores_refresh_dispatch": ROLLUPS,
    "alignment.scores_drain": ROLLUPS,
    "alignment.scores_drain_sweep": ROLLUPS,
    "alignment.month_close": ROLLUPS,
    "alignment.month_close_dispatch": ROLLUPS,
    "alignment.drivers_compute": ROLLUPS,
    "alignment.drivers_dispatch": ROLLUPS,
    "learning.lesson_effects_compute": ROLLUPS,
    "learning.lesson_effects_dispatch": ROLLUPS,
    # Exports, imports and whole-table jobs.
    "feedback.export_build": BULK,
    "alignment.rollups_verify": BULK,  # the nightly full rebuild-and-compare: minutes at 10M rows
    "alignment.rollups_verify_dispatch": BULK,
    # Privacy: a data-subject export and the nightly retention deletes touch whole histories.
    "cem.privacy_export_build": BULK,
    "cem.privacy_erasure_sweep": BULK,  # whole tables of the organization, after the request
    "cem.privacy_retention_apply": BULK,
    "cem.privacy_retention_dispatch": BULK,
    # Survey invitations go to customers in batches; due within minutes, not seconds.
    "feedback.invitations_send_due": DEFAULT,
    "feedback.invitations_send_due_dispatch": DEFAULT,
    "feedback.invitations_remind": DEFAULT,
    "feedback.invitations_remind_dispatch": DEFAULT,
    "feedback.invitations_expire": DEFAULT,
    "feedback.invitations_expire_dispatch": DEFAULT,
    "audits.assignments_auto_assign": DEFAULT,
    "audits.assignments_auto_assign_dispatch": DEFAULT,
    "audits.assignments_expire_revisions": DEFAULT,
    "audits.assignments_expire_revisions_dispatch": DEFAULT,
    "audits.assignments_release_overdue": DEFAULT,
    "audits.assignments_release_overdue_dispatch": DEFAULT,
    "audits.monitoring_sample_dispatch": DEFAULT,
    "audits.monitoring_sample_draw_tenant": DEFAULT,
    "incentives.points_expire": DEFAULT,
    "incentives.points_expire_dispatch": DEFAULT,
    "learning.holdouts_release": DEFAULT,
    "learning.holdouts_release_dispatch": DEFAULT,
    "learning.xapi_forward": DEFAULT,
    "learning.xapi_forward_sweep": DEFAULT,
}

# Event handlers (cem.events.handles names) whose work is an alert; the rest go by app below.
HANDLER_QUEUES: dict[str, str] = {
    "feedback.cases_open": ALERTS,
    "audits.notify_store_managers": ALERTS,
}
HANDLER_APP_QUEUES: dict[str, str] = {"alignment": ROLLUPS}


def handler_queue(handler_name: str) -> str:
    if handler_name in HANDLER_QUEUES:
        return HANDLER_QUEUES[handler_name]
    return HANDLER_APP_QUEUES.get(handler_name.partition(".")[0], DEFAULT)


def task_queue(name: str, args=(), kwargs=None) -> str | None:
    """The queue of one task call; None for tasks not named here (Celery's own, e.g. chords)."""
    if name == "cem.events_handle":
        kwargs = kwargs or {}
        handler_name = kwargs.get("handler_name") or (args[2] if len(args or ()) > 2 else None)
        if handler_name:
            return handler_queue(handler_name)
    return TASK_QUEUES.get(name)


def route(name, args, kwargs, options, task=None, **kw):
    """Celery router (``CELERY_TASK_ROUTES``); an explicit ``queue=`` on the call still wins."""
    queue = task_queue(name, args, kwargs)
    return {"queue": queue} if queue else None
