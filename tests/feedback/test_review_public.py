"""Review: hostile input on the public respondent routes and the feedback API never 500s, and
the limits on public bodies hold."""

from __future__ import annotations

import json
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cem.tenancy import tenant_context, unscoped
from feedback import models as fm


@pytest.fixture
def key_client(sw, api):
    return api(key=sw.world.a.api_key)


def count():
    with unscoped():
        return fm.Response.objects.count()


# --- "²".isdigit() is True but int("²") raises -----------------------------------------------------


def test_response_post_with_a_superscript_digit_survey_is_a_400(sw, key_client):
    resp = key_client.post("/api/v1/responses/", {"survey": "²", "answers": {"nps": 9}}, format="json")
    assert resp.status_code == 400, resp.content
    assert "survey" in resp.json()


def test_bulk_with_a_superscript_digit_survey_is_a_row_error(sw, key_client):
    resp = key_client.post(
        "/api/v1/responses/bulk/", [{"survey": "¹²", "answers": {"nps": 9}}], format="json"
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["error"] == 1


def test_questions_put_with_a_superscript_digit_standard_is_a_400(sw, key_client, world):
    admin_client = Client()
    admin_client.force_login(world.users["admin"])
    body = {"questions": [{"key": "nps", "type": "nps", "text": {"en": "How likely?"}, "standard": "²"}]}
    resp = admin_client.put(
        f"/api/v1/surveys/{sw.survey.pk}/questions/", json.dumps(body), content_type="application/json"
    )
    assert resp.status_code == 400, resp.content


def test_question_editor_op_with_a_superscript_digit_is_not_a_500(sw, world, client):
    client.force_login(world.users["admin"])
    editor = reverse("feedback_survey_questions", args=[sw.survey.pk])
    resp = client.post(editor, {"op": "up-²", "q-TOTAL_FORMS": "0", "q-INITIAL_FORMS": "0"})
    assert resp.status_code == 200


# --- CSV bodies ------------------------------------------------------------------------------------


def _csv(key_client, data: bytes):
    return key_client.post("/api/v1/responses/bulk/", data, content_type="text/csv")


def _csv_file(key_client, data: bytes):
    upload = SimpleUploadedFile("r.csv", data, content_type="text/csv")
    return key_client.post("/api/v1/responses/bulk/", {"file": upload}, format="multipart")


@pytest.mark.parametrize("send", [_csv, _csv_file])
@pytest.mark.parametrize(
    "data",
    [
        "survey,nps\n1,9\n".encode("utf-16"),
        b"survey,comment\n1,caf\xe9\n",
        b"",
        b"survey,nps\n",
        b"\x00\x00\x00",
        b'survey,comment\n1,"' + b"x" * 200_000 + b'"\n',
    ],
    ids=["utf16", "latin1", "empty", "header-only", "nul", "huge-field"],
)
def test_hostile_csv_is_a_4xx_or_empty_result(sw, key_client, send, data):
    resp = send(key_client, data)
    assert resp.status_code in (200, 400), resp.content[:300]
    if resp.status_code == 200:
        assert resp.json()["created"] == 0
    assert count() == 0


def test_submitted_at_far_in_the_past_is_not_a_500(sw, key_client):
    for value in ("0001-01-01T00:00:00+05:00", "0001-01-01T00:00:00", "1000-01-01T00:00:00Z"):
        resp = key_client.post(
            "/api/v1/responses/",
            {"survey": sw.survey.pk, "answers": {"nps": 9}, "submitted_at": value},
            format="json",
        )
        assert resp.status_code in (201, 400), (value, resp.content)
    for value in ("0001-01-01T00:00:00+05:00",):
        resp = key_client.post(
            "/api/v1/responses/bulk/",
            [{"survey": sw.survey.pk, "answers": {"nps": 9}, "submitted_at": value}],
            format="json",
        )
        assert resp.status_code == 200, resp.content
        listed = key_client.get("/api/v1/responses/")
        assert listed.status_code == 200


# --- body limits on the anonymous public routes ------------------------------------------------------


@pytest.fixture
def link(sw):
    with tenant_context(sw.world.a.org):
        return fm.AnonymousLink.objects.create(
            organization=sw.world.a.org, survey=sw.survey, location=sw.world.a.locations["a-n2"]
        )


def test_public_form_refuses_a_huge_body_before_parsing_it(sw, client, link):
    url = f"/r/a/{link.token}/"
    client.get(url)
    resp = client.post(url, {"q-nps": "8", "q-comment": "x" * (2 * 1024 * 1024)})
    assert resp.status_code == 413
    assert count() == 0
    assert client.post(url, {"q-nps": "8", "q-comment": "fine"}).status_code == 200
    assert count() == 1


def test_widget_refuses_a_big_body_by_its_declared_length(sw, client, settings):
    with tenant_context(sw.world.a.org):
        fm.Survey.objects.filter(pk=sw.survey.pk).update(allowed_origins=["https://shop.example"])
    # A body above DATA_UPLOAD_MAX_MEMORY_SIZE would make request.body raise (a 400) had it been read.
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = json.dumps({"answers": {"comment": "x" * 200_000}, "device": "d"})
    resp = client.post(
        f"/r/w/{sw.survey.public_key}/responses",
        body,
        content_type="application/json",
        HTTP_ORIGIN="https://shop.example",
    )
    assert resp.status_code == 413


# --- fuzz: nothing hostile reaches a 500 ----------------------------------------------------------


_FUZZ = hsettings(
    max_examples=int(os.environ.get("FUZZ_N", "40")), deadline=None, suppress_health_check=list(HealthCheck)
)
_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["9", "²", "1e999", "-0", "yes", "wait", "nps", "0001-01-01T00:00:00+05:00", "\x00"]),
)
_json = st.recursive(
    _scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(["nps", "csat", "ces", "fcr", "why_low", "comment", "nope", "1", ""])
_answers = st.one_of(_json, st.dictionaries(_keys, _json, max_size=6))
_row = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"answers": _answers},
        optional={
            "survey": st.one_of(_json, st.just("SURVEY")),
            "external_id": _json,
            "interaction": _json,
            "employee": _json,
            "location": _json,
            "submitted_at": _json,
            "locale": _json,
            "source": _json,
        },
    ),
)


