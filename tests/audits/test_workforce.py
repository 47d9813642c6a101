"""Shopper workforce and the mystery-shopping job workflow (audits.workforce, audits.jobs, API, beat)."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from audits import job_tasks, jobs, workforce
from audits import models as am
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_workforce import make_job, make_program, make_shopper

S = am.Assignment.Status


class JW:
    """The workforce test world: org A's programme, a certified shopper linked to the shopper persona."""

    def __init__(self, world):
        self.world = world
        self.org = world.a.org
        self.program, self.scenario = make_program(self.org)
        self.shopper = make_shopper(
            self.org, email="shopper@acme.test", user=world.users["shopper"], certify_program=self.program
        )
        self.loc = world.a.locations["a-n1"]

    def job(self, location=None, **fields):
        return make_job(self.org, self.program, self.scenario, location or self.loc, **fields)

    def reload(self, obj):
        with tenant_context(self.org):
            return type(obj).objects.get(pk=obj.pk)


@pytest.fixture
def jw(world):
    return JW(world)


def _codes(shopper, job, org):
    with tenant_context(org):
        ok, reasons = jobs.eligibility(
            am.Shopper.objects.get(pk=shopper.pk), am.Assignment.objects.get(pk=job.pk)
        )
    return ok, [r.code for r in reasons]


# --- eligibility and lockouts --------------------------------------------------------------------


def test_certified_approved_shopper_is_eligible(jw):
    assert _codes(jw.shopper, jw.job(), jw.org) == (True, [])


def test_not_approved_shopper_is_refused(jw):
    with tenant_context(jw.org):
        am.Shopper.objects.filter(pk=jw.shopper.pk).update(status=am.Shopper.Status.APPLIED)
    ok, codes = _codes(jw.shopper, jw.job(), jw.org)
    assert not ok and codes == ["not_approved"]


def test_uncertified_and_expired_certification(jw):
    other_program, other_scenario = make_program(jw.org, name="acme other programme")
    job = make_job(jw.org, other_program, other_scenario, jw.loc)
    assert _codes(jw.shopper, job, jw.org) == (False, ["not_certified"])
    with tenant_context(jw.org):
        am.Certification.objects.filter(shopper=jw.shopper).update(
            expires_at=timezone.now() - dt.timedelta(days=1)
        )
    assert _codes(jw.shopper, jw.job(), jw.org) == (False, ["certification_expired"])


def test_radius_uses_haversine_and_is_skipped_without_coordinates(jw):
    # Paris → London is about 344 km.
    assert 340 < jobs.haversine_km(48.8566, 2.3522, 51.5074, -0.1278) < 348
    with tenant_context(jw.org):
        am.Shopper.objects.filter(pk=jw.shopper.pk).update(
            latitude=Decimal("48.8566"), longitude=Decimal("2.3522"), radius_km=50
        )
    job = jw.job()
    assert _codes(jw.shopper, job, jw.org) == (True, [])  # the location has no coordinates
    with tenant_context(jw.org):
        m.Location.objects.filter(pk=jw.loc.pk).update(
            latitude=Decimal("51.5074"), longitude=Decimal("-0.1278")
        )
    assert _codes(jw.shopper, job, jw.org) == (False, ["out_of_radius"])
    with tenant_context(jw.org):
        m.Location.objects.filter(pk=jw.loc.pk).update(latitude=Decimal("48.9"), longitude=Decimal("2.4"))
    assert _codes(jw.shopper, job, jw.org) == (True, [])


def test_cap_of_open_jobs(jw):
    with tenant_context(jw.org):
        am.Program.objects.filter(pk=jw.program.pk).update(max_open_jobs=2)
    jw.job(jw.world.a.locations["a-n2"], shopper=jw.shopper, status=S.ASSIGNED, assigned_at=timezone.now())
    job = jw.job()
    assert _codes(jw.shopper, job, jw.org) == (True, [])
    jw.job(jw.world.a.locations["a-s1"], shopper=jw.shopper, status=S.RETURNED, assigned_at=timezone.now())
    assert _codes(jw.shopper, job, jw.org) == (False, ["too_many_open_jobs"])


