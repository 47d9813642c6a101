"""Autosave's guard for offline phones: a save built on an older draft revision is a 409 and
changes nothing, so a queue replayed after reconnecting cannot overwrite newer answers."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from audits import jobs
from audits import models as am
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_job, make_program, make_shopper

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def job(world):
    org = world.a.org
    program, scenario = make_program(org)
    shopper = make_shopper(
        org, email="shopper@acme.test", user=world.users["shopper"], certify_program=program
    )
    return make_job(
        org,
        program,
        scenario,
        world.a.locations["a-n1"],
        shopper=shopper,
        status=am.Assignment.Status.IN_PROGRESS,
        assigned_at=timezone.now(),
    )


def _revision(html: str) -> str:
    return re.search(r'id="save-status" data-revision="(\d*)"', html).group(1)


def _answer(world, job, key="greeted"):
    with tenant_context(world.a.org):
        answer = am.AuditAnswer.objects.filter(audit__assignment=job, item__key=key).first()
        return answer.value if answer else None


def test_a_save_on_the_current_revision_is_stored_and_returns_the_next_one(world, job, client):
    client.force_login(world.users["shopper"])
    url = f"/audits/jobs/{job.pk}/draft/"
    page = client.get(f"/audits/jobs/{job.pk}/").content.decode()
    assert _revision(page) == ""  # no draft yet
    first = client.post(url, {"value-greeted": "yes", "revision": ""}, **HX)
    assert first.status_code == 200 and 'data-testid="saved"' in first.content.decode()
    rev1 = _revision(first.content.decode())
    assert rev1
    second = client.post(url, {"value-greeted": "no", "revision": rev1}, **HX)
    assert second.status_code == 200
    rev2 = _revision(second.content.decode())
    assert rev2 and rev2 != rev1
    assert _answer(world, job) == "no"
    assert _revision(client.get(f"/audits/jobs/{job.pk}/").content.decode()) == rev2


def test_a_stale_queued_save_is_409_and_leaves_the_newer_answers(world, job, client):
    client.force_login(world.users["shopper"])
    url = f"/audits/jobs/{job.pk}/draft/"
    rev1 = _revision(client.post(url, {"value-greeted": "yes", "revision": ""}, **HX).content.decode())
    # Another tab saves on top of rev1 ...
    assert client.post(url, {"value-greeted": "no", "revision": rev1}, **HX).status_code == 200
    # ... then the phone's queue, built on rev1, comes back online.
    stale = client.post(url, {"value-greeted": "yes", "comment-greeted": "old", "revision": rev1}, **HX)
    assert stale.status_code == 409
    assert "saved from elsewhere" in stale.content.decode()
    assert _answer(world, job) == "no"
    # A queue made before the first save (revision "") is stale once a draft exists.
    assert client.post(url, {"value-greeted": "yes", "revision": ""}, **HX).status_code == 409
    assert _answer(world, job) == "no"


def test_saves_without_a_revision_are_not_checked(world, job, client):
    """The plain "Save draft"/"Submit" posts and the API carry no revision: last write wins, as before."""
    client.force_login(world.users["shopper"])
    url = f"/audits/jobs/{job.pk}/draft/"
    client.post(url, {"value-greeted": "yes", "revision": ""}, **HX)
    resp = client.post(url, {"value-greeted": "no"})
    assert resp.status_code == 302
    assert _answer(world, job) == "no"


def test_the_service_raises_draft_conflict(world, job):
    org = world.a.org
    with tenant_context(org):
        shopper = jobs.shopper_for_user(world.users["shopper"])
        kwargs = {"organization": org, "actor": Actor.system(), "shopper": shopper, "assignment": job}
        audit = jobs.assignment_draft_save(
            **kwargs, answers=[{"item": "greeted", "value": "yes"}], base_revision=""
        )
        with pytest.raises(jobs.DraftConflict):
            jobs.assignment_draft_save(
                **kwargs, answers=[{"item": "greeted", "value": "no"}], base_revision="1"
            )
        jobs.assignment_draft_save(
            **kwargs, answers=[{"item": "greeted", "value": "no"}], base_revision=jobs.draft_revision(audit)
        )
        assert am.AuditAnswer.objects.get(audit=audit).value == "no"
