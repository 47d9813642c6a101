"""Survey builder API: settings, versioned questions, validation naming fields, translations, triggers."""

import pytest

from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback.services import Dimensions, response_record
from feedback.survey_services import SURVEY_PUBLISHED

QUESTIONS = [
    {
        "key": "nps",
        "type": "nps",
        "required": True,
        "text": {"en": "How likely are you to recommend us?", "es": "¿Nos recomendaría?"},
    },
    {
        "key": "why",
        "type": "multi",
        "text": {"en": "Why?", "es": "¿Por qué?"},
        "choices": [
            {"value": "price", "label": {"en": "Price", "es": "Precio"}},
            {"value": "staff", "label": {"en": "Staff", "es": "Personal"}},
        ],
        "show_if": {"question": "nps", "op": "lte", "value": 6},
        "page": 2,
    },
    {"key": "effort", "type": "rating", "text": {"en": "Effort"}, "scale_min": 1, "scale_max": 10},
    {"key": "comment", "type": "text", "text": {"en": "Anything else?"}},
]


@pytest.fixture
def admin(world, api):
    return api(world.users["admin"])


def _create(admin, world, **extra):
    body = {
        "name": "Branch visit",
        "default_locale": "en",
        "locales": ["en", "es"],
        "delivery_channel": "sms",
        "send_delay_minutes": 30,
        "touchpoints": [world.a.touchpoint.pk],
        "channels": [world.a.channel.pk],
        **extra,
    }
    resp = admin.post("/api/v1/surveys/", body, format="json")
    assert resp.status_code == 201, resp.content
    return resp.json()


def _respond(world, survey_id, values):
    org = world.a.org
    with tenant_context(org):
        survey = fm.Survey.objects.get(pk=survey_id)
        return response_record(
            organization=org,
            actor=Actor.system(),
            survey=survey,
            values=values,
            source="api",
            dimensions=Dimensions.from_interaction(world.a.interactions["a-n1"]),
        )


