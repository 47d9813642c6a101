"""Audit photo uploads: typed by content, size-limited, stored without EXIF, served only in-tenant."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from audits import models as am
from audits import photos
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.test_workforce import JW, _take_and_start

GPS_IFD = 0x8825


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def jw(world):
    return JW(world)


def _jpeg_with_gps(size=(800, 600), orientation=None) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "AcmeCam"  # Make
    if orientation:
        exif[0x0112] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1] = "N"
    gps[2] = (48.0, 51.0, 24.0)
    gps[3] = "E"
    gps[4] = (2.0, 21.0, 5.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    data = out.getvalue()
    with Image.open(io.BytesIO(data)) as check:  # the fixture really carries GPS
        assert check.getexif().get_ifd(GPS_IFD)
    return data


def _png(size=(40, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 255, 128)).save(out, "PNG")
    return out.getvalue()


def _upload(client, job, data: bytes, *, name="photo.jpg", item="receipt", content_type="image/jpeg"):
    return client.post(
        f"/api/v1/assignments/{job.pk}/photos/",
        {"item": item, "file": SimpleUploadedFile(name, data, content_type=content_type)},
        format="multipart",
    )


@pytest.fixture
def started(jw, api):
    client = api(jw.world.users["shopper"])
    return client, _take_and_start(jw, client)


def _stored(jw, photo_id) -> am.AuditPhoto:
    with tenant_context(jw.org):
        return am.AuditPhoto.objects.get(pk=photo_id)


def test_upload_strips_exif_and_gps_and_makes_a_thumbnail(jw, started, settings):
    client, job = started
    resp = _upload(client, job, _jpeg_with_gps(orientation=6))
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert body["item"] == "receipt" and body["content_type"] == "image/jpeg"
    photo = _stored(jw, body["id"])
    path = Path(settings.MEDIA_ROOT) / photo.file_path
    assert path.parent == Path(settings.MEDIA_ROOT) / "audits" / str(jw.org.pk)
    assert path.suffix == ".jpg" and photo.size == path.stat().st_size
    raw = path.read_bytes()
    assert b"Exif" not in raw and b"AcmeCam" not in raw
    with Image.open(path) as stored:
        assert stored.format == "JPEG"
        assert not stored.getexif()
        assert not stored.getexif().get_ifd(GPS_IFD)
        assert "exif" not in stored.info
        assert stored.size == (600, 800)  # orientation 6 applied before the EXIF went
    with Image.open(Path(settings.MEDIA_ROOT) / photo.thumbnail_path) as thumb:
        assert max(thumb.size) <= photos.THUMBNAIL_PX
        assert not thumb.getexif()
    # Listed on the job, and streamed back to its shopper.
    listed = client.get(f"/api/v1/assignments/{job.pk}/photos/").json()
    assert [p["id"] for p in listed] == [photo.pk]
    download = client.get(f"/api/v1/audit-photos/{photo.pk}/file/")
    assert download.status_code == 200 and download["Content-Type"] == "image/jpeg"
    assert b"".join(download.streaming_content) == raw
    assert client.get(f"/api/v1/audit-photos/{photo.pk}/thumbnail/").status_code == 200


def test_png_stays_png_and_webp_is_accepted(jw, started):
    client, job = started
    resp = _upload(client, job, _png(), name="r.png", content_type="image/png")
    assert resp.status_code == 201, resp.content
    assert resp.json()["content_type"] == "image/png"
    out = io.BytesIO()
    Image.new("RGB", (50, 50), (1, 2, 3)).save(out, "WEBP")
    resp = _upload(client, job, out.getvalue(), name="r.webp", content_type="image/webp")
    assert resp.status_code == 201, resp.content
    assert resp.json()["content_type"] == "image/jpeg"


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("receipt.jpg", b"this is just text pretending to be a JPEG\n" * 10, "image/jpeg"),
        (
            "receipt.svg",
            b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>',
            "image/svg+xml",
        ),
        ("receipt.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
    ],
)
def test_wrong_types_are_400_naming_file(jw, started, name, data, content_type):
    client, job = started
    resp = _upload(client, job, data, name=name, content_type=content_type)
    assert resp.status_code == 400, resp.content
    assert "file" in resp.json()
    with tenant_context(jw.org):
        assert not am.AuditPhoto.objects.exists()


def test_too_large_is_refused_by_declared_length_and_by_size(jw, started, monkeypatch):
    client, job = started
    data = _jpeg_with_gps(size=(400, 400))
    monkeypatch.setattr(photos, "MAX_BYTES", 1000)
    resp = _upload(client, job, data + b"\0" * (70 * 1024))
    assert resp.status_code == 413 and "file" in resp.json()
    # Within the multipart slack: the declared length passes, the actual file size does not.
    resp = _upload(client, job, data)
    assert resp.status_code == 400 and "file" in resp.json()
    with tenant_context(jw.org):
        assert not am.AuditPhoto.objects.exists()


def test_decompression_bomb_is_refused(jw, started, monkeypatch):
    client, job = started
    monkeypatch.setattr(photos, "MAX_PIXELS", 100 * 100)
    resp = _upload(client, job, _png(size=(200, 200)), name="bomb.png", content_type="image/png")
    assert resp.status_code == 400 and "pixels" in resp.json()["file"][0]


def test_only_photo_items_and_only_drafts(jw, started):
    client, job = started
    resp = _upload(client, job, _png(), item="greeted")
    assert resp.status_code == 400 and "item" in resp.json()
    resp = _upload(client, job, _png(), item="nope")
    assert resp.status_code == 400 and "item" in resp.json()
    with tenant_context(jw.org):
        am.Assignment.objects.filter(pk=job.pk).update(status=am.Assignment.Status.SUBMITTED)
    resp = _upload(client, job, _png())
    assert resp.status_code == 400 and "status" in resp.json()


def test_submit_succeeds_once_the_required_photo_exists(jw, started):
    client, job = started
    url = f"/api/v1/assignments/{job.pk}"
    client.put(
        f"{url}/draft/",
        {
            "visited_at": (job.window_start + dt.timedelta(minutes=5)).isoformat(),
            "answers": [{"item": "greeted", "value": "yes"}, {"item": "wait", "value": "20"}],
        },
        format="json",
    )
    errors = client.post(f"{url}/submit/").json()
    assert list(errors) == ["answers.receipt"]
    assert _upload(client, job, _jpeg_with_gps()).status_code == 201
    resp = client.post(f"{url}/submit/")
    assert resp.status_code == 200, resp.content
    assert resp.json()["status"] == "submitted"


def test_delete_removes_row_and_files_while_draft(jw, started, settings):
    client, job = started
    photo = _stored(jw, _upload(client, job, _png(), name="r.png").json()["id"])
    files = [Path(settings.MEDIA_ROOT) / photo.file_path, Path(settings.MEDIA_ROOT) / photo.thumbnail_path]
    assert all(p.is_file() for p in files)
    resp = client.delete(f"/api/v1/audit-photos/{photo.pk}/")
    assert resp.status_code == 204, resp.content
    with tenant_context(jw.org):
        assert not am.AuditPhoto.objects.filter(pk=photo.pk).exists()
        assert m.AuditLog.objects.filter(action="audit.photo_delete").exists()
        assert m.AuditLog.objects.filter(action="audit.photo_add").exists()


def test_other_tenant_cannot_upload_list_or_download(jw, started, api):
    client, job = started
    photo_id = _upload(client, job, _jpeg_with_gps()).json()["id"]
    outsider = api(jw.world.users["outsider"])  # org B's admin: may upload anywhere in org B
    assert _upload(outsider, job, _png()).status_code == 404
    # Org B's integrator key may not upload at all (403), and never reaches org A's job either.
    assert _upload(api(key=jw.world.b.api_key), job, _png()).status_code in (403, 404)
    # The session user gets 404 everywhere; org B's integrator key has no audit access at all (403).
    for caller, refused in ((outsider, {404}), (api(key=jw.world.b.api_key), {403, 404})):
        assert caller.get(f"/api/v1/assignments/{job.pk}/photos/").status_code in refused
        for suffix in ("", "file/", "thumbnail/"):
            resp = caller.get(f"/api/v1/audit-photos/{photo_id}/{suffix}")
            assert resp.status_code in refused and b"acme" not in resp.content.lower()
        assert caller.delete(f"/api/v1/audit-photos/{photo_id}/").status_code in refused
    assert outsider.get("/api/v1/audit-photos/").json()["results"] == []
    with tenant_context(jw.org):
        assert am.AuditPhoto.objects.count() == 1


def test_shopper_who_does_not_own_the_job_cannot_upload_or_see(jw, started, api):
    client, job = started
    photo_id = _upload(client, job, _png()).json()["id"]
    other_user = f.UserFactory(username="other-shopper@acme.test", email="other-shopper@acme.test")
    f.MembershipFactory(organization=jw.org, user=other_user, role=m.Role.SHOPPER)
    from tests.audits.sweep_workforce import make_shopper

    make_shopper(jw.org, email="other-shopper@acme.test", user=other_user, certify_program=jw.program)
    other = api(other_user)
    assert _upload(other, job, _png()).status_code == 404  # the scope hides others' jobs
    assert other.get(f"/api/v1/audit-photos/{photo_id}/file/").status_code == 404
    assert other.delete(f"/api/v1/audit-photos/{photo_id}/").status_code == 404
    # Even a caller who sees the job (an admin) is not its shopper: the service refuses.
    admin = api(jw.world.users["admin"])
    resp = _upload(admin, job, _png())
    assert resp.status_code == 400 and "shopper" in resp.json()
    assert admin.get(f"/api/v1/audit-photos/{photo_id}/file/").status_code == 200
    with tenant_context(jw.org):
        audit = am.Audit.objects.get(assignment=job)
        item = am.FormItem.objects.get(version=audit.version, key="receipt")
        with pytest.raises(Exception, match="not yours"):
            photos.audit_photo_add(
                organization=jw.org,
                actor=Actor(user_id=other_user.pk),
                audit=audit,
                item=item,
                upload=SimpleUploadedFile("x.png", _png()),
            )
        assert am.AuditPhoto.objects.count() == 1


def test_store_manager_outside_the_location_cannot_download(jw, started, api):
    client, job = started
    photo_id = _upload(client, job, _png()).json()["id"]
    own_store = api(jw.world.users["manager"])  # manager of a-n1, the job's location
    assert own_store.get(f"/api/v1/audit-photos/{photo_id}/file/").status_code == 200
    manager = f.UserFactory(username="m2@acme.test", email="m2@acme.test")
    f.MembershipFactory(
        organization=jw.org, user=manager, role=m.Role.STORE_MANAGER, location=jw.world.a.locations["a-s1"]
    )
    assert api(manager).get(f"/api/v1/audit-photos/{photo_id}/file/").status_code == 404