def test_same_location_lockout_respects_lockout_days(jw):
    past = jw.job(
        start=timezone.now() - dt.timedelta(days=12),
        shopper=jw.shopper,
        status=S.PUBLISHED,
        submitted_at=timezone.now() - dt.timedelta(days=10),
    )
    job = jw.job()
    assert _codes(jw.shopper, job, jw.org) == (False, ["location_lockout"])
    with tenant_context(jw.org):
        am.Program.objects.filter(pk=jw.program.pk).update(lockout_days=7)
    assert _codes(jw.shopper, job, jw.org) == (True, [])
    # Another location is never locked by this visit.
    with tenant_context(jw.org):
        am.Program.objects.filter(pk=jw.program.pk).update(lockout_days=90)
    assert _codes(jw.shopper, jw.job(jw.world.a.locations["a-n2"]), jw.org) == (True, [])
    assert past.pk


def test_location_block(jw):
    job = jw.job()
    with tenant_context(jw.org):
        workforce.shopper_block_location(
            organization=jw.org,
            actor=Actor.system(),
            shopper=jw.shopper,
            location=jw.loc,
            reason="recognised",
        )
        _, reasons = jobs.eligibility(jw.shopper, am.Assignment.objects.get(pk=job.pk))
    assert [r.code for r in reasons] == ["location_blocked"]
    assert "recognised" in reasons[0].message


def test_a_location_they_were_rejected_from_is_locked_out_for_good_with_the_reason(jw, api):
    long_ago = timezone.now() - dt.timedelta(days=400)  # far outside the 90-day lockout
    jw.job(
        shopper=jw.shopper,
        start=long_ago,
        status=S.REJECTED,
        submitted_at=long_ago,
        status_reason="Receipt from another store",
    )
    job = jw.job()
    other = jw.job(jw.world.a.locations["a-n2"])
    assert _codes(jw.shopper, job, jw.org) == (False, ["rejected_visit"])
    assert _codes(jw.shopper, other, jw.org) == (True, [])
    board = api(jw.world.users["shopper"]).get("/api/v1/assignments/board/?reasons=1").json()
    [entry] = [e for e in board if e["assignment"]["id"] == job.pk]
    assert not entry["eligible"]
    assert entry["reasons"][0]["message"].endswith("was rejected: Receipt from another store")


def test_declared_employer_is_locked_out_case_insensitively(jw):
    with tenant_context(jw.org):
        am.Shopper.objects.filter(pk=jw.shopper.pk).update(
            employer_organization_names=["Other Co", "  aCME "]
        )
    assert _codes(jw.shopper, jw.job(), jw.org) == (False, ["employer_conflict"])


def test_every_failed_rule_is_reported_at_once(jw):
    with tenant_context(jw.org):
        am.Shopper.objects.filter(pk=jw.shopper.pk).update(
            status=am.Shopper.Status.SUSPENDED, employer_organization_names=["acme"]
        )
        am.Certification.objects.all().delete()
    assert _codes(jw.shopper, jw.job(), jw.org) == (
        False,
        ["not_approved", "not_certified", "employer_conflict"],
    )


# --- board and taking jobs -----------------------------------------------------------------------


def test_board_lists_eligible_open_jobs_and_reasons_on_request(jw, api):
    good = jw.job()
    blocked = jw.job(jw.world.a.locations["a-n2"])
    jw.job(jw.world.a.locations["a-s1"], start=timezone.now() - dt.timedelta(days=3))  # window closed
    with tenant_context(jw.org):
        am.LocationBlock.objects.create(
            organization=jw.org, shopper=jw.shopper, location=jw.world.a.locations["a-n2"], reason="x"
        )
    client = api(jw.world.users["shopper"])
    # The scope shows shoppers only their own jobs: none yet.
    assert client.get("/api/v1/assignments/").json()["results"] == []
    board = client.get("/api/v1/assignments/board/").json()
    assert [e["assignment"]["id"] for e in board] == [good.pk]
    full = client.get("/api/v1/assignments/board/?reasons=1").json()
    by_id = {e["assignment"]["id"]: e for e in full}
    assert set(by_id) == {good.pk, blocked.pk}
    assert by_id[blocked.pk]["eligible"] is False
    assert by_id[blocked.pk]["reasons"][0]["code"] == "location_blocked"
    # Someone with no shopper profile gets an empty board.
    assert api(jw.world.users["admin"]).get("/api/v1/assignments/board/").json() == []


