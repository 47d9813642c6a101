"""Form builder, programs and scenarios, audits (read, scoped) and disputes through the API."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audits import audit_services
from audits.models import Assignment, Audit, AuditAnswer, Dispute, Program, Scenario, ScoreChange, Shopper
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_forms import GOOD, SYSTEM, make_audit, make_form, structure

FORMS = "/api/v1/audit-forms/"


@pytest.fixture
def std_b(world):
    return f.StandardFactory(organization=world.a.org)


@pytest.fixture
def admin(world, api):
    return api(world.users["admin"])


def _new_form(admin, name="acme builder form"):
    resp = admin.post(
        FORMS, {"name": name, "kind": "mystery_shop", "critical_policy": "cap", "critical_cap": "40"}
    )
    assert resp.status_code == 201, resp.content
    return resp.json()


# --- builder ------------------------------------------------------------------------------------


def test_form_crud_and_structure_versioning(world, admin, std_b):
    form = _new_form(admin)
    assert form["current_version"] is None and form["critical_policy"] == "cap"
    sections, items = structure(world.a.standard.pk, std_b.pk)
    url = f"{FORMS}{form['id']}/structure/"
    assert admin.get(url).status_code == 404

    resp = admin.put(url, {"sections": sections, "items": items}, format="json")
    assert resp.status_code == 201, resp.content
    v1 = resp.json()
    assert v1["number"] == 1 and [s["key"] for s in v1["sections"]] == ["greeting", "checkout"]
    upsell = next(i for i in v1["items"] if i["key"] == "upsell")
    assert upsell["section"] == "checkout" and upsell["choices"][1]["points"] == "0.5"
    assert next(i for i in v1["items"] if i["key"] == "notes")["weight"] == "0.00"

    # The same structure again changes nothing.
    resp = admin.put(url, {"sections": sections, "items": items}, format="json")
    assert resp.status_code == 200 and resp.json()["id"] == v1["id"]

    # Unused: edited in place.
    items[0]["weight"] = "3"
    resp = admin.put(url, {"sections": sections, "items": items}, format="json")
    assert resp.status_code == 200 and resp.json()["id"] == v1["id"]
    assert resp.json()["items"][0]["weight"] == "3.00"

    # Used by an audit: version 2, version 1 untouched.
    with tenant_context(world.a.org):
        from audits.models import AuditFormVersion

        version1 = AuditFormVersion.objects.get(pk=v1["id"])
    make_audit(world.a.org, version1, GOOD)
    items[0]["weight"] = "4"
    resp = admin.put(url, {"sections": sections, "items": items}, format="json")
    assert resp.status_code == 201 and resp.json()["number"] == 2
    versions = admin.get(f"{FORMS}{form['id']}/versions/").json()
    assert [(v["number"], v["items"][0]["weight"]) for v in versions] == [(2, "4.00"), (1, "3.00")]
    assert admin.get(f"{FORMS}{form['id']}/").json()["current_version"] == 2

    resp = admin.patch(f"{FORMS}{form['id']}/", {"description": "acme: new"}, format="json")
    assert resp.status_code == 200 and resp.json()["description"] == "acme: new"
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(action="audit_form.version_create").count() == 2
    # Used versions keep the form: deleting it is a conflict, not a silent loss.
    assert admin.delete(f"{FORMS}{form['id']}/").status_code == 409


def _put_errors(admin, form_id, sections, items):
    resp = admin.put(f"{FORMS}{form_id}/structure/", {"sections": sections, "items": items}, format="json")
    assert resp.status_code == 400, resp.content
    return resp.json()


def test_structure_validation_names_fields(world, admin, std_b):
    form = _new_form(admin)
    sections, items = structure(world.a.standard.pk, std_b.pk)
    other_std = f.StandardFactory(organization=world.b.org)
    items[0]["standard"] = None
    items[1]["standard"] = other_std.pk
    items[1]["scale_min"], items[1]["scale_max"] = 5, 5
    items[2]["weight"] = "0"
    items[4]["choices"][0]["points"] = "1.5"
    items[5]["key"] = "greeted"
    errors = _put_errors(admin, form["id"], sections, items)
    assert set(errors) >= {
        "items[0].standard",
        "items[1].standard",
        "items[1].scale_max",
        "items[2].weight",
        "items[4].choices[0].points",
        "items[5].key",
    }, errors

    sections, items = structure(world.a.standard.pk, std_b.pk)
    sections[1]["key"] = "greeting"
    items[2].pop("target_max")
    items[3]["section"] = "nowhere"
    items[4]["choices"] = []
    errors = _put_errors(admin, form["id"], sections, items)
    assert {"sections[1].key", "items[2].target_max", "items[3].section", "items[4].choices"} <= set(errors)
    assert _put_errors(admin, form["id"], [], [])["sections"]
    with tenant_context(world.a.org):
        assert not Audit.objects.exists()
        from audits.models import AuditFormVersion

        assert not AuditFormVersion.objects.exists()


def test_form_permissions(world, api, std_b):
    make_form(world.a.org, world.a.standard, std_b)
    manager = api(world.users["manager"])
    assert manager.get(FORMS).status_code == 200
    assert manager.post(FORMS, {"name": "x", "kind": "monitoring"}).status_code == 403
    assert api(world.users["shopper"]).get(FORMS).status_code == 403
    assert b"acme visit form" not in api(world.users["outsider"]).get(FORMS).content


def test_programs_and_scenarios_with_legs(world, api, admin, std_b):
    form, _ = make_form(world.a.org, world.a.standard, std_b)
    resp = admin.post(
        "/api/v1/programs/",
        {"name": "acme shops", "kind": "mystery_shop", "form": form.pk, "lockout_days": 30},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    program = resp.json()
    bad = admin.post(
        "/api/v1/programs/", {"name": "calls", "kind": "monitoring", "form": form.pk}, format="json"
    )
    assert bad.status_code == 400 and "form" in bad.json()

    legs = [
        {"position": 0, "channel_kind": "phone", "section_key": "greeting", "instructions": "Call first"},
        {"position": 1, "channel_kind": "in_store", "section_key": "checkout"},
    ]
    body = {
        "program": program["id"],
        "title": "acme two legs",
        "instructions": "Ask about returns",
        "legs": legs,
    }
    resp = admin.post("/api/v1/scenarios/", body, format="json")
    assert resp.status_code == 201, resp.content
    scenario = resp.json()
    assert [leg["section_key"] for leg in scenario["legs"]] == ["greeting", "checkout"]

    resp = admin.patch(
        f"/api/v1/scenarios/{scenario['id']}/",
        {"legs": [{"channel_kind": "chat", "section_key": "nowhere"}]},
        format="json",
    )
    assert resp.status_code == 400 and "legs[0].section_key" in resp.json()
    resp = admin.patch(f"/api/v1/scenarios/{scenario['id']}/", {"title": "acme renamed"}, format="json")
    assert resp.status_code == 200 and len(resp.json()["legs"]) == 2
    resp = admin.patch(f"/api/v1/scenarios/{scenario['id']}/", {"legs": legs[:1]}, format="json")
    assert [leg["channel_kind"] for leg in resp.json()["legs"]] == ["phone"]
    manager = api(world.users["manager"])
    assert (
        manager.patch(f"/api/v1/programs/{program['id']}/", {"name": "x"}, format="json").status_code == 403
    )


# --- audits and disputes ------------------------------------------------------------------------


@pytest.fixture
def published(world, std_b):
    """A published visit at a-n1 (smile 2 of 1..5), and an unpublished one at a-s1."""
    org = world.a.org
    _form, version = make_form(org, world.a.standard, std_b)
    audit = make_audit(
        org,
        version,
        {**GOOD, "smile": "2"},
        location=world.a.locations["a-n1"],
        employee=world.a.employees["a-n1"],
    )
    other = make_audit(org, version, GOOD, location=world.a.locations["a-s1"])
    with tenant_context(org):
        audit = audit_services.audit_publish(organization=org, actor=SYSTEM, audit=audit)
        audit_services.audit_score_compute(organization=org, actor=SYSTEM, audit=other)
    return audit, other


def _dispute(client, audit, **body):
    payload = {"item": "smile", "reason": "acme: we were closing", "proposed_value": "5"} | body
    return client.post(f"/api/v1/audits/{audit.pk}/disputes/", payload, format="json")


def test_audit_list_is_scoped(world, api, published):
    audit, other = published
    manager = api(world.users["manager"]).get("/api/v1/audits/").json()
    assert [a["id"] for a in manager["results"]] == [audit.pk]
    detail = api(world.users["manager"]).get(f"/api/v1/audits/{audit.pk}/").json()
    assert detail["score"] == "87.50" and detail["section_scores"]["greeting"]["score"] == "81.25"
    assert {a["item_key"] for a in detail["answers"]} == set(GOOD)
    assert len(detail["standard_scores"]) == 2
    assert api(world.users["manager"]).get(f"/api/v1/audits/{other.pk}/").status_code == 404
    evaluator = api(world.users["evaluator"]).get("/api/v1/audits/").json()
    assert {a["id"] for a in evaluator["results"]} == {audit.pk, other.pk}
    assert api(world.users["outsider"]).get(f"/api/v1/audits/{audit.pk}/").status_code == 404
    filtered = api(world.users["evaluator"]).get("/api/v1/audits/", {"status": "published"}).json()
    assert [a["id"] for a in filtered["results"]] == [audit.pk]


def test_shopper_sees_only_own_audits(world, api, published):
    audit, other = published
    org = world.a.org
    with tenant_context(org):
        shopper = Shopper.objects.create(
            organization=org,
            user=world.users["shopper"],
            name="acme shopper",
            email="shopper@acme.test",
            consent_at=timezone.now(),
            status="approved",
        )
        program = Program.objects.create(
            organization=org, name="acme p", kind="mystery_shop", form=audit.version.form
        )
        scenario = Scenario.objects.create(
            organization=org, program=program, title="acme s", instructions="x"
        )
        now = timezone.now()
        job = Assignment.objects.create(
            organization=org,
            program=program,
            scenario=scenario,
            location=other.location,
            shopper=shopper,
            window_start=now - dt.timedelta(days=2),
            window_end=now,
        )
        Audit.objects.filter(pk=other.pk).update(assignment=job)
    client = api(world.users["shopper"])
    assert [a["id"] for a in client.get("/api/v1/audits/").json()["results"]] == [other.pk]
    assert client.get(f"/api/v1/audits/{audit.pk}/").status_code == 404
    # Shoppers never dispute, not even their own visits.
    with tenant_context(org):
        Audit.objects.filter(pk=other.pk).update(published_at=timezone.now(), status="published")
    assert _dispute(client, other, item="smile").status_code == 403


def test_dispute_accept_rescores_and_keeps_history(world, api, published, std_b):
    audit, _ = published
    manager, evaluator = api(world.users["manager"]), api(world.users["evaluator"])
    resp = _dispute(manager, audit)
    assert resp.status_code == 201, resp.content
    dispute = resp.json()
    assert dispute["status"] == "open" and dispute["raised_by"] == world.users["manager"].pk
    # One open dispute per item.
    assert _dispute(manager, audit).json() == {"item": ["This item already has an open dispute."]}
    # Managers raise, they do not decide.
    assert manager.post(f"/api/v1/disputes/{dispute['id']}/accept/").status_code == 403

    resp = evaluator.post(f"/api/v1/disputes/{dispute['id']}/accept/", {"resolution": "Fair"}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "accepted" and resp.json()["resolved_by"] == world.users["evaluator"].pk
    org = world.a.org
    with tenant_context(org):
        audit.refresh_from_db()
        assert audit.score == D("100.00") and audit.published_at is not None
        assert AuditAnswer.objects.get(audit=audit, item__key="smile").value == "5"
        [change] = ScoreChange.objects.filter(audit=audit)
        assert (change.old_score, change.new_score) == (D("87.50"), D("100.00"))
        assert (
            change.changed_by_id == world.users["evaluator"].pk and "acme: we were closing" in change.reason
        )
        [event] = m.OutboxEvent.objects.filter(event_type="AuditRescored")
        assert event.payload["old_score"] == "87.50" and event.payload["new_score"] == "100.00"
        assert event.payload["standard_ids"] == sorted([world.a.standard.pk, std_b.pk])
        assert event.payload["dispute_id"] == dispute["id"] and event.payload["score_change_id"] == change.pk
        assert audit.standard_scores.filter(published_at__isnull=True).count() == 0
    history = manager.get(f"/api/v1/audits/{audit.pk}/score-changes/").json()
    assert [(h["old_score"], h["new_score"]) for h in history] == [("87.50", "100.00")]
    assert manager.get(f"/api/v1/audits/{audit.pk}/").json()["score_changes"][0]["new_score"] == "100.00"
    # Decided disputes stay decided.
    assert (
        evaluator.post(f"/api/v1/disputes/{dispute['id']}/reject/", {"resolution": "no"}).status_code == 400
    )


def test_dispute_reject_keeps_the_score(world, api, published):
    audit, _ = published
    dispute = _dispute(api(world.users["manager"]), audit, item="upsell", proposed_value="hinted").json()
    admin = api(world.users["admin"])
    url = f"/api/v1/disputes/{dispute['id']}/reject/"
    assert "resolution" in admin.post(url, {}, format="json").json()
    resp = admin.post(url, {"resolution": "The recording shows no upsell."}, format="json")
    assert resp.status_code == 200 and resp.json()["status"] == "rejected"
    with tenant_context(world.a.org):
        audit.refresh_from_db()
        assert audit.score == D("87.50") and not ScoreChange.objects.exists()
        assert not m.OutboxEvent.objects.filter(event_type="AuditRescored").exists()
    # A new dispute of the same item may follow once the first is decided.
    assert (
        _dispute(api(world.users["manager"]), audit, item="upsell", proposed_value="hinted").status_code
        == 201
    )


def test_dispute_refusals(world, api, published):
    audit, other = published
    manager = api(world.users["manager"])
    assert _dispute(manager, audit, item="nope").json().keys() == {"item"}
    assert _dispute(manager, audit, item="notes").status_code == 400
    assert "proposed_value" in _dispute(manager, audit, proposed_value="9").json()
    assert "proposed_value" in _dispute(manager, audit, proposed_value="2").json()
    # Another store's audit is out of the manager's scope; an unpublished one cannot be disputed.
    assert _dispute(manager, other).status_code == 404
    assert _dispute(api(world.users["admin"]), other).status_code == 403
    regional = api(world.users["regional"])
    assert _dispute(regional, audit).status_code == 201
    assert _dispute(api(world.users["outsider"]), audit).status_code == 404
    assert (
        _dispute(api(world.users["evaluator"]), audit, item="upsell", proposed_value="hinted").status_code
        == 403
    )
    with tenant_context(world.a.org):
        Audit.objects.filter(pk=audit.pk).update(published_at=None, status="submitted")
    resp = _dispute(manager, audit, item="upsell", proposed_value="hinted")
    assert resp.status_code == 400 and "audit" in resp.json()
    with tenant_context(world.a.org):
        assert Dispute.objects.count() == 1


def test_agents_dispute_their_evaluations_only(world, published):
    """The service side of agent disputes (the employee role's API permissions are the evaluations area's)."""
    audit, _ = published
    org = world.a.org
    with tenant_context(org):
        agent = m.Membership.objects.get(user=world.users["employee"])
        Audit.objects.filter(pk=audit.pk).update(location=world.a.locations["a-n2"])
        audit.refresh_from_db()
        dispute = audit_services.dispute_open(
            organization=org,
            actor=SYSTEM,
            audit=audit,
            item_key="smile",
            reason="acme: the customer left early",
            proposed_value="4",
            membership=agent,
        )
        assert dispute.status == "open"
        # A visit scores the store: its staff do not dispute it one by one.
        Audit.objects.filter(pk=audit.pk).update(assignment=_job(world, audit))
        audit.refresh_from_db()
        with pytest.raises(PermissionDenied):
            audit_services.dispute_open(
                organization=org,
                actor=SYSTEM,
                audit=audit,
                item_key="upsell",
                reason="acme",
                proposed_value="hinted",
                membership=agent,
            )


def _job(world, audit):
    org = world.a.org
    program = Program.objects.create(
        organization=org, name="acme job p", kind="mystery_shop", form=audit.version.form
    )
    scenario = Scenario.objects.create(
        organization=org, program=program, title="acme job s", instructions="x"
    )
    now = timezone.now()
    return Assignment.objects.create(
        organization=org,
        program=program,
        scenario=scenario,
        location=world.a.locations["a-n1"],
        window_start=now - dt.timedelta(days=1),
        window_end=now,
    )


def test_agents_dispute_their_evaluations_through_the_api(world, api, published):
    audit, _ = published
    with tenant_context(world.a.org):
        # An evaluation of the agent's own call (no job), published: the agent may dispute it.
        Audit.objects.filter(pk=audit.pk).update(
            assignment=None,
            interaction=world.a.interactions["a-n1"],
            employee=world.a.employees["a-n1"],
            location=world.a.locations["a-n1"],
        )
    agent = api(world.users["employee"])
    resp = _dispute(agent, audit, item="smile", proposed_value="4")
    assert resp.status_code == 201, resp.content
    # Agents raise disputes; they never settle them.
    assert agent.post(f"/api/v1/disputes/{resp.json()['id']}/accept/", {}, format="json").status_code == 403
