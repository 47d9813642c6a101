"""Regression tests for what the schema fuzz (test_api_schema_fuzz.py) found, one per finding.

Requests go through the WSGI app as org A's integrator; ``call`` runs the fuzz's checks on the
response (no 5xx, status, content type and body as the schema documents, a 400 names the field,
no traceback).
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Q
from rest_framework import serializers
from rest_framework.fields import empty

from alignment.models import AlignmentScore, Rollup
from alignment.scores import _Missing
from cem.api.urls import router
from cem.models import Employee
from cem.tenancy import tenant_context
from feedback.models import Answer, Case, Survey
from feedback.models import Response as SurveyResponse
from learning.models import Lesson
from tests.security.api_schema import call, load_schema

pytestmark = pytest.mark.django_db


def _first(model, world, *conditions, **filters):
    with tenant_context(world.a.org):
        row = model.objects.filter(*conditions, **filters).order_by("pk").first()
    assert row is not None, f"The seeded org A has no {model.__name__} with {filters or conditions}"
    return row


# --- the schema documents the errors every operation can give -------------------------------------


def _operations():
    for path, item in load_schema().raw_schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def test_every_operation_documents_its_error_responses():
    for path, method, operation in _operations():
        responses = operation["responses"]
        for status in ("401", "403", "429"):
            assert "ErrorDetail" in str(responses[status]["content"]["application/json"]), (method, path)
        if "{id}" in path:
            assert set(responses["404"]["content"]) == {"application/json", "application/problem+json"}
        if method == "delete":
            assert "409" in responses, path
    # Cursor-paged lists answer an unknown cursor with 404.
    assert "404" in load_schema().raw_schema["paths"]["/api/v1/answers/"]["get"]["responses"]


def test_an_id_no_route_matches_is_a_documented_problem_json_404(integrator):
    response = call("GET /api/v1/regions/{id}/", integrator, path_parameters={"id": "1.5"})
    assert response.status_code == 404
    assert response.headers["content-type"][0] == "application/problem+json"


def test_a_cursor_that_is_not_one_is_a_documented_404(integrator):
    response = call("GET /api/v1/answers/", integrator, query={"cursor": "not-a-cursor"})
    assert response.status_code == 404


# --- read-only fields say when they return null or "" ---------------------------------------------


def _model_field(serializer, field):
    """The model field a serializer field reads, and whether a relation on the way may be null."""
    model = getattr(getattr(serializer, "Meta", None), "model", None)
    if model is None or field.source == "*":
        return None, False
    nullable_on_the_way = False
    parts = field.source.split(".")
    for i, part in enumerate(parts):
        try:
            model_field = model._meta.get_field(part)
        except Exception:
            return None, False
        if i < len(parts) - 1:
            if not model_field.is_relation:
                return None, False
            nullable_on_the_way |= model_field.null
            model = model_field.related_model
    return model_field, nullable_on_the_way


def _undeclared(serializer, where, seen):
    if type(serializer) in seen:
        return
    seen.add(type(serializer))
    for name, field in serializer.fields.items():
        if isinstance(field, serializers.ListSerializer):
            yield from _undeclared(field.child, f"{where}.{name}", seen)
            continue
        if isinstance(field, serializers.Serializer):
            yield from _undeclared(field, f"{where}.{name}", seen)
            continue
        if not field.read_only or field.default not in (empty, None):
            continue
        model_field, nullable_on_the_way = _model_field(serializer, field)
        if model_field is None:
            continue
        label = f"{type(serializer).__name__}.{name}"
        blank_choice = model_field.blank and getattr(model_field, "choices", None)
        if isinstance(field, serializers.ChoiceField) and blank_choice and not field.allow_blank:
            yield f"{label}: returns '' but its enum lacks it (allow_blank)"
        if (
            (model_field.null or nullable_on_the_way)
            and not field.allow_null
            and not isinstance(field, serializers.ManyRelatedField | serializers.SerializerMethodField)
        ):
            yield f"{label}: returns null but is not nullable (allow_null)"


def test_read_only_fields_declare_the_null_and_blank_they_return():
    """DRF drops the model's blank=True from read-only fields, and a read-only field over a
    nullable relation is not nullable unless told: the schema then promised what the API broke."""
    seen: set = set()
    found = []
    for prefix, viewset, _basename in router.registry:
        serializer_class = getattr(viewset, "serializer_class", None)
        if serializer_class is not None:
            found += _undeclared(serializer_class(), prefix, seen)
    assert found == []


def test_interaction_without_customer_or_touchpoint_matches_the_schema(integrator, seeded_world):
    created = call(
        "POST /api/v1/interactions/",
        integrator,
        body={
            "external_id": "fuzz-bare",
            "occurred_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
            "location": "a-n1",
            "channel": "in_store",
            "category": "planned",
        },
        media_type="application/json",
    )
    assert created.status_code == 201
    body = call("GET /api/v1/interactions/{id}/", integrator, path_parameters={"id": created.json()["id"]})
    assert body.json()["customer"] is None and body.json()["touchpoint"] is None


def test_webhook_before_any_rotation_matches_the_schema(integrator):
    response = call(
        "POST /api/v1/webhooks/",
        integrator,
        body={"url": "https://example.com/hook", "event_types": ["CaseOpened"]},
        media_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["previous_secret_expires_at"] is None
    call("GET /api/v1/webhooks/{id}/", integrator, path_parameters={"id": response.json()["id"]})


def test_journey_map_without_segment_matches_the_schema(integrator):
    response = call(
        "POST /api/v1/journey-maps/", integrator, body={"name": "fuzz map"}, media_type="application/json"
    )
    assert response.status_code == 201
    assert response.json()["segment_name"] is None


def test_blank_category_and_sentiment_match_the_schema(integrator, seeded_world):
    survey_response = _first(SurveyResponse, seeded_world, category="")
    with tenant_context(seeded_world.a.org):
        assert Answer.objects.filter(response=survey_response, sentiment="").exists()
    call("GET /api/v1/responses/{id}/", integrator, path_parameters={"id": survey_response.pk})
    rollup = _first(Rollup, seeded_world, category="")
    call("GET /api/v1/rollups/{id}/", integrator, path_parameters={"id": rollup.pk})


# --- list actions answering one object; detail lists that are not paged ----------------------------


@pytest.mark.parametrize(
    "label",
    [
        "GET /api/v1/metrics/",
        "GET /api/v1/alignment/rankings/",
        "GET /api/v1/alignment/drilldown/",
        "GET /api/v1/customer-comparisons/",
    ],
)
def test_list_actions_answering_one_object_are_documented_as_one(integrator, seeded_world, label):
    response = call(label, integrator)
    assert response.status_code == 200
    assert isinstance(response.json(), dict)


@pytest.mark.parametrize(
    ("label", "model", "condition"),
    [
        ("GET /api/v1/cases/{id}/notes/", Case, Q(notes__isnull=False)),
        ("GET /api/v1/employees/{id}/assignments/", Employee, Q(assignments__isnull=False)),
        ("GET /api/v1/surveys/{id}/versions/", Survey, Q(versions__isnull=False)),
    ],
)
def test_unpaged_detail_lists_are_documented_unpaged(integrator, seeded_world, label, model, condition):
    row = _first(model, seeded_world, condition)
    response = call(label, integrator, path_parameters={"id": row.pk})
    assert response.status_code == 200
    assert isinstance(response.json(), list) and response.json()


def test_alignment_score_missing_pieces_match_the_schema(integrator, seeded_world):
    """Grouped kinds carry ids and count, not id; a capped kind ends with how many more."""
    score = _first(AlignmentScore, seeded_world)
    missing = _Missing()
    missing.add("standard_without_lesson", "", seeded_world.a.standard.pk)
    for n in range(60):  # past the cap of a kind listed one by one
        missing.add("late_completions", f"late {n}", None)
    with tenant_context(seeded_world.a.org):
        AlignmentScore.objects.filter(pk=score.pk).update(missing=missing.done())
    response = call("GET /api/v1/alignment/scores/{id}/", integrator, path_parameters={"id": score.pk})
    kinds = {entry["kind"]: entry for entry in response.json()["missing"]}
    assert kinds["standard_without_lesson"]["count"] == 1
    assert any("more" in entry for entry in response.json()["missing"])


# --- strings PostgreSQL cannot store are a 400 naming where they are -------------------------------


@pytest.mark.parametrize(
    ("label", "body", "field"),
    [
        ("POST /api/v1/interactions/bulk/", [{"external_id": "x", "location": "a-n1\x00"}], "[0].location"),
        (
            "POST /api/v1/interactions/",
            {"external_id": "x", "location": "a-n1", "attributes": {"note": "\ud800"}},
            "attributes.note",
        ),
        ("POST /api/v1/responses/", {"survey": 1, "external_id": "r\x00"}, "external_id"),
        ("POST /api/v1/responses/bulk/", [{"survey": 1, "answers": {"\ud83d": 1}}], "[0].answers.\ufffd"),
        ("POST /api/v1/journey-maps/", {"name": "map\x00"}, "name"),
    ],
)
def test_nul_and_lone_surrogates_in_json_are_a_400_naming_the_field(integrator, label, body, field):
    response = call(label, integrator, body=body, media_type="application/json")
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("path", "column"),
    [
        ("/api/v1/interactions/bulk/", "external_id,location"),
        ("/api/v1/responses/bulk/", "survey,external_id"),
        ("/api/v1/business-metrics/bulk/", "location,period,period_start,kind,value"),
    ],
)
@pytest.mark.parametrize("content", [b"\xff\xfe\xba not utf-8", b"NUL\x00"])
def test_csv_that_is_not_utf8_or_holds_a_nul_is_a_400(seeded_world, api, path, column, content):
    client = api(key=seeded_world.a.api_key)
    body = column.encode() + b"\n" + content + b"\n"
    for response in (
        client.post(path, data=body, content_type="text/csv"),
        client.post(path, {"file": _upload(body)}, format="multipart"),
    ):
        assert response.status_code == 400, (path, response.status_code, response.content[:200])
        assert response.json()


def _upload(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("rows.csv", content, content_type="text/csv")


# --- moments with an offset PostgreSQL refuses (beyond ±15:59) are taken in UTC ---------------------

FAR_OFFSET = "2020-01-01T00:00:00+18:53"  # valid ISO 8601 and Python; PostgreSQL refuses the offset
OVERFLOW = "9999-12-31T23:00:00-18:00"  # past year 9999 in UTC


@pytest.mark.parametrize(
    ("label", "param"),
    [
        ("GET /api/v1/responses/", "from"),  # django-filter IsoDateTimeFilter
        ("GET /api/v1/interactions/", "occurred_after"),
        ("GET /api/v1/metrics/", "from"),  # feedback.selectors.parse_bound
    ],
)
def test_query_moments_with_a_far_offset_are_read_in_utc(integrator, label, param):
    assert call(label, integrator, query={param: FAR_OFFSET}).status_code == 200
    response = call(label, integrator, query={param: OVERFLOW})
    assert response.status_code == 400
    assert param in response.json()


def test_calibration_trend_bounds_with_a_far_offset_are_read_in_utc(seeded_world, api):
    """Parsed by the view; evaluators read it (the integrator key may not)."""
    client = api(seeded_world.users["evaluator"])
    assert client.get("/api/v1/calibrations/trends/", {"from": FAR_OFFSET}).status_code == 200
    response = client.get("/api/v1/calibrations/trends/", {"to": OVERFLOW})
    assert response.status_code == 400
    assert "to" in response.json()


def test_ingested_moments_with_a_far_offset_are_stored_in_utc(integrator, seeded_world):
    response = call(
        "POST /api/v1/interactions/",
        integrator,
        body={
            "external_id": "fuzz-offset",
            "occurred_at": FAR_OFFSET,
            "location": "a-n1",
            "channel": "in_store",
            "category": "planned",
        },
        media_type="application/json",
    )
    assert response.status_code == 201
    assert response.json()["occurred_at"] == "2019-12-31T05:07:00Z"
    survey = _first(Survey, seeded_world, versions__isnull=False)
    response = call(
        "POST /api/v1/responses/bulk/",
        integrator,
        body=[
            {"survey": survey.pk, "external_id": "fuzz-offset", "submitted_at": FAR_OFFSET},
            {"survey": survey.pk, "external_id": "fuzz-overflow", "submitted_at": OVERFLOW},
        ],
        media_type="application/json",
    )
    results = response.json()["results"]
    assert "submitted_at" not in results[0].get("errors", {})
    assert results[1]["errors"]["submitted_at"] == ["Out of range."]


def test_a_due_date_with_a_far_offset_is_taken_in_utc(seeded_world, api):
    """learning.assignments.parse_due; trainers assign (the integrator key may not)."""
    client = api(seeded_world.users["trainer"])
    lesson = _first(Lesson, seeded_world, status="published")
    body = {
        "lesson": lesson.pk,
        "employees": [seeded_world.a.employees["a-n1"].pk],
        "due_at": "2999-01-01T00:00:00+18:00",
    }
    response = client.post("/api/v1/learning-assignments/", body, format="json")
    assert response.status_code == 201, response.content
    body["due_at"] = OVERFLOW
    response = client.post("/api/v1/learning-assignments/", body, format="json")
    assert response.status_code == 400 and "due_at" in response.json()


# --- a body of a type the operation does not take is a documented 415 -------------------------------


def test_unsupported_media_type_is_a_documented_415(integrator):
    assert all(
        "415" in operation["responses"]
        for _path, _method, operation in _operations()
        if "requestBody" in operation
    )
    response = call(
        "POST /api/v1/regions/",
        {**integrator, "Content-Type": "application/xml"},
        body={"name": "x"},
        media_type="application/json",
    )
    assert response.status_code == 415
