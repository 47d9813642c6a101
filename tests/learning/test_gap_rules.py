"""Gap rules: threshold, window, minimum data, cooldown, holdout, max open, dispute withdrawal;
each rule only by relevant new data; handler cost independent of history; idempotent delivery."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cem import models as m
from cem import outbox
from cem.tenancy import tenant_context
from learning import gaps
from learning import models as lm
from tests import factories as f
from tests.learning.factories import AssignmentFactory, LessonFactory
from tests.learning.gap_data import NOW, GapWorld, days_ago

pytestmark = pytest.mark.django_db

H_RESPONSE = "learning.gaps_after_response"
H_AUDIT = "learning.gaps_after_audit"
H_EVAL = "learning.gaps_after_evaluation"
H_RESCORE = "learning.gaps_after_rescore"


@pytest.fixture
def gw(world):
    return GapWorld(world)


def run(gw, event, handler):
    with tenant_context(gw.org):
        return outbox.run_handler(event.pk, handler)


def assignments(gw, **kw):
    with tenant_context(gw.org):
        return list(lm.Assignment.objects.filter(**kw).order_by("pk"))


def triggers(gw, **kw):
    with tenant_context(gw.org):
        return list(lm.GapTrigger.objects.filter(**kw).order_by("pk"))


def test_below_threshold_assigns_every_employee_of_the_location_with_a_plain_reason(gw):
    rule = gw.rule(source="feedback")
    extra = f.EmployeeFactory(
        organization=gw.org, external_id="acme-extra", current_location=gw.world.a.locations["a-n1"]
    )
    ids = gw.answers([2, 2, 2, 2, 3, 2])  # CSAT: mean 2.17/5 → 29/100
    run(gw, gw.response_event(ids), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.outcome == "assigned" and trigger.points == 6 and trigger.rule_id == rule.pk
    assert trigger.evidence["feedback"]["native"] == "2.2/5" and trigger.evidence["feedback"]["n"] == 6
    made = assignments(gw)
    assert {a.employee_id for a in made} == {gw.world.a.employees["a-n1"].pk, extra.pk}
    a = made[0]
    assert a.source == "rule" and a.trigger_id == trigger.pk and a.lesson_id == gw.lesson.pk
    assert a.reason == (
        f"Customers rated {gw.std.title} 2.2/5 at your store over the last 30 days (6 answers)."
    )
    assert (a.due_at - a.assigned_at).days == 7
    with tenant_context(gw.org):
        assert m.OutboxEvent.objects.filter(event_type="LessonAssigned").count() == 2


def test_at_or_above_threshold_is_no_gap(gw):
    gw.rule(source="feedback", threshold=Decimal(50))
    ids = gw.answers([3, 3, 3, 3, 3])  # exactly 50/100: not below
    run(gw, gw.response_event(ids), H_RESPONSE)
    assert triggers(gw) == [] and assignments(gw) == []


def test_window_counts_only_recent_points(gw):
    gw.rule(source="feedback", window_days=30)
    gw.answers([1] * 10, when=days_ago(31))  # bad, but too old
    ids = gw.answers([5, 5, 5, 4, 5])
    run(gw, gw.response_event(ids), H_RESPONSE)
    assert triggers(gw) == []
    wide = gw.rule(source="feedback", window_days=60, name="wide window")
    run(gw, gw.response_event(ids), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.points == 15 and trigger.rule_id == wide.pk


def test_minimum_data_points(gw):
    gw.rule(source="feedback", min_points=5)
    ids = gw.answers([1, 1, 1, 1])
    run(gw, gw.response_event(ids), H_RESPONSE)
    assert triggers(gw) == []
    ids = gw.answers([1])
    run(gw, gw.response_event(ids), H_RESPONSE)
    assert len(triggers(gw, outcome="assigned")) == 1


def test_sources_pool_audits_and_answers_on_0_to_100(gw):
    rule = gw.rule(source="any", threshold=Decimal(50), min_points=4)
    gw.answers([5, 5])  # 100, 100
    [audit, *_] = gw.audits([10, 10, 10])  # pooled mean (200 + 30) / 5 = 46
    run(gw, gw.audit_event(audit=audit), H_AUDIT)
    [trigger] = triggers(gw)
    assert trigger.score == Decimal("46.00") and trigger.points == 5
    assert trigger.evidence["audits"] == {"n": 3, "mean": 10.0}
    reason = assignments(gw)[0].reason
    assert (
        reason.startswith(f"Customers rated {gw.std.title} 5.0/5 and audits scored it 10%")
        and "(2 answers, 3 audits)" in reason
    )
    assert rule.pk == trigger.rule_id


def test_each_scale_is_normalised(gw):
    from feedback import selectors as fs

    gw.answers([0, 10], qtype="nps")  # 0, 100
    gw.answers([1, 7], qtype="ces", location="a-n2")  # 0, 100 (7 = very easy)
    gw.answers([1, 0, 1, 1], qtype="fcr", location="a-s1")
    with tenant_context(gw.org):
        since = days_ago(30)
        loc = gw.world.a.locations
        assert (
            fs.standard_points(standard_id=gw.std.pk, since=since, location_id=loc["a-n1"].pk)["mean"] == 50
        )
        assert (
            fs.standard_points(standard_id=gw.std.pk, since=since, location_id=loc["a-n2"].pk)["mean"] == 50
        )
        fcr = fs.standard_points(standard_id=gw.std.pk, since=since, location_id=loc["a-s1"].pk)
        assert fcr["mean"] == 75 and gaps._native(fcr) == "75% yes"


def test_cooldown_skips_the_same_lesson_within_n_days(gw):
    gw.rule(source="feedback", cooldown_days=28)
    emp = gw.world.a.employees["a-n1"]
    AssignmentFactory(
        organization=gw.org, employee=emp, lesson=gw.lesson, status="completed", assigned_at=days_ago(10)
    )
    ids = gw.answers([1] * 5)
    run(gw, gw.response_event(ids), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.outcome == "skipped" and "cooldown" in trigger.skip_reason
    assert trigger.evidence["skipped"][0]["employee_id"] == emp.pk
    assert len(assignments(gw)) == 1  # only the old one


def test_cooldown_over_assigns_again(gw):
    gw.rule(source="feedback", cooldown_days=28)
    emp = gw.world.a.employees["a-n1"]
    AssignmentFactory(
        organization=gw.org, employee=emp, lesson=gw.lesson, status="completed", assigned_at=days_ago(29)
    )
    run(gw, gw.response_event(gw.answers([1] * 5)), H_RESPONSE)
    assert triggers(gw)[0].outcome == "assigned"


def test_already_open_is_skipped(gw):
    gw.rule(source="feedback", cooldown_days=0)
    emp = gw.world.a.employees["a-n1"]
    AssignmentFactory(organization=gw.org, employee=emp, lesson=gw.lesson, assigned_at=days_ago(40))
    run(gw, gw.response_event(gw.answers([1] * 5)), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.outcome == "skipped" and "already has it open" in trigger.skip_reason
    # The same skip for the same reason is recorded once a day, not once per answer.
    run(gw, gw.response_event(gw.answers([1])), H_RESPONSE)
    assert triggers(gw) == [trigger]


def test_max_open_assignments_is_respected(gw):
    gw.rule(source="feedback")
    emp = gw.world.a.employees["a-n1"]
    with tenant_context(gw.org):
        lm.LearningSettings.objects.create(organization=gw.org, max_open_assignments=2)
    for _ in range(2):
        AssignmentFactory(organization=gw.org, employee=emp, lesson=LessonFactory(organization=gw.org))
    run(gw, gw.response_event(gw.answers([1] * 5)), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.outcome == "skipped" and "2 open assignments" in trigger.skip_reason


def _holdout_rule(gw, want: bool, **kw):
    """A rule whose deterministic draw for store a-n1 today is ``want`` (share 0.5)."""
    subject = gaps.Subject("location", gw.world.a.locations["a-n1"].pk)
    for i in range(50):
        rule = gw.rule(source="feedback", holdout_share=Decimal("0.5"), name=f"acme holdout {want} {i}", **kw)
        if (
            gaps.holdout_draw(rule, subject, NOW) is want
            and gaps.holdout_draw(rule, subject, dt.datetime.now(dt.UTC)) is want
        ):
            return rule
        with tenant_context(gw.org):
            rule.delete()
    raise AssertionError("no rule drew as wanted")


def test_holdout_is_deterministic_and_assigned_after_the_cooldown(gw):
    from learning.gaps import holdouts_release

    rule = _holdout_rule(gw, True, cooldown_days=14)
    subject = gaps.Subject("location", gw.world.a.locations["a-n1"].pk)
    assert all(gaps.holdout_draw(rule, subject, NOW) for _ in range(5))
    with_share_0 = gw.rule(source="feedback", holdout_share=Decimal(0), name="acme never held", active=False)
    assert not gaps.holdout_draw(with_share_0, subject, NOW)

    ids = gw.answers([1] * 5)
    run(gw, gw.response_event(ids), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.outcome == "holdout" and assignments(gw) == []
    assert 13 <= (trigger.holdout_until - trigger.created_at).days <= 14
    # More bad data during the holdout: no second control case, no assignment.
    run(gw, gw.response_event(gw.answers([1] * 2)), H_RESPONSE)
    later = triggers(gw)
    assert [t.outcome for t in later] == ["holdout", "skipped"] and "control group" in later[1].skip_reason
    assert assignments(gw) == []
    # Before its date nothing is released; after it, the still-open gap is assigned.
    with tenant_context(gw.org):
        assert holdouts_release(organization=gw.org, now=NOW + dt.timedelta(days=10)) == []
        # The gap still holds 15 days on (the window reaches back 30 days).
        assert holdouts_release(organization=gw.org, now=NOW + dt.timedelta(days=15)) == [trigger.pk]
        assert holdouts_release(organization=gw.org, now=NOW + dt.timedelta(days=16)) == []
    made = assignments(gw)
    assert len(made) == 1 and made[0].trigger_id == trigger.pk and made[0].source == "rule"
    with tenant_context(gw.org):
        trigger.refresh_from_db()
    assert trigger.outcome == "holdout" and trigger.evidence["released"]["assigned"] == [made[0].pk]


def test_holdout_released_without_assignment_when_the_gap_closed(gw):
    from learning.gaps import holdouts_release

    _holdout_rule(gw, True, cooldown_days=14)
    run(gw, gw.response_event(gw.answers([1] * 5)), H_RESPONSE)
    [trigger] = triggers(gw)
    with tenant_context(gw.org):
        assert holdouts_release(organization=gw.org, now=NOW + dt.timedelta(days=40)) == [trigger.pk]
    with tenant_context(gw.org):
        trigger.refresh_from_db()
    assert trigger.evidence["released"]["gap_closed"] is True and assignments(gw) == []


def test_rules_only_fire_for_their_standard_and_source(gw):
    gw.rule(source="audits")  # audits only: survey data must not trigger it
    other = gw.rule(source="feedback", standard=gw.std_b, name="acme other standard")
    ids = gw.answers([1] * 6)
    run(gw, gw.response_event(ids), H_RESPONSE)
    assert triggers(gw) == []
    # An audit on the other standard does not touch the first rule's standard.
    gw.audits([0] * 6, standard=gw.std_b)
    run(gw, gw.audit_event(standard_ids=[gw.std_b.pk]), H_AUDIT)
    assert triggers(gw) == []  # "other" reads feedback only
    assert other.pk


def test_only_touched_subjects_are_evaluated(gw):
    gw.rule(source="feedback")
    gw.answers([1] * 6, location="a-n2")  # a gap at a-n2, but the event is about a-n1
    ids = gw.answers([5] * 6, location="a-n1")
    run(gw, gw.response_event(ids), H_RESPONSE)
    assert triggers(gw) == []
    # A bulk event spanning stores (location_id None): its own answers name the stores.
    ids = gw.answers([1], location="a-n2")
    run(gw, gw.response_event(ids, location=None), H_RESPONSE)
    [trigger] = triggers(gw)
    assert trigger.location_id == gw.world.a.locations["a-n2"].pk


def test_employee_and_team_rules(gw):
    loc = gw.world.a.locations["a-n1"]
    team = f.TeamFactory(organization=gw.org, location=loc, name="acme floor")
    emp = gw.world.a.employees["a-n1"]
    mate = f.EmployeeFactory(
        organization=gw.org, external_id="acme-mate", current_location=loc, current_team=team
    )
    with tenant_context(gw.org):
        m.Employee.objects.filter(pk=emp.pk).update(current_team=team)
    gw.rule(source="audits", subject="employee", target="employee", name="acme emp rule")
    gw.rule(source="audits", subject="team", target="team", name="acme team rule")
    audits = gw.audits([20] * 5, employee=emp)
    run(gw, gw.audit_event("EvaluationPublished", audit=audits[0], employee=emp), H_EVAL)
    by_subject = {t.subject: t for t in triggers(gw)}
    assert set(by_subject) == {"employee", "team"}
    assert by_subject["employee"].employee_id == emp.pk and by_subject["team"].team_id == team.pk
    made = assignments(gw)
    # The employee got it from the first rule; the team rule skipped them (open) and got the mate.
    assert sorted(a.employee_id for a in made) == sorted([emp.pk, mate.pk])
    assert made[0].reason.endswith("for you over the last 30 days (5 audits).")


def test_redelivered_event_changes_nothing(gw):
    gw.rule(source="feedback")
    event = gw.response_event(gw.answers([1] * 5))
    assert run(gw, event, H_RESPONSE) is True
    assert run(gw, event, H_RESPONSE) is False
    assert len(triggers(gw)) == 1 and len(assignments(gw)) == 1
    # Even a handler called twice outside the bookkeeping assigns once (the open assignment).
    with tenant_context(gw.org):
        from learning import handlers

        handlers.gaps_after_response(event)
    assert len(assignments(gw)) == 1


def test_dispute_rescoring_withdraws_unstarted_assignments_whose_gap_closed(gw):
    gw.rule(source="audits", min_points=3, threshold=Decimal(60))
    audits = gw.audits([40, 40, 70])  # mean 50: a gap
    run(gw, gw.audit_event(audit=audits[0]), H_AUDIT)
    [a] = assignments(gw)
    # A second, started assignment for another store's rule stays untouched.
    with tenant_context(gw.org):
        from audits.models import StandardScore

        StandardScore.objects.filter(audit=audits[0]).update(value=100)  # the dispute's rescoring
    run(gw, gw.audit_event("AuditRescored", audit=audits[0]), H_RESCORE)
    with tenant_context(gw.org):
        a.refresh_from_db()
    assert a.status == "withdrawn" and "dispute" in a.withdrawn_note and "70/100" in a.withdrawn_note
    with tenant_context(gw.org):
        ev = m.OutboxEvent.objects.get(event_type="AssignmentWithdrawn")
    assert ev.payload["assignment_id"] == a.pk


def test_dispute_keeps_started_assignments_and_real_gaps(gw):
    gw.rule(source="audits", min_points=3, threshold=Decimal(60))
    audits = gw.audits([10, 10, 10])
    run(gw, gw.audit_event(audit=audits[0]), H_AUDIT)
    [a] = assignments(gw)
    with tenant_context(gw.org):
        from audits.models import StandardScore

        StandardScore.objects.filter(audit=audits[0]).update(value=40)  # still a gap (20)
    run(gw, gw.audit_event("AuditRescored", audit=audits[0]), H_RESCORE)
    with tenant_context(gw.org):
        a.refresh_from_db()
    assert a.status == "assigned"
    with tenant_context(gw.org):
        StandardScore.objects.filter(audit__in=audits).update(value=100)
        lm.Assignment.objects.filter(pk=a.pk).update(status="in_progress", started_at=NOW)
    run(gw, gw.audit_event("AuditRescored", audit=audits[1]), H_RESCORE)
    with tenant_context(gw.org):
        a.refresh_from_db()
    assert a.status == "in_progress"


def _history(gw, factor: int):
    """Old data and other subjects' data: what a full rescan would have to read."""
    other = gw.world.a.employees["a-s1"]
    gw.answers([1] * (20 * factor), location="a-s1", employee=other)
    gw.answers([1] * (20 * factor), when=days_ago(200))
    gw.audits([5] * (10 * factor), location="a-s1", employee=other)
    gw.audits([5] * (10 * factor), when=days_ago(200))


