"""The alignment scores of rollup changes: queued in the change's transaction, computed after it
commits by one drain per organization (alignment.score_queue) — coalesced, idempotent, nothing
lost — and equal to a from-scratch recompute."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from alignment import handlers, score_queue, score_tasks, scores
from alignment.models import AlignmentScore, PendingScore, PeriodRollup
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.rollup_world import RollupWorld
from tests.alignment.test_rollups import assert_derived_equal, baseline
from tests.learning.gap_data import NOW


def _event(org, **payload):
    return SimpleNamespace(organization_id=org.pk, payload=payload)


def _scores(org) -> dict:
    with tenant_context(org):
        return {
            (s.scope, s.scope_id, s.period, s.period_start, s.link): (
                s.value, s.low, s.high, s.n, s.inputs, s.missing, s.region_id, s.location_id, s.employee_id,
            )
            for s in AlignmentScore.objects.all()
        }  # fmt: skip


@pytest.fixture
def rw(world):
    rw = RollupWorld(world, name="acme queue")
    baseline(rw.org)
    with tenant_context(rw.org):
        expectation = f.ExpectationFactory(organization=rw.org, importance=4)
        m.Standard.objects.filter(pk=rw.std.pk).update(
            brand_message=f.BrandMessageFactory(organization=rw.org), expectation=expectation
        )
    return rw


def _events(rw) -> int:
    """One event of each kind through its rollup handler (a month back too); returns how many."""
    org, month_ago = rw.org, NOW - dt.timedelta(days=31)
    rid = rw.response([("nps", Decimal(9)), ("csat", Decimal(2)), ("rating32", Decimal(16))], location=1)
    handlers.rollup_response(_event(org, response_ids=[rid]))
    old = rw.response([("csat", Decimal(5)), ("rating8", Decimal(7))], employee=2, when=month_ago)
    handlers.rollup_response(_event(org, response_ids=[old]))
    audit = rw.audit(Decimal(80), [(rw.std, Decimal(75)), (rw.std_b, Decimal(90))], employee=1)
    handlers.rollup_audit(_event(org, audit_id=audit.pk))
    completion = rw.completion("both", on_time=True, employee=1, when=month_ago)
    handlers.rollup_completion(_event(org, completion_id=completion))
    award = rw.award(25)
    handlers.rollup_award(_event(org, transaction_id=award.pk))
    interaction = rw.interaction(employees=[1], location=2)
    handlers.rollup_interactions(_event(org, interaction_ids=[interaction.pk]))
    return 6


def test_handlers_queue_and_one_drain_scores_as_a_full_recompute_does(rw, django_capture_on_commit_callbacks):
    org = rw.org
    with tenant_context(org), django_capture_on_commit_callbacks() as rings:
        events = _events(rw)
        # Inside the handlers' transactions only keys are written: no score yet.
        assert AlignmentScore.objects.count() == 0
        queued = set(PendingScore.objects.values_list("day", "location_id", "employee_id"))
        assert len(queued) >= 4
        assert_derived_equal(org)  # the period sums the drain reads are the rollup's
    # Not run: the drain below stands for the first of them.
    assert len([r for r in rings if getattr(r, "func", None) is score_queue.ring]) == events
    with tenant_context(org):
        assert score_queue.drain(org) == len(queued)
        assert PendingScore.objects.count() == 0
    incremental = _scores(org)
    with tenant_context(org):
        scores.recompute_all(org)
    full = _scores(org)
    kinds = {(k[0], k[2]) for k in incremental}
    assert {
        (s, p) for s in ("organization", "region", "location", "employee") for p in ("day", "month")
    } <= kinds
    for key, row in incremental.items():
        assert row == full[key], key
    # Every scope and period of a touched day is there, as the full recompute has it.
    touched_days = {d for d, _, _ in queued}
    for key in full:
        if key[2] == "day" and key[3] in touched_days and key[0] in ("organization", "region", "location"):
            assert key in incremental, key


def test_the_commit_rings_once_and_the_drain_takes_every_key(rw, django_capture_on_commit_callbacks):
    org = rw.org
    with tenant_context(org), django_capture_on_commit_callbacks() as callbacks:
        _events(rw)
        pending = PendingScore.objects.count()
    rings = [r for r in callbacks if getattr(r, "func", None) is score_queue.ring]
    with tenant_context(org):
        rings[0]()  # eager here: the drain runs at the first commit and takes all the keys
        assert PendingScore.objects.count() == 0
        first = _scores(org)
        assert first
        for ring in rings[1:]:
            ring()  # the later commits' drains find nothing left
        assert _scores(org) == first
        assert score_queue.drain(org) == 0
    assert pending >= 4


def test_a_failing_drain_leaves_its_keys_for_the_next(rw, monkeypatch):
    org = rw.org
    with tenant_context(org):
        rid = rw.response([("csat", Decimal(4))])
        handlers.rollup_response(_event(org, response_ids=[rid]))
        keys = PendingScore.objects.count()

        def broken(*args, **kwargs):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(scores, "recompute_touched", broken)
        with pytest.raises(RuntimeError):
            score_queue.drain(org)
        assert PendingScore.objects.count() == keys > 0
        monkeypatch.undo()
        assert score_queue.drain(org) == keys
        assert PendingScore.objects.count() == 0 and AlignmentScore.objects.exists()


@override_settings(CELERY_TASK_ALWAYS_EAGER=False)
def test_one_drain_is_scheduled_per_burst_after_the_debounce(rw, monkeypatch):
    org, scheduled = rw.org, []
    monkeypatch.setattr(
        score_tasks.scores_drain, "apply_async", lambda args, countdown: scheduled.append((args, countdown))
    )
    cache.delete(score_queue.DOORBELL.format(org.pk))
    for _ in range(3):
        score_queue.ring(org.pk)
    assert scheduled == [((org.pk,), score_queue.DEBOUNCE)]
    with tenant_context(org):
        assert score_tasks.scores_drain(org.pk) == 0  # clears the doorbell first
    score_queue.ring(org.pk)
    assert len(scheduled) == 2


def test_the_sweep_drains_keys_left_waiting(rw):
    org = rw.org
    with tenant_context(org):
        rid = rw.response([("csat", Decimal(4))])
        handlers.rollup_response(_event(org, response_ids=[rid]))
        PendingScore.objects.update(created_at=timezone.now() - dt.timedelta(minutes=5))
    assert score_tasks.scores_drain_sweep() >= 1  # eager here: drained at once
    with tenant_context(org):
        assert PendingScore.objects.count() == 0 and AlignmentScore.objects.exists()


def test_tasks_are_named_and_the_sweep_is_scheduled():
    from django.conf import settings

    assert score_tasks.scores_drain.name == "alignment.scores_drain"
    assert score_tasks.scores_drain_sweep.name == "alignment.scores_drain_sweep"
    assert (
        settings.CELERY_BEAT_SCHEDULE["alignment-scores-drain-sweep"]["task"]
        == "alignment.scores_drain_sweep"
    )


def test_org_scores_read_a_few_period_rows_per_location(rw):
    """What makes an event's recompute flat: the organization's quarter is one row per location,
    standard, category and measure, however many rollup rows (employees x days) it sums."""
    org = rw.org
    with tenant_context(org):
        for day in range(20):
            rid = rw.response([("csat", Decimal(4))], employee=day % 3, when=NOW - dt.timedelta(days=day))
            handlers.rollup_response(_event(org, response_ids=[rid]))
        quarter = PeriodRollup.objects.filter(period="quarter", measure="std_feedback", rows__gt=0)
        groups = set(quarter.values_list("location_id", "standard_id", "category"))
        assert quarter.count() <= 2 * len(groups)  # at most two quarters in 20 days
        assert sum(quarter.values_list("rows", flat=True)) >= 20
        assert_derived_equal(org)
