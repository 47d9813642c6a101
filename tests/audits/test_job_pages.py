"""Job pages for shoppers (board, take, visit form with autosave, submit) and reviewers (queue, review)."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.utils import timezone
from PIL import Image

from audits import models as am
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_workforce import make_job, make_program, make_shopper

S = am.Assignment.Status


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


class JP:
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

    def status(self, job):
        with tenant_context(self.org):
            return am.Assignment.objects.get(pk=job.pk).status


@pytest.fixture
def jp(world):
    return JP(world)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def _visited() -> str:
    return timezone.localtime(timezone.now() - dt.timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")


def _second_shopper(jp):
    user = f.UserFactory(username="shopper2@acme.test", email="shopper2@acme.test")
    f.MembershipFactory(organization=jp.org, user=user, role=m.Role.SHOPPER)
    make_shopper(jp.org, email="shopper2@acme.test", user=user, certify_program=jp.program)
    return user


def test_navigation_shows_jobs_to_shoppers_and_review_to_evaluators(jp, client):
    client.force_login(jp.world.users["shopper"])
    html = client.get("/audits/jobs/").content.decode()
    assert 'href="/audits/jobs/"' in html and 'href="/audits/jobs/review/"' not in html
    client.force_login(jp.world.users["evaluator"])
    html = client.get("/audits/jobs/review/").content.decode()
    assert 'href="/audits/jobs/review/"' in html
    client.force_login(jp.world.users["shopper"])
    assert client.get("/audits/jobs/review/").status_code == 403


def test_full_job_flow_from_board_to_published_score(jp, client):
    good = jp.job()
    blocked = jp.job(jp.world.a.locations["a-n2"])
    with tenant_context(jp.org):
        am.LocationBlock.objects.create(
            organization=jp.org,
            shopper=jp.shopper,
            location=jp.world.a.locations["a-n2"],
            reason="known face",
        )
    client.force_login(jp.world.users["shopper"])

    board = client.get("/audits/jobs/").content.decode()
    assert board.count('data-testid="board-job"') == 1
    assert f"/audits/jobs/{good.pk}/take/" in board and f"/audits/jobs/{blocked.pk}/take/" not in board
    assert 'data-testid="board-ineligible"' in board and "known face" in board
    assert "25.00" in board and "Buy a coffee." not in board

    resp = client.post(f"/audits/jobs/{good.pk}/take/")
    assert resp.status_code == 302 and resp["Location"] == f"/audits/jobs/{good.pk}/"
    assert jp.status(good) == S.ASSIGNED
    assert f"/audits/jobs/{good.pk}/" in client.get("/audits/jobs/mine/").content.decode()

    # Autosave (static/audits/autosave.js) and resume after a reload.
    page = client.get(f"/audits/jobs/{good.pk}/").content.decode()
    assert "Buy a coffee." in page and f'data-autosave="/audits/jobs/{good.pk}/draft/"' in page
    assert "audits/autosave.js" in page
    assert "0/4 answered" in page
    resp = client.post(
        f"/audits/jobs/{good.pk}/draft/",
        {"visited_at": _visited(), "value-greeted": "yes", "comment-greeted": "warm hello"},
        HTTP_HX_REQUEST="true",
    )
    assert resp.status_code == 200
    fragment = resp.content.decode()
    assert 'data-testid="saved"' in fragment and "1/4 answered" in fragment
    page = client.get(f"/audits/jobs/{good.pk}/").content.decode()
    assert 'name="value-greeted" value="yes" checked' in page and "warm hello" in page
    assert "1/4 answered" in page

    # Submit with the wait time and the receipt missing: errors next to the items.
    resp = client.post(f"/audits/jobs/{good.pk}/submit/", {"visited_at": _visited(), "value-greeted": "yes"})
    assert resp.status_code == 400
    html = resp.content.decode()
    assert 'data-testid="error-wait"' in html and "This item is required." in html
    assert 'data-testid="error-receipt"' in html and "A photo is required." in html
    assert jp.status(good) == S.ASSIGNED

    resp = client.post(
        f"/audits/jobs/{good.pk}/photo/",
        {"item": "receipt", "file": io.BytesIO(_png())},
    )
    assert resp.status_code == 302
    page = client.get(f"/audits/jobs/{good.pk}/").content.decode()
    assert "/api/v1/audit-photos/" in page
    resp = client.post(
        f"/audits/jobs/{good.pk}/submit/",
        {"visited_at": _visited(), "value-greeted": "yes", "value-wait": "30"},
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    assert jp.status(good) == S.SUBMITTED

    # The reviewer returns it with a reason.
    client.force_login(jp.world.users["evaluator"])
    queue = client.get("/audits/jobs/review/").content.decode()
    assert f"/audits/jobs/review/{good.pk}/" in queue
    review = client.get(f"/audits/jobs/review/{good.pk}/").content.decode()
    assert 'data-testid="score-preview">100' in review
    assert "/api/v1/audit-photos/" in review
    assert client.post(f"/audits/jobs/review/{good.pk}/return/", {"reason": ""}).status_code == 302
    assert jp.status(good) == S.SUBMITTED  # a reason is required
    resp = client.post(f"/audits/jobs/review/{good.pk}/return/", {"reason": "Say how long you waited."})
    assert resp.status_code == 302
    assert jp.status(good) == S.RETURNED

    # The shopper sees the reason and resubmits.
    client.force_login(jp.world.users["shopper"])
    page = client.get(f"/audits/jobs/{good.pk}/").content.decode()
    assert "Say how long you waited." in page and "Resubmit" in page
    resp = client.post(
        f"/audits/jobs/{good.pk}/submit/",
        {"visited_at": _visited(), "value-greeted": "yes", "value-wait": "45"},
    )
    assert resp.status_code == 302
    assert jp.status(good) == S.SUBMITTED

    client.force_login(jp.world.users["evaluator"])
    assert client.post(f"/audits/jobs/review/{good.pk}/approve/").status_code == 302
    assert jp.status(good) == S.PUBLISHED
    assert f"/audits/jobs/review/{good.pk}/" not in client.get("/audits/jobs/review/").content.decode()

    # The store manager of a-n1 sees the published score.
    client.force_login(jp.world.users["manager"])
    results = client.get("/audits/results/").content.decode()
    assert results.count('data-testid="audit-row"') == 1
    with tenant_context(jp.org):
        audit = am.Audit.objects.get(assignment=good)
    assert audit.score is not None and f"<td>{audit.score}" in results


def test_the_autosave_keeps_the_claimed_reimbursement_across_a_reload(jp, client):
    """A photo upload reloads the page: an expense typed before it must still be there after."""
    job = jp.job(shopper=jp.shopper, status=S.ASSIGNED, assigned_at=timezone.now())
    client.force_login(jp.world.users["shopper"])
    draft = f"/audits/jobs/{job.pk}/draft/"
    resp = client.post(draft, {"value-greeted": "yes", "reimbursement": "4.50"}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200
    page = client.get(f"/audits/jobs/{job.pk}/").content.decode()
    assert 'value="4.50" data-testid="reimbursement"' in page
    # Half-typed or over the cap: the draft still saves, the claim stays as it was (submit refuses it).
    for bad in ("4.5x", "99"):
        resp = client.post(draft, {"value-greeted": "no", "reimbursement": bad}, HTTP_HX_REQUEST="true")
        assert resp.status_code == 200 and 'data-testid="saved"' in resp.content.decode()
    with tenant_context(jp.org):
        assert str(am.Assignment.objects.get(pk=job.pk).reimbursement) == "4.50"


def test_outsider_and_other_shopper_get_404(jp, client):
    job = jp.job(shopper=jp.shopper, status=S.IN_PROGRESS, assigned_at=timezone.now())
    urls = [f"/audits/jobs/{job.pk}/", f"/audits/jobs/review/{job.pk}/"]
    client.force_login(jp.world.users["outsider"])
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(f"/audits/jobs/{job.pk}/take/").status_code == 404
    assert client.post(f"/audits/jobs/{job.pk}/draft/", {"value-greeted": "no"}).status_code == 404
    assert client.post(f"/audits/jobs/review/{job.pk}/approve/").status_code == 404

    client.force_login(_second_shopper(jp))
    assert client.get(f"/audits/jobs/{job.pk}/").status_code == 404
    assert client.post(f"/audits/jobs/{job.pk}/draft/", {"value-greeted": "no"}).status_code == 404
    assert client.post(f"/audits/jobs/{job.pk}/submit/").status_code == 404
    assert client.post(f"/audits/jobs/{job.pk}/photo/", {"item": "receipt"}).status_code == 404
    assert client.get(f"/audits/jobs/review/{job.pk}/").status_code == 403
    with tenant_context(jp.org):
        assert not am.Audit.objects.filter(assignment=job).exists()
    # A store manager may see assignments but neither reviews nor fills in shoppers' reports.
    client.force_login(jp.world.users["manager"])
    assert client.get(f"/audits/jobs/{job.pk}/").status_code == 404
    assert client.get("/audits/jobs/review/").status_code == 403


def test_board_and_queue_query_counts_are_bounded(jp, client, django_assert_max_num_queries):
    locations = list(jp.world.a.locations.values())
    for i in range(12):
        jp.job(locations[i % len(locations)])
    other = _second_shopper(jp)
    with tenant_context(jp.org):
        shopper2 = am.Shopper.objects.get(user=other)
    for i in range(12):
        jp.job(
            locations[i % len(locations)],
            shopper=shopper2,
            status=S.SUBMITTED,
            assigned_at=timezone.now(),
            submitted_at=timezone.now(),
        )
    client.force_login(jp.world.users["shopper"])
    # 12 jobs each: 8 and 5 queries today; one query per row would blow both limits.
    with django_assert_max_num_queries(10):
        html = client.get("/audits/jobs/").content.decode()
    assert html.count('data-testid="board-job"') + html.count('data-testid="board-ineligible"') == 12
    client.force_login(jp.world.users["evaluator"])
    with django_assert_max_num_queries(7):
        html = client.get("/audits/jobs/review/").content.decode()
    assert html.count('data-testid="queue-job"') == 12