@pytest.mark.parametrize("kind", ["response", "audit"])
def test_handler_query_count_is_independent_of_history(world, kind):
    counts = []
    for factor, name in ((1, "acme small"), (10, "acme big")):
        gw = GapWorld(world, name=name)
        gw.rule(source="any", name=f"{name} loc", holdout_share=Decimal(0))
        gw.rule(source="any", subject="employee", target="employee", name=f"{name} emp")
        _history(gw, factor)
        if kind == "response":
            event = gw.response_event(gw.answers([1] * 6))
            handler = H_RESPONSE
        else:
            emp = world.a.employees["a-n1"]
            audits = gw.audits([5] * 6, employee=emp)
            event = gw.audit_event(audit=audits[0], employee=emp)
            handler = H_AUDIT
        with tenant_context(gw.org), CaptureQueriesContext(connection) as ctx:
            outbox.run_handler(event.pk, handler)
        counts.append(len(ctx.captured_queries))
        with tenant_context(gw.org):
            # Clean slate for the next round (the next world's rules on another standard).
            assert lm.GapTrigger.objects.filter(rule__standard=gw.std).exists()
            lm.Assignment.objects.all().delete()
            lm.GapTrigger.objects.all().delete()
            lm.GapRule.objects.all().update(active=False)
        world.a.standard = f.StandardFactory(organization=world.a.org, code=f"{name.replace(' ', '-')}-next")
    assert counts[0] == counts[1], counts
    assert counts[0] > 10, counts  # the handler did real work: rules, scores, trigger, assignments


