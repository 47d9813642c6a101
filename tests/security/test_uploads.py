"""Every file upload, through its real API: typed by content (never the name or the declared
type), size-limited, images re-encoded without metadata, no SVG (and so no SVG script).

Uploads: audit photos (shoppers), reward catalogue images (admins), lesson attachments
(trainers). CSV imports (interactions, responses, business data, CRM, gift-card codes) store
text, never files; their cells are escaped on export (tests/security/test_csv_injection.py).
tests/audits/test_photos.py has the photo path's own cases (EXIF/GPS, thumbnails, bombs);
this file runs the same hostile files through every path.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from audits import models as am
from audits import photos
from cem.tenancy import tenant_context
from incentives import models as im
from learning import content
from learning import models as lm
from tests.audits.test_photos import _jpeg_with_gps
from tests.audits.test_workforce import JW, _take_and_start

GPS_IFD = 0x8825
SVG_SCRIPT = (
    b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>"
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"
PNG_HEADER_THEN_HTML = b"\x89PNG\r\n\x1a\n" + HTML
JPEG_HEADER_THEN_HTML = b"\xff\xd8\xff\xe0" + HTML


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


class AuditPhotos:
    field = "file"

    def __init__(self, world, api):
        self.jw = JW(world)
        self.client = api(world.users["shopper"])
        self.job = _take_and_start(self.jw, self.client)

    def upload(self, name, data, content_type):
        return self.client.post(
            f"/api/v1/assignments/{self.job.pk}/photos/",
            {"item": "receipt", "file": SimpleUploadedFile(name, data, content_type=content_type)},
            format="multipart",
        )

    def stored(self) -> list[bytes]:
        with tenant_context(self.jw.org):
            return [photos.photo_file(p).read_bytes() for p in am.AuditPhoto.objects.all()]

    def limit(self, monkeypatch, size):
        monkeypatch.setattr(photos, "MAX_BYTES", size)


class CatalogImages:
    field = "image"

    def __init__(self, world, api):
        self.org = world.a.org
        self.client = api(world.users["admin"])
        resp = self.client.post(
            "/api/v1/catalog-items/", {"name": "acme mug", "kind": "charity", "cost": 5}, format="json"
        )
        assert resp.status_code == 201, resp.content
        self.item = resp.json()["id"]

    def upload(self, name, data, content_type):
        upload = SimpleUploadedFile(name, data, content_type=content_type)
        return self.client.post(
            f"/api/v1/catalog-items/{self.item}/image/", {"image": upload}, format="multipart"
        )

    def stored(self) -> list[bytes]:
        with tenant_context(self.org):
            item = im.CatalogItem.objects.get(pk=self.item)
        return [Path(item.image.path).read_bytes()] if item.image else []

    def limit(self, monkeypatch, size):
        monkeypatch.setattr(photos, "MAX_BYTES", size)  # the catalogue decodes through photos


class LessonAttachments:
    field = "file"

    def __init__(self, world, api):
        self.org = world.a.org
        self.client = api(world.users["trainer"])
        resp = self.client.post("/api/v1/lessons/", {"title": "Greeting", "body": "Smile"}, format="json")
        assert resp.status_code == 201, resp.content
        self.lesson = resp.json()["id"]

    def upload(self, name, data, content_type):
        upload = SimpleUploadedFile(name, data, content_type=content_type)
        return self.client.post(
            f"/api/v1/lessons/{self.lesson}/attachments/", {"file": upload}, format="multipart"
        )

    def stored(self) -> list[bytes]:
        with tenant_context(self.org):
            return [Path(a.file.path).read_bytes() for a in lm.LessonAttachment.objects.all()]

    def limit(self, monkeypatch, size):
        monkeypatch.setattr(content, "MAX_ATTACHMENT_BYTES", size)


PATHS = {"audit_photo": AuditPhotos, "catalog_image": CatalogImages, "lesson_attachment": LessonAttachments}


@pytest.fixture(params=sorted(PATHS))
def path(request, world, api):
    return PATHS[request.param](world, api)


def _refused(path, resp):
    assert resp.status_code in (400, 413), (resp.status_code, resp.content[:300])
    assert path.field in resp.json(), resp.json()
    assert path.stored() == []


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("logo.svg", SVG_SCRIPT, "image/svg+xml"),
        ("photo.png", SVG_SCRIPT, "image/png"),  # an SVG wearing a PNG name
        ("photo.jpg", HTML, "image/jpeg"),
        ("photo.png", PNG_HEADER_THEN_HTML, "image/png"),  # right magic bytes, not an image
        ("photo.jpg", JPEG_HEADER_THEN_HTML, "image/jpeg"),
        ("page.html", HTML, "text/html"),
        ("empty.png", b"", "image/png"),
    ],
)
def test_hostile_files_are_refused_everywhere(path, name, data, content_type):
    _refused(path, path.upload(name, data, content_type))


def test_a_pdf_named_png_is_not_an_image(path):
    resp = path.upload("photo.png", PDF, "image/png")
    if isinstance(path, LessonAttachments):
        # Attachments may be PDFs: typed by its content, it is stored and served as one.
        assert resp.status_code == 201, resp.content
        body = resp.json()
        assert body["name"] == "photo.pdf" and body["content_type"] == "application/pdf"
        assert path.stored() == [PDF]
    else:
        _refused(path, resp)


def test_images_are_re_encoded_without_metadata(path):
    original = _jpeg_with_gps(size=(300, 200))
    resp = path.upload("holiday.png", original, "image/png")  # the name lies; the content decides
    assert resp.status_code in (200, 201), resp.content
    [stored] = path.stored()
    assert stored != original
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "JPEG"
        exif = image.getexif()
        assert not exif and not exif.get_ifd(GPS_IFD)
        assert "exif" not in image.info and "xmp" not in image.info


def test_size_limit(path, monkeypatch):
    path.limit(monkeypatch, 2000)
    resp = path.upload("big.jpg", _jpeg_with_gps(size=(600, 600)) + b"\0" * 90_000, "image/jpeg")
    _refused(path, resp)