def test_create_with_triggers_and_questions_then_edit_in_place(world, admin):
    data = _create(admin, world, questions=QUESTIONS)
    assert data["status"] == "draft" and data["current_version"] == 1
    assert {(t["channel"], t["touchpoint"]) for t in data["triggers"]} == {
        (world.a.channel.pk, None),
        (None, world.a.touchpoint.pk),
    }
    resp = admin.get(f"/api/v1/surveys/{data['id']}/questions/")
    assert resp.status_code == 200
    version = resp.json()
    assert version["number"] == 1
    qs = {q["key"]: q for q in version["questions"]}
    # Translations stored per locale; page 2 sorts after page 1.
    assert qs["nps"]["text"] == {"en": "How likely are you to recommend us?", "es": "¿Nos recomendaría?"}
    assert qs["why"]["choices"][1] == {"value": "staff", "label": {"en": "Staff", "es": "Personal"}}
    assert [q["key"] for q in version["questions"]] == ["nps", "effort", "comment", "why"]

    # No responses yet: edited in place, ids kept by key.
    edited = [dict(QUESTIONS[0], text={"en": "Recommend us?", "es": "¿Recomendarnos?"}), QUESTIONS[3]]
    resp = admin.put(f"/api/v1/surveys/{data['id']}/questions/", {"questions": edited}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["number"] == 1
    assert {q["key"]: q["id"] for q in resp.json()["questions"]}["nps"] == qs["nps"]["id"]
    with tenant_context(world.a.org):
        assert fm.SurveyVersion.objects.filter(survey_id=data["id"]).count() == 1
        assert m.OutboxEvent.objects.filter(event_type=SURVEY_PUBLISHED).count() == 1
        actions = set(m.AuditLog.objects.values_list("action", flat=True))
    assert {
        "survey.create",
        "survey.triggers_set",
        "survey.version_create",
        "survey.questions_update",
    } <= actions


def test_editing_after_a_response_creates_v2_and_the_response_keeps_v1(world, admin):
    data = _create(admin, world, questions=QUESTIONS)
    response = _respond(world, data["id"], {"nps": 4, "why": ["price"], "comment": "slow"})
    v2_questions = [
        dict(QUESTIONS[0], text={"en": "Would you recommend us?"}),
        {"key": "csat", "type": "csat", "text": {"en": "Satisfied?"}},
        QUESTIONS[3],
    ]
    resp = admin.put(f"/api/v1/surveys/{data['id']}/questions/", v2_questions, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["number"] == 2
    # The same list again changes nothing (no v3).
    resp = admin.put(f"/api/v1/surveys/{data['id']}/questions/", v2_questions, format="json")
    assert resp.json()["number"] == 2

    versions = admin.get(f"/api/v1/surveys/{data['id']}/versions/").json()
    assert [v["number"] for v in versions] == [2, 1]
    assert [q["key"] for q in versions[1]["questions"]] == ["nps", "effort", "comment", "why"]
    response2 = _respond(world, data["id"], {"nps": 9, "csat": 5})
    with tenant_context(world.a.org):
        response.refresh_from_db()
        assert response.version.number == 1 and response2.version.number == 2
        # Reports combine answers across versions by key.
        by_key = fm.Answer.objects.filter(survey_id=data["id"], question_key="nps")
        assert sorted(by_key.values_list("number", flat=True)) == [4, 9]
        assert len(set(by_key.values_list("question_id", flat=True))) == 2
        [_, event2] = m.OutboxEvent.objects.filter(event_type=SURVEY_PUBLISHED).order_by("pk")
        assert event2.payload["number"] == 2 and event2.payload["question_keys"] == ["nps", "csat", "comment"]
    assert admin.get(f"/api/v1/surveys/{data['id']}/").json()["current_version"] == 2
    # An answered survey cannot be deleted (archive instead).
    assert admin.delete(f"/api/v1/surveys/{data['id']}/").status_code == 400
    resp = admin.post(f"/api/v1/surveys/{data['id']}/archive/")
    assert resp.status_code == 200 and resp.json()["status"] == "archived"


def test_key_cannot_change_type_across_versions(world, admin):
    data = _create(admin, world, questions=QUESTIONS[:1])
    _respond(world, data["id"], {"nps": 4})
    resp = admin.put(
        f"/api/v1/surveys/{data['id']}/questions/",
        [{"key": "nps", "type": "text", "text": {"en": "x"}}],
        format="json",
    )
    assert resp.status_code == 400
    assert "questions[0].type" in resp.json()


@pytest.mark.parametrize(
    ("question", "field"),
    [
        ({"key": "nps", "type": "nps", "text": {"en": "again"}}, "questions[1].key"),
        ({"key": "Bad Key", "type": "nps", "text": {"en": "x"}}, "questions[1].key"),
        ({"key": "x", "type": "stars", "text": {"en": "x"}}, "questions[1].type"),
        (
            {"key": "x", "type": "rating", "text": {"en": "x"}, "scale_min": 5, "scale_max": 5},
            "questions[1].scale_max",
        ),
        ({"key": "x", "type": "rating", "text": {"en": "x"}}, "questions[1].scale_max"),
        ({"key": "x", "type": "single", "text": {"en": "x"}, "choices": []}, "questions[1].choices"),
        (
            {
                "key": "x",
                "type": "single",
                "text": {"en": "x"},
                "choices": [{"value": "a", "label": {"en": "A"}}, {"value": "a", "label": {"en": "B"}}],
            },
            "questions[1].choices[1].value",
        ),
        (
            {
                "key": "x",
                "type": "single",
                "text": {"en": "x"},
                "choices": [{"value": "a", "label": {"es": "A"}}],
            },
            "questions[1].choices[0].label",
        ),
        ({"key": "x", "type": "text", "text": {"es": "solo español"}}, "questions[1].text"),
        ({"key": "x", "type": "text", "text": {"en": "x", "fr": "x"}}, "questions[1].text"),
        (
            {
                "key": "x",
                "type": "text",
                "text": {"en": "x"},
                "show_if": {"question": "later", "op": "eq", "value": 1},
            },
            "questions[1].show_if",
        ),
        (
            {
                "key": "x",
                "type": "text",
                "text": {"en": "x"},
                "show_if": {"question": "nps", "op": "gt", "value": 1},
            },
            "questions[1].show_if",
        ),
        (
            {
                "key": "x",
                "type": "text",
                "text": {"en": "x"},
                "show_if": {"question": "nps", "op": "lte", "value": "a"},
            },
            "questions[1].show_if",
        ),
        ({"key": "x", "type": "text", "text": {"en": "x"}, "standard": 999999}, "questions[1].standard"),
    ],
)
def test_question_validation_names_the_field(world, admin, question, field):
    data = _create(admin, world)
    questions = [QUESTIONS[0], question, {"key": "later", "type": "nps", "text": {"en": "later"}}]
    resp = admin.put(f"/api/v1/surveys/{data['id']}/questions/", {"questions": questions}, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()
    with tenant_context(world.a.org):
        assert not fm.SurveyVersion.objects.filter(survey_id=data["id"]).exists()


def test_show_if_must_point_backwards_in_page_order(world, admin):
    data = _create(admin, world)
    # Listed first but on page 2: its condition on a page-1 question is valid.
    questions = [
        {
            "key": "why",
            "type": "text",
            "text": {"en": "Why?"},
            "page": 2,
            "show_if": {"question": "nps", "op": "lte", "value": 6},
        },
        QUESTIONS[0],
    ]
    resp = admin.put(f"/api/v1/surveys/{data['id']}/questions/", questions, format="json")
    assert resp.status_code == 200, resp.content
    assert [q["key"] for q in resp.json()["questions"]] == ["nps", "why"]


def test_other_tenants_standard_and_trigger_targets_are_400(world, admin):
    data = _create(admin, world)
    q = dict(QUESTIONS[0], standard=world.b.standard.pk)
    resp = admin.put(f"/api/v1/surveys/{data['id']}/questions/", [q], format="json")
    assert resp.status_code == 400 and "questions[0].standard" in resp.json()
    resp = admin.patch(
        f"/api/v1/surveys/{data['id']}/", {"touchpoints": [world.b.touchpoint.pk]}, format="json"
    )
    assert resp.status_code == 400 and "touchpoints" in resp.json()


def test_settings_update_triggers_and_activation(world, admin):
    data = _create(admin, world)
    sid = data["id"]
    resp = admin.post(f"/api/v1/surveys/{sid}/activate/")
    assert resp.status_code == 400 and "status" in resp.json()
    resp = admin.patch(
        f"/api/v1/surveys/{sid}/",
        {"locales": ["es"], "allowed_origins": ["https://shop.example.com"], "channels": []},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert body["locales"] == ["en", "es"]  # the default locale is always offered
    assert [(t["channel"], t["touchpoint"]) for t in body["triggers"]] == [(None, world.a.touchpoint.pk)]
    resp = admin.patch(f"/api/v1/surveys/{sid}/", {"allowed_origins": ["javascript:alert(1)"]}, format="json")
    assert resp.status_code == 400 and "allowed_origins" in resp.json()
    resp = admin.patch(f"/api/v1/surveys/{sid}/", {"questions": QUESTIONS}, format="json")
    assert resp.status_code == 400 and "questions" in resp.json()
    resp = admin.post("/api/v1/surveys/", {"name": "Branch visit"}, format="json")
    assert resp.status_code == 400 and "name" in resp.json()
    admin.put(f"/api/v1/surveys/{sid}/questions/", QUESTIONS, format="json")
    assert admin.post(f"/api/v1/surveys/{sid}/activate/").json()["status"] == "active"
    # Nobody answered: deleting is allowed.
    assert admin.delete(f"/api/v1/surveys/{sid}/").status_code == 204


def test_roles_and_tenancy(world, api, sw):
    assert api(world.users["manager"]).get("/api/v1/surveys/").status_code == 200
    resp = api(world.users["manager"]).post("/api/v1/surveys/", {"name": "x"}, format="json")
    assert resp.status_code == 403
    outsider = api(world.users["outsider"])
    names = [s["name"] for s in outsider.get("/api/v1/surveys/").json()["results"]]
    assert names == ["Beta visit"]
    assert outsider.get(f"/api/v1/surveys/{sw.survey.pk}/versions/").status_code == 404
    assert (
        outsider.put(f"/api/v1/surveys/{sw.survey.pk}/questions/", QUESTIONS, format="json").status_code
        == 404
    )
    assert outsider.get(f"/api/v1/survey-versions/{sw.version.pk}/").status_code == 404
    versions = (
        api(world.users["admin"]).get(f"/api/v1/survey-versions/?survey={sw.survey.pk}").json()["results"]
    )
    assert [v["number"] for v in versions] == [1] and len(versions[0]["questions"]) == 6