def test_take_assigns_and_refuses_with_reasons(jw, api):
    job = jw.job()
    client = api(jw.world.users["shopper"])
    resp = client.post(f"/api/v1/assignments/{job.pk}/take/")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "assigned" and resp.json()["shopper"] == jw.shopper.pk
    assert client.get("/api/v1/assignments/").json()["results"][0]["id"] == job.pk
    # Taken: nobody else can take it.
    resp = client.post(f"/api/v1/assignments/{job.pk}/take/")
    assert resp.status_code == 400 and "status" in resp.json()
    # Same location again: refused, with the reason.
    again = jw.job()
    resp = client.post(f"/api/v1/assignments/{again.pk}/take/")
    assert resp.status_code == 400
    assert any(r.startswith("location_lockout") for r in resp.json()["eligibility"])
    # No profile → 403; unknown id → 404.
    assert api(jw.world.users["admin"]).post(f"/api/v1/assignments/{again.pk}/take/").status_code == 403
    assert client.post("/api/v1/assignments/999999/take/").status_code == 404
    assert client.post("/api/v1/assignments/%C2%B2/take/").status_code == 404


def test_board_reads_a_constant_number_of_queries(jw, api, django_assert_max_num_queries):
    for code in ("a-n1", "a-n2", "a-s1"):
        for _ in range(3):
            jw.job(jw.world.a.locations[code])
    client = api(jw.world.users["shopper"])
    with django_assert_max_num_queries(25):
        board = client.get("/api/v1/assignments/board/?reasons=1").json()
    assert len(board) == 9


@pytest.mark.django_db(transaction=True)
def test_concurrent_take_has_one_winner(world):
    jw = JW(world)
    rival = make_shopper(jw.org, email="rival@acme.test", certify_program=jw.program)
    job = jw.job()
    barrier, won, errors = threading.Barrier(2), [], []

    def take(shopper):
        try:
            with tenant_context(jw.org):
                barrier.wait()
                jobs.assignment_take(
                    organization=jw.org, actor=Actor.system(), shopper=shopper, assignment=job
                )
                won.append(shopper.pk)
        except Exception as exc:  # the loser's refusal, checked below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(s,)) for s in (jw.shopper, rival)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(errors) == 1
    assert "status" in errors[0].message_dict
    assert jw.reload(job).shopper_id == won[0]


# --- the visit report ----------------------------------------------------------------------------


def _take_and_start(jw, client, **job_fields):
    job = jw.job(**job_fields)
    assert client.post(f"/api/v1/assignments/{job.pk}/take/").status_code == 200
    assert client.post(f"/api/v1/assignments/{job.pk}/start/").status_code == 200
    return job


def _photo(jw, job):
    with tenant_context(jw.org):
        audit = am.Audit.objects.get(assignment=job)
        item = am.FormItem.objects.get(version=audit.version, key="receipt")
        am.AuditPhoto.objects.create(
            organization=jw.org,
            audit=audit,
            item=item,
            file_path="p.jpg",
            thumbnail_path="t.jpg",
            content_type="image/jpeg",
            size=10,
        )


def test_draft_autosaves_and_resumes(jw, api):
    client = api(jw.world.users["shopper"])
    job = _take_and_start(jw, client)
    url = f"/api/v1/assignments/{job.pk}/draft/"
    assert client.get(url).status_code == 404
    resp = client.put(url, {"answers": [{"item": "greeted", "value": "yes"}]}, format="json")
    assert resp.status_code == 200, resp.content
    resp = client.put(
        url, {"answers": [{"item": "greeted", "value": "no", "comment": "ignored"}]}, format="json"
    )
    resp = client.put(url, {"answers": [{"item": "wait", "value": "30"}]}, format="json")
    body = client.get(url).json()
    assert {a["item"]: (a["value"], a["comment"]) for a in body["answers"]} == {
        "greeted": ("no", "ignored"),
        "wait": ("30", ""),
    }
    resp = client.put(url, {"answers": [{"item": "nope", "value": "1"}]}, format="json")
    assert resp.status_code == 400 and "answers" in resp.json()


