"""Survey builder pages: create a survey and its questions through the forms, errors, versions, 404s."""

import pytest
from django.urls import reverse

from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.services import Dimensions, response_record


def _login(client, world, persona="admin"):
    client.force_login(world.users[persona])
    return client


def _html(resp) -> str:
    assert resp.status_code == 200, (resp.status_code, resp.content[:500])
    return resp.content.decode()


QUESTION_FIELDS = (
    "key",
    "type",
    "required",
    "page",
    "text_en",
    "text_es",
    "choices",
    "scale_min",
    "scale_max",
    "show_if_question",
    "show_if_op",
    "show_if_value",
    "standard",
)


def _formset(rows, op="save") -> dict:
    data = {
        "q-TOTAL_FORMS": str(len(rows)),
        "q-INITIAL_FORMS": "0",
        "q-MIN_NUM_FORMS": "0",
        "q-MAX_NUM_FORMS": "200",
        "op": op,
    }
    for i, row in enumerate(rows):
        for name in QUESTION_FIELDS:
            value = row.get(name, "")
            if name == "required":
                if value:
                    data[f"q-{i}-required"] = "on"
                continue
            data[f"q-{i}-{name}"] = "" if value is None else str(value)
    return data


ROWS = [
    {
        "key": "nps",
        "type": "nps",
        "required": True,
        "page": 1,
        "text_en": "Recommend us?",
        "text_es": "¿Recomendaría?",
    },
    {
        "key": "why",
        "type": "single",
        "page": 1,
        "text_en": "Why?",
        "text_es": "¿Por qué?",
        "choices": "price | Price | Precio\nstaff | Staff | Personal",
        "show_if_question": "nps",
        "show_if_op": "lte",
        "show_if_value": "6",
    },
    {"key": "effort", "type": "rating", "page": 2, "text_en": "Effort", "scale_min": 1, "scale_max": 7},
]


def test_create_survey_and_questions_through_the_browser(world, client):
    _login(client, world)
    html = _html(client.get(reverse("feedback_surveys")))
    assert 'data-testid="create-survey"' in html
    html = _html(client.get(reverse("feedback_survey_create")))
    assert 'data-testid="survey-form"' in html and "<script>" not in html
    resp = client.post(
        reverse("feedback_survey_create"),
        {
            "name": "Checkout survey",
            "default_locale": "en",
            "locales": "en, es",
            "delivery_channel": "email",
            "send_delay_minutes": "15",
            "reminder_after_days": "",
            "expires_after_days": "5",
            "allowed_origins": "https://shop.example.com",
            "touchpoints": [str(world.a.touchpoint.pk)],
        },
    )
    assert resp.status_code == 302, resp.content[:2000]
    with tenant_context(world.a.org):
        survey = fm.Survey.objects.get(name="Checkout survey")
        assert survey.reminder_after_days is None and survey.locales == ["en", "es"]
        assert [t.touchpoint_id for t in survey.triggers.all()] == [world.a.touchpoint.pk]
    editor = reverse("feedback_survey_questions", args=[survey.pk])
    assert resp["Location"] == editor

    # Add rows with the editor's add button (htmx posts the same form), then reorder and save.
    html = _html(client.post(editor, _formset([], op="add"), HTTP_HX_REQUEST="true"))
    assert 'data-testid="question-0"' in html and 'name="q-0-text_es"' in html
    html = _html(client.post(editor, _formset([ROWS[2], ROWS[0], ROWS[1]], op="down-0")))
    assert html.index('value="nps"') < html.index('value="effort"')
    html = _html(client.post(editor, _formset([ROWS[0], ROWS[1], ROWS[2], {}], op="remove-3")))
    assert 'data-testid="question-3"' not in html

    with tenant_context(world.a.org):
        standard_id = world.a.standard.pk
    rows = [dict(ROWS[0], standard=standard_id), ROWS[1], ROWS[2]]
    resp = client.post(editor, _formset(rows))
    assert resp.status_code == 302, resp.content.decode()[:3000]
    with tenant_context(world.a.org):
        [version] = fm.SurveyVersion.objects.filter(survey=survey)
        questions = {q.key: q for q in fm.Question.objects.filter(version=version)}
        assert questions["nps"].text == {"en": "Recommend us?", "es": "¿Recomendaría?"}
        assert questions["nps"].standard_id == standard_id and questions["nps"].required
        assert questions["why"].choices == [
            {"value": "price", "label": {"en": "Price", "es": "Precio"}},
            {"value": "staff", "label": {"en": "Staff", "es": "Personal"}},
        ]
        assert questions["why"].show_if == {"question": "nps", "op": "lte", "value": "6"}
        assert (questions["effort"].page, questions["effort"].scale_max) == (2, 7)

    html = _html(client.get(reverse("feedback_survey_detail", args=[survey.pk])))
    assert 'data-testid="version-row"' in html and "Recommend us?" in html
    # The editor shows the saved questions again.
    html = _html(client.get(editor))
    assert 'value="Recommend us?"' in html and "price | Price | Precio" in html

    # Activate through the status form.
    resp = client.post(reverse("feedback_survey_status", args=[survey.pk]), {"action": "activate"})
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        survey.refresh_from_db()
        assert survey.status == "active"


