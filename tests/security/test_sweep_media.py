"""Media files of org A (an uploaded photo, a catalogue image, a lesson attachment, a response
export) are served only through authenticated, tenant-scoped views: never to org B (session or
API key), never to an anonymous caller, and never from a public MEDIA_URL.

Every view module that streams a file is listed in MEDIA_VIEWS; one added elsewhere fails
test_every_file_streaming_view_is_swept until its URLs are swept here (or by the module named).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from audits import models as am
from cem.tenancy import tenant_context
from feedback import models as fm
from incentives import models as im
from learning import models as lm
from tests.audits.test_photos import _jpeg_with_gps
from tests.security.test_uploads import AuditPhotos, CatalogImages, LessonAttachments

ROOT = Path(__file__).resolve().parents[2]
APPS = ("cem", "feedback", "audits", "learning", "incentives", "alignment")
PDF = b"%PDF-1.4\n% acme lesson handout\n%%EOF\n"
MEDIA_VIEWS = {
    "audits/api/workforce.py": "audit photos: file/ and thumbnail/ (swept here)",
    "incentives/api/catalog.py": "catalogue image (swept here)",
    "incentives/pages/portal.py": "catalogue image page (swept here)",
    "learning/api/content.py": "lesson attachment download (swept here)",
    "learning/pages/portal.py": "lesson attachment page (swept here)",
    "feedback/api/exports.py": "response export download (swept here)",
    "feedback/pages/exports.py": "response export download page (swept here)",
    "learning/api/portal.py": "streams JSON rows from the database, no file (the router sweep covers it)",
    "cem/api/privacy.py": "privacy exports: tests/security of the privacy work",
    "cem/views_privacy.py": "privacy exports: tests/security of the privacy work",
}


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def files(world, api, django_capture_on_commit_callbacks):
    """(bytes, urls, media-relative path) of each kind of org A file."""
    out = []
    photos = AuditPhotos(world, api)
    assert photos.upload("receipt.jpg", _jpeg_with_gps(size=(200, 100)), "image/jpeg").status_code == 201
    with tenant_context(world.a.org):
        photo = am.AuditPhoto.objects.get()
    [data] = photos.stored()
    out.append(
        (data, [f"/api/v1/audit-photos/{photo.pk}/file/", f"/api/v1/audit-photos/{photo.pk}/thumbnail/"])
    )
    out[-1] += (photo.file_path,)

    catalog = CatalogImages(world, api)
    assert catalog.upload("mug.jpg", _jpeg_with_gps(size=(120, 80)), "image/jpeg").status_code == 200
    with tenant_context(world.a.org):
        item = im.CatalogItem.objects.get(pk=catalog.item)
    [data] = catalog.stored()
    urls = [f"/api/v1/catalog-items/{item.pk}/image/", f"/rewards/catalog/{item.pk}/image/"]
    out.append((data, urls, item.image.name))

    lessons = LessonAttachments(world, api)
    assert lessons.upload("handout.pdf", PDF, "application/pdf").status_code == 201
    with tenant_context(world.a.org):
        attachment = lm.LessonAttachment.objects.get()
    urls = [
        f"/api/v1/lesson-attachments/{attachment.pk}/download/",
        f"/learning/attachments/{attachment.pk}/",
    ]
    out.append((PDF, urls, attachment.file.name))

    admin = api(world.users["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        job = admin.post("/api/v1/exports/", {"format": "csv"}, format="json").json()
    with tenant_context(world.a.org):
        export = fm.ExportJob.objects.get(pk=job["id"])
    data = (Path(django_settings.MEDIA_ROOT) / export.file_path).read_bytes()
    urls = [f"/api/v1/exports/{export.pk}/download/", f"/feedback/exports/{export.pk}/download/"]
    out.append((data, urls, export.file_path))
    return out


def _body(resp) -> bytes:
    return b"".join(resp.streaming_content) if resp.streaming else resp.content


def _owners(world, api) -> list:
    return [api(world.users[p]) for p in ("admin", "trainer", "shopper")]


def test_org_a_files_are_served_to_org_a(world, api, files):
    """The control: each file is really reachable at one of its URLs by someone of org A."""
    for data, urls, _relative in files:
        served = [
            url
            for url in urls
            for client in _owners(world, api)
            if (resp := client.get(url)).status_code == 200 and _body(resp) == data
        ]
        assert served, urls


@pytest.mark.parametrize("who", ["anonymous", "org_b_session", "org_b_key"])
def test_org_a_files_are_never_served_to_others(world, api, files, who):
    client = {
        "anonymous": lambda: Client(),
        "org_b_session": lambda: api(world.users["outsider"]),
        "org_b_key": lambda: api(key=world.b.api_key),
    }[who]()
    for data, urls, _relative in files:
        for url in urls:
            resp = client.get(url)
            assert resp.status_code in (302, 401, 403, 404), (who, url, resp.status_code)
            assert data not in _body(resp), (who, url)


def test_no_public_media_url(world, api, files):
    media_root = Path(django_settings.MEDIA_ROOT).resolve()
    for data, _urls, relative in files:
        assert (media_root / relative).is_file()
        for client in (Client(), api(world.users["admin"])):
            for url in (
                f"/{django_settings.MEDIA_URL}{relative}",
                f"/media/{relative}",
                f"/static/../media/{relative}",
            ):
                resp = client.get(url)
                assert resp.status_code == 404, (url, resp.status_code)
                assert data not in _body(resp)
    # Nothing under MEDIA_ROOT is ever a static file either.
    for static_dir in [django_settings.STATIC_ROOT, *django_settings.STATICFILES_DIRS]:
        static_dir = Path(static_dir).resolve()
        assert not media_root.is_relative_to(static_dir) and not static_dir.is_relative_to(media_root)


def test_every_file_streaming_view_is_swept():
    found = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                name = getattr(node, "id", None) or getattr(node, "attr", None)
                if name in {"FileResponse", "StreamingHttpResponse"} and isinstance(
                    node, ast.Name | ast.Attribute
                ):
                    found.add(str(path.relative_to(ROOT)))
    assert found <= set(MEDIA_VIEWS), f"file-streaming views not swept: {sorted(found - set(MEDIA_VIEWS))}"