def test_api_draft_put_with_a_stale_revision_is_409_and_writes_nothing(jw, api):
    client = api(jw.world.users["shopper"])
    job = _take_and_start(jw, client)
    url = f"/api/v1/assignments/{job.pk}/draft/"
    first = client.put(url, {"answers": [{"item": "greeted", "value": "yes"}], "revision": ""}, format="json")
    assert first.status_code == 200, first.content
    rev1 = first.json()["revision"]
    assert rev1 and client.get(url).json()["revision"] == rev1
    second = client.put(
        url, {"answers": [{"item": "greeted", "value": "no"}], "revision": rev1}, format="json"
    )
    assert second.status_code == 200, second.content
    rev2 = second.json()["revision"]
    assert rev2 != rev1
    # A phone replaying a save queued before the second one (on rev1, or before any draft) is refused.
    for stale in (rev1, ""):
        resp = client.put(
            url, {"answers": [{"item": "greeted", "value": "yes"}], "revision": stale}, format="json"
        )
        assert resp.status_code == 409, resp.content
        assert "revision" in resp.json() and resp.json()["current_revision"] == rev2
    body = client.get(url).json()
    assert body["revision"] == rev2 and {a["item"]: a["value"] for a in body["answers"]} == {"greeted": "no"}
    # Without a revision the save is last-write-wins, as before.
    resp = client.put(url, {"answers": [{"item": "greeted", "value": "yes"}]}, format="json")
    assert resp.status_code == 200 and resp.json()["revision"] != rev2


def test_openapi_documents_the_draft_revision():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    put = schema["paths"]["/api/v1/assignments/{id}/draft/"]["put"]
    assert "409" in put["responses"]
    components = schema["components"]["schemas"]
    assert "revision" in components["JobDraftInputRequest"]["properties"]
    assert "revision" in components["JobDraft"]["properties"]


def test_submit_validations_name_each_problem(jw, api):
    client = api(jw.world.users["shopper"])
    job = _take_and_start(jw, client)
    url = f"/api/v1/assignments/{job.pk}"
    resp = client.post(f"{url}/submit/")
    assert resp.status_code == 400 and "answers" in resp.json()  # nothing filled in
    outside = (job.window_start - dt.timedelta(hours=2)).isoformat()
    client.put(
        f"{url}/draft/",
        {"visited_at": outside, "answers": [{"item": "wait", "value": "5000"}]},
        format="json",
    )
    errors = client.post(f"{url}/submit/").json()
    assert set(errors) == {"visited_at", "answers.greeted", "answers.wait", "answers.receipt"}
    assert "plausible" in errors["answers.wait"][0]
    assert "photo" in errors["answers.receipt"][0].lower()
    inside = (job.window_start + dt.timedelta(minutes=30)).isoformat()
    client.put(
        f"{url}/draft/",
        {
            "visited_at": inside,
            "answers": [{"item": "greeted", "value": "no"}, {"item": "wait", "value": "20"}],
        },
        format="json",
    )
    _photo(jw, job)
    errors = client.post(f"{url}/submit/").json()
    assert list(errors) == ["answers.greeted"] and "comment" in errors["answers.greeted"][0]
    client.put(f"{url}/draft/", {"answers": [{"item": "wait", "value": "soon"}]}, format="json")
    assert "answers.wait" in client.post(f"{url}/submit/").json()
    client.put(
        f"{url}/draft/",
        {
            "answers": [
                {"item": "greeted", "value": "no", "comment": "Nobody said hello"},
                {"item": "wait", "value": "20"},
            ]
        },
        format="json",
    )
    resp = client.post(f"{url}/submit/")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "submitted"
    with tenant_context(jw.org):
        assert m.OutboxEvent.objects.filter(
            event_type="AssignmentSubmitted", aggregate_id=str(job.pk)
        ).exists()


def _submit_complete(jw, client, job):
    url = f"/api/v1/assignments/{job.pk}"
    client.put(
        f"{url}/draft/",
        {
            "visited_at": (job.window_start + dt.timedelta(minutes=5)).isoformat(),
            "answers": [{"item": "greeted", "value": "yes"}, {"item": "wait", "value": "20"}],
        },
        format="json",
    )
    _photo(jw, job)
    resp = client.post(f"{url}/submit/")
    assert resp.status_code == 200, resp.content


