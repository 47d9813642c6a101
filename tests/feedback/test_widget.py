"""The embeddable pop-up's JSON endpoints: CORS per survey, ballot stuffing, errors, tenancy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from cem.tenancy import tenant_context, unscoped
from feedback import ballot
from feedback import models as fm

SHOP = "https://shop.acme.example"


@pytest.fixture
def wsw(sw):
    with tenant_context(sw.world.a.org):
        fm.Survey.objects.filter(pk=sw.survey.pk).update(
            allowed_origins=[SHOP + "/", "https://m.acme.example"]
        )
        sw.survey.refresh_from_db()
    return sw


def survey_url(sw, survey=None):
    return f"/r/w/{(survey or sw.survey).public_key}/survey.json"


def submit_url(sw, survey=None):
    return f"/r/w/{(survey or sw.survey).public_key}/responses"


def post(client, url, body, origin=SHOP, **extra):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return client.post(url, json.dumps(body), content_type="application/json", **headers, **extra)


def device(client, sw) -> str:
    return client.get(survey_url(sw), HTTP_ORIGIN=SHOP).json()["device"]


def count():
    with unscoped():
        return fm.Response.objects.count()


def test_survey_json_for_an_allowed_origin(wsw, client):
    resp = client.get(survey_url(wsw) + "?lang=es", HTTP_ORIGIN=SHOP)
    assert resp.status_code == 200
    assert resp["Access-Control-Allow-Origin"] == SHOP and "Origin" in resp["Vary"]
    data = resp.json()
    assert data["lang"] == "es" and ballot.device_id_from(data["device"])
    texts = {q["key"]: q["text"] for q in data["questions"]}
    assert texts["nps"] == "¿Qué probabilidad hay de que nos recomiende?"
    assert texts["ces"] == "How easy was it to find what you needed?"
    nps = next(q for q in data["questions"] if q["key"] == "nps")
    assert nps["scale"]["min"] == 0 and nps["scale"]["max"] == 10
    assert count() == 0


def test_cors_refuses_other_origins_and_never_uses_a_wildcard(wsw, client):
    for origin in ("https://evil.example", "null", "https://shop.acme.example.evil.example"):
        resp = client.get(survey_url(wsw), HTTP_ORIGIN=origin)
        assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp
        assert "Origin" in resp["Vary"]
        resp = post(client, submit_url(wsw), {"answers": {"nps": 9}}, origin=origin)
        assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp
    with tenant_context(wsw.world.a.org):
        fm.Survey.objects.filter(pk=wsw.survey.pk).update(allowed_origins=["*"])
    resp = client.get(survey_url(wsw), HTTP_ORIGIN="https://anyone.example")
    assert resp.status_code == 403 and "Access-Control-Allow-Origin" not in resp
    assert count() == 0


def test_preflight(wsw, client):
    resp = client.options(
        submit_url(wsw),
        HTTP_ORIGIN="https://m.acme.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
    )
    assert resp.status_code == 200
    assert resp["Access-Control-Allow-Origin"] == "https://m.acme.example"
    assert "POST" in resp["Access-Control-Allow-Methods"]
    assert "content-type" in resp["Access-Control-Allow-Headers"].lower()
    assert "Origin" in resp["Vary"]
    denied = client.options(submit_url(wsw), HTTP_ORIGIN="https://evil.example")
    assert denied.status_code == 403 and "Access-Control-Allow-Origin" not in denied


def test_submit_stores_one_widget_response_per_device_and_day(wsw, client):
    token = device(client, wsw)
    resp = post(client, submit_url(wsw), {"answers": {"nps": 10, "comment": "Lovely"}, "device": token})
    assert resp.status_code == 201, resp.content
    assert resp["Access-Control-Allow-Origin"] == SHOP
    with unscoped():
        [response] = fm.Response.objects.all()
    assert response.source == "widget" and response.organization_id == wsw.world.a.org.pk
    assert response.device_hash == ballot.device_hash(ballot.device_id_from(token))
    for _ in range(5):
        again = post(client, submit_url(wsw), {"answers": {"nps": 0}, "device": token})
        assert again.status_code == 409 and again.json()["code"] == "already_answered"
    assert count() == 1
    assert client.get(survey_url(wsw) + f"?device={token}", HTTP_ORIGIN=SHOP).json()["answered_today"] is True


def test_submit_errors(wsw, client):
    token = device(client, wsw)
    url = submit_url(wsw)
    assert post(client, url, {"answers": {"nps": 9}}).status_code == 400  # no device token
    assert post(client, url, {"answers": {"nps": 9}, "device": "made-up"}).status_code == 400
    bad = client.post(url, "{not json", content_type="application/json", HTTP_ORIGIN=SHOP)
    assert bad.status_code == 400
    assert post(client, url, {"answers": {"nps": 9}, "device": token}, origin=None).status_code == 403
    resp = post(client, url, {"answers": {"nps": 11, "csat": 3}, "device": token, "lang": "es"})
    assert resp.status_code == 400 and resp["Access-Control-Allow-Origin"] == SHOP
    assert resp.json()["errors"]["nps"] == ["Elija un valor entre 0 y 10."]
    resp = post(client, url, {"answers": {"csat": 3}, "device": token})
    assert resp.json()["errors"]["nps"] == ["This question is required."]
    huge = post(client, url, {"answers": {"comment": "x" * 70_000}, "device": token})
    assert huge.status_code == 413
    assert client.get(url, HTTP_ORIGIN=SHOP).status_code == 405
    assert client.get("/r/w/no-such-survey-key/survey.json", HTTP_ORIGIN=SHOP).status_code == 404
    assert count() == 0


def test_per_ip_limit(wsw):
    limit = ballot.ip_limit()
    for _ in range(limit):
        c = Client()
        resp = post(
            c, submit_url(wsw), {"answers": {"nps": 9}, "device": device(c, wsw)}, REMOTE_ADDR="192.0.2.4"
        )
        assert resp.status_code == 201
    c = Client()
    resp = post(
        c, submit_url(wsw), {"answers": {"nps": 9}, "device": device(c, wsw)}, REMOTE_ADDR="192.0.2.4"
    )
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0
    assert count() == limit


def test_inactive_survey_is_closed(wsw, client):
    token = device(client, wsw)
    with tenant_context(wsw.world.a.org):
        fm.Survey.objects.filter(pk=wsw.survey.pk).update(status="archived")
    assert client.get(survey_url(wsw), HTTP_ORIGIN=SHOP).status_code == 410
    assert post(client, submit_url(wsw), {"answers": {"nps": 9}, "device": token}).status_code == 410
    assert count() == 0


def test_key_of_org_a_never_shows_or_writes_org_b(wsw, client):
    world = wsw.world
    with tenant_context(world.b.org):
        fm.Question.objects.filter(version__survey=wsw.survey_b).update(text={"en": "Beta secret question"})
        b_nps = fm.Question.objects.get(version__survey=wsw.survey_b, key="nps")
        fm.Survey.objects.filter(pk=wsw.survey_b.pk).update(allowed_origins=["https://beta.example"])
    client.force_login(world.users["outsider"])
    data = client.get(survey_url(wsw), HTTP_ORIGIN=SHOP).content.decode()
    assert "Beta" not in data and "Store visit" in data
    token = json.loads(data)["device"]
    resp = post(client, submit_url(wsw), {"answers": {"nps": 9, str(b_nps.pk): 5}, "device": token})
    assert resp.status_code == 400 and resp.json()["errors"][str(b_nps.pk)] == ["Unknown question."]
    # A's allowed origin is not B's: B's key refuses it.
    assert client.get(survey_url(wsw, wsw.survey_b), HTTP_ORIGIN=SHOP).status_code == 403
    assert count() == 0
    assert post(client, submit_url(wsw), {"answers": {"nps": 9}, "device": token}).status_code == 201
    with unscoped():
        assert list(fm.Response.objects.values_list("organization_id", "survey_id")) == [
            (world.a.org.pk, wsw.survey.pk)
        ]


def test_widget_script_is_dependency_free_and_documented():
    source = (Path(settings.BASE_DIR) / "static" / "feedback" / "widget.js").read_text()
    assert "data-survey-key" in source and "data-trigger" in source
    assert "/survey.json" in source and "/responses" in source
    assert "import " not in source and "require(" not in source and "innerHTML" not in source
