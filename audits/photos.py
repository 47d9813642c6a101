"""Photos and receipts attached to an audit's photo items.

Uploads are typed by their content, never by name or declared type: Pillow must open and
verify them as JPEG, PNG or WebP. The stored file is a fresh re-encode of the pixels (EXIF
orientation applied first), so no metadata survives — EXIF with its GPS position, XMP, ICC
or text chunks. Files live under ``MEDIA_ROOT/audits/<org id>/<uuid>.<ext>`` (never served
by a public URL; the API streams them to callers who may see the audit), with a thumbnail
of at most ``THUMBNAIL_PX`` on its longer side.
"""

from __future__ import annotations

import io
import uuid
import warnings
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from PIL import Image, ImageOps, UnidentifiedImageError

from audits import jobs
from audits.models import Assignment, Audit, AuditPhoto, FormItem, Shopper
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write

MAX_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 10 MB upload has no business decoding to more (decompression bombs)
MAX_SIDE = 4096  # stored images are downscaled to this; phones shoot larger than any review needs
THUMBNAIL_PX = 320
JPEG_QUALITY = 85
ACCEPTED = {"JPEG", "PNG", "WEBP"}
FOLDER = "audits"


def _bad_file(message: str) -> ValidationError:
    return ValidationError({"file": message})


def _decode(upload) -> tuple[Image.Image, str]:
    """The upload's pixels (orientation applied, no metadata) and the format to store them in."""
    size = getattr(upload, "size", None)
    if size is not None and size > MAX_BYTES:
        raise _bad_file(f"At most {MAX_BYTES // (1024 * 1024)} MB.")
    upload.seek(0)
    data = upload.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _bad_file(f"At most {MAX_BYTES // (1024 * 1024)} MB.")
    if not data:
        raise _bad_file("The file is empty.")
    unreadable = _bad_file("Not a JPEG, PNG or WebP image.")
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse those as well.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as probe:
                if probe.format not in ACCEPTED:
                    raise unreadable
                if probe.width * probe.height > MAX_PIXELS:
                    raise _bad_file("The image has too many pixels.")
                probe.verify()
            # verify() leaves the image unusable: decode again from the start.
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                image.load()
                image = ImageOps.exif_transpose(image)
        except ValidationError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _bad_file("The image has too many pixels.") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
            raise unreadable from None
    keep_alpha = fmt == "PNG" and (image.mode in ("RGBA", "LA") or "transparency" in image.info)
    mode = "RGBA" if keep_alpha else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    # A new image from the raw pixels carries no info dict: no EXIF, XMP, ICC or PNG text.
    clean = Image.frombytes(mode, image.size, image.tobytes())
    clean.thumbnail((MAX_SIDE, MAX_SIDE))
    return clean, ("PNG" if fmt == "PNG" else "JPEG")


def _encode(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def _media(relative: str) -> Path:
    return Path(settings.MEDIA_ROOT) / relative


def _remove(*relatives: str) -> None:
    for relative in relatives:
        if relative:
            _media(relative).unlink(missing_ok=True)


def photo_file(photo: AuditPhoto, *, thumbnail: bool = False) -> Path | None:
    """The stored file of a photo; never a path outside the tenant's photo folder."""
    relative = photo.thumbnail_path if thumbnail else photo.file_path
    if not relative:
        return None
    root = (Path(settings.MEDIA_ROOT) / FOLDER / str(photo.organization_id)).resolve()
    path = _media(relative).resolve()
    if path.parent != root or not path.is_file():
        return None
    return path


def _may_edit(audit: Audit, actor: Actor) -> None:
    """Only the draft's author adds or removes photos: the job's shopper, or the evaluator."""
    if audit.status != Audit.Status.DRAFT:
        raise ValidationError({"status": "Photos can only change while the audit is a draft."})
    if audit.assignment_id is not None:
        assignment = Assignment.objects.get(pk=audit.assignment_id)
        if assignment.status not in jobs.DRAFTABLE_STATUSES:
            state = assignment.get_status_display().lower()
            raise ValidationError({"status": f"A job that is {state} cannot be edited."})
        owner = (
            actor.user_id is not None
            and Shopper.objects.filter(pk=assignment.shopper_id, user_id=actor.user_id).exists()
        )
    else:
        owner = actor.user_id is not None and audit.evaluator_id == actor.user_id
    if not owner:
        raise ValidationError({"shopper": "This audit is not yours to edit."})


@transaction.atomic
def audit_photo_add(*, organization, actor: Actor, audit: Audit, item: FormItem, upload) -> AuditPhoto:
    """Check, clean and store one photo for a photo item of a draft audit."""
    org_id = _check_tenant(organization)
    audit = Audit.objects.select_for_update().get(pk=audit.pk)
    _may_edit(audit, actor)
    if item.version_id != audit.version_id or item.type != FormItem.Type.PHOTO:
        raise ValidationError({"item": "Not a photo item of this audit's form."})
    image, fmt = _decode(upload)
    ext = "png" if fmt == "PNG" else "jpg"
    name = uuid.uuid4().hex
    folder = f"{FOLDER}/{org_id}"
    file_path, thumbnail_path = f"{folder}/{name}.{ext}", f"{folder}/{name}-thumb.{ext}"
    body = _encode(image, fmt)
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    _media(folder).mkdir(parents=True, exist_ok=True)
    try:
        _media(file_path).write_bytes(body)
        _media(thumbnail_path).write_bytes(_encode(thumb, fmt))
        photo = AuditPhoto.objects.create(
            organization_id=org_id,
            audit=audit,
            item=item,
            file_path=file_path,
            thumbnail_path=thumbnail_path,
            content_type="image/png" if fmt == "PNG" else "image/jpeg",
            size=len(body),
        )
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="audit.photo_add",
            instance=photo,
            changes={"audit": audit.pk, "item": item.key, "size": len(body)},
        )
    except BaseException:
        _remove(file_path, thumbnail_path)
        raise
    return photo


@transaction.atomic
def audit_photo_delete(*, organization, actor: Actor, photo: AuditPhoto) -> None:
    org_id = _check_tenant(organization)
    photo = AuditPhoto.objects.select_for_update().select_related("audit", "item").get(pk=photo.pk)
    _may_edit(photo.audit, actor)
    paths = (photo.file_path, photo.thumbnail_path)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="audit.photo_delete",
        instance=photo,
        changes={"audit": photo.audit_id, "item": photo.item.key},
    )
    photo.delete()
    transaction.on_commit(lambda: _remove(*paths))


@transaction.atomic
def assignment_photo_add(
    *, organization, actor: Actor, shopper: Shopper | None, assignment: Assignment, item_key: str, upload
) -> AuditPhoto:
    """A shopper's photo for one item of their job's visit report (the draft is created if needed)."""
    org_id = _check_tenant(organization)
    assignment = jobs._locked(assignment)
    jobs._own(assignment, shopper)
    if assignment.status not in jobs.DRAFTABLE_STATUSES:
        state = assignment.get_status_display().lower()
        raise ValidationError({"status": f"A job that is {state} cannot be edited."})
    audit = jobs._current_audit(assignment)
    if audit is None:
        audit = Audit.objects.create(
            organization_id=org_id,
            version=jobs._latest_version(assignment),
            assignment=assignment,
            location=assignment.location,
            status=Audit.Status.DRAFT,
        )
    item = FormItem.objects.filter(version_id=audit.version_id, key=item_key).first()
    if item is None:
        raise ValidationError({"item": "Not an item of this form."})
    return audit_photo_add(organization=org_id, actor=actor, audit=audit, item=item, upload=upload)
