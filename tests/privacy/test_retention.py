"""Retention per organization, applied by beat: time moved forward, what is older than the policy
goes (comment text, invitations, closed cases' contact details, abuse hashes, export files)."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings

from cem import models as m
from cem import privacy
from cem.models.privacy import PrivacyRequest, RetentionPolicy
from cem.principals import Actor
from cem.privacy_tasks import privacy_retention_dispatch
from cem.tenancy import tenant_context
from feedback import models as fm
from tests.privacy.helpers import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _comments(pw) -> list[str]:
    with tenant_context(pw.org):
        return list(
            fm.Answer.objects.filter(survey=pw.survey, question_type="text")
            .order_by("pk")
            .values_list("text", flat=True)
        )


def _numbers(pw) -> list:
    with tenant_context(pw.org):
        return list(
            fm.Answer.objects.filter(survey=pw.survey).exclude(question_type="text").values_list("number")
        )


def test_retention_is_a_nightly_beat_entry():
    entry = settings.CELERY_BEAT_SCHEDULE["privacy-retention"]
    assert entry["task"] == "cem.privacy_retention_dispatch"
    assert entry["schedule"].hour == {1} and entry["schedule"].minute == {30}


def test_defaults_delete_comments_after_36_months_and_invitations_after_12(pw):
    numbers = _numbers(pw)
    with tenant_context(pw.org):
        fm.Case.objects.filter(pk=pw.case.pk).update(status="closed")
        fm.Response.objects.filter(pk=pw.other_response_id).update(ip_hash="a" * 64, device_hash="b" * 64)

    with time_machine.travel(NOW + dt.timedelta(days=29), tick=False):
        assert privacy_retention_dispatch() == 2  # both organizations, one task each
    assert len([c for c in _comments(pw) if c]) == 3
    assert pw.count(fm.Invitation, survey=pw.survey) == 1
    assert pw.count(fm.Response, pk=pw.other_response_id, ip_hash="") == 0

    with time_machine.travel(NOW + dt.timedelta(days=31), tick=False):
        privacy_retention_dispatch()
    assert pw.count(fm.Response, pk=pw.other_response_id, ip_hash="", device_hash="") == 1

    with time_machine.travel(NOW + dt.timedelta(days=360), tick=False):
        privacy_retention_dispatch()
    assert pw.count(fm.Invitation, survey=pw.survey) == 1

    with time_machine.travel(NOW + dt.timedelta(days=370), tick=False):
        privacy_retention_dispatch()
    assert pw.count(fm.Invitation, survey=pw.survey) == 0  # older than 12 months
    with tenant_context(pw.org):
        assert fm.Case.objects.get(pk=pw.case.pk).customer_contact == {}  # closed, older than 12 months
    assert all(_comments(pw))  # comments are kept 36 months

    with time_machine.travel(NOW + dt.timedelta(days=3 * 365 + 5), tick=False):
        privacy_retention_dispatch()
    assert _comments(pw) == ["", "", ""]
    assert _numbers(pw) == numbers  # the scores stay
    with tenant_context(pw.org):
        policy = RetentionPolicy.objects.get()
        assert policy.last_run_counts["comments_deleted"] == 3
        assert m.AuditLog.objects.filter(action="privacy.retention").count() >= 3
        assert fm.Response.objects.filter(pk__in=pw.response_ids).count() == 2


def test_each_organization_has_its_own_policy(pw, api):
    # Org A keeps comments 12 months; org B keeps them forever: B's comments survive.
    admin = api(pw.admin)
    [row] = admin.get("/api/v1/privacy/retention/").json()["results"]
    resp = admin.patch(f"/api/v1/privacy/retention/{row['id']}/", {"comments_months": 12}, format="json")
    assert resp.status_code == 200 and resp.json()["comments_months"] == 12
    resp = admin.patch(f"/api/v1/privacy/retention/{row['id']}/", {"comments_months": 0}, format="json")
    assert resp.status_code == 400 and "comments_months" in resp.json()
    outsider = api(pw.world.users["outsider"])
    [row_b] = outsider.get("/api/v1/privacy/retention/").json()["results"]
    assert row_b["id"] != row["id"]
    assert (
        outsider.patch(
            f"/api/v1/privacy/retention/{row['id']}/", {"comments_months": 1}, format="json"
        ).status_code
        == 404
    )
    outsider.patch(f"/api/v1/privacy/retention/{row_b['id']}/", {"comments_months": None}, format="json")

    from feedback.services import response_record
    from tests.feedback.conftest import make_survey

    survey_b, _, questions_b = make_survey(pw.world.b.org, name="Beta privacy")
    with tenant_context(pw.world.b.org):
        response_record(
            organization=pw.world.b.org,
            actor=Actor.system(),
            survey=survey_b,
            values={"nps": 7, "comment": "beta words"},
            source="api",
            questions=list(questions_b.values()),
        )
    with time_machine.travel(NOW + dt.timedelta(days=400), tick=False):
        privacy_retention_dispatch()
    assert _comments(pw) == ["", "", ""]
    with tenant_context(pw.world.b.org):
        assert list(fm.Answer.objects.filter(question_type="text").values_list("text", flat=True)) == [
            "beta words"
        ]


def test_export_files_are_deleted_after_their_days(pw, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), tenant_context(pw.org):
        job = privacy.export_request(
            organization=pw.org, actor=Actor.system(), subject_type="customer", instance=pw.customer
        )
    with tenant_context(pw.org):
        job.refresh_from_db()
        path = privacy.export_file(job)
        assert path is not None and path.exists()
    with time_machine.travel(NOW + dt.timedelta(days=8), tick=False):
        privacy_retention_dispatch()
    with tenant_context(pw.org):
        job.refresh_from_db()
    assert job.status == PrivacyRequest.Status.EXPIRED and job.file_path == "" and not path.exists()
