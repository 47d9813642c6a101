"""Responses API: one POST through response_record, bulk set-based with per-row results, reads."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from cem import models as m
from cem.tenancy import tenant_context
from feedback import models as fm
from feedback import response_ingest
from feedback.services import RESPONSE_RECEIVED


@pytest.fixture
def key_client(sw, api):
    return api(key=sw.world.a.api_key)


def _events(org, event_type=RESPONSE_RECEIVED):
    with tenant_context(org):
        return list(m.OutboxEvent.objects.filter(event_type=event_type).order_by("pk"))


def test_single_post_copies_interaction_dimensions_and_is_idempotent(sw, key_client):
    world = sw.world
    body = {
        "survey": sw.survey.pk,
        "answers": {"nps": 3, str(sw.questions["why_low"].pk): "wait", "comment": "The cashier was rude"},
        "interaction": "acme-int-a-n1",
        "external_id": "r-1",
        "locale": "es",
    }
    resp = key_client.post("/api/v1/responses/", body, format="json")
    assert resp.status_code == 201, resp.content
    data = resp.json()
    assert data["source"] == "api" and data["locale"] == "es" and data["version"] == sw.version.pk
    assert data["location"] == world.a.locations["a-n1"].pk
    assert data["employee"] == world.a.employees["a-n1"].pk
    assert data["touchpoint"] == world.a.touchpoint.pk and data["category"] == "critical"
    answers = {a["question_key"]: a for a in data["answers"]}
    assert answers["why_low"]["choices"] == ["wait"]
    assert answers["comment"]["sentiment"] == "negative" and "rude" in answers["comment"]["topics"]

    again = key_client.post("/api/v1/responses/", dict(body, answers={"nps": 10}), format="json")
    assert again.status_code == 200 and again.json()["id"] == data["id"]
    assert len(_events(world.a.org)) == 1


def test_single_post_ivr_with_employee_and_location(sw, key_client):
    world = sw.world
    body = {
        "survey": sw.survey.pk,
        "answers": {"nps": 9, "fcr": "yes"},
        "employee": "acme-emp-a-s1",
        "location": "a-s1",
        "source": "ivr",
        "submitted_at": "2026-01-02T09:30:00",
    }
    resp = key_client.post("/api/v1/responses/", body, format="json")
    assert resp.status_code == 201, resp.content
    data = resp.json()
    assert data["source"] == "ivr" and data["external_id"] is None
    assert (
        data["employee"] == world.a.employees["a-s1"].pk and data["location"] == world.a.locations["a-s1"].pk
    )
    assert data["submitted_at"].startswith("2026-01-02T09:30:00")


def test_single_post_writes_response_answers_event_and_audit_in_one_statement(
    sw, key_client, django_capture_on_commit_callbacks
):
    world = sw.world
    body = {
        "survey": sw.survey.pk,
        "answers": {"nps": 3, str(sw.questions["why_low"].pk): "wait", "comment": "The cashier was rude"},
        "interaction": "acme-int-a-n1",
        "external_id": "r-one",
    }
    with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as kicks:
        resp = key_client.post("/api/v1/responses/", body, format="json", HTTP_X_REQUEST_ID="req-one")
    assert resp.status_code == 201, resp.content
    tables = ("feedback_response", "feedback_answer", "cem_outboxevent", "cem_auditlog")
    writes = [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().startswith(("INSERT", "UPDATE", "WITH")) and any(t in q["sql"] for t in tables)
    ]
    assert len(writes) == 1 and writes[0].lstrip().startswith("WITH ins AS"), writes
    assert len(kicks) == 1  # the outbox row is handed to the workers after commit
    data = resp.json()
    # The 201 body is built from what was written, not read back: it must match a later read.
    assert key_client.get(f"/api/v1/responses/{data['id']}/").json() == data
    with tenant_context(world.a.org):
        stored = fm.Response.objects.get(pk=data["id"])
        assert stored.created_at.isoformat().replace("+00:00", "Z") == data["created_at"]
        answers = {a.question_key: a for a in stored.answers.all()}
        assert answers["comment"].sentiment == "negative" and "rude" in answers["comment"].topics
        assert answers["why_low"].choices == ["wait"]
        assert answers["nps"].location_id == world.a.locations["a-n1"].pk
        assert answers["nps"].submitted_at == stored.submitted_at
        [event] = _events(world.a.org)
        assert (event.aggregate_type, event.aggregate_id) == ("Response", str(stored.pk))
        assert event.payload == {
            "response_ids": [stored.pk],
            "survey_id": sw.survey.pk,
            "location_id": world.a.locations["a-n1"].pk,
            "employee_id": world.a.employees["a-n1"].pk,
            "standard_ids": sorted({a.standard_id for a in answers.values() if a.standard_id}),
        }
        [log] = m.AuditLog.objects.filter(action="response.record")
        assert (log.object_type, log.object_id, log.request_id) == (
            "feedback.Response",
            str(stored.pk),
            "req-one",
        )
        assert log.actor_api_key_id is not None and log.actor_user_id is None
        assert log.changes == {"survey": sw.survey.pk, "source": "api", "answers": 3}


def test_single_post_loses_an_external_id_race_without_writing(sw, key_client, monkeypatch):
    """A concurrent request stored the same external_id after our look-up: 200 with its id, nothing new."""
    body = {"survey": sw.survey.pk, "answers": {"nps": 9}, "external_id": "race-1"}
    first = key_client.post("/api/v1/responses/", body, format="json").json()
    real_init = response_ingest._Resolver.__init__

    def blind(self, rows):
        real_init(self, rows)
        self.existing = {}  # as if the other request had not committed yet at look-up time

    monkeypatch.setattr(response_ingest._Resolver, "__init__", blind)
    again = key_client.post("/api/v1/responses/", dict(body, answers={"nps": 1}), format="json")
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    with tenant_context(sw.world.a.org):
        assert fm.Response.objects.count() == 1 and fm.Answer.objects.count() == 1
        assert m.AuditLog.objects.filter(action="response.record").count() == 1
    assert len(_events(sw.world.a.org)) == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"answers": {"nps": 11}}, "answers.nps"),
        ({"answers": {"csat": 4}}, "answers.nps"),  # required
        ({"answers": {"nps": 5, "bogus": 1}}, "answers.bogus"),
        ({"answers": {}}, "answers"),
        ({"survey": 999999}, "survey"),
        ({"interaction": "nope"}, "interaction"),
        ({"employee": "nope"}, "employee"),
        ({"location": "nope"}, "location"),
        ({"locale": "fr"}, "locale"),
        ({"source": "email"}, "source"),
        ({"submitted_at": "yesterday"}, "submitted_at"),
        ({"submitted_at": "2999-01-01T00:00:00Z"}, "submitted_at"),
        ({"colour": "red"}, "non_field_errors"),
    ],
)
def test_single_post_errors_name_the_field(sw, key_client, patch, field):
    body = {"survey": sw.survey.pk, "answers": {"nps": 5}, **patch}
    resp = key_client.post("/api/v1/responses/", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in resp.json(), resp.json()
    with tenant_context(sw.world.a.org):
        assert not fm.Response.objects.exists()


def test_other_tenants_survey_is_unknown(sw, api):
    resp = api(key=sw.world.b.api_key).post(
        "/api/v1/responses/", {"survey": sw.survey.pk, "answers": {"nps": 5}}, format="json"
    )
    assert resp.status_code == 400 and "survey" in resp.json()
    assert b"Store visit" not in resp.content


def _rows(sw, n, prefix="b"):
    return [
        {
            "survey": sw.survey.pk,
            "external_id": f"{prefix}-{i}",
            "interaction": "acme-int-a-n2" if i % 2 else None,
            "location": None if i % 2 else "a-s1",
            "answers": {"nps": i % 11, "csat": 1 + i % 5, "comment": "great staff" if i % 3 == 0 else ""},
            "submitted_at": "2026-01-05T12:00:00Z",
        }
        for i in range(n)
    ]


def test_bulk_per_row_results(sw, key_client):
    world = sw.world
    stored = key_client.post(
        "/api/v1/responses/",
        {"survey": sw.survey.pk, "answers": {"nps": 8}, "external_id": "old"},
        format="json",
    ).json()
    rows = [
        {
            "survey": sw.survey.pk,
            "external_id": "ok-1",
            "answers": {"nps": 2, "why_low": "staff"},
            "location": "a-n1",
        },
        {"survey": 999999, "external_id": "bad-survey", "answers": {"nps": 2}},
        {"survey": sw.survey_b.pk, "external_id": "b-survey", "answers": {"nps": 2}},
        {"survey": sw.survey.pk, "external_id": "bad-answer", "answers": {"nps": 12}},
        {"survey": sw.survey.pk, "external_id": "bad-int", "answers": {"nps": 2}, "interaction": "nope"},
        {"survey": sw.survey.pk, "external_id": "bad-emp", "answers": {"nps": 2}, "employee": "nope"},
        {"survey": sw.survey.pk, "external_id": "bad-loc", "answers": {"nps": 2}, "location": "b-1"},
        {"survey": sw.survey.pk, "external_id": "ok-1", "answers": {"nps": 3}},
        {"survey": sw.survey.pk, "external_id": "old", "answers": {"nps": 3}},
        "not an object",
        {"survey": sw.survey.pk, "answers": {"nps": 10, "fcr": True}, "employee": "acme-emp-a-n2"},
    ]
    resp = key_client.post("/api/v1/responses/bulk/", rows, format="json")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["created"], body["duplicate"], body["error"]) == (2, 2, 7)
    results = body["results"]
    assert results[0]["status"] == "created"
    assert results[1]["errors"] == {"survey": ["Unknown survey '999999'."]}
    assert "survey" in results[2]["errors"]
    assert results[3]["errors"] == {"answers.nps": ["Must be between 0 and 10."]}
    assert "interaction" in results[4]["errors"] and "employee" in results[5]["errors"]
    assert "location" in results[6]["errors"]
    assert results[7] == {"row": 7, "external_id": "ok-1", "status": "duplicate", "id": results[0]["id"]}
    assert results[8] == {"row": 8, "external_id": "old", "status": "duplicate", "id": stored["id"]}
    assert results[9]["errors"] == {"non_field_errors": ["Each row must be an object."]}
    assert results[10]["status"] == "created"
    with tenant_context(world.a.org):
        ok = fm.Response.objects.get(pk=results[0]["id"])
        assert ok.version_id == sw.version.pk and ok.source == "api"
        assert ok.location_id == world.a.locations["a-n1"].pk
        answers = {a.question_key: a for a in fm.Answer.objects.filter(response=ok)}
        assert answers["why_low"].choices == ["staff"] and answers["nps"].number == 2
        assert answers["nps"].location_id == ok.location_id and answers["nps"].survey_id == sw.survey.pk
        last = fm.Response.objects.get(pk=results[10]["id"])
        assert last.employee_id == world.a.employees["a-n2"].pk and last.external_id is None
        assert fm.Answer.objects.get(response=last, question_key="fcr").number == 1
        assert fm.Response.objects.count() == 3


def test_bulk_copies_interaction_dimensions_analyses_text_and_emits_events(sw, key_client):
    world = sw.world
    rows = _rows(sw, 30)
    resp = key_client.post("/api/v1/responses/bulk/", rows, format="json")
    assert resp.json()["created"] == 30, resp.json()
    with tenant_context(world.a.org):
        via_interaction = fm.Response.objects.get(external_id="b-1")
        interaction = world.a.interactions["a-n2"]
        assert via_interaction.interaction_id == interaction.pk
        assert via_interaction.location_id == interaction.location_id
        assert via_interaction.employee_id == world.a.employees["a-n2"].pk
        assert via_interaction.customer_id == world.a.customer.pk and via_interaction.category == "critical"
        comment = fm.Answer.objects.get(response__external_id="b-0", question_key="comment")
        assert comment.sentiment == "positive" and comment.topics == ["staff"]
        # CSAT carries the linked standard.
        assert fm.Answer.objects.filter(question_key="csat", standard=world.a.standard).count() == 30
    [event] = _events(world.a.org)
    assert len(event.payload["response_ids"]) == 30 and event.payload["survey_id"] == sw.survey.pk
    assert event.payload["standard_ids"] == [world.a.standard.pk]


@override_settings(BULK_INGEST_MAX_ROWS=100)
def test_bulk_events_are_chunked(sw, key_client, monkeypatch):
    monkeypatch.setattr("feedback.response_ingest.EVENT_CHUNK", 40)
    resp = key_client.post("/api/v1/responses/bulk/", _rows(sw, 100), format="json")
    assert resp.json()["created"] == 100
    events = _events(sw.world.a.org)
    assert [len(e.payload["response_ids"]) for e in events] == [40, 40, 20]
    assert len({i for e in events for i in e.payload["response_ids"]}) == 100


def test_bulk_is_set_based(sw, key_client, django_assert_max_num_queries):
    key_client.post("/api/v1/responses/bulk/", _rows(sw, 5, prefix="warm"), format="json")
    with CaptureQueriesContext(connection) as small:
        key_client.post("/api/v1/responses/bulk/", _rows(sw, 10, prefix="s"), format="json")
    with django_assert_max_num_queries(25):
        resp = key_client.post("/api/v1/responses/bulk/", _rows(sw, 500, prefix="l"), format="json")
    assert resp.json()["created"] == 500
    with CaptureQueriesContext(connection) as large:
        key_client.post("/api/v1/responses/bulk/", _rows(sw, 500, prefix="l2"), format="json")
    assert len(large) == len(small)
    with tenant_context(sw.world.a.org):
        assert fm.Answer.objects.filter(response__external_id__startswith="l-").count() == 500 * 2 + 167


def test_bulk_413_above_the_limit(sw, key_client):
    rows = [{"survey": sw.survey.pk, "answers": {"nps": 1}}] * 10_001
    resp = key_client.post("/api/v1/responses/bulk/", rows, format="json")
    assert resp.status_code == 413 and resp.json()["max_rows"] == 10_000
    with tenant_context(sw.world.a.org):
        assert not fm.Response.objects.exists()


def test_bulk_nothing_half_written_on_failure(sw, key_client, monkeypatch):
    def boom(**kwargs):
        raise RuntimeError("audit down")

    monkeypatch.setattr("feedback.response_ingest.audit_log_write", boom)
    with pytest.raises(RuntimeError):
        key_client.post("/api/v1/responses/bulk/", _rows(sw, 5), format="json")
    with tenant_context(sw.world.a.org):
        assert not fm.Response.objects.exists() and not fm.Answer.objects.exists()


def test_bulk_csv_upload(sw, key_client):
    sw_multi = sw  # the fixture survey has no multi question: add a survey that does
    with tenant_context(sw.world.a.org):
        survey = fm.Survey.objects.create(organization=sw.world.a.org, name="Multi", locales=["en"])
        version = fm.SurveyVersion.objects.create(organization=sw.world.a.org, survey=survey, number=1)
        fm.Question.objects.create(
            organization=sw.world.a.org,
            version=version,
            key="liked",
            type="multi",
            text={"en": "Liked?"},
            choices=[{"value": v, "label": {"en": v}} for v in ("price", "staff", "speed")],
        )
    csv_text = (
        "survey,external_id,interaction,location,submitted_at,nps,csat,comment\n"
        f"{sw_multi.survey.pk},c-1,acme-int-a-n1,,2026-01-03T10:00:00Z,9,5,Lovely\n"
        f"{sw_multi.survey.pk},c-2,,a-s1,,,4,\n"
        f"{sw_multi.survey.pk},c-3,,a-s1,,7,9,\n"
    )
    resp = key_client.post(
        "/api/v1/responses/bulk/", csv_text.encode(), content_type="text/csv", HTTP_ACCEPT="application/json"
    )
    assert resp.status_code == 200, resp.content
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["created", "error", "error"]
    assert results[1]["errors"] == {"answers.nps": ["This question is required."]}
    assert results[2]["errors"] == {"answers.csat": ["Must be between 1 and 5."]}

    upload = SimpleUploadedFile(
        "r.csv", f"survey,external_id,location,liked\n{survey.pk},m-1,a-n1,price;speed\n".encode(), "text/csv"
    )
    resp = key_client.post("/api/v1/responses/bulk/", {"file": upload}, format="multipart")
    assert resp.json()["created"] == 1, resp.content
    with tenant_context(sw.world.a.org):
        assert fm.Answer.objects.get(response__external_id="m-1").choices == ["price", "speed"]
        first = fm.Response.objects.get(external_id="c-1")
        assert first.submitted_at == dt.datetime(2026, 1, 3, 10, tzinfo=dt.UTC)
        assert first.location_id == sw.world.a.locations["a-n1"].pk


def test_list_is_scoped_filtered_and_has_no_n_plus_one(sw, key_client, api):
    world = sw.world
    key_client.post("/api/v1/responses/bulk/", _rows(sw, 12), format="json")
    admin = api(world.users["admin"])
    all_rows = admin.get("/api/v1/responses/").json()["results"]
    assert len(all_rows) == 12 and all(len(r["answers"]) >= 2 for r in all_rows)
    north = api(world.users["regional"]).get("/api/v1/responses/").json()["results"]
    store = api(world.users["manager"]).get("/api/v1/responses/").json()["results"]
    assert len(north) == 6 and {r["location"] for r in north} == {world.a.locations["a-n2"].pk}
    assert store == []
    s1 = world.a.locations["a-s1"].pk
    filtered = admin.get(f"/api/v1/responses/?location={s1}&source=api&survey={sw.survey.pk}").json()[
        "results"
    ]
    assert len(filtered) == 6
    assert admin.get("/api/v1/responses/?from=2026-01-06T00:00:00Z").json()["results"] == []
    assert len(admin.get("/api/v1/responses/?to=2026-01-06T00:00:00Z").json()["results"]) == 12
    assert api(world.users["outsider"]).get("/api/v1/responses/").json()["results"] == []
    detail = admin.get(f"/api/v1/responses/{all_rows[0]['id']}/")
    assert detail.status_code == 200 and detail.json()["answers"]
    assert api(world.users["outsider"]).get(f"/api/v1/responses/{all_rows[0]['id']}/").status_code == 404

    with CaptureQueriesContext(connection) as few:
        admin.get("/api/v1/responses/?page_size=2")
    with CaptureQueriesContext(connection) as many:
        admin.get("/api/v1/responses/?page_size=12")
    assert len(few) == len(many)


def test_roles(sw, api):
    world = sw.world
    body = {"survey": sw.survey.pk, "answers": {"nps": 5}}
    assert api(world.users["executive"]).post("/api/v1/responses/", body, format="json").status_code == 403
    assert api(world.users["admin"]).post("/api/v1/responses/", body, format="json").status_code == 201
