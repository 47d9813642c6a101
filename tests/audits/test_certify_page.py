"""Shopper certification through the learning app: the programme's certification path is
assigned (on approval, or when the shopper opens the certification page), taken on the portal,
and its completion certifies the shopper (audits.handlers on PathCompleted, once, with expiry)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from audits import certification, workforce
from audits import models as am
from cem import outbox
from cem.models import OutboxEvent
from cem.principals import Actor
from cem.tenancy import tenant_context
from learning import models as lm
from tests.audits.certification_helpers import certification_path
from tests.audits.sweep_workforce import make_job, make_program, make_shopper
from tests.learning import factories as lf


@pytest.fixture
def setup(world):
    org = world.a.org
    path = certification_path(org)
    program, scenario = make_program(org)
    with tenant_context(org):
        program.certification_path = path
        program.save(update_fields=["certification_path"])
    shopper = make_shopper(org, email="shopper@acme.test", user=world.users["shopper"])
    job = make_job(org, program, scenario, world.a.locations["a-n1"])
    return program, shopper, job, path


def _certifications(world, shopper, program=None):
    with tenant_context(world.a.org):
        qs = am.Certification.objects.filter(shopper=shopper)
        if program is not None:
            qs = qs.filter(program=program)
        return list(qs)


def _steps(world, path):
    with tenant_context(world.a.org):
        return list(
            lm.PathStep.objects.filter(path=path).order_by("position").values_list("lesson_id", flat=True)
        )


def _take_path(world, client, assignment_id, path, *, right: int, capture):
    """Read both lessons and answer the test with ``right`` correct answers, as the portal does."""
    first, second = _steps(world, path)
    client.post(f"/learning/assignments/{assignment_id}/complete/", {"lesson": first})
    resp = client.post(f"/learning/assignments/{assignment_id}/complete/", {"lesson": second})
    with tenant_context(world.a.org):
        quiz = lm.Quiz.objects.get(lesson_id=second)
    assert resp.status_code == 302 and resp["Location"] == f"/learning/quizzes/{quiz.pk}/"
    resp = client.post(f"/learning/quizzes/{quiz.pk}/start/")
    attempt_id = int(resp["Location"].rstrip("/").split("/")[-1])
    with tenant_context(world.a.org):
        attempt = lm.QuizAttempt.objects.get(pk=attempt_id)
    data = {}
    for i, q in enumerate(attempt.questions):
        key = "a" if i < right else "b"
        data[f"q-{q['question_id']}"] = key
    with capture(execute=True):
        client.post(f"/learning/attempts/{attempt_id}/submit/", data)
    return attempt_id


def test_the_certify_page_assigns_the_path_and_passing_it_on_the_portal_certifies(
    world, client, setup, django_capture_on_commit_callbacks
):
    program, shopper, job, path = setup
    client.force_login(world.users["shopper"])
    board = client.get("/audits/jobs/").content.decode()
    assert f'href="/audits/jobs/certify/{program.pk}/"' in board
    assert f"/audits/jobs/{job.pk}/take/" not in board

    resp = client.get(f"/audits/jobs/certify/{program.pk}/")
    with tenant_context(world.a.org):
        assignment = lm.Assignment.objects.get(user=world.users["shopper"], path=path)
    assert resp.status_code == 302 and resp["Location"] == f"/learning/assignments/{assignment.pk}/"
    assert assignment.source == lm.Assignment.Source.CERTIFICATION and assignment.employee_id is None
    assert program.name in assignment.reason
    # Opening it again finds the same open assignment.
    client.get(f"/audits/jobs/certify/{program.pk}/")
    with tenant_context(world.a.org):
        assert lm.Assignment.objects.filter(user=world.users["shopper"], path=path).count() == 1

    portal = client.get("/learning/").content.decode()
    assert path.name in portal
    page = client.get(f"/learning/assignments/{assignment.pk}/").content.decode()
    assert 'data-testid="lesson-body"' in page

    _take_path(world, client, assignment.pk, path, right=3, capture=django_capture_on_commit_callbacks)
    (cert,) = _certifications(world, shopper, program)
    with tenant_context(world.a.org):
        certificate = lm.PathCertificate.objects.get(assignment=assignment)
    assert cert.score == Decimal(100)
    assert cert.passed_at == certificate.issued_at
    assert cert.expires_at == certificate.issued_at + dt.timedelta(days=program.certification_valid_days)

    board = client.get("/audits/jobs/").content.decode()
    assert f"/audits/jobs/{job.pk}/take/" in board
    assert client.post(f"/audits/jobs/{job.pk}/take/").status_code == 302
    with tenant_context(world.a.org):
        assert am.Assignment.objects.get(pk=job.pk).status == am.Assignment.Status.ASSIGNED


def test_failing_the_test_does_not_certify(world, client, setup, django_capture_on_commit_callbacks):
    program, shopper, _, path = setup
    client.force_login(world.users["shopper"])
    resp = client.get(f"/audits/jobs/certify/{program.pk}/")
    assignment_id = int(resp["Location"].rstrip("/").split("/")[-1])
    _take_path(world, client, assignment_id, path, right=2, capture=django_capture_on_commit_callbacks)
    assert _certifications(world, shopper) == []
    with tenant_context(world.a.org):
        assert lm.Assignment.objects.get(pk=assignment_id).status in lm.Assignment.OPEN


def test_the_handler_certifies_once_for_every_programme_of_the_path(
    world, client, setup, django_capture_on_commit_callbacks
):
    program, shopper, _, path = setup
    second, _ = make_program(world.a.org, name="second programme", certification_valid_days=30)
    make_program(world.a.org, name="unrelated programme")
    with tenant_context(world.a.org):
        second.certification_path = path
        second.save(update_fields=["certification_path"])
    client.force_login(world.users["shopper"])
    resp = client.get(f"/audits/jobs/certify/{program.pk}/")
    assignment_id = int(resp["Location"].rstrip("/").split("/")[-1])
    _take_path(world, client, assignment_id, path, right=3, capture=django_capture_on_commit_callbacks)

    certs = {c.program_id: c for c in _certifications(world, shopper)}
    assert set(certs) == {program.pk, second.pk}
    assert certs[second.pk].expires_at == certs[second.pk].passed_at + dt.timedelta(days=30)

    with tenant_context(world.a.org):
        event = OutboxEvent.objects.get(event_type="PathCompleted")
        # Redelivery: the outbox refuses to run the handler twice …
        assert outbox.run_handler(event.pk, "audits.certify_after_path") is False
        # … and the service itself records nothing twice for the same certificate.
        again = certification.certify_after_path(
            organization=world.a.org,
            path_id=path.pk,
            user_id=world.users["shopper"].pk,
            certificate_id=event.payload["certificate_id"],
        )
    assert again == []
    assert len(_certifications(world, shopper)) == 2


def test_an_expired_certification_is_renewed_by_taking_the_path_again(
    world, client, setup, django_capture_on_commit_callbacks
):
    program, shopper, job, path = setup
    with tenant_context(world.a.org):
        am.Certification.objects.create(
            organization=world.a.org,
            shopper=shopper,
            program=program,
            passed_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            expires_at=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
            score=90,
        )
    client.force_login(world.users["shopper"])
    assert "has expired" in client.get("/audits/jobs/").content.decode()
    resp = client.get(f"/audits/jobs/certify/{program.pk}/")
    assignment_id = int(resp["Location"].rstrip("/").split("/")[-1])
    _take_path(world, client, assignment_id, path, right=3, capture=django_capture_on_commit_callbacks)
    assert len(_certifications(world, shopper, program)) == 2
    assert f"/audits/jobs/{job.pk}/take/" in client.get("/audits/jobs/").content.decode()


def test_approval_assigns_the_certification_paths(world, django_capture_on_commit_callbacks, setup):
    _, _, _, path = setup
    # A second programme sharing the path, and one with its own path.
    shared, _ = make_program(world.a.org, name="shared path programme")
    own_path = certification_path(world.a.org, name="Call monitoring certification", quiz=False)
    own, _ = make_program(world.a.org, name="own path programme")
    with tenant_context(world.a.org):
        shared.certification_path = path
        shared.save(update_fields=["certification_path"])
        own.certification_path = own_path
        own.save(update_fields=["certification_path"])
    applicant = make_shopper(
        world.a.org, email="new.applicant@example.test", status=am.Shopper.Status.APPLIED
    )
    with tenant_context(world.a.org), django_capture_on_commit_callbacks(execute=True):
        approved = workforce.shopper_approve(
            organization=world.a.org, actor=Actor(user_id=world.users["admin"].pk), shopper=applicant
        )
    with tenant_context(world.a.org):
        rows = lm.Assignment.objects.filter(user_id=approved.user_id)
        assert sorted(rows.values_list("path_id", flat=True)) == sorted([path.pk, own_path.pk])
        assert set(rows.values_list("source", flat=True)) == {lm.Assignment.Source.CERTIFICATION}
        assert lm.Assignment.objects.filter(user_id=approved.user_id, employee__isnull=True).count() == 2


def test_a_path_without_quizzes_certifies_at_100_and_employees_are_not_certified(
    world, client, django_capture_on_commit_callbacks
):
    org = world.a.org
    path = certification_path(org, name="Plain certification", quiz=False)
    path_lessons = _steps(world, path)
    program, _ = make_program(org, name="plain programme")
    with tenant_context(org):
        program.certification_path = path
        program.save(update_fields=["certification_path"])
        path.audience = lm.Audience.EVERYONE
        path.save(update_fields=["audience"])
        lm.Lesson.objects.filter(pk__in=path_lessons).update(audience=lm.Audience.EVERYONE)
    shopper = make_shopper(org, email="shopper@acme.test", user=world.users["shopper"])

    # An employee completing the same path is no shopper: nothing is certified.
    employee_assignment = lf.AssignmentFactory(
        organization=org, lesson=None, path=path, employee=world.a.employees["a-n1"]
    )
    client.force_login(world.users["employee"])
    with django_capture_on_commit_callbacks(execute=True):
        for lesson_id in path_lessons:
            client.post(f"/learning/assignments/{employee_assignment.pk}/complete/", {"lesson": lesson_id})
    with tenant_context(org):
        assert lm.PathCertificate.objects.filter(assignment=employee_assignment).exists()
        assert not am.Certification.objects.exists()

    client.force_login(world.users["shopper"])
    resp = client.get(f"/audits/jobs/certify/{program.pk}/")
    assignment_id = int(resp["Location"].rstrip("/").split("/")[-1])
    with django_capture_on_commit_callbacks(execute=True):
        for lesson_id in path_lessons:
            client.post(f"/learning/assignments/{assignment_id}/complete/", {"lesson": lesson_id})
    (cert,) = _certifications(world, shopper, program)
    assert cert.score == Decimal(100)


def test_a_programme_without_a_path_other_orgs_and_non_shoppers(world, client, setup):
    program, shopper, _, _ = setup
    bare, _ = make_program(world.a.org, name="no course programme")
    other, _ = make_program(world.b.org, name="beta programme")
    client.force_login(world.users["shopper"])
    resp = client.get(f"/audits/jobs/certify/{bare.pk}/", follow=True)
    assert resp.redirect_chain[0] == ("/audits/jobs/", 302)
    assert "has no certification course yet" in resp.content.decode()

    assert client.get(f"/audits/jobs/certify/{other.pk}/").status_code == 404
    with tenant_context(world.b.org):
        assert not lm.Assignment.objects.exists()

    client.force_login(world.users["outsider"])
    assert client.get(f"/audits/jobs/certify/{program.pk}/").status_code == 404
    # A member without a shopper profile has nothing to certify.
    client.force_login(world.users["employee"])
    assert client.get(f"/audits/jobs/certify/{program.pk}/").status_code == 403
    with tenant_context(world.a.org):
        assert not lm.Assignment.objects.filter(source=lm.Assignment.Source.CERTIFICATION).exists()
    assert _certifications(world, shopper) == []


def test_the_programs_api_sets_the_certification_path(world, api, setup):
    program, _, _, path = setup
    admin = api(world.users["admin"])
    resp = admin.get(f"/api/v1/programs/{program.pk}/")
    assert resp.status_code == 200 and resp.json()["certification_path"] == path.pk
    staff_path = lf.LearningPathFactory(organization=world.a.org, audience=lm.Audience.EMPLOYEES)
    other_org_path = lf.LearningPathFactory(organization=world.b.org, audience=lm.Audience.SHOPPERS)
    resp = admin.patch(
        f"/api/v1/programs/{program.pk}/", {"certification_path": staff_path.pk}, format="json"
    )
    assert resp.status_code == 400 and "certification_path" in resp.json()
    resp = admin.patch(
        f"/api/v1/programs/{program.pk}/", {"certification_path": other_org_path.pk}, format="json"
    )
    assert resp.status_code == 400 and "certification_path" in resp.json()
    resp = admin.patch(f"/api/v1/programs/{program.pk}/", {"certification_path": None}, format="json")
    assert resp.status_code == 200 and resp.json()["certification_path"] is None
