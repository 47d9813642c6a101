"""Closing the loop: alert rules → cases → email → work → escalation, in scope, in order."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alignment.score_settings import settings_update
from cem import models as m
from cem import outbox
from cem.category_weights import category_weights
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import cases
from feedback.case_tasks import cases_escalate
from feedback.models import AlertRule, Case, CaseNote
from feedback.services import Dimensions, response_record

NPS_LOW = {"question_type": "nps", "op": "lte", "value": 6}
DETRACTOR = {"nps": 2, "comment": "The cashier was rude and ignored me"}


def _rule(org, name="Detractor", condition=None, **kw) -> AlertRule:
    with tenant_context(org):
        return AlertRule.objects.create(organization=org, name=name, condition=condition or NPS_LOW, **kw)


def _respond(sw, values=None, *, store="a-n1", category=None, customer=True):
    org = sw.world.a.org
    with tenant_context(org):
        dims = Dimensions.from_interaction(sw.world.a.interactions[store])
        if category is not None:
            dims = dataclasses.replace(dims, category=category)
        if not customer:
            dims = dataclasses.replace(dims, customer_id=None)
        return response_record(
            organization=org,
            actor=Actor.system(),
            survey=sw.survey,
            values=values or DETRACTOR,
            source="api",
            dimensions=dims,
        )


def _open(sw, values=None, **kw) -> Case | None:
    response = _respond(sw, values, **kw)
    with tenant_context(sw.world.a.org):
        opened = cases.cases_open_for_responses(organization=sw.world.a.org, response_ids=[response.pk])
    return opened[0] if opened else None


def _cases(org):
    with tenant_context(org):
        return list(Case.objects.order_by("pk"))


def _user_actor(user) -> Actor:
    return Actor(user_id=user.pk)


# --- alert → case → email ------------------------------------------------------------------------


def test_detractor_opens_a_case_for_the_store_manager_and_emails_them(
    sw, mailoutbox, django_capture_on_commit_callbacks
):
    world, org = sw.world, sw.world.a.org
    _rule(org, priority=AlertRule.Priority.NORMAL, sla_hours=24)
    with tenant_context(org):
        m.Customer.objects.filter(pk=world.a.customer.pk).update(
            email="pat@example.com", consent_email=True, phone="+34600000000", consent_sms=False
        )
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        response = _respond(sw)

    [case] = _cases(org)
    assert case.response_id == response.pk
    assert case.assignee_id == world.users["manager"].pk
    assert case.escalation_level == 0
    assert case.location_id == world.a.locations["a-n1"].pk
    assert case.employee_id == world.a.employees["a-n1"].pk
    # The checkout touchpoint is Critical: the rule's Normal becomes High.
    assert case.category == "critical" and case.priority == AlertRule.Priority.HIGH
    assert "rude" in case.themes
    assert "NPS 2" in case.title and "Acme a-n1" in case.title
    assert before + dt.timedelta(hours=24) <= case.sla_due_at <= timezone.now() + dt.timedelta(hours=24)
    assert case.customer_contact == {"email": "pat@example.com"}  # no SMS consent, so no phone

    [mail] = mailoutbox
    assert mail.to == ["manager@acme.test"]
    assert f"/feedback/cases/{case.pk}/" in mail.body
    [(html, mime)] = mail.alternatives
    assert mime == "text/html" and f"/feedback/cases/{case.pk}/" in html
    with tenant_context(org):
        assert m.OutboxEvent.objects.filter(event_type="CaseOpened", payload__case_id=case.pk).count() == 1
        assert m.AuditLog.objects.filter(action="case.open", object_id=str(case.pk)).count() == 1


def test_the_handler_is_idempotent(sw):
    org = sw.world.a.org
    _rule(org)
    response = _respond(sw)
    with tenant_context(org):
        event = m.OutboxEvent.objects.get(event_type="ResponseReceived", payload__response_ids=[response.pk])
        assert outbox.run_handler(event.pk, "feedback.cases_open") is True
        assert outbox.run_handler(event.pk, "feedback.cases_open") is False
        # Even called again outside the delivery bookkeeping, it opens nothing new.
        assert cases.cases_open_for_responses(organization=org, response_ids=[response.pk]) == []
        assert Case.objects.filter(response_id=response.pk).count() == 1


def test_no_rules_or_no_match_opens_nothing(sw):
    assert _open(sw) is None  # no rules at all
    _rule(sw.world.a.org)
    assert _open(sw, {"nps": 9, "comment": "Lovely, quick and friendly"}) is None
    assert _cases(sw.world.a.org) == []


@pytest.mark.parametrize(
    ("condition", "values", "opens"),
    [
        ({"sentiment": "negative"}, {"nps": 9, "comment": "Terrible, awful service"}, True),
        ({"sentiment": "negative"}, {"nps": 2, "comment": "Great and friendly"}, False),
        ({"topic": "rude"}, {"nps": 10, "comment": "one cashier was rude"}, True),
        ({"topic": "rude"}, {"nps": 0}, False),
        ({"question_type": "csat", "op": "lte", "value": 2}, {"nps": 8, "csat": 2}, True),
        ({"question_type": "nps", "op": "gte", "value": 9}, {"nps": 9}, True),
        ({"question_type": "nps", "op": "eq", "value": 5}, {"nps": 6}, False),
    ],
)
def test_condition_shapes(sw, condition, values, opens):
    _rule(sw.world.a.org, condition=condition)
    assert (_open(sw, values) is not None) is opens


def test_rule_category_and_inactive_rules(sw):
    org = sw.world.a.org
    _rule(org, name="Planned only", category="planned")
    _rule(org, name="Switched off", active=False)
    assert _open(sw) is None  # the response is Critical; the only active rule wants Planned
    assert _open(sw, category="planned").rule.name == "Planned only"


def test_the_most_urgent_matching_rule_opens_the_one_case(sw):
    org = sw.world.a.org
    _rule(org, name="Detractor", priority=AlertRule.Priority.NORMAL, sla_hours=48)
    _rule(org, name="Rude", condition={"topic": "rude"}, priority=AlertRule.Priority.HIGH, sla_hours=8)
    case = _open(sw, category="stabilizing")
    assert case.rule.name == "Rude" and case.priority == AlertRule.Priority.HIGH
    assert len(_cases(org)) == 1


def test_critical_interactions_are_raised_a_level_and_listed_first(sw, api):
    org = sw.world.a.org
    _rule(org, priority=AlertRule.Priority.HIGH)
    calm = _open(sw, category="stabilizing")
    critical = _open(sw)
    assert (calm.priority, critical.priority) == (AlertRule.Priority.HIGH, AlertRule.Priority.URGENT)
    urgent_rule = _rule(org, name="Urgent already", condition={"topic": "rude"}, priority=4)
    with tenant_context(org):
        weights = category_weights(org.pk)
        assert cases.case_priority(urgent_rule, "critical", weights=weights) == AlertRule.Priority.URGENT

    body = api(sw.world.users["manager"]).get("/api/v1/cases/").json()
    assert [c["id"] for c in body["results"]] == [critical.pk, calm.pk]


def test_the_organizations_heaviest_category_raises_priority_as_its_settings_say(sw):
    """The raise follows the interaction-category weights an admin edits in the alignment
    settings (the same weights as in the overall scores), not a hard-coded Critical."""
    org, admin = sw.world.a.org, _user_actor(sw.world.users["admin"])
    _rule(org, priority=AlertRule.Priority.NORMAL)

    def priorities():
        return {category: _open(sw, category=category).priority for category in ("critical", "planned")}

    assert priorities() == {"critical": AlertRule.Priority.HIGH, "planned": AlertRule.Priority.NORMAL}
    with tenant_context(org):
        settings_update(
            organization=org,
            actor=admin,
            data={"category_weights": {"critical": 2, "stabilizing": 1, "planned": 3}},
        )
    assert priorities() == {"critical": AlertRule.Priority.NORMAL, "planned": AlertRule.Priority.HIGH}
    with tenant_context(org):
        settings_update(
            organization=org,
            actor=admin,
            data={"category_weights": {"critical": 1, "stabilizing": 1, "planned": 1}},
        )
    assert priorities() == {"critical": AlertRule.Priority.NORMAL, "planned": AlertRule.Priority.NORMAL}
    # Another organization's settings change nothing here.
    with tenant_context(sw.world.b.org):
        assert category_weights(sw.world.b.org.pk)["critical"] == 2.0


# --- who is responsible ----------------------------------------------------------------------------


def test_assignee_falls_back_from_store_to_region_to_admin(sw):
    users, org = sw.world.users, sw.world.a.org
    _rule(org)
    at_n1, at_n2, at_s1 = _open(sw), _open(sw, store="a-n2"), _open(sw, store="a-s1")
    assert (at_n1.assignee_id, at_n1.escalation_level) == (users["manager"].pk, 0)
    # a-n2 has no store manager: north's regional manager.
    assert (at_n2.assignee_id, at_n2.escalation_level) == (users["regional"].pk, 1)
    # South has neither: the org admin.
    assert (at_s1.assignee_id, at_s1.escalation_level) == (users["admin"].pk, 2)

    with tenant_context(org):
        m.Membership.objects.filter(user=users["manager"]).update(is_active=False)
    assert _open(sw).assignee_id == users["regional"].pk


def test_a_supervisor_who_may_work_cases_stands_in_for_a_missing_store_manager(sw):
    from tests import factories as f

    world, org = sw.world, sw.world.a.org
    _rule(org)
    loc = world.a.locations["a-n2"]
    supervisor = f.EmployeeFactory(organization=org, current_location=loc, role=m.Employee.Role.SUPERVISOR)
    user = f.UserFactory(username="sup@acme.test", email="sup@acme.test")
    # A regional manager who also supervises on the floor at a-n2.
    f.MembershipFactory(
        organization=org, user=user, role=m.Role.REGIONAL_MANAGER, region=loc.region, employee=supervisor
    )
    case = _open(sw, store="a-n2")
    assert (case.assignee_id, case.escalation_level) == (user.pk, 0)


@pytest.mark.parametrize(
    ("consent_email", "opted_out", "expected"),
    [(True, False, {"email": "pat@example.com", "locale": "es"}), (False, False, {}), (True, True, {})],
)
def test_customer_contact_is_copied_only_with_consent(sw, consent_email, opted_out, expected):
    org = sw.world.a.org
    _rule(org)
    with tenant_context(org):
        m.Customer.objects.filter(pk=sw.world.a.customer.pk).update(
            email="pat@example.com",
            locale="es",
            consent_email=consent_email,
            opted_out_at=timezone.now() if opted_out else None,
        )
    assert _open(sw).customer_contact == expected
    assert _open(sw, customer=False).customer_contact == {}


# --- escalation ------------------------------------------------------------------------------------


def test_overdue_cases_escalate_level_by_level_as_time_passes(
    sw, mailoutbox, monkeypatch, django_capture_on_commit_callbacks
):
    users, org = sw.world.users, sw.world.a.org
    _rule(org, sla_hours=24)
    case = _open(sw)
    done = _open(sw)
    with tenant_context(org):
        cases.case_start(organization=org, actor=Actor.system(), case=done)
        cases.case_resolve(organization=org, actor=Actor.system(), case=done, reason="Refunded")
    start = timezone.now()

    def run_at(hours):
        moment = start + dt.timedelta(hours=hours)
        monkeypatch.setattr(timezone, "now", lambda: moment)
        mailoutbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            count = cases_escalate.delay().get()
        with tenant_context(org):
            return count, Case.objects.get(pk=case.pk), moment

    count, now_case, _ = run_at(23)
    assert count == 0 and now_case.escalation_level == 0 and mailoutbox == []

    count, now_case, moment = run_at(25)
    assert count == 1  # the resolved one, though as old, stays put
    assert (now_case.escalation_level, now_case.assignee_id) == (1, users["regional"].pk)
    assert now_case.sla_due_at == moment + dt.timedelta(hours=24) and now_case.escalated_at == moment
    [mail] = mailoutbox
    assert mail.to == ["regional@acme.test"] and "Escalated" in mail.subject

    count, again, _ = run_at(26)  # within the new window: nothing moves
    assert count == 0 and again.escalation_level == 1 and mailoutbox == []

    count, now_case, _ = run_at(50)
    assert (now_case.escalation_level, now_case.assignee_id) == (2, users["admin"].pk)
    assert [mm.to for mm in mailoutbox] == [["admin@acme.test"]]

    count, top, _ = run_at(200)  # the top level stays overdue for the executive review
    assert count == 0 and top.escalation_level == 2
    with tenant_context(org):
        assert m.AuditLog.objects.filter(action="case.escalate", object_id=str(case.pk)).count() == 2
        assert m.OutboxEvent.objects.filter(event_type="CaseEscalated").count() == 2
        assert Case.objects.get(pk=done.pk).escalation_level == 0


def test_two_escalations_holding_the_same_snapshot_move_the_case_once(sw):
    org = sw.world.a.org
    _rule(org)
    case = _open(sw)
    later = timezone.now() + dt.timedelta(days=2)
    with tenant_context(org):
        first, second = Case.objects.get(pk=case.pk), Case.objects.get(pk=case.pk)
        assert cases._escalate_one(first, later) is True
        assert cases._escalate_one(second, later) is False
        assert Case.objects.get(pk=case.pk).escalation_level == 1
        assert cases.cases_escalate_overdue(organization=org, now=later) == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_escalation_runs_escalate_once(sw):
    org = sw.world.a.org
    _rule(org)
    _respond(sw)  # committed: the on-commit ResponseReceived delivery opens the case
    [case] = _cases(org)
    later = timezone.now() + dt.timedelta(days=2)
    barrier, moved, errors = threading.Barrier(2), [], []

    def run():
        try:
            with tenant_context(org):
                barrier.wait()
                moved.extend(cases.cases_escalate_overdue(organization=org, now=later))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert moved == [case.pk]
    with tenant_context(org):
        assert Case.objects.get(pk=case.pk).escalation_level == 1
        assert m.AuditLog.objects.filter(action="case.escalate").count() == 1


def test_escalation_is_on_the_beat_schedule():
    entries = {e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "feedback.cases_escalate" in entries


# --- working a case through the API ----------------------------------------------------------------


def test_status_transitions_and_their_400s(sw, api):
    org = sw.world.a.org
    _rule(org)
    case = _open(sw)
    client = api(sw.world.users["manager"])
    base = f"/api/v1/cases/{case.pk}"

    resp = client.post(f"{base}/resolve/", {"reason": "Called"}, format="json")
    assert resp.status_code == 400 and "status" in resp.json()
    resp = client.post(f"{base}/start/")
    assert resp.status_code == 200 and resp.json()["status"] == "in_progress"
    resp = client.post(f"{base}/start/")
    assert resp.status_code == 400 and "status" in resp.json()
    resp = client.post(f"{base}/resolve/", {}, format="json")
    assert resp.status_code == 400 and "reason" in resp.json()
    resp = client.post(f"{base}/contacted/")
    assert resp.status_code == 200 and resp.json()["customer_contacted_at"]
    resp = client.post(f"{base}/resolve/", {"reason": "Apologised, voucher sent"}, format="json")
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "resolved" and body["resolved_at"]
    assert body["closed_reason"] == "Apologised, voucher sent" and body["overdue"] is False
    resp = client.post(f"{base}/close/", {"reason": "Customer happy"}, format="json")
    assert resp.status_code == 200 and resp.json()["status"] == "closed"
    resp = client.post(f"{base}/close/", {"reason": "again"}, format="json")
    assert resp.status_code == 400 and "status" in resp.json()
    resp = client.post(f"{base}/contacted/")
    assert resp.status_code == 400 and "status" in resp.json()

    with tenant_context(org):
        [event] = m.OutboxEvent.objects.filter(event_type="CaseResolved")
        assert event.payload["case_id"] == case.pk and event.payload["within_sla"] is True
        actions = set(m.AuditLog.objects.filter(object_id=str(case.pk)).values_list("action", flat=True))
        assert {"case.open", "case.start", "case.contacted", "case.resolve", "case.close"} <= actions


def test_open_cases_can_be_closed_directly(sw, api):
    _rule(sw.world.a.org)
    case = _open(sw)
    resp = api(sw.world.users["manager"]).post(
        f"/api/v1/cases/{case.pk}/close/", {"reason": "Duplicate"}, format="json"
    )
    assert resp.status_code == 200 and resp.json()["status"] == "closed"


def test_notes(sw, api):
    _rule(sw.world.a.org)
    case = _open(sw)
    client = api(sw.world.users["manager"])
    url = f"/api/v1/cases/{case.pk}/notes/"
    resp = client.post(url, {"text": "Left a voicemail"}, format="json")
    assert resp.status_code == 201 and resp.json()["author_email"] == "manager@acme.test"
    assert client.post(url, {"text": "  "}, format="json").status_code == 400
    assert [n["text"] for n in client.get(url).json()] == ["Left a voicemail"]
    # Executives may change cases too; employees and evaluators cannot see them.
    assert api(sw.world.users["executive"]).post(url, {"text": "Seen"}, format="json").status_code == 201
    assert api(sw.world.users["evaluator"]).get(url).status_code == 403
    assert api(sw.world.users["employee"]).post(url, {"text": "x"}, format="json").status_code == 403


def test_detail_carries_the_answers(sw, api):
    _rule(sw.world.a.org)
    case = _open(sw)
    body = api(sw.world.users["manager"]).get(f"/api/v1/cases/{case.pk}/").json()
    answers = {a["question_key"]: a for a in body["answers"]}
    assert answers["comment"]["sentiment"] == "negative" and "rude" in answers["comment"]["topics"]
    assert body["location_name"] == "Acme a-n1"


# --- scope ----------------------------------------------------------------------------------------


def test_each_member_sees_only_their_part_of_the_hierarchy(sw, api):
    users, org = sw.world.users, sw.world.a.org
    _rule(org)
    n1, n2, s1 = _open(sw), _open(sw, store="a-n2"), _open(sw, store="a-s1")

    def ids(user, query=""):
        resp = api(user).get(f"/api/v1/cases/{query}")
        assert resp.status_code == 200, resp.content
        return {c["id"] for c in resp.json()["results"]}

    assert ids(users["manager"]) == {n1.pk}
    assert ids(users["regional"]) == {n1.pk, n2.pk}
    assert ids(users["executive"]) == ids(users["admin"]) == {n1.pk, n2.pk, s1.pk}
    assert ids(users["outsider"]) == set()
    assert api(key=sw.world.b.api_key).get("/api/v1/cases/").json()["results"] == []
    assert api(users["manager"]).get(f"/api/v1/cases/{n2.pk}/").status_code == 404
    assert api(users["manager"]).post(f"/api/v1/cases/{n2.pk}/start/").status_code == 404
    assert api(users["outsider"]).get(f"/api/v1/cases/{n1.pk}/").status_code == 404
    assert api(users["employee"]).get("/api/v1/cases/").status_code == 403

    admin = users["admin"]
    assert ids(admin, f"?location={sw.world.a.locations['a-s1'].pk}") == {s1.pk}
    assert ids(admin, "?status=open") == {n1.pk, n2.pk, s1.pk}
    assert ids(admin, "?overdue=true") == set()
    with tenant_context(org):
        Case.objects.filter(pk=n2.pk).update(sla_due_at=timezone.now() - dt.timedelta(minutes=1))
    assert ids(admin, "?overdue=true") == {n2.pk}
    assert ids(admin, "?overdue=false") == {n1.pk, s1.pk}
    assert ids(admin, f"?priority={AlertRule.Priority.HIGH}") == {n1.pk, n2.pk, s1.pk}


# --- alert rules API -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "condition",
    [
        {},
        [],
        "nps<6",
        {"question_type": "nps", "op": "lt", "value": 6},
        {"question_type": "text", "op": "lte", "value": 6},
        {"question_type": "nps", "op": "lte", "value": "six"},
        {"sentiment": "angry"},
        {"topic": ""},
        {"topic": "rude", "sentiment": "negative"},
    ],
)
def test_a_bad_condition_is_a_400_naming_condition(world, api, condition):
    resp = api(world.users["admin"]).post(
        "/api/v1/alert-rules/", {"name": "Bad", "condition": condition}, format="json"
    )
    assert resp.status_code == 400 and "condition" in resp.json(), resp.content


def test_alert_rules_crud(world, api):
    admin = api(world.users["admin"])
    resp = admin.post(
        "/api/v1/alert-rules/",
        {"name": "Detractors", "condition": NPS_LOW, "category": "critical", "priority": 3, "sla_hours": 8},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    rule_id = resp.json()["id"]
    url = f"/api/v1/alert-rules/{rule_id}/"
    assert admin.patch(url, {"condition": {"topic": "wait"}}, format="json").status_code == 200
    assert admin.patch(url, {"condition": {"topic": 5}}, format="json").status_code == 400
    resp = admin.post("/api/v1/alert-rules/", {"name": "Detractors", "condition": NPS_LOW}, format="json")
    assert resp.status_code == 400 and "name" in resp.json()
    assert api(world.users["executive"]).get(url).json()["condition"] == {"topic": "wait"}
    assert api(world.users["executive"]).post("/api/v1/alert-rules/", {}, format="json").status_code == 403
    assert api(world.users["manager"]).get("/api/v1/alert-rules/").status_code == 403
    assert api(world.users["outsider"]).get(url).status_code == 404
    assert admin.delete(url).status_code == 204
    with tenant_context(world.a.org):
        assert m.AuditLog.objects.filter(object_type="feedback.AlertRule").count() == 3


def test_default_rules_install_once(world):
    org = world.a.org
    with tenant_context(org):
        added = cases.alert_rules_install_defaults(organization=org, actor=Actor.system())
        assert len(added) == len(cases.DEFAULT_RULES) >= 3
        assert cases.alert_rules_install_defaults(organization=org, actor=Actor.system()) == []
        assert all(not cases.condition_errors(r.condition) for r in AlertRule.objects.all())


# --- pages ----------------------------------------------------------------------------------------


def test_manager_works_a_case_on_the_pages(sw, client):
    org, users = sw.world.a.org, sw.world.users
    _rule(org)
    case = _open(sw)
    other = _open(sw, store="a-n2")
    with tenant_context(org):
        Case.objects.filter(pk=case.pk).update(sla_due_at=timezone.now() - dt.timedelta(hours=3))
    client.force_login(users["manager"])

    html = client.get("/feedback/cases/").content.decode()
    assert f'data-case-id="{case.pk}"' in html and f'data-case-id="{other.pk}"' not in html
    assert 'data-testid="sla-overdue"' in html
    assert client.get(f"/feedback/cases/{other.pk}/").status_code == 404
    assert client.post(f"/feedback/cases/{other.pk}/start/").status_code == 404

    html = client.get(f"/feedback/cases/{case.pk}/").content.decode()
    assert "The cashier was rude and ignored me" in html
    assert "How likely are you to recommend us?" in html
    assert 'data-testid="case-start"' in html and 'data-testid="resolve-form"' not in html

    assert client.post(f"/feedback/cases/{case.pk}/start/").status_code == 302
    resp = client.post(
        f"/feedback/cases/{case.pk}/notes/", {"text": "Called, no answer"}, HTTP_HX_REQUEST="true"
    )
    assert resp.status_code == 200 and "Called, no answer" in resp.content.decode()
    assert "<html" not in resp.content.decode()  # only the notes section
    resp = client.post(f"/feedback/cases/{case.pk}/notes/", {"text": ""}, HTTP_HX_REQUEST="true")
    assert 'id="note-error"' in resp.content.decode()
    client.post(f"/feedback/cases/{case.pk}/contacted/")
    resp = client.post(f"/feedback/cases/{case.pk}/resolve/", {"reason": ""}, follow=True)
    assert "This field is required." in resp.content.decode()
    resp = client.post(f"/feedback/cases/{case.pk}/resolve/", {"reason": "Voucher sent"}, follow=True)
    html = resp.content.decode()
    assert "Case resolved." in html and 'data-testid="contacted-badge"' in html
    with tenant_context(org):
        fresh = Case.objects.get(pk=case.pk)
        assert fresh.status == "resolved" and fresh.customer_contacted_at is not None
        assert CaseNote.objects.filter(case=fresh).count() == 2  # the note and the resolution
    assert client.get(f"/feedback/cases/{case.pk}/start/").status_code == 405

    client.force_login(users["employee"])
    assert client.get("/feedback/cases/").status_code == 403


def test_complaint_review_is_org_wide_oldest_and_most_critical_first(sw, client):
    org = sw.world.a.org
    _rule(org, name="Low", priority=AlertRule.Priority.NORMAL)
    old_calm = _open(
        sw, {"nps": 3, "comment": "Long wait in the queue"}, store="a-s1", category="stabilizing"
    )
    new_calm = _open(sw, {"nps": 3, "comment": "Too expensive"}, store="a-n2", category="stabilizing")
    critical = _open(sw, {"nps": 1, "comment": "Rude staff, long wait"})
    done = _open(sw, {"nps": 2, "comment": "rude"}, store="a-n2")
    with tenant_context(org):
        Case.objects.filter(pk=old_calm.pk).update(created_at=timezone.now() - dt.timedelta(days=3))
        cases.case_close(organization=org, actor=Actor.system(), case=done, reason="Duplicate")

    client.force_login(sw.world.users["executive"])
    resp = client.get("/feedback/cases/review/")
    assert resp.status_code == 200
    ctx = resp.context
    assert [c.pk for c in ctx["open_cases"]] == [critical.pk, old_calm.pk, new_calm.pk]
    assert [c.pk for c in ctx["recent_cases"]] == [done.pk]
    themes = dict(ctx["themes"])
    assert themes["wait"] == 2 and themes["rude"] == 2 and themes["price"] == 1
    assert ctx["themes"][0][1] == 2
    assert ctx["counts"]["active"] == 3
    html = resp.content.decode()
    assert html.index(f'data-case-id="{critical.pk}"') < html.index(f'data-case-id="{old_calm.pk}"')

    # A store manager gets the same page over their own store only.
    client.force_login(sw.world.users["manager"])
    assert [c.pk for c in client.get("/feedback/cases/review/").context["open_cases"]] == [critical.pk]


# --- query counts ---------------------------------------------------------------------------------


def test_case_lists_run_a_fixed_number_of_queries(sw, client, api):
    org, users = sw.world.a.org, sw.world.users
    _rule(org)
    client.force_login(users["admin"])
    api_client = api(users["admin"])
    urls = ["/feedback/cases/", "/feedback/cases/review/"]

    def counts():
        found = []
        for url in urls:
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(url).status_code == 200
            found.append(len(ctx))
        with CaptureQueriesContext(connection) as ctx:
            assert api_client.get("/api/v1/cases/").status_code == 200
        found.append(len(ctx))
        return found

    for store in ("a-n1", "a-n2"):
        _open(sw, store=store)
    few = counts()
    for store in ("a-n1", "a-n2", "a-s1") * 3:
        _open(sw, store=store)
    assert counts() == few
