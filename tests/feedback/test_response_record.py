"""The one write path for responses: validation, skip logic, copied dimensions, text analytics, event."""

import pytest
from django.core.exceptions import ValidationError

from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.services import RESPONSE_RECEIVED, Dimensions, response_record


def _record(sw, values, **kw):
    org = sw.world.a.org
    interaction = sw.world.a.interactions["a-n1"]
    with tenant_context(org):
        return response_record(
            organization=org,
            actor=Actor.system(),
            survey=sw.survey,
            values=values,
            source="api",
            dimensions=Dimensions.from_interaction(interaction),
            interaction=interaction,
            **kw,
        )


def test_answers_copy_dimensions_and_analyse_text(sw):
    response = _record(
        sw,
        {
            "nps": 3,
            "why_low": "wait",
            "csat": "2",
            "fcr": "no",
            "comment": "The cashier was rude and I waited forever",
        },
    )
    with tenant_context(sw.world.a.org):
        answers = {a.question_key: a for a in fm.Answer.objects.filter(response=response)}
        assert set(answers) == {"nps", "why_low", "csat", "fcr", "comment"}
        assert answers["nps"].number == 3 and answers["fcr"].number == 0
        assert answers["why_low"].choices == ["wait"]
        assert answers["csat"].standard_id == sw.world.a.standard.pk
        comment = answers["comment"]
        assert comment.sentiment == "negative" and comment.sentiment_score < 0
        assert {"rude", "wait", "staff"} <= set(comment.topics)
        loc = sw.world.a.locations["a-n1"]
        assert {a.location_id for a in answers.values()} == {loc.pk}
        assert {a.category for a in answers.values()} == {"critical"}
        assert response.employee_id == sw.world.a.employees["a-n1"].pk
        [event] = m.OutboxEvent.objects.filter(event_type=RESPONSE_RECEIVED)
        assert event.payload["response_ids"] == [response.pk]
        assert event.payload["standard_ids"] == [sw.world.a.standard.pk]


def test_skip_logic_ignores_hidden_answers(sw):
    response = _record(sw, {"nps": 10, "why_low": "staff"})
    with tenant_context(sw.world.a.org):
        assert list(fm.Answer.objects.filter(response=response).values_list("question_key", flat=True)) == [
            "nps"
        ]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"csat": 4}, "nps"),  # required
        ({"nps": 11}, "nps"),
        ({"nps": 7.5}, "nps"),
        ({"nps": "ten"}, "nps"),
        ({"nps": 5, "csat": 0}, "csat"),
        ({"nps": 5, "fcr": "maybe"}, "fcr"),
        ({"nps": 5, "why_low": "price"}, "why_low"),
        ({"nps": 5, "bogus": 1}, "bogus"),
    ],
)
def test_bad_answers_name_the_question_and_store_nothing(sw, values, field):
    with pytest.raises(ValidationError) as exc:
        _record(sw, values)
    assert field in exc.value.message_dict
    with tenant_context(sw.world.a.org):
        assert not fm.Response.objects.exists()
