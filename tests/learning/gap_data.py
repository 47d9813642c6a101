"""Data for the gap and assignment tests: survey answers and audit standard scores on a standard,
written in bulk the way the ingest paths store them, and events shaped like their emitters'."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from django.utils import timezone
from django.utils.text import slugify

from audits.models import Audit, StandardScore
from cem import models as m
from cem.events import emit
from cem.tenancy import tenant_context
from feedback import models as fm
from learning import models as lm
from tests.audits.sweep_forms import make_form
from tests.feedback.conftest import make_survey
from tests.learning.factories import LessonFactory

_RULE_NO = itertools.count(1)
NOW = timezone.now().replace(microsecond=0)


class GapWorld:
    """Org A's survey (CSAT linked to the standard) and audit form, a lesson on the standard."""

    def __init__(self, world, *, name="acme gap"):
        self.world = world
        self.org = world.a.org
        self.std = world.a.standard
        self.survey, self.version, self.questions = make_survey(
            self.org, name=f"{name} survey", standard=self.std
        )
        self.std_b = self._standard(slugify(f"{name}-other"))
        _form, self.form_version = make_form(self.org, self.std, self.std_b, name=f"{name} form")
        self.lesson = LessonFactory(
            organization=self.org, title=f"{name} greeting lesson", standards=[self.std]
        )

    def _standard(self, code):
        from tests import factories as f

        return f.StandardFactory(organization=self.org, code=code)

    def rule(self, **kw) -> lm.GapRule:
        data = {
            "name": f"acme rule {next(_RULE_NO)}",
            "standard": self.std,
            "subject": "location",
            "target": "location",
            "source": "any",
            "threshold": Decimal(60),
            "window_days": 30,
            "min_points": 5,
            "lesson": self.lesson,
            "cooldown_days": 28,
            "holdout_share": Decimal(0),
        }
        data.update(kw)
        with tenant_context(self.org):
            return lm.GapRule.objects.create(organization=self.org, **data)

    def answers(self, values, *, location="a-n1", employee=None, qtype="csat", when=None, standard=None):
        """Survey answers (native scale) linked to the standard, one response each."""
        t = self.world.a
        loc = t.locations[location] if location else None
        emp = employee if employee is not None else t.employees.get(location)
        q = self.questions[qtype]
        std = standard or self.std
        with tenant_context(self.org):
            responses = fm.Response.objects.bulk_create(
                [
                    fm.Response(
                        organization=self.org,
                        survey=self.survey,
                        version=self.version,
                        source="api",
                        submitted_at=when or NOW,
                        location=loc,
                        employee=emp,
                        channel=t.channel,
                        touchpoint=t.touchpoint,
                    )
                    for _ in values
                ]
            )
            fm.Answer.objects.bulk_create(
                [
                    fm.Answer(
                        organization=self.org,
                        response=r,
                        question=q,
                        question_key=q.key,
                        question_type=q.type,
                        standard=std,
                        number=v,
                        survey=self.survey,
                        submitted_at=r.submitted_at,
                        location=loc,
                        employee=emp,
                        channel=t.channel,
                        touchpoint=t.touchpoint,
                    )
                    for r, v in zip(responses, values, strict=True)
                ]
            )
        return [r.pk for r in responses]

    def audits(self, values, *, location="a-n1", employee=None, when=None, standard=None):
        """Published audits with one standard score each (0-100)."""
        t = self.world.a
        loc = t.locations[location] if location else None
        when = when or NOW
        with tenant_context(self.org):
            audits = Audit.objects.bulk_create(
                [
                    Audit(
                        organization=self.org,
                        version=self.form_version,
                        location=loc,
                        employee=employee,
                        status="published",
                        score=v,
                        published_at=when,
                    )
                    for v in values
                ]
            )
            StandardScore.objects.bulk_create(
                [
                    StandardScore(
                        organization=self.org,
                        audit=a,
                        standard=standard or self.std,
                        location=loc,
                        employee=employee,
                        earned=v,
                        possible=100,
                        value=v,
                        published_at=when,
                    )
                    for a, v in zip(audits, values, strict=True)
                ]
            )
        return audits

    def event(self, event_type: str, **payload) -> m.OutboxEvent:
        with tenant_context(self.org):
            return emit(organization=self.org, event_type=event_type, payload=payload)

    def response_event(self, response_ids, *, location="a-n1", employee=None, standard_ids=None):
        t = self.world.a
        emp = employee if employee is not None else t.employees.get(location)
        return self.event(
            "ResponseReceived",
            response_ids=response_ids,
            survey_id=self.survey.pk,
            location_id=t.locations[location].pk if location else None,
            employee_id=emp.pk if emp else None,
            standard_ids=standard_ids if standard_ids is not None else [self.std.pk],
        )

    def audit_event(
        self, event_type="AuditPublished", *, audit=None, location="a-n1", employee=None, standard_ids=None
    ):
        t = self.world.a
        return self.event(
            event_type,
            audit_id=audit.pk if audit else 0,
            location_id=t.locations[location].pk if location else None,
            employee_id=employee.pk if employee else None,
            standard_ids=standard_ids if standard_ids is not None else [self.std.pk],
            score="40.00",
        )


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)
