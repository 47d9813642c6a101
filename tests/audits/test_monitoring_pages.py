"""Monitoring pages: evaluator queue and scoring, samples, agents' evaluations, blind calibration."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from audits import monitoring
from audits.models import Audit, CalibrationSession, Dispute, MonitoringSample, SampleItem
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_monitoring import GOOD, make_calls, make_program

BASE = "/audits/monitoring"


def _form(values: dict[str, str], **extra) -> dict:
    return {**{f"value-{k}": v for k, v in values.items()}, **extra}


GOOD_FORM = _form({k: v["value"] for k, v in GOOD.items()})


class MP:
    """A monitoring programme with a drawn sample: two agents (a-n1, a-n2), two calls each sampled."""

    def __init__(self, world):
        self.world = world
        self.org = world.a.org
        self.program = make_program(world, per_agent=2)
        calls = make_calls(world, agent_key="a-n1", count=3, critical=1)
        calls += make_calls(world, agent_key="a-n2", count=2)
        self.calls = calls
        with tenant_context(self.org):
            self.sample, _ = monitoring.sample_draw(
                organization=self.org,
                actor=Actor.system(),
                program=self.program,
                period_start=calls[0].occurred_at - dt.timedelta(hours=1),
                period_end=calls[-1].occurred_at + dt.timedelta(hours=1),
            )

    def items(self, agent_key=None):
        with tenant_context(self.org):
            items = SampleItem.objects.filter(sample=self.sample).order_by("pk")
            if agent_key:
                items = items.filter(agent=self.world.a.employees[agent_key])
            return list(items)

    def publish(self, item, answers=GOOD):
        actor = Actor(user_id=self.world.users["evaluator"].pk)
        with tenant_context(self.org):
            monitoring.evaluation_save(organization=self.org, actor=actor, sample_item=item, answers=answers)
            return monitoring.evaluation_submit(organization=self.org, actor=actor, sample_item=item)

    def evaluator(self, email):
        user = f.UserFactory(username=email, email=email)
        f.MembershipFactory(organization=self.org, user=user, role=m.Role.EVALUATOR)
        return user


@pytest.fixture
def mp(world):
    return MP(world)


def test_navigation_and_permissions(mp, client):
    users = mp.world.users
    client.force_login(users["evaluator"])
    html = client.get(f"{BASE}/").content.decode()
    assert f'href="{BASE}/"' in html and f'href="{BASE}/calibrations/"' in html
    client.force_login(users["employee"])
    html = client.get(f"{BASE}/evaluations/").content.decode()
    assert f'href="{BASE}/evaluations/"' in html and f'href="{BASE}/"' not in html
    for url in ("/", "/samples/", "/calibrations/", "/calibrations/trends/"):
        assert client.get(f"{BASE}{url}").status_code == 403
    client.force_login(users["manager"])
    assert client.get(f"{BASE}/evaluations/").status_code == 200
    assert client.get(f"{BASE}/").status_code == 403


def test_evaluator_scores_and_publishes_through_pages(mp, client):
    client.force_login(mp.world.users["evaluator"])
    queue = client.get(f"{BASE}/")
    html = queue.content.decode()
    assert html.count('data-testid="queue-item"') == 4
    assert 'data-testid="count-new"><strong>4<' in html
    assert mp.world.a.employees["a-n1"].name in html and "5:00" in html  # duration of a 300 s call

    item = mp.items("a-n1")[0]
    page = client.get(f"{BASE}/items/{item.pk}/").content.decode()
    for key in GOOD:
        assert f'data-testid="item-{key}"' in page
    assert 'data-testid="transcript"' in page and "acme: hello" in page

    # Autosave (htmx) keeps a partial draft; the draft resumes on the page.
    resp = client.post(
        f"{BASE}/items/{item.pk}/draft/", _form({"greet": "yes", "tone": "4"}), HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 200 and b'data-testid="saved"' in resp.content
    assert b"2/4 answered" in resp.content
    page = client.get(f"{BASE}/items/{item.pk}/").content.decode()
    assert 'value="4" checked' in page
    assert 'data-testid="count-draft"><strong>1<' in client.get(f"{BASE}/").content.decode()

    # Submitting an incomplete form names the missing items; the draft is kept.
    resp = client.post(f"{BASE}/items/{item.pk}/submit/", _form({"greet": "no"}))
    assert resp.status_code == 400
    assert b'data-testid="error-verify"' in resp.content and b'data-testid="error-resolve"' in resp.content
    # A bad value on a draft is an error too, not a silent drop.
    resp = client.post(f"{BASE}/items/{item.pk}/draft/", _form({"tone": "9"}))
    assert resp.status_code == 400 and b'data-testid="error-tone"' in resp.content

    resp = client.post(f"{BASE}/items/{item.pk}/submit/", GOOD_FORM)
    assert resp.status_code == 302, resp.content[:500]
    with tenant_context(mp.org):
        audit = SampleItem.objects.get(pk=item.pk).audit
        assert audit.status == Audit.Status.PUBLISHED and audit.score == 100
        assert m.OutboxEvent.objects.filter(event_type="EvaluationPublished").count() == 1
    html = client.get(f"{BASE}/").content.decode()
    assert 'data-testid="count-done"><strong>1<' in html and html.count('data-testid="queue-item"') == 3
    assert client.get(f"{BASE}/?status=done").content.decode().count('data-testid="queue-item"') == 1
    # Published: the form is read-only and a second submit is refused.
    assert b"<fieldset disabled>" in client.get(f"{BASE}/items/{item.pk}/").content
    assert client.post(f"{BASE}/items/{item.pk}/submit/", GOOD_FORM).status_code == 400


def test_another_evaluators_item_is_a_404(mp, client):
    other = mp.evaluator("qa2@acme.test")
    item = mp.items()[0]
    client.force_login(other)
    assert client.get(f"{BASE}/items/{item.pk}/").status_code == 404
    assert client.post(f"{BASE}/items/{item.pk}/submit/", GOOD_FORM).status_code == 404


def test_sampling_admin_draws_and_shows_per_agent_counts(mp, client):
    client.force_login(mp.world.users["admin"])
    html = client.get(f"{BASE}/samples/").content.decode()
    assert html.count('data-testid="sample-row"') == 1 and mp.sample.seed in html
    assert 'data-testid="draw-form"' in html

    start = timezone.localdate() - dt.timedelta(days=5)
    body = {
        "program": mp.program.pk,
        "period_start": (start - dt.timedelta(days=7)).isoformat(),
        "period_end": start.isoformat(),
        "seed": "acme-seed-1",
    }
    resp = client.post(f"{BASE}/samples/draw/", body)
    assert resp.status_code == 302
    with tenant_context(mp.org):
        drawn = MonitoringSample.objects.exclude(pk=mp.sample.pk).get()
    assert drawn.seed == "acme-seed-1" and resp.url == f"{BASE}/samples/{drawn.pk}/"
    # The same period again: the stored sample, not a new one.
    again = client.post(f"{BASE}/samples/draw/", {**body, "seed": "other"}, follow=True)
    assert b"already drawn" in again.content
    with tenant_context(mp.org):
        assert MonitoringSample.objects.count() == 2

    page = client.get(f"{BASE}/samples/{mp.sample.pk}/").content.decode()
    assert page.count('data-testid="agent-row"') == 2 and mp.sample.seed in page
    assert "<th>Total</th><th>4</th><th>1</th>" in page  # 4 drawn, the one Critical call among them

    bad = client.post(f"{BASE}/samples/draw/", {**body, "period_end": body["period_start"]})
    assert bad.status_code == 400 and b'data-testid="error-period_end"' in bad.content
    client.force_login(mp.world.users["manager"])
    assert client.post(f"{BASE}/samples/draw/", body).status_code == 403


def test_agent_sees_only_own_evaluations_acknowledges_and_disputes(mp, client):
    own = mp.publish(mp.items("a-n1")[0], answers={**GOOD, "verify": {"value": "no"}})
    other = mp.publish(mp.items("a-n2")[0])
    client.force_login(mp.world.users["employee"])  # the agent of a-n1
    html = client.get(f"{BASE}/evaluations/").content.decode()
    assert html.count('data-testid="evaluation-row"') == 1 and f"/evaluations/{own.pk}/" in html
    assert client.get(f"{BASE}/evaluations/{other.pk}/").status_code == 404
    assert client.post(f"{BASE}/evaluations/{other.pk}/acknowledge/").status_code == 404

    page = client.get(f"{BASE}/evaluations/{own.pk}/").content.decode()
    assert 'data-testid="result-verify" class="failed"' in page and 'data-testid="acknowledge"' in page
    assert client.post(f"{BASE}/evaluations/{own.pk}/acknowledge/").status_code == 302
    with tenant_context(mp.org):
        assert Audit.objects.get(pk=own.pk).acknowledged_at is not None
    page = client.get(f"{BASE}/evaluations/{own.pk}/").content.decode()
    assert 'data-testid="acknowledged"' in page and 'data-testid="acknowledge"' not in page

    missing = client.post(
        f"{BASE}/evaluations/{own.pk}/dispute/", {"item": "verify", "proposed_value": "yes", "reason": ""}
    )
    assert missing.status_code == 400 and b'data-testid="error-reason"' in missing.content
    resp = client.post(
        f"{BASE}/evaluations/{own.pk}/dispute/",
        {"item": "verify", "proposed_value": "yes", "reason": "I verified the caller at 0:40."},
    )
    assert resp.status_code == 302
    with tenant_context(mp.org):
        dispute = Dispute.objects.select_related("item").get(audit_id=own.pk)
    assert dispute.item.key == "verify" and dispute.status == Dispute.Status.OPEN
    assert "I verified the caller" in client.get(f"{BASE}/evaluations/{own.pk}/").content.decode()


def test_manager_scope(mp, client):
    n1 = mp.publish(mp.items("a-n1")[0])
    n2 = mp.publish(mp.items("a-n2")[0])
    client.force_login(mp.world.users["manager"])  # store a-n1
    html = client.get(f"{BASE}/evaluations/").content.decode()
    assert f"/evaluations/{n1.pk}/" in html and f"/evaluations/{n2.pk}/" not in html
    assert client.get(f"{BASE}/evaluations/{n2.pk}/").status_code == 404
    page = client.get(f"{BASE}/evaluations/{n1.pk}/").content.decode()
    assert 'data-testid="acknowledge"' not in page  # only the agent acknowledges
    assert client.post(f"{BASE}/evaluations/{n1.pk}/acknowledge/").status_code == 403
    client.force_login(mp.world.users["regional"])  # region north: both stores
    html = client.get(f"{BASE}/evaluations/").content.decode()
    assert f"/evaluations/{n1.pk}/" in html and f"/evaluations/{n2.pk}/" in html


def test_blind_calibration_then_disagreement_and_alignment(mp, client):
    users = mp.world.users
    qa2 = mp.evaluator("qa2@acme.test")
    qa3 = mp.evaluator("qa3@acme.test")
    call = mp.calls[0]

    client.force_login(users["admin"])
    form_page = client.get(f"{BASE}/calibrations/?interaction={call.pk}").content.decode()
    assert f'value="{call.pk}"' in form_page and "qa3@acme.test" in form_page
    one = client.post(
        f"{BASE}/calibrations/new/",
        {"program": mp.program.pk, "interaction": call.pk, "evaluators": [qa2.pk]},
    )
    assert one.status_code == 400 and b'data-testid="error-evaluators"' in one.content
    resp = client.post(
        f"{BASE}/calibrations/new/",
        {"program": mp.program.pk, "interaction": call.pk, "evaluators": [users["evaluator"].pk, qa2.pk]},
    )
    assert resp.status_code == 302
    with tenant_context(mp.org):
        session = CalibrationSession.objects.get()
    assert sorted(session.evaluators) == sorted([users["evaluator"].pk, qa2.pk])
    url = f"{BASE}/calibrations/{session.pk}/"
    assert resp.url == url

    client.force_login(users["evaluator"])
    assert client.post(f"{url}evaluate/", GOOD_FORM).status_code == 302
    client.force_login(qa2)
    page = client.get(url).content.decode()
    # Blind: qa2 sees who has scored, never the score or answers; their own form is empty.
    assert 'data-testid="calibration-evaluate"' in page and "checked" not in page
    assert 'evaluator@acme.test: <span class="badge">scored' in page
    assert 'data-testid="disagreement"' not in page and "100.00" not in page
    assert client.post(f"{url}evaluate/", _form({**{k: v["value"] for k, v in GOOD.items()}, "greet": "no"}))
    client.force_login(users["evaluator"])
    page = client.get(url).content.decode()
    assert page.count('value="no" checked') == 0 and 'data-testid="disagreement"' not in page
    # A user not invited cannot score it.
    client.force_login(qa3)
    refused = client.post(f"{url}evaluate/", GOOD_FORM)
    assert refused.status_code == 400 and b"not one of this session" in refused.content

    # The facilitator closes it with the agreed answers.
    client.force_login(users["admin"])
    assert 'data-testid="close-link"' in client.get(url).content.decode()
    assert b'data-testid="close-form"' in client.get(f"{url}close/").content
    assert client.post(f"{url}close/", _form({"greet": "yes"})).status_code == 400
    assert client.post(f"{url}close/", GOOD_FORM).status_code == 302

    page = client.get(url).content.decode()
    assert 'data-testid="disagreement"' in page
    greet = page.split('data-testid="disagreement-greet"')[1].split("</tr>")[0]
    assert greet.count('class="disagree"') == 1 and "50%" in greet
    verify = page.split('data-testid="disagreement-verify"')[1].split("</tr>")[0]
    assert 'class="disagree"' not in verify and "0%" in verify
    assert 'data-testid="alignment-evaluator@acme.test"><strong>100.00<' in page
    assert 'data-testid="alignment-qa2@acme.test"><strong>75.00<' in page
    # Closed: nobody scores any more; everyone sees the same table.
    client.force_login(qa2)
    assert 'data-testid="disagreement"' in client.get(url).content.decode()
    assert client.post(f"{url}evaluate/", GOOD_FORM).status_code == 400

    trends = client.get(f"{BASE}/calibrations/trends/").content.decode()
    assert 'data-testid="trend-qa2@acme.test"' in trends
    assert 'data-testid="trend-evaluator@acme.test"' in trends
    mine = client.get(f"{BASE}/calibrations/trends/?evaluator=me").content.decode()
    assert 'data-testid="trend-qa2@acme.test"' in mine and "trend-evaluator@acme.test" not in mine


def test_a_refused_calibration_score_shows_what_was_posted(mp, client):
    with tenant_context(mp.org):
        session = monitoring.calibration_create(
            organization=mp.org, actor=Actor.system(), program=mp.program, interaction=mp.calls[0]
        )
    url = f"{BASE}/calibrations/{session.pk}/"
    client.force_login(mp.world.users["evaluator"])
    incomplete = _form({"greet": "no", "resolve": "yes"})
    for action in ("evaluate/", "close/"):
        refused = client.post(url + action, incomplete)
        assert refused.status_code == 400, action
        html = refused.content.decode()
        assert 'name="value-greet" value="no" checked' in html, action
        assert 'name="value-resolve" value="yes" checked' in html, action


def test_recording_links_are_http_only(mp, client):
    item = mp.items("a-n1")[0]
    with tenant_context(mp.org):
        m.Interaction.objects.filter(pk=item.interaction_id).update(
            attributes={"duration": 61, "recording_url": "javascript:alert(1)"}
        )
    client.force_login(mp.world.users["evaluator"])
    page = client.get(f"{BASE}/items/{item.pk}/").content.decode()
    assert "javascript:" not in page and "1:01" in page
    with tenant_context(mp.org):
        m.Interaction.objects.filter(pk=item.interaction_id).update(
            attributes={"recording_url": "https://rec.example/1.mp3"}
        )
    page = client.get(f"{BASE}/items/{item.pk}/").content.decode()
    assert 'href="https://rec.example/1.mp3"' in page


def test_org_b_gets_404_on_org_a_ids(mp, client):
    evaluation = mp.publish(mp.items("a-n1")[0])
    with tenant_context(mp.org):
        session = monitoring.calibration_create(
            organization=mp.org, actor=Actor.system(), program=mp.program, interaction=mp.calls[0]
        )
    client.force_login(mp.world.users["outsider"])
    for url in (
        f"/items/{mp.items()[1].pk}/",
        f"/samples/{mp.sample.pk}/",
        f"/evaluations/{evaluation.pk}/",
        f"/calibrations/{session.pk}/",
        f"/calibrations/{session.pk}/close/",
    ):
        assert client.get(f"{BASE}{url}").status_code == 404, url
    for url in (
        f"/items/{mp.items()[1].pk}/submit/",
        f"/evaluations/{evaluation.pk}/dispute/",
        f"/calibrations/{session.pk}/evaluate/",
        f"/calibrations/{session.pk}/close/",
    ):
        assert client.post(f"{BASE}{url}", GOOD_FORM).status_code == 404, url
    for url in ("/samples/", "/evaluations/", "/calibrations/", "/calibrations/trends/"):
        assert b"acme" not in client.get(f"{BASE}{url}").content.lower(), url


def test_list_pages_query_counts_do_not_grow(mp, client, django_assert_max_num_queries):
    for item in mp.items():
        mp.publish(item)
    more = make_calls(mp.world, agent_key="a-s1", count=6, prefix="acme-more")
    evaluator = Actor(user_id=mp.world.users["evaluator"].pk)
    with tenant_context(mp.org):
        monitoring.sample_draw(
            organization=mp.org,
            actor=Actor.system(),
            program=mp.program,
            period_start=more[0].occurred_at - dt.timedelta(days=30),
            period_end=more[0].occurred_at - dt.timedelta(days=29),
        )
        for call in more[:3]:
            session = monitoring.calibration_create(
                organization=mp.org, actor=evaluator, program=mp.program, interaction=call
            )
            done = {"organization": mp.org, "actor": evaluator, "session": session, "answers": GOOD}
            monitoring.calibration_evaluate(**done)
            monitoring.calibration_close(**done)
    client.force_login(mp.world.users["evaluator"])
    for url, limit in (
        ("/", 10),
        ("/?status=done", 10),
        ("/samples/", 11),
        ("/evaluations/", 9),
        ("/calibrations/", 12),
        ("/calibrations/trends/", 12),
    ):
        with django_assert_max_num_queries(limit):
            assert client.get(f"{BASE}{url}").status_code == 200, url
    client.force_login(mp.world.users["manager"])
    with django_assert_max_num_queries(9):
        assert client.get(f"{BASE}/evaluations/").status_code == 200


def test_api_sessions_name_their_evaluators(mp, api):
    users = mp.world.users
    qa2 = mp.evaluator("qa2@acme.test")
    admin = api(users["admin"])
    body = {"program": mp.program.pk, "interaction": mp.calls[0].pk}
    manager = users["manager"].pk
    stranger = admin.post("/api/v1/calibrations/", {**body, "evaluators": [manager]}, format="json")
    assert stranger.status_code == 400 and "evaluators" in stranger.json()
    resp = admin.post("/api/v1/calibrations/", {**body, "evaluators": [qa2.pk]}, format="json")
    assert resp.status_code == 201 and resp.json()["evaluators"] == [qa2.pk]
    answers = {"answers": [{"key": k, **v} for k, v in GOOD.items()]}
    url = f"/api/v1/calibrations/{resp.json()['id']}/evaluate/"
    assert api(users["evaluator"]).post(url, answers, format="json").status_code == 403
    assert api(qa2).post(url, answers, format="json").status_code == 200
