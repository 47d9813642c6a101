"""A store-visit survey in org A (English + Spanish) and one in org B, on top of the core `world`."""

from dataclasses import dataclass

import pytest

from cem.tenancy import tenant_context
from feedback import models as fm


@dataclass
class SurveyWorld:
    world: object
    survey: fm.Survey
    version: fm.SurveyVersion
    questions: dict[str, fm.Question]
    survey_b: fm.Survey


QUESTIONS = [
    # key, type, required, en, es, extra
    (
        "nps",
        "nps",
        True,
        "How likely are you to recommend us?",
        "¿Qué probabilidad hay de que nos recomiende?",
        {},
    ),
    (
        "csat",
        "csat",
        False,
        "How satisfied were you with your visit?",
        "¿Qué tan satisfecho quedó con su visita?",
        {},
    ),
    ("ces", "ces", False, "How easy was it to find what you needed?", "", {}),
    ("fcr", "fcr", False, "Was your issue resolved?", "¿Se resolvió su problema?", {}),
    (
        "why_low",
        "single",
        False,
        "What went wrong?",
        "¿Qué salió mal?",
        {
            "show_if": {"question": "nps", "op": "lte", "value": 6},
            "choices": [
                {"value": "wait", "label": {"en": "Waiting", "es": "Espera"}},
                {"value": "staff", "label": {"en": "Staff", "es": "Personal"}},
            ],
        },
    ),
    ("comment", "text", False, "Anything else?", "¿Algo más?", {}),
]


def make_survey(org, *, name, touchpoint=None, standard=None) -> tuple:
    with tenant_context(org):
        survey = fm.Survey.objects.create(
            organization=org,
            name=name,
            status=fm.Survey.Status.ACTIVE,
            default_locale="en",
            locales=["en", "es"],
        )
        version = fm.SurveyVersion.objects.create(organization=org, survey=survey, number=1)
        questions = {}
        for position, (key, qtype, required, en, es, extra) in enumerate(QUESTIONS):
            text = {"en": en, **({"es": es} if es else {})}
            questions[key] = fm.Question.objects.create(
                organization=org,
                version=version,
                key=key,
                position=position,
                type=qtype,
                required=required,
                text=text,
                standard=standard if key == "csat" else None,
                **extra,
            )
        if touchpoint is not None:
            fm.SurveyTrigger.objects.create(organization=org, survey=survey, touchpoint=touchpoint)
    return survey, version, questions


@pytest.fixture
def sw(world) -> SurveyWorld:
    survey, version, questions = make_survey(
        world.a.org, name="Store visit", touchpoint=world.a.touchpoint, standard=world.a.standard
    )
    survey_b, _, _ = make_survey(world.b.org, name="Beta visit", touchpoint=world.b.touchpoint)
    return SurveyWorld(world=world, survey=survey, version=version, questions=questions, survey_b=survey_b)