def test_full_workflow_with_return_and_resubmit(jw, api, monkeypatch):
    shopper = api(jw.world.users["shopper"])
    reviewer = api(jw.world.users["evaluator"])
    job = _take_and_start(jw, shopper)
    url = f"/api/v1/assignments/{job.pk}"
    _submit_complete(jw, shopper, job)
    # Shoppers cannot review, even their own visit.
    assert shopper.post(f"{url}/approve/").status_code == 403
    assert reviewer.post(f"{url}/review/").json()["status"] == "in_review"
    assert reviewer.post(f"{url}/return/", {}, format="json").status_code == 400  # reason required
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    resp = reviewer.post(f"{url}/return/", {"reason": "Add the till number"}, format="json")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "returned" and body["status_reason"] == "Add the till number"
    assert jw.reload(job).revision_due_at == now + dt.timedelta(hours=jw.program.revision_window_hours)
    monkeypatch.undo()
    # The shopper fixes and resubmits.
    shopper.put(f"{url}/draft/", {"answers": [{"item": "notes", "text": "Till 4"}]}, format="json")
    assert shopper.post(f"{url}/submit/").json()["status"] == "submitted"
    resp = reviewer.post(f"{url}/approve/")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] in {"approved", "published"}
    with tenant_context(jw.org):
        audit = am.Audit.objects.get(assignment=job)
        assert audit.score == Decimal("100.00")
    # Final: nothing moves any more.
    resp = reviewer.post(f"{url}/reject/", {"reason": "late"}, format="json")
    assert resp.status_code == 400 and "status" in resp.json()


def test_invalid_transitions_are_400_naming_status(jw, api):
    shopper = api(jw.world.users["shopper"])
    reviewer = api(jw.world.users["admin"])
    job = jw.job()
    url = f"/api/v1/assignments/{job.pk}"
    for action in ("approve", "review"):
        resp = reviewer.post(f"{url}/{action}/")
        assert resp.status_code == 400 and "status" in resp.json(), action
    shopper.post(f"{url}/take/")
    resp = shopper.post(f"{url}/submit/")  # not started
    assert resp.status_code == 400 and "status" in resp.json()
    resp = reviewer.post(f"{url}/cancel/", {"reason": "Store closed"}, format="json")
    assert resp.json()["status"] == "cancelled"
    resp = shopper.post(f"{url}/start/")
    assert resp.status_code == 400 and "status" in resp.json()
    # Evaluators review but cannot post or withdraw jobs.
    evaluator = api(jw.world.users["evaluator"])
    assert evaluator.post(f"{url}/cancel/", {"reason": "x"}, format="json").status_code == 403


def test_reject_and_cancel_need_a_reason_and_the_shopper_sees_it(jw, api):
    reviewer, shopper = api(jw.world.users["admin"]), api(jw.world.users["shopper"])
    submitted = jw.job(shopper=jw.shopper, status=S.SUBMITTED, submitted_at=timezone.now())
    taken = jw.job(jw.world.a.locations["a-n2"], shopper=jw.shopper, status=S.ASSIGNED)
    for job, action in ((submitted, "reject"), (taken, "cancel")):
        url = f"/api/v1/assignments/{job.pk}/{action}/"
        for body in ({}, {"reason": "   "}):
            resp = reviewer.post(url, body, format="json")
            assert resp.status_code == 400 and "reason" in resp.json(), (action, resp.content)
        resp = reviewer.post(url, {"reason": f"{action}: receipt is from another store"}, format="json")
        assert resp.status_code == 200, resp.content
        seen = shopper.get(f"/api/v1/assignments/{job.pk}/").json()
        assert seen["status"] == {"reject": "rejected", "cancel": "cancelled"}[action]
        assert seen["status_reason"] == f"{action}: receipt is from another store"


