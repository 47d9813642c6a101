"""Constructed data for the alignment score tests: reference rows (expectations, brand messages,
standards, survey questions, audit items, lessons, reward rules) and rollup rows written with
known sums, so every score has a value computed by hand or with the statistics module."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from django.utils import timezone

from alignment.models import AlignmentSettings, Rollup
from alignment.score_settings import settings_for
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f

_SEQ = itertools.count(1)
DAY = dt.date(2025, 3, 12)  # a Wednesday in March (Q1)


def q(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.0001"))


class ScoreWorld:
    """Org A with its reference data emptied, and helpers to build exactly what a test needs."""

    def __init__(self, world):
        self.world = world
        self.t = world.a
        self.org = world.a.org
        with tenant_context(self.org):
            m.Standard.objects.filter(pk=self.t.standard.pk).update(active=False, expectation=None)
            m.CustomerExpectation.objects.all().delete()
            settings_for(self.org)

    # --- reference ---------------------------------------------------------------------------

    def expectation(self, importance=3, name=None) -> m.CustomerExpectation:
        return f.ExpectationFactory(
            organization=self.org, importance=importance, name=name or f"acme expectation {next(_SEQ)}"
        )

    def message(self, title=None) -> m.BrandMessage:
        return f.BrandMessageFactory(organization=self.org, title=title or f"acme promise {next(_SEQ)}")

    def standard(self, *, expectation=None, message=None, category="", code=None) -> m.Standard:
        return f.StandardFactory(
            organization=self.org,
            code=code or f"acme-std-{next(_SEQ)}",
            expectation=expectation,
            brand_message=message,
            category=category,
        )

    def questions(self, *standards, status="active"):
        from feedback import models as fm

        with tenant_context(self.org):
            survey = fm.Survey.objects.create(
                organization=self.org, name=f"acme survey {next(_SEQ)}", status=status
            )
            version = fm.SurveyVersion.objects.create(organization=self.org, survey=survey, number=1)
            for i, std in enumerate(standards):
                fm.Question.objects.create(
                    organization=self.org,
                    version=version,
                    key=f"q{i}",
                    position=i,
                    type="csat",
                    text={"en": "How was it?"},
                    standard=std,
                )
        return survey

    def items(self, *standards, kind="mystery_shop"):
        from audits import models as am

        with tenant_context(self.org):
            form = am.AuditForm.objects.create(
                organization=self.org, name=f"acme form {next(_SEQ)}", kind=kind
            )
            version = am.AuditFormVersion.objects.create(organization=self.org, form=form, number=1)
            section = am.FormSection.objects.create(organization=self.org, version=version, key="s")
            for i, std in enumerate(standards):
                am.FormItem.objects.create(
                    organization=self.org,
                    version=version,
                    section=section,
                    key=f"i{i}",
                    type="yes_no",
                    standard=std,
                    text={"en": "Done?"},
                )
        return form

    def lesson(self, *standards, title=None):
        from tests.learning.factories import LessonFactory

        return LessonFactory(
            organization=self.org, title=title or f"acme lesson {next(_SEQ)}", standards=list(standards)
        )

    def reward_rule(self, standard, *, since=dt.date(2020, 1, 1), until=None):
        from incentives import ledger
        from incentives.models import RewardRule

        with tenant_context(self.org):
            budget = ledger.budget_create(org=self.org, name=f"acme score budget {next(_SEQ)}")
            return RewardRule.objects.create(
                organization=self.org,
                name=f"acme score rule {next(_SEQ)}",
                trigger=RewardRule.Trigger.AUDIT_SCORE,
                recipients=RewardRule.Recipients.LOCATION_EMPLOYEES,
                points=10,
                min_score=Decimal(80),
                standard=standard,
                budget=budget,
                effective_from=since,
                effective_until=until,
            )

    def lesson_effect(self, lesson, standard, *, control_n=10, control_change=5.0, verdict="effective"):
        from learning.models import LessonEffect

        with tenant_context(self.org):
            return LessonEffect.objects.create(
                organization=self.org,
                lesson=lesson,
                standard=standard,
                computed_at=timezone.now(),
                treated_n=25,
                control_n=control_n,
                treated_change=control_change + 3,
                control_change=control_change,
                difference=3.0,
                ci_low=-1.0,
                ci_high=7.0,
                verdict=verdict,
            )

    def gap_triggers(self, standard, lesson, outcomes, *, location="a-n1", when=None):
        """Triggers created at ``when`` (default: noon of DAY, local): outcomes as (outcome, skip_reason)."""
        from learning.models import GapRule, GapTrigger

        when = when or dt.datetime.combine(DAY, dt.time(12), tzinfo=dt.UTC)
        loc = self.t.locations[location]
        with tenant_context(self.org):
            rule = GapRule.objects.create(
                organization=self.org,
                name=f"acme score gap {next(_SEQ)}",
                standard=standard,
                subject="location",
                target="location",
                threshold=Decimal(60),
                lesson=lesson,
            )
            GapTrigger.objects.bulk_create(
                [
                    GapTrigger(
                        organization=self.org,
                        rule=rule,
                        standard=standard,
                        subject="location",
                        location=loc,
                        score=Decimal(40),
                        points=10,
                        evidence={},
                        outcome=outcome,
                        skip_reason=reason,
                        created_at=when,
                    )
                    for outcome, reason in outcomes
                ]
            )

    def employee(self, location="a-n1", **kw) -> m.Employee:
        return f.EmployeeFactory(
            organization=self.org,
            external_id=f"acme-emp-{next(_SEQ)}",
            current_location=self.t.locations[location],
            **kw,
        )

    def settings(self, **changes) -> AlignmentSettings:
        with tenant_context(self.org):
            row = settings_for(self.org)
            for name, value in changes.items():
                setattr(row, name, value)
            row.save()
            return row

    # --- rollup ----------------------------------------------------------------------------------

    def put(
        self,
        measure,
        values=(),
        *,
        day=DAY,
        location="a-n1",
        employee=None,
        standard=None,
        category="",
        top=0,
        bottom=0,
        n=None,
    ) -> Rollup:
        """One rollup row holding the sums of ``values`` (0-100 points) or top/bottom counts."""
        values = [q(v) for v in values]
        loc = self.t.locations[location] if isinstance(location, str) else location
        emp = self.t.employees[employee] if isinstance(employee, str) else employee
        key = {
            "day": day,
            "location": loc,
            "employee": emp,
            "standard": standard,
            "channel": None,
            "touchpoint": None,
            "segment": None,
            "category": category,
            "measure": measure,
        }
        with tenant_context(self.org):
            row = Rollup.objects.filter(**key).first() or Rollup(organization=self.org, **key)
            row.n += n if n is not None else (len(values) or top + bottom)
            row.total += sum(values, Decimal(0))
            row.sumsq += sum((q(v * v) for v in values), Decimal(0))
            row.top += top
            row.bottom += bottom
            row.save()
            return row