def _sub(value, survey_pk):
    if value == "SURVEY":
        return survey_pk
    if isinstance(value, dict):
        return {k: _sub(v, survey_pk) for k, v in value.items()}
    return value


def test_fuzz_api_posts_never_500(sw, api):
    client = api(key=sw.world.a.api_key)
    client.raise_request_exception = True

    @_FUZZ
    @given(row=_row, many=st.lists(_row, max_size=3))
    def run(row, many):
        one = client.post("/api/v1/responses/", _sub(row, sw.survey.pk), format="json")
        assert one.status_code < 500
        bulk = client.post("/api/v1/responses/bulk/", [_sub(r, sw.survey.pk) for r in many], format="json")
        assert bulk.status_code < 500

    run()


def test_fuzz_question_put_never_500(sw, world):
    client = Client()
    client.force_login(world.users["admin"])
    question = st.fixed_dictionaries(
        {
            "key": st.one_of(_keys, _json),
            "type": st.one_of(st.sampled_from(["nps", "single", "rating"]), _json),
        },
        optional={
            "text": _json,
            "choices": _json,
            "scale_min": _json,
            "scale_max": _json,
            "page": _json,
            "standard": _json,
            "show_if": st.one_of(
                _json,
                st.fixed_dictionaries({"question": _keys}, optional={"op": _json, "value": _json}),
            ),
            "required": _json,
            "help_text": _json,
        },
    )

    @_FUZZ
    @given(body=st.one_of(_json, st.lists(question, max_size=3).map(lambda qs: {"questions": qs})))
    def run(body):
        resp = client.put(
            f"/api/v1/surveys/{sw.survey.pk}/questions/", json.dumps(body), content_type="application/json"
        )
        assert resp.status_code < 500, resp.content[:300]
        resp = client.patch(
            f"/api/v1/surveys/{sw.survey.pk}/", json.dumps(body), content_type="application/json"
        )
        assert resp.status_code < 500, resp.content[:300]

    run()


def test_fuzz_widget_never_500(sw):
    with tenant_context(sw.world.a.org):
        fm.Survey.objects.filter(pk=sw.survey.pk).update(allowed_origins=["https://shop.example"])
    client = Client()
    token = client.get(f"/r/w/{sw.survey.public_key}/survey.json", HTTP_ORIGIN="https://shop.example").json()[
        "device"
    ]

    @_FUZZ
    @given(answers=_answers, lang=_json, device=st.one_of(st.just(token), _json), raw=st.binary(max_size=40))
    def run(answers, lang, device, raw):
        url = f"/r/w/{sw.survey.public_key}/responses"
        body = json.dumps({"answers": answers, "lang": lang, "device": device})
        for data in (body, raw):
            resp = client.post(url, data, content_type="application/json", HTTP_ORIGIN="https://shop.example")
            assert resp.status_code < 500
        resp = client.get(
            f"/r/w/{sw.survey.public_key}/survey.json",
            {"lang": str(lang)[:50], "device": str(device)[:300]},
            HTTP_ORIGIN="https://shop.example",
        )
        assert resp.status_code < 500

    run()


def test_fuzz_public_form_never_500(sw, link):
    from tests.feedback.test_respondent import make_invitation

    _inv, inv_url = make_invitation(sw)
    field = st.one_of(st.text(max_size=20), st.sampled_from(["9", "²", "yes", "wait", "staff", "\x00", ""]))
    form = st.dictionaries(
        st.one_of(
            st.sampled_from([f"q-{k}" for k in ("nps", "csat", "fcr", "why_low", "comment", "zz")]),
            st.sampled_from(["state", "lang", "nav"]),
        ),
        st.one_of(field, st.lists(field, max_size=3)),
        max_size=6,
    )

    @_FUZZ
    @given(data=form, token=st.text(max_size=60))
    def run(data, token):
        client = Client()
        for url in (f"/r/a/{link.token}/", inv_url, f"/r/u/{token or 'x'}/"):
            resp = client.post(url, data)
            assert resp.status_code < 500
            resp = client.get(url, {k: v for k, v in data.items() if k == "lang" and isinstance(v, str)})
            assert resp.status_code < 500

    run()
