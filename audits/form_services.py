"""Writes of the audit form builder: forms, their structure (versioned), programs and scenarios.

Keyword-only, organization first, atomic, audited.

Versioning follows the survey builder: a version some Audit already uses is frozen, because the
audit's answers, stored scores and disputes point at its items. Saving the structure then creates
version N+1; otherwise the current version is replaced in place. Item and section keys are the
identity across versions, so reports can combine audits of several versions by key.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction

from audits.models import (
    Audit,
    AuditForm,
    AuditFormVersion,
    FormItem,
    FormSection,
    Scenario,
    ScenarioLeg,
)
from audits.scoring import ItemType
from cem.models import Channel, Standard
from cem.principals import Actor
from cem.services import _check_tenant, _snapshot, audit_log_write, record_create, record_update

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_SECTIONS = 50
MAX_ITEMS = 500
MAX_TEXT = 1000
_SCALE_LIMIT = 1000  # FormItem.scale_* are small integers
_NUMBER_LIMIT = Decimal("99999999")  # target_* / plausible_max hold 8 digits before the point

SECTION_FIELDS = ("key", "title", "position", "channel_kind")
ITEM_FIELDS = (
    "key",
    "section",
    "type",
    "weight",
    "critical",
    "required",
    "standard",
    "scale_min",
    "scale_max",
    "target_min",
    "target_max",
    "choices",
    "pass_fraction",
    "comment_required_on_fail",
    "plausible_max",
    "text",
    "position",
)


class _Errors:
    def __init__(self):
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)


def _decimal(value, field: str, errors: _Errors, *, default=None, low=None, high=None):
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        errors.add(field, "Must be a number.")
        return default
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        errors.add(field, "Must be a number.")
        return default
    if not number.is_finite():
        errors.add(field, "Must be a number.")
        return default
    if (low is not None and number < low) or (high is not None and number > high):
        errors.add(field, f"Must be between {low} and {high}.")
        return default
    return number


def _int(value, field: str, errors: _Errors, *, default, low: int, high: int):
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        errors.add(field, "Must be a whole number.")
        return default
    try:
        number = int(value)
    except ValueError:
        errors.add(field, "Must be a whole number.")
        return default
    if not low <= number <= high:
        errors.add(field, f"Must be between {low} and {high}.")
        return default
    return number


def _bool(value, field: str, errors: _Errors, *, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        errors.add(field, "Must be true or false.")
        return default
    return value


def _translations(value, field: str, errors: _Errors, *, required: bool) -> dict:
    if value in (None, ""):
        value = {}
    if isinstance(value, str):
        value = {"en": value}
    if not isinstance(value, dict):
        errors.add(field, "Must be an object of {locale: text}.")
        return {}
    out = {}
    for locale, text in value.items():
        if not isinstance(locale, str) or not _LOCALE.match(locale):
            errors.add(field, f"Not a language code: {locale!r}.")
        elif not isinstance(text, str):
            errors.add(field, f"The {locale} text must be a string.")
        elif len(text) > MAX_TEXT:
            errors.add(field, f"The {locale} text has more than {MAX_TEXT} characters.")
        elif text.strip():
            out[locale] = text.strip()
    if required and not out:
        errors.add(field, "Needs a text in at least one language.")
    return out


def _key(value, field: str, errors: _Errors, seen: dict[str, int], label: str, index: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.add(field, "This field is required.")
        return None
    key = value.strip()
    if len(key) > 60 or not _KEY.match(key):
        errors.add(field, "Use 1–60 lower-case letters, digits, _ or -.")
        return None
    if key in seen:
        errors.add(field, f"The key {key!r} is used twice (also {label}[{seen[key]}]).")
        return None
    seen[key] = index
    return key


def _choices(value, where: str, errors: _Errors) -> list[dict]:
    if not isinstance(value, list) or not value:
        errors.add(f"{where}.choices", "A choice item needs at least one option.")
        return []
    out, seen = [], set()
    for j, choice in enumerate(value):
        at = f"{where}.choices[{j}]"
        if not isinstance(choice, dict):
            errors.add(at, "Must be an object with value, label and points.")
            continue
        raw = choice.get("value")
        choice_value = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
        if not choice_value or len(choice_value) > 100:
            errors.add(f"{at}.value", "Needs a value of 1–100 characters.")
            continue
        if choice_value.lower() == "n/a":
            errors.add(f"{at}.value", "'n/a' is reserved for not applicable.")
            continue
        if choice_value in seen:
            errors.add(f"{at}.value", f"The value {choice_value!r} is used twice.")
            continue
        seen.add(choice_value)
        if choice.get("points") in (None, ""):
            errors.add(f"{at}.points", "Each option needs points (the fraction of the weight, 0 to 1).")
            continue
        points = _decimal(choice.get("points"), f"{at}.points", errors, low=Decimal(0), high=Decimal(1))
        label = _translations(choice.get("label"), f"{at}.label", errors, required=False)
        if points is not None:
            out.append({"value": choice_value, "label": label, "points": str(points)})
    return out


def clean_structure(sections, items) -> tuple[list[dict], list[dict]]:
    """Validate a structure; returns model-ready section and item dicts in stored order.

    Errors name the field by its place in the request: ``items[3].standard``.
    """
    if not isinstance(sections, list) or not sections:
        raise ValidationError({"sections": "Add at least one section."})
    if not isinstance(items, list) or not items:
        raise ValidationError({"items": "Add at least one item."})
    if len(sections) > MAX_SECTIONS:
        raise ValidationError({"sections": f"At most {MAX_SECTIONS} sections."})
    if len(items) > MAX_ITEMS:
        raise ValidationError({"items": f"At most {MAX_ITEMS} items."})
    errors = _Errors()

    section_out: list[dict] = []
    section_keys: dict[str, int] = {}
    for i, s in enumerate(sections):
        where = f"sections[{i}]"
        if not isinstance(s, dict):
            errors.add(where, "Must be an object.")
            continue
        unknown = set(s) - set(SECTION_FIELDS) - {"id"}
        if unknown:
            errors.add(where, f"Unknown field(s): {', '.join(sorted(unknown))}.")
        key = _key(s.get("key"), f"{where}.key", errors, section_keys, "sections", i)
        channel_kind = s.get("channel_kind") or ""
        if channel_kind not in ("", *Channel.Kind.values):
            errors.add(f"{where}.channel_kind", f"Must be one of {', '.join(Channel.Kind.values)}.")
        section_out.append(
            {
                "key": key,
                "title": _translations(s.get("title"), f"{where}.title", errors, required=True),
                "position": _int(
                    s.get("position"), f"{where}.position", errors, default=i, low=0, high=32767
                ),
                "channel_kind": channel_kind,
            }
        )

    standard_refs = {
        i: it["standard"]
        for i, it in enumerate(items)
        if isinstance(it, dict) and it.get("standard") not in (None, "")
    }
    wanted = {ref for ref in standard_refs.values() if isinstance(ref, int) and not isinstance(ref, bool)}
    # The scoped manager: another tenant's standard id is simply unknown here.
    standards = set(Standard.objects.filter(pk__in=wanted).values_list("pk", flat=True))

    item_out: list[dict] = []
    item_keys: dict[str, int] = {}
    for i, it in enumerate(items):
        where = f"items[{i}]"
        if not isinstance(it, dict):
            errors.add(where, "Must be an object.")
            continue
        unknown = set(it) - set(ITEM_FIELDS) - {"id"}
        if unknown:
            errors.add(where, f"Unknown field(s): {', '.join(sorted(unknown))}.")
        key = _key(it.get("key"), f"{where}.key", errors, item_keys, "items", i)
        section = it.get("section")
        if section not in section_keys:
            errors.add(f"{where}.section", f"Must be the key of one of the sections; {section!r} is not.")
        itype = it.get("type")
        if itype not in FormItem.Type.values:
            errors.add(f"{where}.type", f"Must be one of {', '.join(FormItem.Type.values)}.")
            itype = None
        scored = itype in ItemType.SCORED
        weight = _decimal(it.get("weight"), f"{where}.weight", errors, default=Decimal(1), high=Decimal(9999))
        if scored and weight is not None and weight <= 0:
            errors.add(f"{where}.weight", "A scored item needs a weight greater than 0.")
        if not scored:
            weight = Decimal(0)  # text and photo items never score; a weight would only mislead
        critical = _bool(it.get("critical"), f"{where}.critical", errors, default=False)
        if critical and itype is not None and not scored:
            errors.add(f"{where}.critical", "Only scored items can be critical.")
        standard_id = None
        ref = standard_refs.get(i)
        if ref is not None:
            if ref not in standards or isinstance(ref, bool):
                errors.add(f"{where}.standard", f"Unknown standard: {ref!r}.")
            else:
                standard_id = ref
        elif scored:
            errors.add(f"{where}.standard", "A scored item must be linked to a service standard.")

        scale_min = _int(it.get("scale_min"), f"{where}.scale_min", errors, default=1, low=-1000, high=1000)
        scale_max = _int(it.get("scale_max"), f"{where}.scale_max", errors, default=5, low=-1000, high=1000)
        if (
            itype == ItemType.SCALE
            and scale_min is not None
            and scale_max is not None
            and scale_min >= scale_max
        ):
            errors.add(f"{where}.scale_max", "Must be greater than scale_min.")
        lim = _NUMBER_LIMIT
        target_min = _decimal(it.get("target_min"), f"{where}.target_min", errors, low=-lim, high=lim)
        target_max = _decimal(it.get("target_max"), f"{where}.target_max", errors, low=-lim, high=lim)
        plausible_max = _decimal(it.get("plausible_max"), f"{where}.plausible_max", errors, low=0, high=lim)
        if itype in (ItemType.NUMERIC, ItemType.TIME):
            if target_min is None and target_max is None and f"{where}.target_max" not in errors.by_field:
                errors.add(
                    f"{where}.target_max", "A numeric or time item needs target_min and/or target_max."
                )
            if target_min is not None and target_max is not None and target_min > target_max:
                errors.add(f"{where}.target_max", "Must not be below target_min.")
        else:
            for name, value in (("target_min", target_min), ("target_max", target_max)):
                if value is not None:
                    errors.add(f"{where}.{name}", "Only numeric and time items have targets.")
            if plausible_max is not None:
                errors.add(f"{where}.plausible_max", "Only numeric and time items have a plausible maximum.")
        choices: list[dict] = []
        if itype == ItemType.CHOICE:
            choices = _choices(it.get("choices"), where, errors)
        elif it.get("choices"):
            errors.add(f"{where}.choices", "Only choice items have options.")
        pass_fraction = _decimal(
            it.get("pass_fraction"), f"{where}.pass_fraction", errors, default=Decimal(1), low=0, high=1
        )
        item_out.append(
            {
                "key": key,
                "section": section,
                "type": itype,
                "weight": weight,
                "critical": critical,
                "required": _bool(it.get("required"), f"{where}.required", errors, default=True),
                "standard_id": standard_id,
                "scale_min": scale_min,
                "scale_max": scale_max,
                "target_min": target_min,
                "target_max": target_max,
                "choices": choices,
                "pass_fraction": pass_fraction,
                "comment_required_on_fail": _bool(
                    it.get("comment_required_on_fail"),
                    f"{where}.comment_required_on_fail",
                    errors,
                    default=True,
                ),
                "plausible_max": plausible_max,
                "text": _translations(it.get("text"), f"{where}.text", errors, required=True),
                "position": _int(
                    it.get("position"), f"{where}.position", errors, default=i, low=0, high=32767
                ),
            }
        )
    if errors.by_field:
        raise ValidationError(errors.by_field)
    section_out.sort(key=lambda s: s["position"])
    item_out.sort(key=lambda s: s["position"])
    return section_out, item_out


def _quant(value: Decimal | None, places: str) -> str | None:
    return None if value is None else str(Decimal(value).quantize(Decimal(places)))


def _normal(sections: list[dict], items: list[dict]) -> tuple:
    """A comparable form of a structure, so saving the same structure again changes nothing."""
    secs = [(s["key"], s["title"], s["position"], s["channel_kind"]) for s in sections]
    its = [
        (
            i["key"],
            i["section"],
            i["type"],
            _quant(i["weight"], "0.01"),
            i["critical"],
            i["required"],
            i["standard_id"],
            i["scale_min"],
            i["scale_max"],
            _quant(i["target_min"], "0.01"),
            _quant(i["target_max"], "0.01"),
            [(c["value"], c.get("label") or {}, str(Decimal(str(c["points"])))) for c in i["choices"]],
            _quant(i["pass_fraction"], "0.001"),
            i["comment_required_on_fail"],
            _quant(i["plausible_max"], "0.01"),
            i["text"],
            i["position"],
        )
        for i in items
    ]
    return secs, its


def _stored(version: AuditFormVersion) -> tuple:
    sections = list(FormSection.objects.filter(version=version).order_by("position", "id"))
    keys = {s.pk: s.key for s in sections}
    items = list(FormItem.objects.filter(version=version).order_by("position", "id"))
    return _normal(
        [{f: getattr(s, f) for f in SECTION_FIELDS} for s in sections],
        [
            {
                **{f: getattr(i, f) for f in ITEM_FIELDS if f not in ("section", "standard")},
                "section": keys[i.section_id],
                "standard_id": i.standard_id,
            }
            for i in items
        ],
    )


def _write_structure(org_id: int, version: AuditFormVersion, sections: list[dict], items: list[dict]) -> None:
    created = FormSection.objects.bulk_create(
        [FormSection(organization_id=org_id, version=version, **s) for s in sections]
    )
    by_key = {s.key: s for s in created}
    FormItem.objects.bulk_create(
        [
            FormItem(organization_id=org_id, version=version, **{**i, "section": by_key[i["section"]]})
            for i in items
        ]
    )


def version_in_use(version: AuditFormVersion) -> bool:
    return Audit.objects.filter(version=version).exists()


@transaction.atomic
def form_create(*, organization, actor: Actor, data: dict) -> AuditForm:
    return record_create(organization=organization, actor=actor, model=AuditForm, data=data)


@transaction.atomic
def form_update(*, organization, actor: Actor, form: AuditForm, data: dict) -> AuditForm:
    return record_update(organization=organization, actor=actor, instance=form, data=data)


@transaction.atomic
def form_structure_save(
    *, organization, actor: Actor, form: AuditForm, sections, items
) -> tuple[AuditFormVersion, bool]:
    """Store the form's sections and items; returns (the version holding them, whether it is new).

    Saving the same structure again changes nothing, so a client may PUT idempotently.
    """
    org_id = _check_tenant(organization)
    # Serialises builders of one form, so two saves cannot both create version N+1.
    form = AuditForm.objects.select_for_update().get(pk=form.pk)
    section_specs, item_specs = clean_structure(sections, items)
    current = AuditFormVersion.objects.filter(form=form).order_by("-number").first()
    if current is not None and _stored(current) == _normal(section_specs, item_specs):
        return current, False
    if current is None or version_in_use(current):
        version = AuditFormVersion.objects.create(
            organization_id=org_id, form=form, number=(current.number + 1) if current else 1
        )
        action, created = "audit_form.version_create", True
    else:
        # Nothing points at an unused version's items (answers and disputes belong to audits).
        version = current
        FormItem.objects.filter(version=version).delete()
        FormSection.objects.filter(version=version).delete()
        action, created = "audit_form.structure_update", False
    _write_structure(org_id, version, section_specs, item_specs)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action=action,
        instance=form,
        changes={
            "version": version.number,
            "sections": [s["key"] for s in section_specs],
            "items": [i["key"] for i in item_specs],
        },
    )
    return version, created


# --- scenarios ----------------------------------------------------------------------------------


def _clean_legs(legs, program) -> list[dict]:
    if legs is None:
        return []
    if not isinstance(legs, list):
        raise ValidationError({"legs": "Must be a list of legs."})
    errors = _Errors()
    version = AuditFormVersion.objects.filter(form_id=program.form_id).order_by("-number").first()
    section_keys = (
        set(FormSection.objects.filter(version=version).values_list("key", flat=True)) if version else None
    )
    out = []
    for i, leg in enumerate(legs):
        where = f"legs[{i}]"
        if not isinstance(leg, dict):
            errors.add(where, "Must be an object.")
            continue
        unknown = set(leg) - {"id", "position", "channel_kind", "instructions", "section_key"}
        if unknown:
            errors.add(where, f"Unknown field(s): {', '.join(sorted(unknown))}.")
        channel_kind = leg.get("channel_kind")
        if channel_kind not in Channel.Kind.values:
            errors.add(f"{where}.channel_kind", f"Must be one of {', '.join(Channel.Kind.values)}.")
        section_key = leg.get("section_key")
        if not isinstance(section_key, str) or not _KEY.match(section_key or "") or len(section_key) > 60:
            errors.add(f"{where}.section_key", "Must be a section key.")
        elif section_keys is not None and section_key not in section_keys:
            errors.add(f"{where}.section_key", f"The program's form has no section {section_key!r}.")
        instructions = leg.get("instructions") or ""
        if not isinstance(instructions, str):
            errors.add(f"{where}.instructions", "Must be text.")
            instructions = ""
        out.append(
            {
                "position": _int(
                    leg.get("position"), f"{where}.position", errors, default=i, low=0, high=32767
                ),
                "channel_kind": channel_kind,
                "instructions": instructions,
                "section_key": section_key,
            }
        )
    if errors.by_field:
        raise ValidationError(errors.by_field)
    return out


def _replace_legs(org_id: int, scenario: Scenario, legs: list[dict]) -> None:
    ScenarioLeg.objects.filter(scenario=scenario).delete()
    ScenarioLeg.objects.bulk_create(
        [ScenarioLeg(organization_id=org_id, scenario=scenario, **leg) for leg in legs]
    )


@transaction.atomic
def scenario_create(*, organization, actor: Actor, data: dict, legs=None) -> Scenario:
    org_id = _check_tenant(organization)
    specs = _clean_legs(legs, data["program"])
    scenario = record_create(organization=org_id, actor=actor, model=Scenario, data=data)
    if specs:
        _replace_legs(org_id, scenario, specs)
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="scenario.legs_set",
            instance=scenario,
            changes={"legs": [leg["section_key"] for leg in specs]},
        )
    return scenario


@transaction.atomic
def scenario_update(*, organization, actor: Actor, scenario: Scenario, data: dict, legs=None) -> Scenario:
    """``legs`` None keeps the current legs; a list replaces them."""
    org_id = _check_tenant(organization)
    scenario = record_update(organization=org_id, actor=actor, instance=scenario, data=data)
    if legs is not None:
        specs = _clean_legs(legs, scenario.program)
        before = [
            _snapshot(leg) for leg in ScenarioLeg.objects.filter(scenario=scenario).order_by("position")
        ]
        _replace_legs(org_id, scenario, specs)
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="scenario.legs_set",
            instance=scenario,
            changes={"before": before, "legs": [leg["section_key"] for leg in specs]},
        )
    return scenario
