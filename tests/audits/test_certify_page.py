"""The interim certification quiz page: pass → certified and the job becomes takeable."""

from __future__ import annotations

import pytest

from audits import certify_quiz
from audits import models as am
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_job, make_program, make_shopper


@pytest.fixture
def setup(world):
    org = world.a.org
    program, scenario = make_program(org)
    shopper = make_shopper(org, email="shopper@acme.test", user=world.users["shopper"])
    job = make_job(org, program, scenario, world.a.locations["a-n1"])
    return program, shopper, job


def _answers(program, *, right: int) -> dict:
    quiz = certify_quiz.quiz_for(program)
    wrong = {q["key"]: next(v for v, _ in q["choices"] if v != q["answer"]) for q in quiz}
    return {f"q-{q['key']}": (q["answer"] if i < right else wrong[q["key"]]) for i, q in enumerate(quiz)}


def _certified(world, shopper, program) -> bool:
    with tenant_context(world.a.org):
        return am.Certification.objects.filter(shopper=shopper, program=program).exists()


def test_passing_the_quiz_certifies_and_the_job_becomes_takeable(world, client, setup):
    program, shopper, job = setup
    client.force_login(world.users["shopper"])
    board = client.get("/audits/jobs/").content.decode()
    assert f'href="/audits/jobs/certify/{program.pk}/"' in board
    assert f"/audits/jobs/{job.pk}/take/" not in board

    page = client.get(f"/audits/jobs/certify/{program.pk}/").content.decode()
    assert 'data-testid="certify-form"' in page and "csrfmiddlewaretoken" in page
    assert "<script>" not in page  # no inline scripts

    resp = client.post(f"/audits/jobs/certify/{program.pk}/", _answers(program, right=3))
    assert resp.status_code == 200
    assert 'data-testid="certify-passed"' in resp.content.decode()
    assert _certified(world, shopper, program)
    with tenant_context(world.a.org):
        assert am.Certification.objects.get(shopper=shopper).score == 100

    board = client.get("/audits/jobs/").content.decode()
    assert f"/audits/jobs/{job.pk}/take/" in board
    assert client.post(f"/audits/jobs/{job.pk}/take/").status_code == 302
    with tenant_context(world.a.org):
        assert am.Assignment.objects.get(pk=job.pk).status == am.Assignment.Status.ASSIGNED


def test_failing_the_quiz_does_not_certify(world, client, setup):
    program, shopper, _ = setup
    client.force_login(world.users["shopper"])
    resp = client.post(f"/audits/jobs/certify/{program.pk}/", _answers(program, right=2))
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-testid="certify-failed"' in html and "You need 80%" in html
    assert 'data-testid="certify-form"' in html  # retry
    assert not _certified(world, shopper, program)
    resp = client.post(f"/audits/jobs/certify/{program.pk}/", {})
    assert 'data-testid="certify-failed"' in resp.content.decode()
    assert not _certified(world, shopper, program)


def test_other_org_programme_is_404_and_non_shoppers_are_refused(world, client, setup):
    program, shopper, _ = setup
    other, _ = make_program(world.b.org, name="beta programme")
    client.force_login(world.users["shopper"])
    assert client.get(f"/audits/jobs/certify/{other.pk}/").status_code == 404
    assert client.post(f"/audits/jobs/certify/{other.pk}/", _answers(other, right=3)).status_code == 404
    with tenant_context(world.b.org):
        assert not am.Certification.objects.exists()

    client.force_login(world.users["outsider"])
    assert client.get(f"/audits/jobs/certify/{program.pk}/").status_code == 404
    # A member without a shopper profile has nothing to certify.
    client.force_login(world.users["evaluator"])
    assert client.post(f"/audits/jobs/certify/{program.pk}/", _answers(program, right=3)).status_code == 403
    assert not _certified(world, shopper, program)
