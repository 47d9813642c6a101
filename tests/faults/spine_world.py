"""Org A set up so that responses, audits and lesson completions each have derived effects:
an alert rule (a case per detractor), reward rules (points for promoters, audits and lessons),
a gap rule (a lesson assigned when a store's CSAT falls short) and the alignment rollup.

The events are written through the real services, as the API and pages write them."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from audits import audit_services
from audits.models import Audit
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback.models import AlertRule, Case, Response
from feedback.services import Dimensions, response_record
from incentives import ledger
from incentives.models import LedgerTransaction, RewardRule
from learning import models as lm
from learning import progress
from learning.models import GapRule
from tests import factories as f
from tests.audits.sweep_forms import GOOD, make_audit, make_form
from tests.feedback.conftest import make_survey
from tests.learning import factories as lf
from tests.learning.portal_helpers import actor_of, learner_of

SYSTEM = Actor.system()
STORES = ("a-n1", "a-n2", "a-s1")
T, R = RewardRule.Trigger, RewardRule.Recipients


class SpineWorld:
    def __init__(self, world, *, lessons: int):
        self.world, self.t, self.org = world, world.a, world.a.org
        org = self.org
        self.survey, self.version, self.questions = make_survey(
            org, name="faults survey", standard=self.t.standard
        )
        other = f.StandardFactory(organization=org, code="faults-other")
        _form, self.form_version = make_form(org, self.t.standard, other, name="faults form")
        yesterday = (timezone.now() - dt.timedelta(days=1)).date()
        with tenant_context(org):
            AlertRule.objects.create(
                organization=org,
                name="Detractor",
                condition={"question_type": "nps", "op": "lte", "value": 6},
            )
            budget = ledger.budget_create(org=org, name="faults budget")
            ledger.budget_fund(org=org, budget=budget, points=10_000_000, note="faults")
            common = {"budget": budget, "effective_from": yesterday}
            RewardRule.objects.create(
                organization=org, name="promoter", trigger=T.PROMOTER_RESPONSE, recipients=R.NAMED_EMPLOYEE,
                points=10, **common,
            )  # fmt: skip
            RewardRule.objects.create(
                organization=org, name="audit", trigger=T.AUDIT_SCORE, recipients=R.LOCATION_EMPLOYEES,
                points=20, **common,
            )  # fmt: skip
            RewardRule.objects.create(
                organization=org, name="lesson", trigger=T.LESSON_COMPLETED, recipients=R.LEARNER, points=5,
                **common,
            )  # fmt: skip
        gap_lesson = lf.LessonFactory(organization=org, title="Greeting again", standards=[self.t.standard])
        with tenant_context(org):
            GapRule.objects.create(
                organization=org, name="low csat", standard=self.t.standard, subject="location",
                target="location", source="any", threshold=Decimal(60), window_days=30, min_points=5,
                lesson=gap_lesson, cooldown_days=28, holdout_share=Decimal(0),
            )  # fmt: skip
        # One lesson per completion: each completion is its own reward and rollup source.
        employee = self.t.employees["a-n1"]
        self.assignments = [
            lf.AssignmentFactory(
                organization=org, employee=employee, lesson=lf.LessonFactory(organization=org, title=f"L{i}")
            )
            for i in range(lessons)
        ]
        self.learner = learner_of(world, "employee")
        self.actor = actor_of(world, "employee")
        self._stores = itertools.cycle(STORES)

    # --- the events ---------------------------------------------------------------------------------

    def respond(self, i: int) -> None:
        store = next(self._stores)
        nps = (3, 8, 10)[i % 3]  # detractor, passive, promoter
        csat = 1 if i % 2 else 5
        with tenant_context(self.org):
            dims = Dimensions.from_interaction(self.t.interactions[store])
            response_record(
                organization=self.org, actor=SYSTEM, survey=self.survey, source="api", dimensions=dims,
                values={"nps": nps, "csat": csat}, external_id=f"faults-{i}",
            )  # fmt: skip

    def audit(self, i: int) -> None:
        store = STORES[i % len(STORES)]
        audit = make_audit(self.org, self.form_version, GOOD, location=self.t.locations[store])
        with tenant_context(self.org), transaction.atomic():
            audit_services.audit_publish(organization=self.org, actor=SYSTEM, audit=audit)

    def complete(self, i: int) -> None:
        with tenant_context(self.org):
            progress.lesson_complete(
                organization=self.org, actor=self.actor, learner=self.learner, assignment=self.assignments[i]
            )

    # --- what they must have caused, exactly once ------------------------------------------------------

    def outcome(self) -> dict:
        from alignment.models import RollupSource

        with tenant_context(self.org):
            responses = Response.objects.all()
            detractors = set(
                responses.filter(answers__question_key="nps", answers__number__lte=6).values_list(
                    "pk", flat=True
                )
            )
            promoters = responses.filter(answers__question_key="nps", answers__number__gte=9).count()
            audits = Audit.objects.filter(published_at__isnull=False).count()
            completions = lm.Completion.objects.count()
            cases = list(Case.objects.values_list("response_id", flat=True))
            awards = LedgerTransaction.objects.filter(kind="award")
            gap_assignments = lm.Assignment.objects.filter(source=lm.Assignment.Source.RULE)
            return {
                "responses": responses.count(),
                "detractors": detractors,
                "promoters": promoters,
                "audits": audits,
                "completions": completions,
                "case_responses": cases,
                "awards": awards.count(),
                "award_keys": awards.values("key").distinct().count(),
                "gap_assignments": list(gap_assignments.values_list("rule_id", "employee_id")),
                "gap_triggers_assigned": lm.GapTrigger.objects.filter(outcome="assigned").count(),
                "rollup_sources": {
                    kind: RollupSource.objects.filter(kind=kind).count()
                    for kind in ("response", "audit", "completion", "award")
                },
                "deliveries": m.HandlerDelivery.objects.count(),
            }
