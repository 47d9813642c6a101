"""Automatic assignment by the scheduler: nearest eligible shopper, load balanced (audits.jobs,
the beat dispatcher, and POST /api/v1/assignments/auto-assign/)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from audits import job_tasks, jobs
from audits import models as am
from cem import models as m
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_job, make_program, make_shopper

S = am.Assignment.Status
PARIS = (Decimal("48.856600"), Decimal("2.352200"))
SAINT_DENIS = (Decimal("48.936200"), Decimal("2.357400"))  # ~9 km north of Paris
LONDON = (Decimal("51.507400"), Decimal("-0.127800"))


class AW:
    def __init__(self, world):
        self.world = world
        self.org = world.a.org
        self.program, self.scenario = make_program(self.org)
        locs = world.a.locations
        self.l_paris, self.l_paris2, self.l_london = locs["a-n1"], locs["a-n2"], locs["a-s1"]
        with tenant_context(self.org):
            for loc, (lat, lon) in ((self.l_paris, PARIS), (self.l_paris2, PARIS), (self.l_london, LONDON)):
                m.Location.objects.filter(pk=loc.pk).update(latitude=lat, longitude=lon)
        coords = {"radius_km": 50, "certify_program": self.program}
        self.near = make_shopper(
            self.org, email="near@x.test", latitude=PARIS[0], longitude=PARIS[1], **coords
        )
        self.farther = make_shopper(
            self.org, email="farther@x.test", latitude=SAINT_DENIS[0], longitude=SAINT_DENIS[1], **coords
        )
        # Never chosen: not certified, or not approved, though they live next door.
        make_shopper(
            self.org, email="uncertified@x.test", latitude=PARIS[0], longitude=PARIS[1], radius_km=50
        )
        make_shopper(
            self.org,
            email="applicant@x.test",
            status=am.Shopper.Status.APPLIED,
            latitude=PARIS[0],
            longitude=PARIS[1],
            **coords,
        )

    def job(self, location, **fields):
        return make_job(self.org, self.program, self.scenario, location, **fields)

    def reload(self, obj):
        with tenant_context(self.org):
            return type(obj).objects.get(pk=obj.pk)


@pytest.fixture
def aw(world):
    return AW(world)


def test_nearest_eligible_shopper_then_load_balanced(aw, django_capture_on_commit_callbacks):
    first = aw.job(aw.l_paris)
    second = aw.job(aw.l_paris2, start=timezone.now())  # a later window: assigned after `first`
    london = aw.job(aw.l_london)
    with django_capture_on_commit_callbacks(execute=True), tenant_context(aw.org):
        done = jobs.assignments_auto_assign(organization=aw.org)
    # London first (earliest window) finds nobody within 50 km; `first` goes to the nearest shopper;
    # `second` to the farther one, who has fewer open jobs (load balancing beats 9 km).
    assert done == [(first.pk, aw.near.pk), (second.pk, aw.farther.pk)]
    first, second, london = aw.reload(first), aw.reload(second), aw.reload(london)
    assert (first.status, first.shopper_id, first.status_reason) == (
        S.ASSIGNED,
        aw.near.pk,
        "Assigned by the scheduler.",
    )
    assert (second.status, second.shopper_id) == (S.ASSIGNED, aw.farther.pk)
    assert london.status == S.OPEN and london.shopper_id is None
    assert sorted(msg.to[0] for msg in mail.outbox) == ["farther@x.test", "near@x.test"]
    assert all("assigned to you" in msg.body for msg in mail.outbox)
    with tenant_context(aw.org):
        assert m.AuditLog.objects.filter(action="assignment.auto_assign").count() == 2
        # A second run has nothing left that anyone may take.
        assert jobs.assignments_auto_assign(organization=aw.org) == []


def test_equal_load_goes_to_the_nearest_and_rules_are_those_of_the_board(aw):
    with tenant_context(aw.org):
        am.Program.objects.filter(pk=aw.program.pk).update(max_open_jobs=1)
    # The near shopper already holds a job: at the cap, so the farther one gets this.
    aw.job(aw.l_london, shopper=aw.near, status=S.ASSIGNED, assigned_at=timezone.now())
    job = aw.job(aw.l_paris)
    with tenant_context(aw.org):
        assert jobs.assignments_auto_assign(organization=aw.org) == [(job.pk, aw.farther.pk)]
    # Lockout: the farther shopper has now shopped a-n1, so another a-n1 job goes to the near
    # shopper (room again under a higher cap) although both hold one job.
    with tenant_context(aw.org):
        am.Program.objects.filter(pk=aw.program.pk).update(max_open_jobs=5)
    again = aw.job(aw.l_paris)
    with tenant_context(aw.org):
        ok, reasons = jobs.eligibility(
            am.Shopper.objects.get(pk=aw.farther.pk), am.Assignment.objects.get(pk=again.pk)
        )
        assert not ok and [r.code for r in reasons] == ["location_lockout"]
        assert jobs.assignments_auto_assign(organization=aw.org, ids=[again.pk]) == [(again.pk, aw.near.pk)]


def test_beat_assigns_jobs_left_on_the_board_past_the_programme_delay(aw, world, monkeypatch):
    job = aw.job(aw.l_paris)
    other_program, other_scenario = make_program(aw.org, name="board only programme")
    board_only = make_job(aw.org, other_program, other_scenario, aw.l_paris2)
    with tenant_context(aw.org):
        am.Program.objects.filter(pk=aw.program.pk).update(auto_assign_after_hours=2)
    with tenant_context(aw.org):
        assert jobs.auto_assign_due(timezone.now()) == []  # just posted
    later = timezone.now() + dt.timedelta(hours=3)
    monkeypatch.setattr(timezone, "now", lambda: later)
    sent = []
    monkeypatch.setattr(job_tasks.assignments_auto_assign, "delay", lambda *a: sent.append(a))
    assert job_tasks.assignments_auto_assign_dispatch() == 1
    assert sent == [(aw.org.pk, [job.pk])]  # the board-only programme's job is not touched
    assert job_tasks.assignments_auto_assign(aw.org.pk, [job.pk, board_only.pk]) == [(job.pk, aw.near.pk)]
    assert aw.reload(board_only).status == S.OPEN


def test_beat_schedule_has_the_auto_assign_dispatcher():
    from django.conf import settings

    tasks = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "audits.assignments_auto_assign_dispatch" in tasks


def test_api_auto_assign_for_reviewers_only_within_the_tenant(aw, world, api):
    job = aw.job(aw.l_paris)
    url = "/api/v1/assignments/auto-assign/"
    assert api(world.users["shopper"]).post(url, {}, format="json").status_code == 403
    # Org B's reviewer cannot name org A's programme nor assign org A's jobs.
    b_admin = api(key=world.b.api_key)
    resp = b_admin.post(url, {"program": aw.program.pk}, format="json")
    assert resp.status_code in (400, 403) and (resp.status_code == 403 or "program" in resp.json())
    resp = b_admin.post(url, {"assignments": [job.pk]}, format="json")
    assert resp.status_code == 403 or resp.json() == []
    assert aw.reload(job).status == S.OPEN
    admin = api(world.users["admin"])
    resp = admin.post(url, {"program": aw.program.pk, "assignments": [job.pk]}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json() == [{"assignment": job.pk, "shopper": aw.near.pk}]
    assert aw.reload(job).shopper_id == aw.near.pk
    assert admin.post(url, {"assignments": ["x"]}, format="json").status_code == 400
