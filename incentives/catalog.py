"""The redemption catalogue: items, who may see them, their images, and gift-card code pools.

Visibility: an item with no locations is offered everywhere, one with locations only to employees
whose current location is one of them; an empty ``visible_roles`` means every employee role,
otherwise only employees whose ``Employee.role`` is listed. Inactive items are offered to nobody
(they stay readable by admins and by the redemptions that point at them).

Images are typed by their content, never by name, with the same checks as audit photos
(``audits.photos``: Pillow must decode a JPEG, PNG or WebP within the size and pixel limits),
re-encoded without metadata and downscaled; they are stored under a random name and served only
through the tenant's pages and API to people who may see the item.

Gift-card codes are secrets: they are loaded in bulk (one per line, or the first column of a CSV),
counted for admins, and shown only to the employee whose redemption took the code and to admins.
The audit log records how many codes were loaded, never the codes.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q

from audits.photos import _decode, _encode
from cem.models import Employee, Location
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from incentives.models import CatalogItem, CatalogItemLocation, GiftCardCode

IMAGE_MAX_SIDE = 800
MAX_CODES_PER_LOAD = 10_000
CODE_MAX_LENGTH = GiftCardCode._meta.get_field("code").max_length
EDITABLE = (
    "name",
    "description",
    "kind",
    "cost",
    "stock",
    "per_person_limit",
    "auto_approve",
    "visible_roles",
    "active",
)
ROLES = {value for value, _ in Employee.Role.choices}


# --- reads ---------------------------------------------------------------------------------------


def visible_q(employee: Employee | None) -> Q:
    """Items offered to ``employee`` (None: someone with no employee record sees unrestricted items)."""
    links = CatalogItemLocation.objects.filter(item=OuterRef("pk"))
    q = Q(active=True)
    if employee is None:
        return q & ~Exists(links) & Q(visible_roles=[])
    q &= ~Exists(links) | Exists(links.filter(location_id=employee.current_location_id))
    return q & (Q(visible_roles=[]) | Q(visible_roles__contains=[employee.role]))


def is_visible(item: CatalogItem, employee: Employee | None) -> bool:
    return CatalogItem.objects.filter(visible_q(employee), pk=item.pk).exists()


def with_code_counts(queryset):
    """Annotate ``codes_available`` and ``codes_used`` (one grouped query with the list)."""
    return queryset.annotate(
        codes_available=Count("codes", filter=Q(codes__redemption__isnull=True), distinct=True),
        codes_used=Count("codes", filter=Q(codes__redemption__isnull=False), distinct=True),
    )


def codes_available(*, org, item: CatalogItem) -> int:
    _check_tenant(org)
    return GiftCardCode.objects.filter(item=item, redemption__isnull=True).count()


def image_file(item: CatalogItem) -> Path | None:
    """The stored image of an item; never a path outside the catalogue's media folder."""
    if not item.image:
        return None
    root = (Path(settings.MEDIA_ROOT) / "incentives" / "catalog").resolve()
    path = (Path(settings.MEDIA_ROOT) / item.image.name).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path


# --- items ---------------------------------------------------------------------------------------


def _clean(data: dict) -> dict:
    data = {k: v for k, v in data.items() if k in EDITABLE}
    roles = data.get("visible_roles")
    if roles is not None:
        if not isinstance(roles, list) or any(not isinstance(r, str) for r in roles):
            raise ValidationError({"visible_roles": "A list of employee roles."})
        unknown = sorted(set(roles) - ROLES)
        if unknown:
            raise ValidationError(
                {"visible_roles": f"Unknown role(s): {', '.join(unknown)}; use {', '.join(sorted(ROLES))}."}
            )
        data["visible_roles"] = sorted(set(roles))
    return data


def _save(item: CatalogItem, exclude=()) -> None:
    try:
        item.full_clean(exclude=["organization", "image", *exclude], validate_unique=False)
    except ValidationError as exc:
        raise ValidationError(exc.message_dict) from None
    if CatalogItem.objects.filter(name=item.name).exclude(pk=item.pk).exists():
        raise ValidationError({"name": "Another catalogue item has this name."})
    item.save()


def _set_locations(org_id: int, item: CatalogItem, locations) -> None:
    wanted = {loc.pk for loc in locations}
    if any(loc.organization_id != org_id for loc in locations):
        raise ValidationError({"visible_locations": "Unknown location."})
    CatalogItemLocation.objects.filter(item=item).exclude(location_id__in=wanted).delete()
    have = set(CatalogItemLocation.objects.filter(item=item).values_list("location_id", flat=True))
    CatalogItemLocation.objects.bulk_create(
        [
            CatalogItemLocation(organization_id=org_id, item=item, location_id=pk)
            for pk in sorted(wanted - have)
        ]
    )


