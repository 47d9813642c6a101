"""Audit rules through the real audit services: publish → AuditPublished → points for the audited
location; a dispute accepted → AuditRescored → the awards reversed (linked transactions), with the
spent points written off or left as a debt as the organization chose; a rescore upwards awards."""

from __future__ import annotations

from decimal import Decimal

import pytest

from audits import audit_services
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from incentives import ledger
from incentives.models import Account, IncentiveSettings, LedgerTransaction, RewardRule
from tests.audits.sweep_forms import GOOD, make_audit, make_form
from tests.incentives.rewards_helpers import RewardWorld, ledger_check

pytestmark = pytest.mark.django_db
T = RewardRule.Trigger
R = RewardRule.Recipients
SYSTEM = Actor.system()


@pytest.fixture
def rw(world):
    return RewardWorld(world)


@pytest.fixture
def version(rw):
    from tests import factories as f

    other = f.StandardFactory(organization=rw.org, code="audit-other")
    _form, version = make_form(rw.org, rw.t.standard, other, name="reward visit form")
    return version


def _publish(rw, version, answers, capture, employee=None):
    audit = make_audit(rw.org, version, answers, location=rw.t.locations["a-n1"], employee=employee)
    with capture(execute=True), tenant_context(rw.org):
        audit_services.audit_publish(organization=rw.org, actor=SYSTEM, audit=audit)
    return audit


def _dispute(rw, audit, capture, *, item="greeted", value="no"):
    manager = rw.world.users["manager"]
    with tenant_context(rw.org):
        membership = m.Membership.objects.get(user=manager)
        dispute = audit_services.dispute_open(
            organization=rw.org,
            actor=Actor(user_id=manager.pk),
            audit=audit,
            item_key=item,
            reason="Re-checked on camera.",
            proposed_value=value,
            membership=membership,
        )
    with capture(execute=True), tenant_context(rw.org):
        audit_services.dispute_accept(organization=rw.org, actor=SYSTEM, dispute=dispute)


def _score(rw, audit):
    with tenant_context(rw.org):
        audit.refresh_from_db()
    return audit.score


def test_excellent_audit_rewards_every_employee_of_the_location(
    rw, version, django_capture_on_commit_callbacks
):
    rule = rw.rule(
        trigger=T.AUDIT_SCORE,
        recipients=R.LOCATION_EMPLOYEES,
        min_score=Decimal(90),
        points=100,
        standard=rw.t.standard,
    )
    colleague = rw.employee()
    away = rw.t.employees["a-n2"]
    audit = _publish(rw, version, GOOD, django_capture_on_commit_callbacks)
    assert _score(rw, audit) == Decimal("100.00")
    awards = rw.awards()
    assert {tx.employee_id for tx in awards} == {rw.t.employees["a-n1"].pk, colleague.pk}
    assert all(
        tx.rule_id == rule.pk and tx.note.startswith(f"{rule.name}: audit #{audit.pk}") for tx in awards
    )
    assert rw.balance(colleague) == 100 and rw.balance(away) == 0


def test_audit_below_the_minimum_awards_nothing(rw, version, django_capture_on_commit_callbacks):
    rw.rule(trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(90), points=100)
    poor = {**GOOD, "greeted": "no"}
    audit = _publish(rw, version, poor, django_capture_on_commit_callbacks)
    assert _score(rw, audit) < 90 and rw.awards() == []


def test_named_employee_audit_rule(rw, version, django_capture_on_commit_callbacks):
    rw.rule(trigger=T.AUDIT_SCORE, recipients=R.NAMED_EMPLOYEE, min_score=Decimal(90), points=30)
    named = rw.employee()
    _publish(rw, version, GOOD, django_capture_on_commit_callbacks, employee=named)
    assert [tx.employee_id for tx in rw.awards()] == [named.pk]


def test_dispute_rescoring_below_the_minimum_reverses_the_awards(
    rw, version, django_capture_on_commit_callbacks
):
    rw.rule(trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(90), points=100)
    emp = rw.t.employees["a-n1"]
    audit = _publish(rw, version, GOOD, django_capture_on_commit_callbacks)
    [award] = rw.awards()
    _dispute(rw, audit, django_capture_on_commit_callbacks)
    assert _score(rw, audit) < 90
    with tenant_context(rw.org):
        [reversal] = LedgerTransaction.objects.filter(kind="reversal")
        assert reversal.reverses_id == award.pk and reversal.rule_id == award.rule_id
        assert "rescored from 100.00" in reversal.note
        budget = Account.objects.get(pk=rw.budget.pk)
    assert rw.balance(emp) == 0 and budget.balance == 10_000
    assert ledger_check()[0] == 0


def test_reversal_of_spent_points_is_written_off_by_default(rw, version, django_capture_on_commit_callbacks):
    rw.rule(trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(90), points=100)
    emp = rw.t.employees["a-n1"]
    audit = _publish(rw, version, GOOD, django_capture_on_commit_callbacks)
    with tenant_context(rw.org):
        ledger.hold(org=rw.org, employee=emp, points=70, note="gift card")
    _dispute(rw, audit, django_capture_on_commit_callbacks)
    with tenant_context(rw.org):
        [reversal] = LedgerTransaction.objects.filter(kind="reversal")
        write_off = Account.objects.get(kind="write_off")
        budget = Account.objects.get(pk=rw.budget.pk)
    assert "70 points already spent: written off" in reversal.note
    assert rw.balance(emp) == 0 and write_off.balance == -70 and budget.balance == 10_000
    assert ledger_check()[0] == 0


def test_reversal_of_spent_points_leaves_a_debt_when_the_organization_allows_it(
    rw, version, django_capture_on_commit_callbacks
):
    with tenant_context(rw.org):
        IncentiveSettings.objects.update_or_create(organization=rw.org, defaults={"allow_debt": True})
    rw.rule(trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(90), points=100)
    emp = rw.t.employees["a-n1"]
    audit = _publish(rw, version, GOOD, django_capture_on_commit_callbacks)
    with tenant_context(rw.org):
        ledger.hold(org=rw.org, employee=emp, points=70, note="gift card")
    _dispute(rw, audit, django_capture_on_commit_callbacks)
    assert rw.balance(emp) == -70
    assert ledger_check()[0] == 0


def test_dispute_lifting_an_audit_over_the_line_awards_once(rw, version, django_capture_on_commit_callbacks):
    rw.rule(trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES, min_score=Decimal(90), points=100)
    emp = rw.t.employees["a-n1"]
    audit = _publish(rw, version, {**GOOD, "greeted": "no"}, django_capture_on_commit_callbacks)
    assert rw.awards() == []
    _dispute(rw, audit, django_capture_on_commit_callbacks, value="yes")
    assert _score(rw, audit) >= 90
    assert len(rw.awards()) == 1 and rw.balance(emp) == 100
