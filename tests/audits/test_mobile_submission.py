"""POST /api/v1/assignments/<id>/submission/: the whole visit report from a native app in one
multipart request (answers as JSON, photos as `photo.<item>` parts), all or nothing."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from audits import models as am
from cem.tenancy import tenant_context
from tests.audits.test_photos import GPS_IFD, _jpeg_with_gps
from tests.audits.test_workforce import JW

S = am.Assignment.Status


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def jw(world):
    return JW(world)


def _taken(jw, client):
    job = jw.job()
    assert client.post(f"/api/v1/assignments/{job.pk}/take/").status_code == 200
    return job


def _body(job, *, answers=None, **extra):
    visited = (job.window_start + dt.timedelta(minutes=30)).isoformat()
    answers = answers or [
        {"item": "greeted", "value": "yes"},
        {"item": "wait", "value": "20"},
        {"item": "notes", "text": "Till 4"},
    ]
    return {"answers": json.dumps(answers), "visited_at": visited, "reimbursement": "4.50", **extra}


def _photo(name="receipt.jpg"):
    return SimpleUploadedFile(name, _jpeg_with_gps(), content_type="image/jpeg")


def _stored_files(settings) -> list[Path]:
    root = Path(settings.MEDIA_ROOT)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_one_multipart_request_saves_answers_and_photos_and_submits(jw, api, settings):
    client = api(jw.world.users["shopper"])
    job = _taken(jw, client)  # assigned, never started: the submission starts it
    resp = client.post(
        f"/api/v1/assignments/{job.pk}/submission/",
        {**_body(job), "photo.receipt": _photo()},
        format="multipart",
    )
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == S.SUBMITTED and resp.json()["reimbursement"] == "4.50"
    with tenant_context(jw.org):
        audit = am.Audit.objects.get(assignment=job)
        assert audit.status == am.Audit.Status.SUBMITTED
        answers = {a.item.key: (a.value, a.text) for a in audit.answers.select_related("item")}
        assert answers == {"greeted": ("yes", ""), "wait": ("20", ""), "notes": ("", "Till 4")}
        [photo] = am.AuditPhoto.objects.filter(audit=audit)
    path = Path(settings.MEDIA_ROOT) / photo.file_path
    with Image.open(path) as stored:
        assert not stored.getexif().get_ifd(GPS_IFD) and b"AcmeCam" not in path.read_bytes()


def test_any_error_leaves_the_job_as_it_was_and_no_file_behind(jw, api, settings):
    client = api(jw.world.users["shopper"])
    job = _taken(jw, client)
    url = f"/api/v1/assignments/{job.pk}/submission/"
    # A required answer missing: the photo was fine but is not kept.
    resp = client.post(
        url,
        {**_body(job, answers=[{"item": "wait", "value": "20"}]), "photo.receipt": _photo()},
        format="multipart",
    )
    assert resp.status_code == 400 and "answers.greeted" in resp.json(), resp.content
    # A wrong file type is named by its part; a photo for a non-photo item likewise.
    text = SimpleUploadedFile("r.jpg", b"not an image", content_type="image/jpeg")
    resp = client.post(url, {**_body(job), "photo.receipt": text}, format="multipart")
    assert resp.status_code == 400 and "photo.receipt" in resp.json(), resp.content
    resp = client.post(url, {**_body(job), "photo.greeted": _photo()}, format="multipart")
    assert resp.status_code == 400 and "photo.greeted" in resp.json(), resp.content
    resp = client.post(url, {**_body(job), "receipt": _photo()}, format="multipart")
    assert resp.status_code == 400 and "receipt" in resp.json(), resp.content
    resp = client.post(url, {**_body(job), "answers": "not json"}, format="multipart")
    assert resp.status_code == 400 and "answers" in resp.json(), resp.content
    assert _stored_files(settings) == []
    with tenant_context(jw.org):
        job.refresh_from_db()
        assert job.status == S.ASSIGNED
        assert not am.Audit.objects.filter(assignment=job).exists()
        assert not am.AuditPhoto.objects.exists()


def test_a_stale_revision_is_409_and_others_cannot_submit(jw, api, world, settings):
    client = api(jw.world.users["shopper"])
    job = _taken(jw, client)
    saved = client.put(
        f"/api/v1/assignments/{job.pk}/draft/",
        {"answers": [{"item": "greeted", "value": "no"}]},
        format="json",
    )
    assert saved.status_code == 200
    url = f"/api/v1/assignments/{job.pk}/submission/"
    resp = client.post(url, {**_body(job), "revision": "", "photo.receipt": _photo()}, format="multipart")
    assert resp.status_code == 409 and resp.json()["current_revision"] == saved.json()["revision"]
    assert _stored_files(settings) == []
    # Another tenant's caller, or a reviewer who is not the job's shopper, cannot file it.
    assert api(key=world.b.api_key).post(url, _body(job), format="multipart").status_code in (403, 404)
    resp = api(world.users["admin"]).post(url, {**_body(job), "photo.receipt": _photo()}, format="multipart")
    assert resp.status_code in (400, 403, 404)
    with tenant_context(jw.org):
        job.refresh_from_db()
        assert job.status in (S.ASSIGNED, S.IN_PROGRESS) and job.submitted_at is None


def test_openapi_documents_the_submission_endpoint():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    post = schema["paths"]["/api/v1/assignments/{id}/submission/"]["post"]
    assert "multipart/form-data" in post["requestBody"]["content"]
    assert "photo.<item key>" in post["description"]
    assert {"200", "409", "413"} <= set(post["responses"])
