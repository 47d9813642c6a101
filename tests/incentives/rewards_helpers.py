"""Set-up for the reward-rule and recognition tests: budgets, rules, survey responses written the
way the ingest paths store them, events shaped like their emitters', and the handlers run."""

from __future__ import annotations

import datetime as dt
import io
import itertools

from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from cem import models as m
from cem import outbox
from cem.events import emit
from cem.tenancy import tenant_context
from feedback import models as fm
from incentives import ledger
from incentives.models import Account, LedgerTransaction, RewardRule, RewardSkip
from tests.feedback.conftest import make_survey

_NO = itertools.count(1)
NOW = timezone.now().replace(microsecond=0)
YESTERDAY = (NOW - dt.timedelta(days=1)).date()

H_RESPONSE = "incentives.rewards_after_response"
H_AUDIT = "incentives.rewards_after_audit"
H_EVAL = "incentives.rewards_after_evaluation"
H_RESCORE = "incentives.rewards_after_rescore"
H_LESSON = "incentives.rewards_after_lesson"
H_QUIZ = "incentives.rewards_after_quiz"
H_CASE = "incentives.rewards_after_case"


class RewardWorld:
    """Org A with a funded budget and a survey (NPS + CSAT on the world's standard)."""

    def __init__(self, world, *, budget_points=10_000):
        self.world = world
        self.t = world.a
        self.org = world.a.org
        with tenant_context(self.org):
            self.budget = ledger.budget_create(org=self.org, name=f"rewards budget {next(_NO)}")
            if budget_points:
                ledger.budget_fund(org=self.org, budget=self.budget, points=budget_points, note="seed")
        self.survey, self.version, self.questions = make_survey(
            self.org, name=f"reward survey {next(_NO)}", standard=self.t.standard
        )

    def rule(self, **kw) -> RewardRule:
        data = {
            "name": f"reward rule {next(_NO)}",
            "trigger": RewardRule.Trigger.PROMOTER_RESPONSE,
            "recipients": RewardRule.Recipients.NAMED_EMPLOYEE,
            "points": 10,
            "budget": self.budget,
            "effective_from": YESTERDAY,
        }
        data.update(kw)
        with tenant_context(self.org):
            return RewardRule.objects.create(organization=self.org, **data)

    def respond(
        self,
        *,
        nps=10,
        csat=None,
        location="a-n1",
        employee="default",
        channel=None,
        touchpoint=None,
        category="",
        when=None,
    ) -> int:
        """One response (NPS and optionally CSAT answers, denormalised like the ingest paths)."""
        loc = self.t.locations[location] if location else None
        emp = self.t.employees.get(location) if employee == "default" else employee
        dims = {
            "location": loc,
            "employee": emp,
            "channel": channel or self.t.channel,
            "touchpoint": touchpoint or self.t.touchpoint,
            "category": category,
        }
        when = when or NOW
        with tenant_context(self.org):
            r = fm.Response.objects.create(
                organization=self.org,
                survey=self.survey,
                version=self.version,
                source="api",
                submitted_at=when,
                **dims,
            )
            answers = []
            for key, value in (("nps", nps), ("csat", csat)):
                if value is None:
                    continue
                q = self.questions[key]
                answers.append(
                    fm.Answer(
                        organization=self.org,
                        response=r,
                        question=q,
                        question_key=q.key,
                        question_type=q.type,
                        standard=q.standard,
                        number=value,
                        survey=self.survey,
                        submitted_at=when,
                        **dims,
                    )
                )
            fm.Answer.objects.bulk_create(answers)
        return r.pk

    def event(self, event_type: str, **payload) -> m.OutboxEvent:
        with tenant_context(self.org):
            return emit(organization=self.org, event_type=event_type, payload=payload)

    def response_event(self, response_ids) -> m.OutboxEvent:
        return self.event(
            "ResponseReceived",
            response_ids=list(response_ids),
            survey_id=self.survey.pk,
            location_id=None,
            employee_id=None,
            standard_ids=[self.t.standard.pk],
        )

    def run(self, event, handler) -> bool:
        with tenant_context(self.org):
            return outbox.run_handler(event.pk, handler)

    def awards(self, **kw) -> list[LedgerTransaction]:
        with tenant_context(self.org):
            return list(LedgerTransaction.objects.filter(kind="award", **kw).order_by("pk"))

    def skips(self, **kw) -> list[RewardSkip]:
        with tenant_context(self.org):
            return list(RewardSkip.objects.filter(**kw).order_by("pk"))

    def balance(self, employee) -> int:
        with tenant_context(self.org):
            wallet = Account.objects.filter(kind="wallet", employee=employee).first()
            return wallet.balance if wallet else 0

    def employee(self, location="a-n1", **kw) -> m.Employee:
        from tests import factories as f

        return f.EmployeeFactory(
            organization=self.org,
            external_id=f"acme-extra-{next(_NO)}",
            current_location=self.t.locations[location],
            **kw,
        )


def ledger_check() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ledger_check", stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, err.getvalue() + str(exc)
    except SystemExit as exc:
        return int(exc.code or 0), err.getvalue() + out.getvalue()
    return 0, out.getvalue()