def test_end_to_end_a_poor_audit_assigns_and_an_accepted_dispute_withdraws(
    gw, mailoutbox, django_capture_on_commit_callbacks
):
    """Through the real emitters: audit_publish → AuditPublished → the handler (Celery eager, after
    commit) assigns; a dispute accepted → AuditRescored → the unstarted assignment is withdrawn."""
    from audits import audit_services
    from cem.principals import Actor
    from tests.audits.sweep_forms import make_audit

    gw.rule(source="audits", min_points=1, threshold=Decimal(40))
    poor = {"greeted": "no", "smile": "1", "wait": "300", "id_check": "yes", "upsell": "asked"}
    audit = make_audit(gw.org, gw.form_version, poor, location=gw.world.a.locations["a-n1"])
    with django_capture_on_commit_callbacks(execute=True), tenant_context(gw.org):
        audit_services.audit_publish(organization=gw.org, actor=Actor.system(), audit=audit)
    [a] = assignments(gw)
    assert a.status == "assigned" and a.reason.startswith(f"Audits scored {gw.std.title} 0%")
    with tenant_context(gw.org):
        membership = m.Membership.objects.get(user=gw.world.users["manager"])
        dispute = audit_services.dispute_open(
            organization=gw.org,
            actor=Actor(user_id=gw.world.users["manager"].pk),
            audit=audit,
            item_key="greeted",
            reason="The greeting was on camera.",
            proposed_value="yes",
            membership=membership,
        )
    with django_capture_on_commit_callbacks(execute=True), tenant_context(gw.org):
        audit_services.dispute_accept(organization=gw.org, actor=Actor.system(), dispute=dispute)
    with tenant_context(gw.org):
        a.refresh_from_db()
    assert a.status == "withdrawn" and "now scores 50/100" in a.withdrawn_note


