"""Answer rows for metric tests, bulk-created the way response_record stores them (one response each)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from cem.tenancy import tenant_context
from feedback import models as fm

NOW = timezone.now().replace(microsecond=0)


@dataclass
class Spec:
    type: str
    number: float | None = None
    location: str = "a-n1"
    when: dt.datetime | None = None
    extra: dict = field(default_factory=dict)


def scores(qtype: str, values, **kw) -> list[Spec]:
    return [Spec(qtype, v, **kw) for v in values]


def bulk_answers(sw, specs: list[Spec], *, tenant=None) -> list[fm.Answer]:
    """Store the specs in org A (or ``tenant``); location keys name the tenant's stores."""
    t = tenant or sw.world.a
    survey = sw.survey if t is sw.world.a else sw.survey_b
    with tenant_context(t.org):
        version = survey.versions.get()
        questions = {q.type: q for q in fm.Question.objects.filter(version=version)}
        responses = fm.Response.objects.bulk_create(
            [
                fm.Response(
                    organization=t.org,
                    survey=survey,
                    version=version,
                    source="api",
                    submitted_at=s.when or NOW,
                    location=t.locations[s.location] if s.location else None,
                    employee=s.extra.get("employee", t.employees.get(s.location)),
                    channel=t.channel,
                    touchpoint=t.touchpoint,
                    segment=s.extra.get("segment"),
                )
                for s in specs
            ]
        )
        answers = []
        for s, r in zip(specs, responses, strict=True):
            q = questions[s.type]
            answers.append(
                fm.Answer(
                    organization=t.org,
                    response=r,
                    question=q,
                    question_key=q.key,
                    question_type=q.type,
                    standard=s.extra.get("standard"),
                    number=s.number,
                    text=s.extra.get("text", ""),
                    sentiment=s.extra.get("sentiment", ""),
                    topics=s.extra.get("topics", []),
                    survey=survey,
                    submitted_at=r.submitted_at,
                    location=r.location,
                    employee=r.employee,
                    channel=r.channel,
                    touchpoint=r.touchpoint,
                    segment=r.segment,
                )
            )
        return fm.Answer.objects.bulk_create(answers)