@transaction.atomic
def item_create(*, org, actor: Actor, data: dict, locations: list[Location] | None = None) -> CatalogItem:
    org_id = _check_tenant(org)
    item = CatalogItem(organization_id=org_id, **_clean(data))
    _save(item)
    if locations:
        _set_locations(org_id, item, locations)
    audit_log_write(
        organization=org,
        actor=actor,
        action="catalog.item_create",
        instance=item,
        changes={**_clean(data), "visible_locations": sorted(loc.pk for loc in locations or [])},
    )
    return item


@transaction.atomic
def item_update(
    *, org, actor: Actor, item: CatalogItem, data: dict, locations: list[Location] | None = None
) -> CatalogItem:
    """Change an item; ``locations`` None leaves its locations, a list replaces them.

    The row is locked like a redemption locks it, so an edit of the stock never overwrites a
    decrement made meanwhile.
    """
    org_id = _check_tenant(org)
    item = CatalogItem.objects.select_for_update().get(pk=item.pk)
    changes = _clean(data)
    for name, value in changes.items():
        setattr(item, name, value)
    _save(item)
    if locations is not None:
        _set_locations(org_id, item, locations)
        changes["visible_locations"] = sorted(loc.pk for loc in locations)
    audit_log_write(
        organization=org, actor=actor, action="catalog.item_update", instance=item, changes=changes
    )
    return item


@transaction.atomic
def item_deactivate(*, org, actor: Actor, item: CatalogItem) -> CatalogItem:
    """Withdraw an item from the catalogue (kept: redemptions point at it)."""
    _check_tenant(org)
    item = CatalogItem.objects.select_for_update().get(pk=item.pk)
    if item.active:
        item.active = False
        item.save(update_fields=["active"])
        audit_log_write(organization=org, actor=actor, action="catalog.item_deactivate", instance=item)
    return item


@transaction.atomic
def item_set_image(*, org, actor: Actor, item: CatalogItem, upload) -> CatalogItem:
    """Check the upload by its content, store a clean re-encode, drop the previous file."""
    _check_tenant(org)
    try:
        image, fmt = _decode(upload)
    except ValidationError as exc:
        raise ValidationError({"image": exc.message_dict.get("file", exc.messages)}) from None
    image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
    item = CatalogItem.objects.select_for_update().get(pk=item.pk)
    old = image_file(item)
    ext = "png" if fmt == "PNG" else "jpg"
    item.image.save(f"{uuid.uuid4().hex}.{ext}", ContentFile(_encode(image, fmt)), save=False)
    item.save(update_fields=["image"])
    if old is not None:
        transaction.on_commit(lambda: old.unlink(missing_ok=True))
    audit_log_write(
        organization=org,
        actor=actor,
        action="catalog.item_image",
        instance=item,
        changes={"image": item.image.name},
    )
    return item


# --- gift-card code pools ------------------------------------------------------------------------


def parse_codes(text: str) -> list[str]:
    """Codes from a textarea or a CSV: one per line / the first column; blanks and a "code" header skipped."""
    codes = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        code = row[0].strip()
        if not code or (not codes and code.lower() in {"code", "codes", "gift card code"}):
            continue
        codes.append(code)
    return codes


@transaction.atomic
def codes_load(*, org, actor: Actor, item: CatalogItem, text: str) -> dict:
    """Add codes to an item's pool; codes already in the pool (or repeated) are counted, not added."""
    org_id = _check_tenant(org)
    if item.kind != CatalogItem.Kind.GIFT_CARD:
        raise ValidationError({"item": "Only gift-card items have a code pool."})
    codes = parse_codes(text or "")
    if not codes:
        raise ValidationError({"codes": "No codes found: one code per line, or a CSV with the code first."})
    if len(codes) > MAX_CODES_PER_LOAD:
        raise ValidationError({"codes": f"At most {MAX_CODES_PER_LOAD} codes at a time."})
    too_long = [i + 1 for i, c in enumerate(codes) if len(c) > CODE_MAX_LENGTH]
    if too_long:
        raise ValidationError(
            {"codes": f"Codes longer than {CODE_MAX_LENGTH} characters (line {too_long[0]})."}
        )
    unique = list(dict.fromkeys(codes))
    existing = set(GiftCardCode.objects.filter(item=item, code__in=unique).values_list("code", flat=True))
    new = [c for c in unique if c not in existing]
    # ignore_conflicts: a concurrent load of the same codes adds each once (the unique index).
    GiftCardCode.objects.bulk_create(
        [GiftCardCode(organization_id=org_id, item=item, code=c) for c in new], ignore_conflicts=True
    )
    result = {
        "loaded": len(new),
        "duplicates": len(codes) - len(new),
        "available": GiftCardCode.objects.filter(item=item, redemption__isnull=True).count(),
    }
    audit_log_write(
        organization=org,
        actor=actor,
        action="catalog.codes_load",
        instance=item,
        changes={"loaded": result["loaded"], "duplicates": result["duplicates"]},
    )
    return result
