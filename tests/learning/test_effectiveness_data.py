"""Lesson effectiveness end to end on constructed data: gap triggers, completed rule assignments
and holdout triggers, survey answers and audit standard scores before and after → the snapshot
task flags a lesson with a known effect effective (interval containing it), one without an effect
ineffective, and one with too few cases insufficient; recomputing is idempotent and set-based."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cem.tenancy import tenant_context
from learning import analytics_tasks, effect_data, effectiveness
from learning import models as lm
from tests import factories as f
from tests.learning.factories import AssignmentFactory, LessonFactory
from tests.learning.gap_data import GapWorld, days_ago

pytestmark = pytest.mark.django_db

EFFECT = 20.0  # what the effective lesson adds, in score points (0-100)
DRIFT = 6.0  # regression to the mean: everybody's score comes back up this much on its own
TRIGGERED, COMPLETED = days_ago(60), days_ago(55)
BEFORE = (days_ago(75), days_ago(62))  # in the 30 days before the completion
AFTER = (days_ago(50), days_ago(40))  # after it, and before the holdout ends (28 days after the gap)


class Builder:
    def __init__(self, gw: GapWorld):
        self.gw, self.org = gw, gw.org
        self.loc = gw.world.a.locations["a-n2"]
        self.n = 0

    def employee(self):
        self.n += 1
        return f.EmployeeFactory(
            organization=self.org, external_id=f"acme-eff-{self.n}", current_location=self.loc
        )

    def rule(self, lesson, standard, source):
        return self.gw.rule(
            lesson=lesson, standard=standard, source=source, subject="employee", target="employee"
        )

    def trigger(self, rule, emp, outcome):
        with tenant_context(self.org):
            return lm.GapTrigger.objects.create(
                organization=self.org,
                rule=rule,
                standard=rule.standard,
                subject="employee",
                location=self.loc,
                employee=emp,
                score=Decimal(35),
                points=6,
                evidence={},
                outcome=outcome,
                holdout_until=TRIGGERED + dt.timedelta(days=28) if outcome == "holdout" else None,
                created_at=TRIGGERED,
            )

    def treated(self, rule, emp, *, completed_at=COMPLETED, outcome="assigned"):
        trigger = self.trigger(rule, emp, outcome)
        return AssignmentFactory(
            organization=self.org,
            employee=emp,
            lesson=rule.lesson,
            source="rule",
            rule=rule,
            trigger=trigger,
            status="completed",
            assigned_at=TRIGGERED,
            due_at=TRIGGERED + dt.timedelta(days=7),
            completed_at=completed_at,
        )

    def audit_points(self, standard, emp, before: float, after: float):
        for when, v in ((BEFORE[0], before), (BEFORE[1], before), (AFTER[0], after), (AFTER[1], after)):
            self.gw.audits([Decimal(str(v))], location="a-n2", employee=emp, when=when, standard=standard)

    def csat_points(self, standard, emp, before: list[int], after: list[int]):
        self.gw.answers(before[:1], location="a-n2", employee=emp, when=BEFORE[0], standard=standard)
        self.gw.answers(before[1:], location="a-n2", employee=emp, when=BEFORE[1], standard=standard)
        self.gw.answers(after[:1], location="a-n2", employee=emp, when=AFTER[0], standard=standard)
        self.gw.answers(after[1:], location="a-n2", employee=emp, when=AFTER[1], standard=standard)


NOISE = [-4, -2, 0, 2, 4]  # sums to zero: the groups' mean changes are exactly the constructed ones
CSAT_CASES = [  # (before, after) on 1-5; changes on 0-100: +12.5, 0, +25, +12.5, 0 (same in both)
    ([2, 2], [2, 3]),
    ([2, 3], [2, 3]),
    ([1, 2], [2, 3]),
    ([2, 2], [3, 2]),
    ([3, 1], [2, 2]),
]


@pytest.fixture
def built(world):
    gw = GapWorld(world, name="acme eff")
    b = Builder(gw)
    std_audit, std_csat = gw.std, gw.std_b
    effective = LessonFactory(organization=gw.org, title="acme effective lesson", standards=[std_audit])
    useless = LessonFactory(organization=gw.org, title="acme useless lesson", standards=[std_csat])
    thin = LessonFactory(organization=gw.org, title="acme thin lesson", standards=[std_audit])
    r_eff = b.rule(effective, std_audit, "audits")
    r_use = b.rule(useless, std_csat, "feedback")
    r_thin = b.rule(thin, std_audit, "any")

    for i in range(25):  # treated, effective lesson: +DRIFT +EFFECT
        emp = b.employee()
        b.treated(r_eff, emp)
        b.audit_points(std_audit, emp, 30 + i % 7, 30 + i % 7 + DRIFT + EFFECT + NOISE[i % 5])
    for i in range(10):  # control: +DRIFT only
        emp = b.employee()
        b.trigger(r_eff, emp, "holdout")
        b.audit_points(std_audit, emp, 35 + i % 3, 35 + i % 3 + DRIFT + NOISE[i % 5])
    for i in range(25):  # the useless lesson: both groups change alike
        emp = b.employee()
        b.treated(r_use, emp)
        b.csat_points(std_csat, emp, *CSAT_CASES[i % 5])
    for i in range(10):
        emp = b.employee()
        b.trigger(r_use, emp, "holdout")
        b.csat_points(std_csat, emp, *CSAT_CASES[i % 5])
    for _ in range(5):  # too few cases to say anything
        emp = b.employee()
        b.treated(r_thin, emp)
        b.audit_points(std_audit, emp, 40, 70)
    emp = b.employee()
    b.trigger(r_thin, emp, "holdout")
    b.audit_points(std_audit, emp, 40, 40)
    return gw, b, {"effective": effective, "useless": useless, "thin": thin}, (r_eff, r_use, r_thin)


def effects(gw):
    with tenant_context(gw.org):
        return {e.lesson.title: e for e in lm.LessonEffect.objects.select_related("lesson", "standard")}


def test_known_effect_effective_no_effect_ineffective_thin_insufficient(built):
    gw, _b, _lessons, _rules = built
    with tenant_context(gw.org):
        kept = analytics_tasks.lesson_effects_compute(gw.org.pk)
    assert kept == 3
    got = effects(gw)

    eff = got["acme effective lesson"]
    assert eff.verdict == effectiveness.EFFECTIVE
    assert (eff.treated_n, eff.control_n) == (25, 10)
    assert eff.treated_change == pytest.approx(DRIFT + EFFECT, abs=0.3)
    assert eff.control_change == pytest.approx(DRIFT, abs=0.01)
    assert eff.difference == pytest.approx(EFFECT, abs=0.3)
    assert eff.ci_low < EFFECT < eff.ci_high and eff.ci_low > 0
    assert eff.standard_id == gw.std.pk
    assert eff.changes["cases"] == {"treated": 25, "control": 10}
    assert eff.changes["delay_days"] == 5.0

    useless = got["acme useless lesson"]
    assert useless.verdict == effectiveness.INEFFECTIVE
    assert (useless.treated_n, useless.control_n) == (25, 10)
    assert useless.ci_low < 0 < useless.ci_high
    assert useless.treated_change == pytest.approx(10.0)  # (12.5 + 0 + 25 + 12.5 + 0) / 5
    assert useless.control_change == pytest.approx(10.0)

    thin = got["acme thin lesson"]
    assert thin.verdict == effectiveness.INSUFFICIENT
    assert (thin.treated_n, thin.control_n) == (5, 1)
    assert thin.ci_low is None and thin.ci_high is None


def test_windows_sources_and_released_holdouts(built):
    """Points outside the windows, on the other source or after the holdout ended do not count;
    a held-out case trained after its release is not a treated case."""
    gw, b, lessons, (r_eff, _r_use, _r_thin) = built
    with tenant_context(gw.org):
        before = {k: (v[0].treated_change, v[0].control_change) for k, v in effect_data.compute().items()}
    emp = b.employee()
    b.trigger(r_eff, emp, "holdout")
    # Only its before-window has audit points; the feedback answers are on a feedback-only rule's
    # side and the late audits fall after the holdout ended (28 days after the gap) → no change.
    b.gw.audits([Decimal(10)] * 2, location="a-n2", employee=emp, when=BEFORE[0], standard=gw.std)
    b.gw.answers([5, 5], location="a-n2", employee=emp, when=AFTER[0], standard=gw.std)
    b.gw.audits([Decimal(99)] * 3, location="a-n2", employee=emp, when=days_ago(30), standard=gw.std)
    b.gw.audits([Decimal(99)] * 3, location="a-n2", employee=emp, when=days_ago(120), standard=gw.std)
    # A released holdout, trained later: stays a control case, never a treated one.
    emp2 = b.employee()
    b.treated(r_eff, emp2, completed_at=days_ago(20), outcome="holdout")
    b.audit_points(gw.std, emp2, 20, 20 + DRIFT)
    with tenant_context(gw.org):
        after = effect_data.compute()
    eff_key = (lessons["effective"].pk, gw.std.pk)
    effect, detail = after[eff_key]
    assert detail["cases"] == {"treated": 25, "control": 12}
    assert (effect.treated_n, effect.control_n) == (25, 11)  # the first new holdout has no after-data
    assert effect.treated_change == pytest.approx(before[eff_key][0])


def snapshot():
    return {e.pk: (e.lesson_id, e.difference, e.ci_low, e.verdict) for e in lm.LessonEffect.objects.all()}


def test_recompute_is_idempotent_and_drops_pairs_without_rules(built):
    gw, _b, _lessons, _rules = built
    stray = LessonFactory(organization=gw.org, title="acme stray lesson")
    with tenant_context(gw.org):
        lm.LessonEffect.objects.create(
            organization=gw.org,
            lesson=stray,
            standard=gw.std,
            computed_at=days_ago(1),
            verdict="effective",
        )
        effect_data.lesson_effects_compute(organization=gw.org)
        first = snapshot()
        effect_data.lesson_effects_compute(organization=gw.org)
        second = snapshot()
    assert first == second and len(first) == 3
    assert stray.pk not in {v[0] for v in first.values()}


def test_compute_reads_scores_set_based(built):
    """The query count does not grow with the number of cases: one query per source per standard."""
    gw, b, _lessons, (r_eff, _r_use, _r_thin) = built

    def count():
        with tenant_context(gw.org), CaptureQueriesContext(connection) as ctx:
            effect_data.compute()
        return len(ctx.captured_queries)

    base = count()
    for i in range(6):
        emp = b.employee()
        b.treated(r_eff, emp)
        b.audit_points(gw.std, emp, 40, 60 + i)
    assert count() == base <= 8


def test_org_b_sees_nothing_and_dispatch_covers_orgs_with_rules(built, world):
    gw, *_ = built
    with tenant_context(world.b.org):
        assert effect_data.lesson_effects_compute(organization=world.b.org) == 0
        assert not lm.LessonEffect.objects.exists()
    from cem.tenancy import unscoped

    with unscoped():
        assert effect_data.tenants_with_rules() == [gw.org.pk]
    # Beat's dispatcher queues one recompute per organization with rules (eager in tests).
    assert analytics_tasks.lesson_effects_dispatch() == 1
    with tenant_context(gw.org):
        assert lm.LessonEffect.objects.count() == 3
