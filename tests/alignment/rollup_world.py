"""Raw data of every kind the rollup reads, written the way the ingest paths and services store it,
for the rollup tests: responses with metric, rating and standard-linked answers, shop visits and
evaluations with standard scores, interactions, lesson completions, points awards."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal

from audits.models import Audit, StandardScore
from cem import models as m
from cem.tenancy import tenant_context, unscoped
from feedback import models as fm
from incentives import ledger
from incentives.models import RewardRule
from learning import models as lm
from tests import factories as f
from tests.incentives.ledger_helpers import funded_budget
from tests.learning.factories import LessonFactory
from tests.learning.gap_data import NOW, GapWorld

# Nepal is UTC+05:45: a quarter-hour offset moves events across local midnight at odd hours.
ZONE = "Asia/Kathmandu"


class RollupWorld(GapWorld):
    """GapWorld plus: two rating questions (scales 1-8 on the other standard, and 0-32, whose
    1/32 steps end in a 5 at the fifth decimal, on the standard), a lesson tagged with both
    standards and one with none, a second channel with a Planned touchpoint, a segment, an
    employee with no workplace, a short assignment of a-n1's employee to a-n2 around today,
    and reward rules (one on the standard) drawing on a funded budget."""

    def __init__(self, world, *, name="acme rollup", zone=ZONE):
        super().__init__(world, name=name)
        t = world.a
        with unscoped():
            m.Organization.objects.filter(pk=self.org.pk).update(time_zone=zone)
            self.org.refresh_from_db()
        self.tz = zoneinfo.ZoneInfo(zone)
        today = NOW.astimezone(self.tz).date()
        with tenant_context(self.org):
            self.questions["rating8"] = fm.Question.objects.create(
                organization=self.org, version=self.version, key="rating8", position=20, type="rating",
                scale_min=1, scale_max=8, text={"en": "Rate the advice"}, standard=self.std_b,
            )  # fmt: skip
            self.questions["rating32"] = fm.Question.objects.create(
                organization=self.org, version=self.version, key="rating32", position=21, type="rating",
                scale_min=0, scale_max=32, text={"en": "Rate the greeting"}, standard=self.std,
            )  # fmt: skip
            self.questions["rating_open"] = fm.Question.objects.create(
                organization=self.org, version=self.version, key="rating_open", position=22, type="rating",
                text={"en": "Rate us"}, standard=self.std,
            )  # a rating with no scale: counted nowhere on 0-100  # fmt: skip
            self.lessons = {
                "std": self.lesson,
                "both": LessonFactory(
                    organization=self.org, title=f"{name} both lesson", standards=[self.std, self.std_b]
                ),
                "none": LessonFactory(organization=self.org, title=f"{name} untagged lesson"),
            }
            self.channel2 = f.ChannelFactory(organization=self.org, code=f"{name}-phone".replace(" ", "-"))
            self.touchpoint2 = f.TouchpointFactory(
                organization=self.org,
                channel=self.channel2,
                code=f"{name}-call".replace(" ", "-"),
                category=m.InteractionCategory.PLANNED,
            )
            self.segment = f.SegmentFactory(organization=self.org)
            self.nomad = f.EmployeeFactory(
                organization=self.org, external_id=f"{name}-nomad", current_location=None
            )
            m.EmployeeAssignment.objects.create(
                organization=self.org,
                employee=t.employees["a-n1"],
                location=t.locations["a-n2"],
                start_date=today - dt.timedelta(days=1),
                end_date=today + dt.timedelta(days=1),
            )
            budget = funded_budget(self.org, 10**6, name=f"{name} budget")
            self.rules = [
                RewardRule.objects.create(
                    organization=self.org,
                    name=f"{name} rule {i}",
                    trigger=RewardRule.Trigger.LESSON_COMPLETED,
                    recipients=RewardRule.Recipients.LEARNER,
                    points=10,
                    budget=budget,
                    effective_from=dt.date(2026, 1, 1),
                    standard=std,
                )
                for i, std in enumerate((self.std, None))
            ]
        self.locations = [t.locations["a-n1"], t.locations["a-n2"], t.locations["a-s1"], None]
        self.employees = [t.employees["a-n1"], t.employees["a-n2"], self.nomad, None]
        self.dims = [  # (channel, touchpoint, category)
            (t.channel, t.touchpoint, m.InteractionCategory.CRITICAL),
            (self.channel2, self.touchpoint2, m.InteractionCategory.PLANNED),
            (None, None, ""),
        ]

    # --- raw data --------------------------------------------------------------------------------

    def response(self, answers, *, location=0, employee=0, when=None, dims=0, segment=False) -> int:
        """One response with ``answers`` = [(question key, number)], dimensions copied on each answer."""
        when = when or NOW
        channel, touchpoint, category = self.dims[dims]
        common = {
            "organization": self.org,
            "submitted_at": when,
            "location": self.locations[location],
            "employee": self.employees[employee],
            "channel": channel,
            "touchpoint": touchpoint,
            "segment": self.segment if segment else None,
            "category": category,
        }
        with tenant_context(self.org):
            r = fm.Response.objects.create(survey=self.survey, version=self.version, source="api", **common)
            seen = set()
            rows = []
            for key, number in answers:
                if key in seen:
                    continue  # one answer per question
                seen.add(key)
                q = self.questions[key]
                rows.append(
                    fm.Answer(
                        response=r, question=q, question_key=q.key, question_type=q.type, standard=q.standard,
                        number=number, survey=self.survey, **common,
                    )
                )  # fmt: skip
            fm.Answer.objects.bulk_create(rows)
        return r.pk

    def erase(self, response_id: int) -> None:
        with tenant_context(self.org):
            fm.Answer.objects.filter(response_id=response_id).delete()
            fm.Response.objects.filter(pk=response_id).delete()

    def audit(self, score, standard_values, *, location=0, employee=0, when=None, interaction=None) -> Audit:
        """A published shop visit, or with ``interaction`` an evaluation of it; [(standard, value)]."""
        when = when or NOW
        loc, emp = self.locations[location], self.employees[employee]
        with tenant_context(self.org):
            audit = Audit.objects.create(
                organization=self.org, version=self.form_version, location=loc, employee=emp,
                status="published", score=score, published_at=when, interaction=interaction,
            )  # fmt: skip
            StandardScore.objects.bulk_create(
                StandardScore(
                    organization=self.org,
                    audit=audit,
                    standard=std,
                    location=loc,
                    employee=emp,
                    earned=value or 0,
                    possible=100,
                    value=value,
                    published_at=when,
                )
                for std, value in dict(standard_values).items()
            )
        return audit

    def rescore(self, audit: Audit, score, value, *, standard=None) -> None:
        """New overall score, and ``value`` for its standard scores (only ``standard``'s if given)."""
        with tenant_context(self.org):
            Audit.objects.filter(pk=audit.pk).update(score=score)
            scores = StandardScore.objects.filter(audit=audit)
            if standard is not None:
                scores = scores.filter(standard=standard)
            scores.update(value=value)

    def interaction(self, *, location=0, employees=(), when=None, dims=0) -> m.Interaction:
        """An interaction (always at a store) with ``employees`` linked in the order given."""
        channel, touchpoint, category = self.dims[dims]
        channel = channel or self.dims[0][0]  # an interaction always has a channel; no touchpoint is fine
        with tenant_context(self.org):
            i = m.Interaction.objects.create(
                organization=self.org, external_id=f"acme-rollup-{uuid.uuid4().hex[:12]}",
                location=self.locations[location] or self.locations[0], channel=channel,
                touchpoint=touchpoint, category=category, occurred_at=when or NOW,
            )  # fmt: skip
            for e in employees:
                if self.employees[e] is not None:
                    m.InteractionEmployee.objects.get_or_create(
                        organization=self.org, interaction=i, employee=self.employees[e]
                    )
        return i

    def completion(self, lesson: str, *, on_time, location=0, employee=0, when=None) -> int:
        emp = self.employees[employee] or self.nomad
        lesson_obj = self.lessons[lesson]
        with tenant_context(self.org):
            c = lm.Completion.objects.create(
                organization=self.org, lesson=lesson_obj, version=lesson_obj.current_version, employee=emp,
                location=self.locations[location], completed_at=when or NOW, on_time=on_time,
            )  # fmt: skip
        return c.pk

    def award(self, points: int, *, employee=0, rule=0):
        emp = self.employees[employee] or self.nomad
        with tenant_context(self.org):
            return ledger.award(
                org=self.org, rule=self.rules[rule], event_id=uuid.uuid4(), employee=emp, points=points
            )

    def reverse(self, tx) -> None:
        with tenant_context(self.org):
            ledger.reverse(org=self.org, transaction=tx, note="acme: awarded in error")


def sums(org, **filters) -> tuple[int, Decimal]:
    from alignment.models import Rollup

    with tenant_context(org):
        rows = Rollup.objects.filter(**filters)
        return sum(r.n for r in rows), sum((r.total for r in rows), Decimal(0))
