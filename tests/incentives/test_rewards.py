"""Reward rules: each condition, effective dates, Critical double, caps, budget exhaustion (said
once, rule stopped), idempotent delivery, the other triggers, reversal by source."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from cem import models as m
from cem.tasks import events_deliver
from cem.tenancy import tenant_context
from incentives import rewards
from incentives.models import LedgerTransaction, RewardRule
from tests import factories as f
from tests.incentives.rewards_helpers import (
    H_CASE,
    H_LESSON,
    H_QUIZ,
    H_RESPONSE,
    NOW,
    RewardWorld,
    ledger_check,
)

pytestmark = pytest.mark.django_db
T = RewardRule.Trigger
R = RewardRule.Recipients


@pytest.fixture
def rw(world):
    return RewardWorld(world)


def test_promoter_naming_an_employee_earns_the_points_with_a_reason(rw):
    rule = rw.rule(points=10)
    emp = rw.t.employees["a-n1"]
    promoter = rw.respond(nps=10)
    passive = rw.respond(nps=8)
    unnamed = rw.respond(nps=10, employee=None)
    assert rw.run(rw.response_event([promoter, passive, unnamed]), H_RESPONSE)
    [tx] = rw.awards()
    assert tx.rule_id == rule.pk and tx.employee_id == emp.pk
    assert tx.event_id == rewards.source_uuid(rw.org, "response", promoter)
    assert tx.key == f"award:{rule.pk}:{tx.event_id}:{emp.pk}"
    assert tx.note == f"{rule.name}: a customer gave 10/10 and named you"
    assert rw.balance(emp) == 10
    with tenant_context(rw.org):
        assert m.OutboxEvent.objects.filter(event_type="PointsAwarded").count() == 1


def test_same_event_delivered_twice_and_a_second_event_about_the_same_response_award_once(
    rw, django_capture_on_commit_callbacks
):
    rw.rule(points=10)
    emp = rw.t.employees["a-n1"]
    rid = rw.respond(nps=9)
    with django_capture_on_commit_callbacks(execute=True):
        event = rw.response_event([rid])
    assert rw.balance(emp) == 10
    # The handler again (already done), the delivery task again, and a re-sent event.
    assert rw.run(event, H_RESPONSE) is False
    events_deliver.apply(args=(rw.org.pk, event.pk))
    events_deliver.apply(args=(rw.org.pk, event.pk))
    assert rw.run(rw.response_event([rid]), H_RESPONSE) is True
    assert len(rw.awards()) == 1 and rw.balance(emp) == 10


def _other(rw, kind):
    org = rw.org
    if kind == "channel":
        return f.ChannelFactory(organization=org, code="web", name="Web")
    if kind == "touchpoint":
        return f.TouchpointFactory(
            organization=org, channel=rw.t.channel, code="door", category="stabilizing"
        )
    if kind == "standard":
        return f.StandardFactory(organization=org, code="other-std")
    if kind == "location":
        return rw.t.locations["a-n2"]
    if kind == "region":
        return rw.t.regions["south"]
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "condition", ["standard", "channel", "touchpoint", "category", "location", "region", "employee_role"]
)
def test_each_condition_awards_only_when_it_holds(rw, condition):
    emp = rw.t.employees["a-n1"]
    if condition == "category":
        good, bad = {"category": "critical"}, {"category": "planned"}
    elif condition == "employee_role":
        good, bad = {"employee_role": emp.role}, {"employee_role": "agent"}
    else:
        right = {
            "standard": rw.t.standard,
            "channel": rw.t.channel,
            "touchpoint": rw.t.touchpoint,
            "location": rw.t.locations["a-n1"],
            "region": rw.t.regions["north"],
        }[condition]
        good, bad = {condition: right}, {condition: _other(rw, condition)}
    hit = rw.rule(name=f"{condition} holds", **good)
    rw.rule(name=f"{condition} differs", **bad)
    rid = rw.respond(nps=10, csat=5, category="critical")
    rw.run(rw.response_event([rid]), H_RESPONSE)
    assert [tx.rule_id for tx in rw.awards()] == [hit.pk]


def test_response_score_rule_reads_the_answer_linked_to_its_standard(rw):
    rule = rw.rule(trigger=T.RESPONSE_SCORE, min_score=Decimal(5), standard=rw.t.standard, points=3)
    high, low = rw.respond(nps=2, csat=5), rw.respond(nps=10, csat=4)
    rw.run(rw.response_event([high, low]), H_RESPONSE)
    [tx] = rw.awards()
    assert tx.rule_id == rule.pk and tx.event_id == rewards.source_uuid(rw.org, "response", high)


def test_effective_dates_and_active_flag(rw):
    today = NOW.date()
    rw.rule(name="future", effective_from=today + dt.timedelta(days=2))
    rw.rule(
        name="ended",
        effective_from=today - dt.timedelta(days=10),
        effective_until=today - dt.timedelta(days=2),
    )
    rw.rule(name="off", active=False)
    current = rw.rule(name="current", effective_from=today - dt.timedelta(days=1), effective_until=today)
    rw.run(rw.response_event([rw.respond(nps=10)]), H_RESPONSE)
    assert [tx.rule_id for tx in rw.awards()] == [current.pk]


def test_critical_counts_double(rw):
    rw.rule(points=10, critical_multiplier=Decimal(2))
    emp = rw.t.employees["a-n1"]
    critical, planned = rw.respond(nps=10, category="critical"), rw.respond(nps=10, category="planned")
    rw.run(rw.response_event([critical, planned]), H_RESPONSE)
    with tenant_context(rw.org):
        amounts = sorted(
            LedgerTransaction.objects.filter(kind="award", entries__account__kind="wallet").values_list(
                "entries__amount", flat=True
            )
        )
    assert amounts == [10, 20] and rw.balance(emp) == 30


def test_cap_per_person_pays_up_to_the_cap_then_skips_once(rw):
    rule = rw.rule(points=10, cap_points=15, cap_period=RewardRule.CapPeriod.DAY)
    emp = rw.t.employees["a-n1"]
    ids = [rw.respond(nps=10) for _ in range(3)]
    event = rw.response_event(ids)
    rw.run(event, H_RESPONSE)
    assert rw.balance(emp) == 15
    awards = rw.awards()
    assert len(awards) == 2 and "(capped: 5 of 10)" in awards[1].note
    [skip] = rw.skips()
    assert skip.rule_id == rule.pk and skip.reason == "cap reached (15 per day)"
    # Delivered again through a new event: nothing more, and the skip is said once.
    rw.run(rw.response_event(ids), H_RESPONSE)
    assert rw.balance(emp) == 15 and len(rw.skips()) == 1


def test_reversed_awards_do_not_count_against_the_cap(rw):
    rule = rw.rule(points=10, cap_points=10, cap_period=RewardRule.CapPeriod.MONTH)
    emp = rw.t.employees["a-n1"]
    first = rw.respond(nps=10)
    rw.run(rw.response_event([first]), H_RESPONSE)
    with tenant_context(rw.org):
        rewards.award_reverse_for_source(org=rw.org, kind="response", pk=first, note="GDPR erasure")
    rw.run(rw.response_event([rw.respond(nps=10)]), H_RESPONSE)
    assert rw.balance(emp) == 10 and len(rw.awards(rule=rule)) == 2


def test_budget_empty_skips_said_once_and_the_rule_shows_stopped(world):
    rw = RewardWorld(world, budget_points=15)
    rule = rw.rule(points=10)
    emp = rw.t.employees["a-n1"]
    first, second = rw.respond(nps=10), rw.respond(nps=10)
    rw.run(rw.response_event([first, second]), H_RESPONSE)
    assert rw.balance(emp) == 10
    [skip] = rw.skips()
    assert skip.reason == "budget empty" and skip.employee_id == emp.pk
    assert skip.event_id == rewards.source_uuid(rw.org, "response", second)
    rw.run(rw.response_event([first, second]), H_RESPONSE)
    assert len(rw.skips()) == 1 and rw.balance(emp) == 10
    with tenant_context(rw.org):
        rule = RewardRule.objects.select_related("budget").get(pk=rule.pk)
        assert rewards.rule_status(rule) == "stopped: budget empty"


def test_lesson_completed_awards_the_learner_and_not_a_shopper(rw):
    rw.rule(trigger=T.LESSON_COMPLETED, recipients=R.LEARNER, points=5)
    emp = rw.t.employees["a-s1"]
    event = rw.event(
        "LessonCompleted",
        completion_id=41,
        assignment_id=1,
        lesson_id=None,
        version_id=None,
        employee_id=emp.pk,
        user_id=None,
        location_id=rw.t.locations["a-s1"].pk,
        on_time=True,
        source="manual",
    )
    shopper = rw.event(
        "LessonCompleted",
        completion_id=42,
        assignment_id=2,
        lesson_id=None,
        employee_id=None,
        user_id=1,
        location_id=None,
    )
    rw.run(event, H_LESSON)
    rw.run(shopper, H_LESSON)
    assert rw.balance(emp) == 5 and len(rw.awards()) == 1


def test_quiz_first_try_only_on_the_first_try(rw):
    first_rule = rw.rule(trigger=T.QUIZ_PASSED_FIRST_TRY, recipients=R.LEARNER, points=10)
    emp = rw.t.employees["a-n2"]
    common = {
        "quiz_id": 1,
        "lesson_id": None,
        "employee_id": emp.pk,
        "user_id": None,
        "location_id": rw.t.locations["a-n2"].pk,
        "score": "100",
    }
    rw.run(rw.event("QuizPassed", attempt_id=7, attempt_number=2, first_try=False, **common), H_QUIZ)
    assert rw.awards() == []
    rw.run(rw.event("QuizPassed", attempt_id=8, attempt_number=1, first_try=True, **common), H_QUIZ)
    [tx] = rw.awards()
    assert tx.rule_id == first_rule.pk and rw.balance(emp) == 10


def _case(rw, *, assignee=None):
    from feedback.models import Case

    rid = rw.respond(nps=2)
    with tenant_context(rw.org):
        return Case.objects.create(
            organization=rw.org,
            response_id=rid,
            title="detractor",
            location=rw.t.locations["a-n1"],
            assignee=assignee,
            sla_due_at=NOW + dt.timedelta(hours=4),
            status="resolved",
            resolved_at=NOW,
            category="critical",
        )


def _case_event(rw, case, within_sla=True):
    return rw.event(
        "CaseResolved",
        case_id=case.pk,
        response_id=case.response_id,
        rule_id=None,
        location_id=case.location_id,
        employee_id=None,
        escalation_level=0,
        within_sla=within_sla,
        hours_open=1.0,
    )


def test_case_resolved_within_sla_rewards_the_location_managers(rw):
    rw.rule(trigger=T.CASE_RESOLVED_IN_SLA, recipients=R.LOCATION_MANAGERS, points=20, category="critical")
    boss = rw.employee(role="store_manager")
    case = _case(rw)
    rw.run(_case_event(rw, case, within_sla=False), H_CASE)
    assert rw.awards() == []
    rw.run(_case_event(rw, case), H_CASE)
    [tx] = rw.awards()
    assert tx.employee_id == boss.pk and rw.balance(boss) == 20
    assert rw.balance(rw.t.employees["a-n1"]) == 0


def test_case_resolved_within_sla_rewards_the_assignee_as_named(rw):
    rw.rule(trigger=T.CASE_RESOLVED_IN_SLA, recipients=R.NAMED_EMPLOYEE, points=20)
    boss = rw.employee(role="store_manager")
    user = rw.world.users["manager"]
    with tenant_context(rw.org):
        m.Membership.objects.filter(user=user).update(employee=boss)
    rw.run(_case_event(rw, _case(rw, assignee=user)), H_CASE)
    assert rw.balance(boss) == 20


def test_award_reverse_for_source_reverses_every_award_of_a_deleted_response(rw):
    rw.rule(name="promoter", points=10)
    rw.rule(name="whole store", recipients=R.LOCATION_EMPLOYEES, points=4)
    emp = rw.t.employees["a-n1"]
    colleague = rw.employee()
    rid = rw.respond(nps=10)
    rw.run(rw.response_event([rid]), H_RESPONSE)
    assert rw.balance(emp) == 14 and rw.balance(colleague) == 4
    with tenant_context(rw.org):
        done = rewards.award_reverse_for_source(org=rw.org, kind="response", pk=rid, note="GDPR erasure")
        again = rewards.award_reverse_for_source(org=rw.org, kind="response", pk=rid, note="GDPR erasure")
        assert len(done) == 3 and again == []
        assert all(tx.kind == "reversal" and tx.reverses_id for tx in done)
        assert m.OutboxEvent.objects.filter(event_type="PointsReversed").count() == 3
    assert rw.balance(emp) == 0 and rw.balance(colleague) == 0
    assert ledger_check()[0] == 0


def test_rule_shape_errors_name_the_fields():
    errors = rewards.rule_shape_errors(
        trigger=T.LESSON_COMPLETED, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(3), channel=1
    )
    assert set(errors) == {"recipients", "min_score", "channel"}
    assert rewards.rule_shape_errors(
        trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=None
    ) == {"min_score": "This trigger needs a minimum score."}


def test_alignment_rules_are_active(rw):
    rule = rw.rule(trigger=T.ALIGNMENT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(80))
    with tenant_context(rw.org):
        rule = RewardRule.objects.select_related("budget").get(pk=rule.pk)
        # The alignment app publishes monthly store scores (AlignmentMonthScored; see
        # tests/alignment/test_scores_incentives.py for the event end to end).
        assert rewards.rule_status(rule) == "active"
        out = rewards.apply(
            org=rw.org,
            trigger=T.ALIGNMENT_SCORE,
            facts_list=[
                rewards.Facts(
                    kind="alignment",
                    pk="a-n1:2026-05",
                    when=NOW,
                    label="store alignment 85",
                    score=Decimal(85),
                    location_id=rw.t.locations["a-n1"].pk,
                )
            ],
        )
    assert len(out.awarded) == 1