def test_admin_creates_jobs_and_filters(jw, api):
    admin = api(jw.world.users["admin"])
    start = timezone.now() + dt.timedelta(days=1)
    payload = {
        "program": jw.program.pk,
        "scenario": jw.scenario.pk,
        "location": jw.loc.pk,
        "window_start": start.isoformat(),
        "window_end": (start + dt.timedelta(days=2)).isoformat(),
        "fee": "30.00",
        "reimbursement_cap": "12.50",
    }
    resp = admin.post("/api/v1/assignments/", payload, format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["status"] == "open"
    bad = admin.post("/api/v1/assignments/", {**payload, "window_end": start.isoformat()}, format="json")
    assert bad.status_code == 400 and "window_end" in bad.json()
    other, other_scenario = make_program(jw.org, name="acme second")
    bad = admin.post("/api/v1/assignments/", {**payload, "scenario": other_scenario.pk}, format="json")
    assert bad.status_code == 400 and "scenario" in bad.json()
    listed = admin.get(f"/api/v1/assignments/?status=open&location={jw.loc.pk}").json()["results"]
    assert [a["id"] for a in listed] == [resp.json()["id"]]
    assert other.pk


# --- beat: revision window, overdue release, reminders --------------------------------------------


def test_revision_window_expiry_returns_the_job_to_the_reviewer(jw, monkeypatch):
    job = jw.job(
        shopper=jw.shopper, status=S.RETURNED, revision_due_at=timezone.now() + dt.timedelta(hours=24)
    )
    with tenant_context(jw.org):
        assert jobs.assignments_expire_revisions(organization=jw.org) == []
    later = timezone.now() + dt.timedelta(hours=25)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with tenant_context(jw.org):
        assert jobs.assignments_expire_revisions(organization=jw.org) == [job.pk]
        assert jobs.assignments_expire_revisions(organization=jw.org) == []
    job = jw.reload(job)
    assert job.status == S.IN_REVIEW and job.revision_due_at is None


def test_overdue_jobs_are_released_back_to_the_board(jw, monkeypatch):
    job = jw.job(shopper=jw.shopper, status=S.IN_PROGRESS, assigned_at=timezone.now(), hours=2)
    later = timezone.now() + dt.timedelta(hours=3)
    monkeypatch.setattr(timezone, "now", lambda: later)
    with tenant_context(jw.org):
        assert jobs.assignments_release_overdue(organization=jw.org) == [job.pk]
        assert jobs.assignments_release_overdue(organization=jw.org) == []
        assert m.AuditLog.objects.filter(action="assignment.release", object_id=str(job.pk)).count() == 1
    job = jw.reload(job)
    assert job.status == S.OPEN and job.shopper_id is None and "window ended" in job.status_reason


def test_reminder_sent_once(jw, django_capture_on_commit_callbacks):
    job = jw.job(shopper=jw.shopper, status=S.ASSIGNED, assigned_at=timezone.now(), hours=12)
    jw.job(jw.world.a.locations["a-n2"], shopper=jw.shopper, status=S.ASSIGNED, hours=72)  # not due yet
    with django_capture_on_commit_callbacks(execute=True), tenant_context(jw.org):
        assert jobs.assignments_remind(organization=jw.org) == [job.pk]
        assert jobs.assignments_remind(organization=jw.org) == []
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["shopper@acme.test"]


def test_dispatchers_fan_out_per_tenant(jw, world, monkeypatch):
    job_a = jw.job(shopper=jw.shopper, status=S.ASSIGNED, hours=2)
    b_program, b_scenario = make_program(world.b.org, name="beta programme")
    job_b = make_job(world.b.org, b_program, b_scenario, world.b.locations["b-1"], status=S.ASSIGNED, hours=2)
    sent = []
    monkeypatch.setattr(job_tasks.assignments_release_overdue, "delay", lambda *a: sent.append(a))
    later = timezone.now() + dt.timedelta(hours=3)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert job_tasks.assignments_release_overdue_dispatch() == 2
    assert sorted(sent) == sorted([(jw.org.pk, [job_a.pk]), (world.b.org.pk, [job_b.pk])])
    # The per-tenant task runs in its tenant only.
    assert job_tasks.assignments_release_overdue(jw.org.pk, [job_a.pk, job_b.pk]) == [job_a.pk]


def test_beat_schedule_has_the_job_tasks():
    from django.conf import settings

    tasks = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "audits.assignments_release_overdue_dispatch",
        "audits.assignments_expire_revisions_dispatch",
        "audits.assignments_remind_dispatch",
    } <= tasks


# --- applications, approval, certification -------------------------------------------------------

APPLICATION = {
    "name": "Ana Diaz",
    "email": "Ana@Example.com",
    "phone": "+34 600 000 000",
    "home_area": "Madrid centro",
    "latitude": "40.4168",
    "longitude": "-3.7038",
    "radius_km": "30",
    "languages": "es, en",
    "age_band": "25-34",
    "availability": ["weekend"],
    "employers": "Other Retail",
    "consent": "on",
}