def test_editing_an_answered_survey_creates_a_version_shown_in_history(sw, client):
    world = sw.world
    with tenant_context(world.a.org):
        response_record(
            organization=world.a.org,
            actor=Actor.system(),
            survey=sw.survey,
            values={"nps": 9},
            source="api",
            dimensions=Dimensions(location_id=world.a.locations["a-n1"].pk),
        )
    _login(client, world)
    editor = reverse("feedback_survey_questions", args=[sw.survey.pk])
    resp = client.post(editor, _formset([ROWS[0]]))
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        assert list(fm.SurveyVersion.objects.filter(survey=sw.survey).values_list("number", flat=True)) == [
            2,
            1,
        ]
    html = _html(client.get(reverse("feedback_survey_detail", args=[sw.survey.pk])))
    assert html.count('data-testid="version-row"') == 2


@pytest.mark.parametrize(
    ("row", "error_field"),
    [
        ({"key": "x", "type": "nps", "text_es": "solo"}, "q-1-text_en"),
        ({"key": "x", "type": "rating", "text_en": "x", "scale_min": 5, "scale_max": 2}, "q-1-scale_max"),
        ({"key": "x", "type": "single", "text_en": "x", "choices": ""}, "q-1-choices"),
        (
            {
                "key": "x",
                "type": "text",
                "text_en": "x",
                "show_if_question": "later",
                "show_if_op": "eq",
                "show_if_value": "1",
            },
            "q-1-show_if_question",
        ),
        ({"key": "nps", "type": "text", "text_en": "dup"}, "q-1-key"),
        ({"key": "Not a slug!", "type": "text", "text_en": "x"}, "q-1-key"),
    ],
)
def test_question_errors_are_shown_on_the_field(world, client, row, error_field):
    _login(client, world)
    with tenant_context(world.a.org):
        survey = fm.Survey.objects.create(organization=world.a.org, name="Err", locales=["en", "es"])
    editor = reverse("feedback_survey_questions", args=[survey.pk])
    later = {"key": "later", "type": "nps", "text_en": "Later"}
    resp = client.post(editor, _formset([ROWS[0], row, later]))
    assert resp.status_code == 400
    html = resp.content.decode()
    assert f'data-testid="error-{error_field}"' in html, html[:5000]
    with tenant_context(world.a.org):
        assert not fm.SurveyVersion.objects.filter(survey=survey).exists()


def test_settings_errors_are_shown(world, client):
    _login(client, world)
    data = {
        "name": "",
        "default_locale": "english!",
        "locales": "en",
        "delivery_channel": "email",
        "send_delay_minutes": "15",
        "expires_after_days": "5",
    }
    resp = client.post(reverse("feedback_survey_create"), data)
    html = resp.content.decode()
    assert resp.status_code == 200 and 'data-testid="error-name"' in html
    resp = client.post(reverse("feedback_survey_create"), dict(data, name="Ok"))
    assert 'data-testid="error-default_locale"' in resp.content.decode()
    with tenant_context(world.a.org):
        assert not fm.Survey.objects.exists()


def test_edit_settings_and_triggers(sw, client):
    world = sw.world
    _login(client, world)
    url = reverse("feedback_survey_edit", args=[sw.survey.pk])
    html = _html(client.get(url))
    assert 'value="Store visit"' in html
    resp = client.post(
        url,
        {
            "name": "Store visit 2",
            "default_locale": "en",
            "locales": "en, es",
            "delivery_channel": "sms",
            "send_delay_minutes": "5",
            "reminder_after_days": "2",
            "expires_after_days": "3",
            "channels": [str(world.a.channel.pk)],
        },
    )
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        survey = fm.Survey.objects.get(pk=sw.survey.pk)
        assert survey.name == "Store visit 2" and survey.delivery_channel == "sms"
        assert [(t.channel_id, t.touchpoint_id) for t in survey.triggers.all()] == [
            (world.a.channel.pk, None)
        ]


def test_permissions_and_outsider(sw, client):
    world = sw.world
    _login(client, world, "manager")
    assert client.get(reverse("feedback_surveys")).status_code == 200
    assert client.get(reverse("feedback_survey_detail", args=[sw.survey.pk])).status_code == 200
    assert client.get(reverse("feedback_survey_create")).status_code == 403
    assert client.get(reverse("feedback_survey_questions", args=[sw.survey.pk])).status_code == 403
    _login(client, world, "outsider")
    html = _html(client.get(reverse("feedback_surveys")))
    assert "Store visit" not in html and "Beta visit" in html
    for name in ("feedback_survey_detail", "feedback_survey_edit", "feedback_survey_questions"):
        assert client.get(reverse(name, args=[sw.survey.pk])).status_code == 404
        assert client.post(reverse(name, args=[sw.survey.pk]), _formset([ROWS[0]])).status_code in (404, 405)
    resp = client.post(reverse("feedback_survey_status", args=[sw.survey.pk]), {"action": "archive"})
    assert resp.status_code == 404
    with tenant_context(world.a.org):
        assert fm.Survey.objects.get(pk=sw.survey.pk).status == "active"
        assert fm.SurveyVersion.objects.filter(survey=sw.survey).count() == 1