def test_end_to_end_survey_responses_assign_through_response_record(gw, django_capture_on_commit_callbacks):
    """response_record → ResponseReceived → the handler after commit; the fifth poor answer assigns."""
    from cem.principals import Actor
    from feedback.services import Dimensions, response_record

    gw.rule(source="feedback", subject="employee", target="employee", min_points=5)
    emp = gw.world.a.employees["a-n1"]
    with tenant_context(gw.org):
        dims = Dimensions(location_id=gw.world.a.locations["a-n1"].pk, employee_id=emp.pk)
    for i in range(5):
        assert assignments(gw) == [], i
        with django_capture_on_commit_callbacks(execute=True), tenant_context(gw.org):
            response_record(
                organization=gw.org,
                actor=Actor.system(),
                survey=gw.survey,
                values={"nps": 5, "csat": 2},
                source="api",
                dimensions=dims,
            )
    [a] = assignments(gw)
    assert a.employee_id == emp.pk
    assert a.reason == f"Customers rated {gw.std.title} 2.0/5 for you over the last 30 days (5 answers)."


def test_holdout_release_dispatch_assigns_due_holdouts(gw, django_capture_on_commit_callbacks):
    from learning import assignment_tasks

    _holdout_rule(gw, True, cooldown_days=14)
    run(gw, gw.response_event(gw.answers([1] * 5)), H_RESPONSE)
    [trigger] = triggers(gw)
    with tenant_context(gw.org):
        lm.GapTrigger.objects.filter(pk=trigger.pk).update(holdout_until=NOW - dt.timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert assignment_tasks.holdouts_release_dispatch() == 1
        assert assignment_tasks.holdouts_release_dispatch() == 0
    [a] = assignments(gw)
    assert a.trigger_id == trigger.pk