def test_public_application_then_approval_creates_a_shopper_membership(jw, client, api):
    assert client.get("/shop/acme/apply/").status_code == 200
    resp = client.post("/shop/acme/apply/", APPLICATION)
    assert resp.status_code == 201, resp.content[:500]
    with tenant_context(jw.org):
        shopper = am.Shopper.objects.get(email="ana@example.com")
    assert shopper.status == "applied" and shopper.languages == ["es", "en"]
    assert shopper.employer_organization_names == ["Other Retail"]
    assert shopper.availability == {"slots": ["weekend"]} and shopper.demographics == {"age_band": "25-34"}
    # Applying twice shows the same page and stores nothing new.
    assert client.post("/shop/acme/apply/", APPLICATION).status_code == 201
    admin = api(jw.world.users["admin"])
    # Shoppers cannot decide on applications.
    assert api(jw.world.users["shopper"]).post(f"/api/v1/shoppers/{shopper.pk}/approve/").status_code == 403
    resp = admin.post(f"/api/v1/shoppers/{shopper.pk}/approve/", {"reason": "Good fit"}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "approved"
    user = get_user_model().objects.get(username="ana@example.com")
    with tenant_context(jw.org):
        membership = m.Membership.objects.get(user=user)
        assert am.Shopper.objects.get(pk=shopper.pk).user_id == user.pk
    assert membership.role == m.Role.SHOPPER
    again = admin.post(f"/api/v1/shoppers/{shopper.pk}/approve/", {}, format="json")
    assert again.status_code == 400 and "status" in again.json()


def test_approval_links_an_existing_member(jw, api):
    shopper = make_shopper(jw.org, email="shopper@acme.test".replace("shopper", "s2"), status="applied")
    user = f.UserFactory(username="s2@acme.test", email="s2@acme.test")
    f.MembershipFactory(organization=jw.org, user=user, role=m.Role.SHOPPER)
    resp = api(jw.world.users["admin"]).post(f"/api/v1/shoppers/{shopper.pk}/approve/", {}, format="json")
    assert resp.status_code == 200 and resp.json()["user"] == user.pk
    with tenant_context(jw.org):
        assert m.Membership.objects.filter(user=user).count() == 1


def test_reject_needs_a_reason(jw, api):
    shopper = make_shopper(jw.org, email="r@acme.test", status="applied")
    admin = api(jw.world.users["admin"])
    resp = admin.post(f"/api/v1/shoppers/{shopper.pk}/reject/", {}, format="json")
    assert resp.status_code == 400 and "reason" in resp.json()
    resp = admin.post(f"/api/v1/shoppers/{shopper.pk}/reject/", {"reason": "Outside our area"}, format="json")
    assert resp.json()["status"] == "rejected" and resp.json()["decision_reason"] == "Outside our area"


def test_public_form_rejects_bad_input_naming_fields(jw, client):
    bad = {**APPLICATION, "email": "not-an-email", "latitude": "95", "radius_km": "0"}
    bad.pop("consent")
    resp = client.post("/shop/acme/apply/", bad)
    assert resp.status_code == 422
    body = resp.content.decode()
    for field in ("email", "latitude", "radius_km", "consent"):
        assert f'id="id_{field}-error"' in body, field
    resp = client.post("/shop/acme/apply/", {**APPLICATION, "longitude": ""})
    assert resp.status_code == 422 and 'id="id_longitude-error"' in resp.content.decode()
    assert client.get("/shop/no-such-org/apply/").status_code == 404
    with tenant_context(jw.org):
        assert not am.Shopper.objects.filter(email="ana@example.com").exists()


def test_public_form_enforces_csrf_and_rate_limit(jw):
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/shop/acme/apply/", APPLICATION).status_code == 403
    loose = Client()
    with override_settings(AUDITS_APPLY_IP_LIMIT_PER_HOUR=2):
        codes = [
            loose.post("/shop/acme/apply/", {**APPLICATION, "email": f"p{i}@example.com"}).status_code
            for i in range(3)
        ]
    assert codes == [201, 201, 429]


def test_certify_records_expiry_and_refuses_a_fail(jw, api):
    admin = api(jw.world.users["admin"])
    url = f"/api/v1/shoppers/{jw.shopper.pk}/certify/"
    resp = admin.post(url, {"program": jw.program.pk, "score": "70"}, format="json")
    assert resp.status_code == 400 and "score" in resp.json()
    resp = admin.post(url, {"program": jw.program.pk, "score": "85"}, format="json")
    assert resp.status_code == 201, resp.content
    with tenant_context(jw.org):
        cert = am.Certification.objects.get(pk=resp.json()["id"])
    assert cert.expires_at - cert.passed_at == dt.timedelta(days=jw.program.certification_valid_days)
    assert (
        api(jw.world.users["shopper"]).post(url, {"program": jw.program.pk, "score": "99"}).status_code == 403
    )


# --- a person who shops for two organizations ----------------------------------------------------


def test_shopper_of_both_orgs_never_sees_the_other_orgs_jobs_or_audits(jw, world, api):
    user = world.users["shopper"]
    b = world.b.org
    f.MembershipFactory(organization=b, user=user, role=m.Role.SHOPPER)
    b_program, b_scenario = make_program(b, name="beta programme")
    b_shopper = make_shopper(b, email="shopper@acme.test", user=user, certify_program=b_program)
    b_mine = make_job(
        b, b_program, b_scenario, world.b.locations["b-1"], shopper=b_shopper, status=S.ASSIGNED
    )
    b_open = make_job(b, b_program, b_scenario, world.b.locations["b-1"], status_reason="beta open")
    a_mine = jw.job(shopper=jw.shopper, status=S.ASSIGNED, assigned_at=timezone.now())
    a_open = jw.job(jw.world.a.locations["a-n2"])

    client = api(user)
    assert (
        client.post("/organization/switch/", {"organization": jw.org.pk}, format="multipart").status_code
        == 302
    )
    assert [a["id"] for a in client.get("/api/v1/assignments/").json()["results"]] == [a_mine.pk]
    assert [e["assignment"]["id"] for e in client.get("/api/v1/assignments/board/?reasons=1").json()] == [
        a_open.pk
    ]
    for pk in (b_mine.pk, b_open.pk):
        assert client.get(f"/api/v1/assignments/{pk}/").status_code == 404
        assert client.post(f"/api/v1/assignments/{pk}/take/").status_code == 404
        assert (
            client.put(f"/api/v1/assignments/{pk}/draft/", {"answers": []}, format="json").status_code == 404
        )
    assert b"beta" not in client.get("/api/v1/shoppers/").content.lower()

    assert client.post("/organization/switch/", {"organization": b.pk}, format="multipart").status_code == 302
    assert [a["id"] for a in client.get("/api/v1/assignments/").json()["results"]] == [b_mine.pk]
    # B's only store is locked out by the B job they hold; the reasons view still lists only B's job.
    board = client.get("/api/v1/assignments/board/?reasons=1").json()
    assert [(e["assignment"]["id"], e["reasons"][0]["code"]) for e in board] == [
        (b_open.pk, "location_lockout")
    ]
    assert client.get(f"/api/v1/assignments/{a_mine.pk}/").status_code == 404
    assert client.post(f"/api/v1/assignments/{a_open.pk}/take/").status_code == 404
    # A visit report written in B stays in B.
    assert client.post(f"/api/v1/assignments/{b_mine.pk}/start/").status_code == 200
    draft = {"answers": [{"item": "greeted", "value": "yes"}]}
    assert client.put(f"/api/v1/assignments/{b_mine.pk}/draft/", draft, format="json").status_code == 200
    with tenant_context(jw.org):
        assert not am.Audit.objects.exists()
    with tenant_context(b):
        b_audit = am.Audit.objects.get(assignment=b_mine)
    client.post("/organization/switch/", {"organization": jw.org.pk}, format="multipart")
    assert client.get(f"/api/v1/assignments/{b_mine.pk}/draft/").status_code == 404
    assert client.get(f"/api/v1/audits/{b_audit.pk}/").status_code == 404
    listed = client.get("/api/v1/audits/")
    assert listed.status_code == 200 and b_audit.pk not in [a["id"] for a in listed.json()["results"]]
    assert b"acme" not in client.get("/api/v1/assignments/board/").content.lower().replace(b"acme.test", b"")
