"""Call and chat monitoring: samples, queues, evaluations, acknowledgement, calibration."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from audits import monitoring
from audits.models import Audit, MonitoringSample, SampleItem
from audits.monitoring_tasks import monitoring_sample_dispatch
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_monitoring import GOOD, make_calls, make_program

pytestmark = pytest.mark.django_db

SYSTEM = Actor.system()


def _period(calls):
    return calls[0].occurred_at - dt.timedelta(hours=1), calls[-1].occurred_at + dt.timedelta(hours=1)


def _draw(world, program, start, end, seed=None):
    with tenant_context(world.a.org):
        return monitoring.sample_draw(
            organization=world.a.org,
            actor=SYSTEM,
            program=program,
            period_start=start,
            period_end=end,
            seed=seed,
        )


def _picked(world, drawn) -> dict[int, list[int]]:
    with tenant_context(world.a.org):
        out: dict[int, list[int]] = {}
        for agent, interaction in drawn.items.order_by("agent_id", "interaction_id").values_list(
            "agent_id", "interaction_id"
        ):
            out.setdefault(agent, []).append(interaction)
        return out


def _evaluator(world, email):
    user = f.UserFactory(username=email, email=email)
    f.MembershipFactory(organization=world.a.org, user=user, role=m.Role.EVALUATOR)
    return user


def _answers(values: dict) -> dict:
    return {"answers": [{"key": k, "value": v} for k, v in values.items()]}


def _good():
    return {"answers": [{"key": k, **v} for k, v in GOOD.items()]}


# --- sampling ------------------------------------------------------------------------------------


def test_same_seed_same_sample_and_seed_stored(world):
    program = make_program(world, per_agent=3)
    calls = make_calls(world, count=10) + make_calls(world, agent_key="a-n2", count=10)
    start, end = _period(sorted(calls, key=lambda c: c.occurred_at))
    first, created = _draw(world, program, start, end)
    assert created and first.seed == monitoring.default_seed(program, start)
    picked = _picked(world, first)
    with tenant_context(world.a.org):
        MonitoringSample.objects.filter(pk=first.pk).delete()
    again, created = _draw(world, program, start, end, seed=first.seed)
    assert created and _picked(world, again) == picked


def test_n_per_agent_and_only_monitored_channels(world):
    program = make_program(world, per_agent=2)
    calls = make_calls(world, count=5) + make_calls(world, agent_key="a-n2", count=5)
    calls += make_calls(world, agent_key="a-s1", count=1)
    start, end = _period(sorted(calls, key=lambda c: c.occurred_at))
    drawn, _ = _draw(world, program, start - dt.timedelta(days=2), end)
    picked = _picked(world, drawn)
    a = world.a.employees
    assert {agent: len(ids) for agent, ids in picked.items()} == {
        a["a-n1"].pk: 2,
        a["a-n2"].pk: 2,
        a["a-s1"].pk: 1,
    }
    # The in-store interactions of the fixture are in the window but never monitored.
    in_store = {i.pk for i in world.a.interactions.values()}
    assert not in_store & {i for ids in picked.values() for i in ids}


def test_critical_stratum_honoured(world):
    program = make_program(world, per_agent=4, critical_share="0.5")
    calls = make_calls(world, count=12, critical=3)
    drawn, _ = _draw(world, program, *_period(calls))
    critical = {c.pk for c in calls[:3]}
    [ids] = _picked(world, drawn).values()
    assert len(ids) == 4 and len(critical & set(ids)) == 2


def test_no_re_evaluation_in_a_second_period(world):
    program = make_program(world, per_agent=2)
    calls = make_calls(world, count=5)
    start, end = _period(calls)
    first, _ = _draw(world, program, start, end)
    evaluator = Actor(user_id=world.users["evaluator"].pk)
    with tenant_context(world.a.org):
        item = first.items.order_by("pk").first()
        monitoring.evaluation_save(organization=world.a.org, actor=evaluator, sample_item=item, answers=GOOD)
        monitoring.evaluation_submit(organization=world.a.org, actor=evaluator, sample_item=item)
        # A calibration audit counts as an evaluation too.
        spare = next(c for c in calls if not SampleItem.objects.filter(interaction_id=c.pk).exists())
        session = monitoring.calibration_create(
            organization=world.a.org, actor=evaluator, program=program, interaction=spare
        )
        monitoring.calibration_evaluate(
            organization=world.a.org, actor=evaluator, session=session, answers=GOOD
        )
    second, created = _draw(world, program, start - dt.timedelta(minutes=1), end)
    assert created
    already = set(_picked(world, first)[world.a.employees["a-n1"].pk]) | {spare.pk}
    [again] = _picked(world, second).values()
    assert len(again) == 2 and not already & set(again)


def test_draw_is_idempotent_per_period(world, api):
    program = make_program(world)
    calls = make_calls(world, count=4)
    start, end = _period(calls)
    client = api(world.users["evaluator"])
    body = {"program": program.pk, "period_start": start.isoformat(), "period_end": end.isoformat()}
    resp = client.post("/api/v1/monitoring-samples/", body, format="json")
    assert resp.status_code == 201, resp.content
    again = client.post("/api/v1/monitoring-samples/", {**body, "seed": "other"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == resp.json()["id"]
    assert again.json()["seed"] == resp.json()["seed"] and resp.json()["items"] == 2
    with tenant_context(world.a.org):
        assert MonitoringSample.objects.count() == 1 and SampleItem.objects.count() == 2
    assert (
        api(world.users["employee"]).post("/api/v1/monitoring-samples/", body, format="json").status_code
        == 403
    )


def test_evaluators_are_dealt_round_robin(world):
    second = _evaluator(world, "qa2@acme.test")
    program = make_program(world, per_agent=2)
    calls = make_calls(world, count=4) + make_calls(world, agent_key="a-n2", count=4)
    drawn, _ = _draw(world, program, *_period(sorted(calls, key=lambda c: c.occurred_at)))
    with tenant_context(world.a.org):
        evaluators = list(
            drawn.items.order_by("agent_id", "interaction_id").values_list("evaluator_id", flat=True)
        )
    assert sorted(evaluators) == sorted([world.users["evaluator"].pk, second.pk] * 2)
    assert evaluators[0] != evaluators[1]


def test_weekly_beat_draws_last_week_once(world):
    program = make_program(world)
    start, end = monitoring.last_week(timezone.now(), "UTC")
    make_calls(world, count=3, start=start + dt.timedelta(days=1))
    assert monitoring_sample_dispatch() == 1
    with tenant_context(world.a.org):
        drawn = MonitoringSample.objects.get(program=program)
        assert (drawn.period_start, drawn.period_end) == (start, end) and drawn.items.count() == 2
    monitoring_sample_dispatch()
    with tenant_context(world.a.org):
        assert MonitoringSample.objects.count() == 1


# --- queue, evaluation, acknowledgement -----------------------------------------------------------


@pytest.fixture
def queue(world):
    program = make_program(world, per_agent=1)
    calls = make_calls(world, count=2) + make_calls(world, agent_key="a-n2", count=2)
    drawn, _ = _draw(world, program, *_period(sorted(calls, key=lambda c: c.occurred_at)))
    return program, drawn


def test_evaluator_queue_evaluate_submit_publishes(world, api, queue):
    client = api(world.users["evaluator"])
    resp = client.get("/api/v1/sample-items/?evaluator=me&status=open")
    assert resp.status_code == 200
    rows = resp.json()["results"] if isinstance(resp.json(), dict) else resp.json()
    assert len(rows) == 2 and rows[0]["attributes"]["transcript"] == "acme: hello"
    item_id = rows[0]["id"]

    resp = client.post(
        f"/api/v1/sample-items/{item_id}/evaluate/", _answers({"greet": "maybe"}), format="json"
    )
    assert resp.status_code == 400 and "greet" in resp.json()
    resp = client.post(f"/api/v1/sample-items/{item_id}/evaluate/", _answers({"greet": "no"}), format="json")
    assert resp.status_code == 200 and resp.json()["status"] == "draft"
    # Required items missing: nothing is published.
    assert client.post(f"/api/v1/sample-items/{item_id}/submit/").status_code == 400
    client.post(f"/api/v1/sample-items/{item_id}/evaluate/", _good(), format="json")
    resp = client.post(f"/api/v1/sample-items/{item_id}/submit/")
    assert (
        resp.status_code == 200 and resp.json()["status"] == "published" and resp.json()["score"] == "100.00"
    )
    assert client.post(f"/api/v1/sample-items/{item_id}/submit/").status_code == 409
    assert client.post(f"/api/v1/sample-items/{item_id}/evaluate/", _good(), format="json").status_code == 409

    open_rows = client.get("/api/v1/sample-items/?evaluator=me&status=open").json()
    open_rows = open_rows["results"] if isinstance(open_rows, dict) else open_rows
    assert [r["id"] for r in open_rows] != [] and item_id not in [r["id"] for r in open_rows]
    with tenant_context(world.a.org):
        audit = Audit.objects.get(sample_item__pk=item_id)
        event = m.OutboxEvent.objects.get(event_type="EvaluationPublished")
        # Evaluations are not also announced as shop audits: listeners of both count them once.
        assert not m.OutboxEvent.objects.filter(event_type="AuditPublished").exists()
        assert audit.employee_id == SampleItem.objects.get(pk=item_id).agent_id
        assert audit.version.form_id == queue[0].form_id
    assert event.payload == {
        "audit_id": audit.pk,
        "employee_id": audit.employee_id,
        "location_id": audit.location_id,
        "standard_ids": [world.a.standard.pk],
        "score": "100.00",
    }


def test_another_evaluators_item_is_refused(world, api, queue):
    other = _evaluator(world, "qa3@acme.test")
    with tenant_context(world.a.org):
        item = SampleItem.objects.filter(evaluator=world.users["evaluator"]).first()
    resp = api(other).post(f"/api/v1/sample-items/{item.pk}/evaluate/", _good(), format="json")
    assert resp.status_code == 403


def _publish_all(world, drawn):
    evaluator = Actor(user_id=world.users["evaluator"].pk)
    with tenant_context(world.a.org):
        for item in drawn.items.all():
            monitoring.evaluation_save(
                organization=world.a.org, actor=evaluator, sample_item=item, answers=GOOD
            )
            monitoring.evaluation_submit(organization=world.a.org, actor=evaluator, sample_item=item)
        return {a.employee_id: a.pk for a in Audit.objects.all()}


def test_agent_sees_only_own_evaluations_and_acknowledges_once(world, api, queue):
    by_agent = _publish_all(world, queue[1])
    mine, theirs = by_agent[world.a.employees["a-n1"].pk], by_agent[world.a.employees["a-n2"].pk]
    client = api(world.users["employee"])
    body = client.get("/api/v1/evaluations/").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [r["id"] for r in rows] == [mine] and rows[0]["answers"]
    assert client.get(f"/api/v1/evaluations/{theirs}/").status_code == 404
    assert client.post(f"/api/v1/evaluations/{theirs}/acknowledge/").status_code == 404

    first = client.post(f"/api/v1/evaluations/{mine}/acknowledge/")
    assert first.status_code == 200 and first.json()["acknowledged_at"]
    second = client.post(f"/api/v1/evaluations/{mine}/acknowledge/")
    assert second.status_code == 200 and second.json()["acknowledged_at"] == first.json()["acknowledged_at"]
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="monitoring.evaluation_acknowledge").count() == 1

    # Only the agent acknowledges; evaluators see everything but cannot.
    evaluator = api(world.users["evaluator"])
    assert evaluator.post(f"/api/v1/evaluations/{theirs}/acknowledge/").status_code == 403
    all_rows = evaluator.get("/api/v1/evaluations/").json()
    all_rows = all_rows["results"] if isinstance(all_rows, dict) else all_rows
    assert {r["id"] for r in all_rows} == {mine, theirs}
    # Agents have no queue, and no access to samples or calibrations.
    assert client.get("/api/v1/sample-items/").status_code == 403
    assert client.get("/api/v1/calibrations/").status_code == 403


def test_drafts_and_calibration_audits_are_not_evaluations(world, api, queue):
    evaluator = Actor(user_id=world.users["evaluator"].pk)
    with tenant_context(world.a.org):
        item = queue[1].items.order_by("pk").first()
        monitoring.evaluation_save(organization=world.a.org, actor=evaluator, sample_item=item, answers=GOOD)
        session = monitoring.calibration_create(
            organization=world.a.org, actor=evaluator, program=queue[0], interaction=item.interaction
        )
        monitoring.calibration_evaluate(
            organization=world.a.org, actor=evaluator, session=session, answers=GOOD
        )
    for user in ("evaluator", "employee"):
        body = api(world.users[user]).get("/api/v1/evaluations/").json()
        assert (body["results"] if isinstance(body, dict) else body) == []


def test_outsider_sees_nothing(world, api, queue):
    _publish_all(world, queue[1])
    client = api(world.users["outsider"])
    with tenant_context(world.a.org):
        item = SampleItem.objects.first()
        audit = Audit.objects.first()
    for url in ("/api/v1/sample-items/", "/api/v1/evaluations/", "/api/v1/monitoring-samples/"):
        assert b"acme" not in client.get(url).content.lower()
    assert client.get(f"/api/v1/sample-items/{item.pk}/").status_code == 404
    assert client.post(f"/api/v1/sample-items/{item.pk}/evaluate/", _good(), format="json").status_code == 404
    assert client.post(f"/api/v1/evaluations/{audit.pk}/acknowledge/").status_code in (403, 404)


# --- calibration ---------------------------------------------------------------------------------


@pytest.fixture
def session(world, api):
    program = make_program(world, name="acme calibration monitoring")
    [call] = make_calls(world, count=1, prefix="acme-calibration")
    resp = api(world.users["evaluator"]).post(
        "/api/v1/calibrations/", {"program": program.pk, "interaction": call.pk}, format="json"
    )
    assert resp.status_code == 201, resp.content
    return resp.json()["id"]


def test_calibration_alignment_from_a_known_matrix(world, api, session):
    qa2, qa3 = _evaluator(world, "qa2@acme.test"), _evaluator(world, "qa3@acme.test")
    matrix = {
        world.users["evaluator"]: {"greet": "yes", "verify": "yes", "resolve": "yes", "tone": "5"},
        qa2: {"greet": "no", "verify": "yes", "resolve": "yes", "tone": "5"},
        qa3: {"greet": "no", "verify": "no", "resolve": "yes", "tone": "3"},
    }
    for user, values in matrix.items():
        resp = api(user).post(f"/api/v1/calibrations/{session}/evaluate/", _answers(values), format="json")
        assert resp.status_code == 200, resp.content
    admin = api(world.users["admin"])
    assert admin.get(f"/api/v1/calibrations/{session}/results/").status_code == 409
    final = {"greet": "yes", "verify": "yes", "resolve": "yes", "tone": "5"}
    resp = admin.post(f"/api/v1/calibrations/{session}/close/", _answers(final), format="json")
    assert resp.status_code == 200 and resp.json()["closed_at"] and resp.json()["final"]["score"] == "100.00"
    assert (
        admin.post(f"/api/v1/calibrations/{session}/close/", _answers(final), format="json").status_code
        == 409
    )

    results = admin.get(f"/api/v1/calibrations/{session}/results/").json()
    assert {r["key"]: D(r["disagreement"]) for r in results["items"]} == {
        "greet": D("66.67"),
        "verify": D("33.33"),
        "resolve": D("0"),
        "tone": D("33.33"),
    }
    alignment = {r["evaluator_email"]: D(r["alignment"]) for r in results["evaluators"]}
    assert alignment == {
        "evaluator@acme.test": D("100"),
        "qa2@acme.test": D("75"),
        "qa3@acme.test": D("37.5"),
    }

    trends = admin.get(f"/api/v1/calibrations/trends/?evaluator={qa3.pk}").json()
    assert [(t["evaluator_email"], D(t["mean_alignment"]), t["sessions"]) for t in trends] == [
        ("qa3@acme.test", D("37.5"), 1)
    ]
    assert len(admin.get("/api/v1/calibrations/trends/").json()) == 3
    mine = api(qa2).get("/api/v1/calibrations/trends/?evaluator=me").json()
    assert [t["evaluator_email"] for t in mine] == ["qa2@acme.test"]


def test_calibration_is_blind_until_closed(world, api, session):
    qa2 = _evaluator(world, "qa2@acme.test")
    first, second = api(world.users["evaluator"]), api(qa2)
    first.post(f"/api/v1/calibrations/{session}/evaluate/", _good(), format="json")
    second.post(
        f"/api/v1/calibrations/{session}/evaluate/",
        _answers({**{k: v["value"] for k, v in GOOD.items()}, "greet": "no"}),
        format="json",
    )
    for client, email in ((first, "evaluator@acme.test"), (second, "qa2@acme.test")):
        detail = client.get(f"/api/v1/calibrations/{session}/").json()
        assert detail["evaluator_count"] == 2
        assert [e["evaluator_email"] for e in detail["evaluations"]] == [email]
        listed = client.get("/api/v1/calibrations/").json()
        listed = listed["results"] if isinstance(listed, dict) else listed
        assert [e["evaluator_email"] for e in listed[0]["evaluations"]] == [email]
    # An admin who has not evaluated sees no one's answers either.
    assert api(world.users["admin"]).get(f"/api/v1/calibrations/{session}/").json()["evaluations"] == []
    assert first.get(f"/api/v1/calibrations/{session}/results/").status_code == 409

    first.post(f"/api/v1/calibrations/{session}/close/", _good(), format="json")
    detail = second.get(f"/api/v1/calibrations/{session}/").json()
    assert {e["evaluator_email"] for e in detail["evaluations"]} == {"evaluator@acme.test", "qa2@acme.test"}
    # Closed: no more evaluations.
    late = api(world.users["admin"]).post(f"/api/v1/calibrations/{session}/evaluate/", _good(), format="json")
    assert late.status_code == 409


def test_calibration_permissions(world, api, session):
    employee, outsider = api(world.users["employee"]), api(world.users["outsider"])
    program = make_program(world, name="acme second monitoring")
    [call] = make_calls(world, count=1, prefix="acme-perm")
    body = {"program": program.pk, "interaction": call.pk}
    assert employee.post("/api/v1/calibrations/", body, format="json").status_code == 403
    assert (
        employee.post(f"/api/v1/calibrations/{session}/evaluate/", _good(), format="json").status_code == 403
    )
    assert outsider.post("/api/v1/calibrations/", body, format="json").status_code == 400
    assert outsider.get(f"/api/v1/calibrations/{session}/").status_code == 404
    assert (
        outsider.post(f"/api/v1/calibrations/{session}/evaluate/", _good(), format="json").status_code == 404
    )
    assert b"acme" not in outsider.get("/api/v1/calibrations/trends/").content.lower()
    assert api(world.users["admin"]).post("/api/v1/calibrations/", body, format="json").status_code == 201


def test_generic_audit_routes_keep_calibration_blind_and_drafts_private(world, api, queue, session):
    qa2 = _evaluator(world, "qa2@acme.test")
    api(qa2).post(f"/api/v1/calibrations/{session}/evaluate/", _good(), format="json")
    evaluator = Actor(user_id=world.users["evaluator"].pk)
    with tenant_context(world.a.org):
        item = queue[1].items.get(agent=world.a.employees["a-n1"])
        draft = monitoring.evaluation_save(
            organization=world.a.org, actor=evaluator, sample_item=item, answers=GOOD
        )

    def ids(user):
        body = api(user).get("/api/v1/audits/").json()
        return {a["id"] for a in (body["results"] if isinstance(body, dict) else body)}

    # Another evaluator's open calibration answers stay hidden; drafts live in the queue only.
    assert ids(world.users["evaluator"]) == set()
    assert ids(world.users["employee"]) == set()
    assert api(world.users["employee"]).get(f"/api/v1/audits/{draft.pk}/").status_code == 404
    api(world.users["admin"]).post(f"/api/v1/calibrations/{session}/close/", _good(), format="json")
    assert len(ids(world.users["evaluator"])) == 2  # qa2's evaluation and the final audit
    with tenant_context(world.a.org):
        monitoring.evaluation_submit(organization=world.a.org, actor=evaluator, sample_item=item)
    assert ids(world.users["employee"]) == {draft.pk}


def test_lists_take_a_fixed_number_of_queries(world, api, django_assert_max_num_queries):
    program = make_program(world, per_agent=3)
    calls = [c for key in ("a-n1", "a-n2", "a-s1") for c in make_calls(world, agent_key=key, count=3)]
    drawn, _ = _draw(world, program, *_period(sorted(calls, key=lambda c: c.occurred_at)))
    _publish_all(world, drawn)
    evaluator = api(world.users["evaluator"])
    # Session, membership, tenant and page queries; none per row (9 rows each).
    with django_assert_max_num_queries(14):
        assert len(evaluator.get("/api/v1/sample-items/").json()["results"]) == 9
    with django_assert_max_num_queries(14):
        assert len(evaluator.get("/api/v1/evaluations/").json()["results"]) == 9


def test_a_draw_covers_at_most_a_quarter(world):
    program = make_program(world)
    start = timezone.now() - dt.timedelta(days=120)
    with pytest.raises(monitoring.ValidationError):
        _draw(world, program, start, start + dt.timedelta(days=93))
    with pytest.raises(monitoring.ValidationError):
        _draw(world, program, start, start)
