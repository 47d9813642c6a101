"""Writes of the survey builder: settings, questions (with versioning), triggers and status.

Keyword-only, organization first, atomic, audited; a new version emits ``SurveyPublished``.

Versioning: a version that has responses is frozen, because answers point at its questions and
reports read their text and scale. Saving questions then creates version N+1; otherwise the
current version is edited in place. The question ``key`` is the identity across versions, so
reports combine answers by key; a key may therefore not change its type between versions.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import transaction

from cem.events import emit
from cem.models import Channel, Standard, Touchpoint
from cem.params import id_of as _id_of
from cem.principals import Actor
from cem.services import _check_tenant, _snapshot, audit_log_write
from feedback.models import (
    Question,
    QuestionType,
    Response,
    Survey,
    SurveyTrigger,
    SurveyVersion,
)

SURVEY_PUBLISHED = "SurveyPublished"

# The settings survey_update may change; status and public_key have their own paths.
SETTINGS_FIELDS = (
    "name",
    "description",
    "default_locale",
    "locales",
    "delivery_channel",
    "send_delay_minutes",
    "reminder_after_days",
    "expires_after_days",
    "allowed_origins",
)
SHOW_IF_OPS = ("eq", "ne", "in", "lte", "gte")
SCORED_TYPES = {QuestionType.NPS, QuestionType.CSAT, QuestionType.CES, QuestionType.FCR, QuestionType.RATING}
CHOICE_TYPES = {QuestionType.SINGLE, QuestionType.MULTI}
QUESTION_FIELDS = (
    "key",
    "type",
    "required",
    "text",
    "help_text",
    "choices",
    "scale_min",
    "scale_max",
    "page",
    "standard",
    "show_if",
)
_LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
MAX_QUESTIONS = 200
MAX_TEXT = 1000
_SCALE_LIMIT = 1000  # Answer.number holds 4 digits before the point; keep scales well inside


# --- settings -----------------------------------------------------------------------------------


def _clean_settings(data: dict, instance: Survey) -> dict:
    unknown = set(data) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError({name: "Not a survey setting." for name in sorted(unknown)})
    data = dict(data)
    errors: dict[str, str] = {}
    if "locales" in data or "default_locale" in data:
        default = data.get("default_locale", instance.default_locale) or ""
        locales = list(data.get("locales", instance.locales) or [])
        for value in [default, *locales]:
            if not isinstance(value, str) or not _LOCALE.match(value):
                errors["locales" if value in locales else "default_locale"] = (
                    f"Not a language code: {value!r} (use e.g. en, es, pt-BR)."
                )
        if not errors:
            # The default locale is always offered; keep the given order, no repeats.
            data["locales"] = list(dict.fromkeys([default, *locales]))
            data["default_locale"] = default
    if "allowed_origins" in data:
        origins = data["allowed_origins"] or []
        bad = [o for o in origins if not isinstance(o, str) or not _ORIGIN.match(o)]
        if bad:
            errors["allowed_origins"] = f"Not an origin (scheme://host[:port]): {', '.join(map(str, bad))}."
        else:
            data["allowed_origins"] = list(dict.fromkeys(origins))
    if errors:
        raise ValidationError(errors)
    return data


def _set_fields(survey: Survey, data: dict) -> None:
    for name, value in data.items():
        setattr(survey, name, value)
    survey.full_clean(validate_unique=True)
    survey.save()


@transaction.atomic
def survey_create(
    *,
    organization,
    actor: Actor,
    data: dict,
    questions: list[dict] | None = None,
    channels=None,
    touchpoints=None,
) -> Survey:
    """A draft survey; optionally with its first questions (version 1) and triggers."""
    org_id = _check_tenant(organization)
    survey = Survey(organization_id=org_id)
    _set_fields(survey, _clean_settings(data, survey))
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="survey.create",
        instance=survey,
        changes={"after": _snapshot(survey)},
    )
    if channels or touchpoints:
        survey_triggers_set(
            organization=organization,
            actor=actor,
            survey=survey,
            channels=channels or [],
            touchpoints=touchpoints or [],
        )
    if questions is not None:
        survey_questions_save(organization=organization, actor=actor, survey=survey, questions=questions)
    return survey


@transaction.atomic
def survey_update(*, organization, actor: Actor, survey: Survey, data: dict) -> Survey:
    """Settings only: questions go through survey_questions_save, status through activate/archive."""
    org_id = _check_tenant(organization)
    survey = Survey.objects.select_for_update().get(pk=survey.pk)
    before = _snapshot(survey)
    _set_fields(survey, _clean_settings(data, survey))
    after = _snapshot(survey)
    changed = {k: {"before": before.get(k), "after": v} for k, v in after.items() if before.get(k) != v}
    audit_log_write(
        organization=org_id, actor=actor, action="survey.update", instance=survey, changes=changed
    )
    return survey


@transaction.atomic
def survey_delete(*, organization, actor: Actor, survey: Survey) -> None:
    """Only a survey nobody answered; an answered one is archived, so its reports survive."""
    org_id = _check_tenant(organization)
    if Response.objects.filter(survey=survey).exists():
        raise ValidationError({"non_field_errors": "This survey has responses; archive it instead."})
    before, pk = _snapshot(survey), survey.pk
    survey.delete()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="survey.delete",
        object_type=Survey._meta.label,
        object_id=pk,
        changes={"before": before},
    )


def _set_status(organization, actor: Actor, survey: Survey, status: str) -> Survey:
    org_id = _check_tenant(organization)
    survey = Survey.objects.select_for_update().get(pk=survey.pk)
    if status == Survey.Status.ACTIVE and not Question.objects.filter(version__survey=survey).exists():
        raise ValidationError({"status": "Add questions before activating the survey."})
    before = survey.status
    if before != status:
        survey.status = status
        survey.save(update_fields=["status", "updated_at"])
        audit_log_write(
            organization=org_id,
            actor=actor,
            action=f"survey.{'activate' if status == Survey.Status.ACTIVE else 'archive'}",
            instance=survey,
            changes={"status": {"before": before, "after": status}},
        )
    return survey


@transaction.atomic
def survey_activate(*, organization, actor: Actor, survey: Survey) -> Survey:
    return _set_status(organization, actor, survey, Survey.Status.ACTIVE)


@transaction.atomic
def survey_archive(*, organization, actor: Actor, survey: Survey) -> Survey:
    return _set_status(organization, actor, survey, Survey.Status.ARCHIVED)


# --- triggers -----------------------------------------------------------------------------------


def _resolve(model, values, field: str) -> list:
    """Instances or ids → instances of the tenant (scoped manager); unknown ids are a field error."""
    ids = []
    for value in values or []:
        pk = _id_of(getattr(value, "pk", value))
        if pk is None:
            raise ValidationError({field: f"Not an id: {value!r}."})
        ids.append(pk)
    found = {obj.pk: obj for obj in model.objects.filter(pk__in=ids)}
    missing = [str(pk) for pk in ids if pk not in found]
    if missing:
        label = model._meta.verbose_name
        raise ValidationError({field: f"Unknown {label}: {', '.join(missing)}."})
    return [found[pk] for pk in dict.fromkeys(ids)]


@transaction.atomic
def survey_triggers_set(*, organization, actor: Actor, survey: Survey, channels, touchpoints) -> list:
    """Replace the survey's triggers: one per channel ("any interaction there") and per touchpoint."""
    org_id = _check_tenant(organization)
    wanted = {(c.pk, None) for c in _resolve(Channel, channels, "channels")}
    wanted |= {(None, t.pk) for t in _resolve(Touchpoint, touchpoints, "touchpoints")}
    current = {(t.channel_id, t.touchpoint_id): t for t in SurveyTrigger.objects.filter(survey=survey)}
    removed = [t.pk for pair, t in current.items() if pair not in wanted]
    if removed:
        SurveyTrigger.objects.filter(pk__in=removed).delete()
    added = [pair for pair in wanted if pair not in current]
    SurveyTrigger.objects.bulk_create(
        [
            SurveyTrigger(organization_id=org_id, survey=survey, channel_id=ch, touchpoint_id=tp)
            for ch, tp in sorted(added, key=lambda p: (p[0] or 0, p[1] or 0))
        ]
    )
    if removed or added:
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="survey.triggers_set",
            instance=survey,
            changes={
                "channels": sorted(ch for ch, _ in wanted if ch),
                "touchpoints": sorted(tp for _, tp in wanted if tp),
            },
        )
    return list(SurveyTrigger.objects.filter(survey=survey).order_by("pk"))


# --- questions ----------------------------------------------------------------------------------


class _Errors:
    def __init__(self):
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)


def _translations(value, field: str, errors: _Errors, locales: list[str], *, need: str | None) -> dict:
    """{locale: text}; blank entries dropped, unknown locales refused, ``need`` required."""
    if value in (None, ""):
        value = {}
    if isinstance(value, str):
        value = {need or locales[0]: value}
    if not isinstance(value, dict):
        errors.add(field, "Must be an object of {locale: text}.")
        return {}
    out = {}
    for locale, text in value.items():
        if text is None or (isinstance(text, str) and not text.strip()):
            continue
        if not isinstance(text, str):
            errors.add(field, f"The {locale} text must be a string.")
        elif locale not in locales:
            errors.add(field, f"{locale!r} is not one of the survey's languages ({', '.join(locales)}).")
        elif len(text) > MAX_TEXT:
            errors.add(field, f"The {locale} text has more than {MAX_TEXT} characters.")
        else:
            out[locale] = text.strip()
    if need and need not in out:
        errors.add(field, f"Needs a text in the survey's default language ({need}).")
    return out


def _int(value, field: str, errors: _Errors, *, low: int, high: int, default=None):
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        errors.add(field, "Must be a whole number.")
        return default
    try:
        number = int(value) if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        errors.add(field, "Must be a whole number.")
        return default
    if not low <= number <= high:
        errors.add(field, f"Must be between {low} and {high}.")
        return default
    return number


def _choices(value, field: str, errors: _Errors, locales: list[str], default: str) -> list[dict]:
    if not isinstance(value, list) or not value:
        errors.add(field, "A choice question needs at least one option.")
        return []
    out, seen = [], set()
    for i, item in enumerate(value):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            errors.add(where, "Must be an object with value and label.")
            continue
        raw = item.get("value")
        choice_value = str(raw).strip() if isinstance(raw, str | int) and not isinstance(raw, bool) else ""
        if not choice_value:
            errors.add(f"{where}.value", "This field is required.")
            continue
        if len(choice_value) > 100:
            errors.add(f"{where}.value", "At most 100 characters.")
            continue
        if choice_value in seen:
            errors.add(f"{where}.value", f"The value {choice_value!r} is used twice.")
            continue
        seen.add(choice_value)
        label = _translations(item.get("label"), f"{where}.label", errors, locales, need=default)
        out.append({"value": choice_value, "label": label})
    return out


def _number(value) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _show_if(value, field: str, errors: _Errors, earlier: dict[str, dict]) -> dict | None:
    if value in (None, "", {}):
        return None
    if not isinstance(value, dict):
        errors.add(field, "Must be an object {question, op, value}.")
        return None
    extra = set(value) - {"question", "op", "value"}
    if extra:
        errors.add(field, f"Unknown field(s): {', '.join(sorted(extra))}.")
        return None
    target_key, op, expected = value.get("question"), value.get("op", "eq"), value.get("value")
    target = earlier.get(target_key) if isinstance(target_key, str) else None
    if target is None:
        errors.add(field, f"Must refer to an earlier question; {target_key!r} is not one.")
        return None
    if op not in SHOW_IF_OPS:
        errors.add(field, f"Unknown op {op!r}; use one of {', '.join(SHOW_IF_OPS)}.")
        return None
    values = expected if op == "in" else [expected]
    if op == "in" and (not isinstance(expected, list) or not expected):
        errors.add(field, "The in op needs a non-empty list of values.")
        return None
    if op != "in" and (expected is None or expected == "" or isinstance(expected, list | dict)):
        errors.add(field, "Needs a single value to compare with.")
        return None
    if op in ("lte", "gte") and target["type"] not in SCORED_TYPES:
        errors.add(field, f"{op} only compares scores; {target_key!r} is a {target['type']} question.")
        return None
    numeric = target["type"] in SCORED_TYPES and target["type"] != QuestionType.FCR
    if numeric and any(_number(v) is None for v in values):
        errors.add(field, f"{target_key!r} is scored: compare with numbers.")
        return None
    if target["type"] in CHOICE_TYPES:
        allowed = {c["value"] for c in target["choices"]}
        unknown = [str(v) for v in values if str(v) not in allowed]
        if unknown:
            errors.add(field, f"Not an option of {target_key!r}: {', '.join(unknown)}.")
            return None
    if target["type"] == QuestionType.TEXT and op not in ("eq", "ne", "in"):
        errors.add(field, "Text answers compare with eq, ne or in.")
        return None
    return {"question": target_key, "op": op, "value": expected}


def clean_questions(survey: Survey, questions, *, previous_types: dict[str, str] | None = None) -> list[dict]:
    """Validate a question list for ``survey``; returns model-ready dicts in stored order.

    Errors name the field by its place in the list: ``questions[3].show_if``.
    """
    if not isinstance(questions, list):
        raise ValidationError({"questions": "Must be a list of questions."})
    if not questions:
        raise ValidationError({"questions": "Add at least one question."})
    if len(questions) > MAX_QUESTIONS:
        raise ValidationError({"questions": f"At most {MAX_QUESTIONS} questions."})
    errors = _Errors()
    locales = list(dict.fromkeys([survey.default_locale, *(survey.locales or [])]))
    previous_types = previous_types or {}
    standard_refs = {}
    for i, q in enumerate(questions):
        if isinstance(q, dict) and q.get("standard") not in (None, ""):
            standard_refs[i] = getattr(q["standard"], "pk", q["standard"])
    wanted_ids = {pk for v in standard_refs.values() if (pk := _id_of(v)) is not None}
    standards = set(Standard.objects.filter(pk__in=wanted_ids).values_list("pk", flat=True))

    # Stored order is by page, then by place in the list; skip logic may only look backwards in it.
    pages = {}
    for i, q in enumerate(questions):
        page = q.get("page") if isinstance(q, dict) else None
        pages[i] = _int(page, f"questions[{i}].page", errors, low=1, high=100, default=1)
    order = sorted(range(len(questions)), key=lambda i: (pages[i], i))

    out: list[dict | None] = [None] * len(questions)
    earlier: dict[str, dict] = {}
    seen_keys: dict[str, int] = {}
    for position, i in enumerate(order):
        q, where = questions[i], f"questions[{i}]"
        if not isinstance(q, dict):
            errors.add(where, "Must be an object.")
            continue
        unknown = set(q) - set(QUESTION_FIELDS) - {"id", "position"}
        if unknown:
            errors.add(where, f"Unknown field(s): {', '.join(sorted(unknown))}.")
        key = q.get("key")
        if not isinstance(key, str) or not key.strip():
            errors.add(f"{where}.key", "This field is required.")
            key = None
        else:
            key = key.strip()
            if len(key) > 60 or not _KEY.match(key):
                errors.add(f"{where}.key", "Use 1–60 lower-case letters, digits, _ or -.")
                key = None
            elif key in seen_keys:
                first = seen_keys[key]
                errors.add(f"{where}.key", f"The key {key!r} is used twice (also questions[{first}]).")
                key = None
            else:
                seen_keys[key] = i
        qtype = q.get("type")
        if qtype not in QuestionType.values:
            errors.add(f"{where}.type", f"Must be one of {', '.join(QuestionType.values)}.")
            qtype = None
        elif key and key in previous_types and previous_types[key] != qtype:
            errors.add(
                f"{where}.type",
                f"{key!r} was a {previous_types[key]} question in an earlier version; reports combine "
                "answers by key, so use a new key for a different type.",
            )
        required = q.get("required", False)
        if not isinstance(required, bool):
            errors.add(f"{where}.required", "Must be true or false.")
        text = _translations(q.get("text"), f"{where}.text", errors, locales, need=survey.default_locale)
        help_text = _translations(q.get("help_text"), f"{where}.help_text", errors, locales, need=None)
        choices: list[dict] = []
        if qtype in CHOICE_TYPES:
            choices = _choices(q.get("choices"), f"{where}.choices", errors, locales, survey.default_locale)
        elif q.get("choices"):
            errors.add(f"{where}.choices", "Only single and multi questions have options.")
        scale_min = scale_max = None
        if qtype == QuestionType.RATING:
            lo, hi = -_SCALE_LIMIT, _SCALE_LIMIT
            scale_min = _int(q.get("scale_min"), f"{where}.scale_min", errors, low=lo, high=hi)
            scale_max = _int(q.get("scale_max"), f"{where}.scale_max", errors, low=lo, high=hi)
            reported = {f"{where}.scale_min", f"{where}.scale_max"} & set(errors.by_field)
            if (scale_min is None or scale_max is None) and not reported:
                errors.add(f"{where}.scale_max", "A rating question needs scale_min and scale_max.")
            elif scale_min is not None and scale_max is not None and scale_min >= scale_max:
                errors.add(f"{where}.scale_max", "Must be greater than scale_min.")
        standard_id = None
        if i in standard_refs:
            ref = standard_refs[i]
            if _id_of(ref) not in standards:
                errors.add(f"{where}.standard", f"Unknown standard: {ref!r}.")
            else:
                standard_id = _id_of(ref)
        info = {"type": qtype, "choices": choices}
        show_if = _show_if(q.get("show_if"), f"{where}.show_if", errors, earlier)
        if key and qtype:
            earlier[key] = info
        out[i] = {
            "key": key,
            "type": qtype,
            "required": required is True,
            "text": text,
            "help_text": help_text,
            "choices": choices,
            "scale_min": scale_min,
            "scale_max": scale_max,
            "page": pages[i],
            "position": position,
            "standard_id": standard_id,
            "show_if": show_if,
        }
    if errors.by_field:
        raise ValidationError(errors.by_field)
    return sorted(out, key=lambda d: d["position"])


def _spec(question: Question) -> dict:
    return {
        "key": question.key,
        "type": question.type,
        "required": question.required,
        "text": question.text,
        "help_text": question.help_text or {},
        "choices": question.choices or [],
        "scale_min": question.scale_min,
        "scale_max": question.scale_max,
        "page": question.page,
        "position": question.position,
        "standard_id": question.standard_id,
        "show_if": question.show_if,
    }


@transaction.atomic
def survey_questions_save(
    *, organization, actor: Actor, survey: Survey, questions: list[dict]
) -> SurveyVersion:
    """Store the survey's questions; returns the version that now holds them.

    A current version with responses stays as it is and version N+1 is created; otherwise the
    current version is edited in place (questions matched by key keep their ids). Saving the same
    questions again changes nothing.
    """
    org_id = _check_tenant(organization)
    # Serialises builders of one survey, so two saves cannot both create version N+1.
    survey = Survey.objects.select_for_update().get(pk=survey.pk)
    current = SurveyVersion.objects.filter(survey=survey).order_by("-number").first()
    answered = current is not None and Response.objects.filter(version=current).exists()
    # Types fixed by earlier versions; the current one only counts once it is frozen (answered).
    frozen = Question.objects.filter(version__survey=survey)
    if current is not None and not answered:
        frozen = frozen.exclude(version=current)
    previous_types = dict(frozen.order_by("version__number").values_list("key", "type"))
    specs = clean_questions(survey, questions, previous_types=previous_types)
    existing = (
        list(Question.objects.filter(version=current).order_by("page", "position", "id")) if current else []
    )
    if current is not None and [_spec(q) for q in existing] == specs:
        return current
    if current is None or answered:
        version = SurveyVersion.objects.create(
            organization_id=org_id,
            survey=survey,
            number=(current.number + 1) if current else 1,
            created_by_id=actor.user_id,
        )
        Question.objects.bulk_create([Question(organization_id=org_id, version=version, **s) for s in specs])
        emit(
            organization=org_id,
            event_type=SURVEY_PUBLISHED,
            payload={
                "survey_id": survey.pk,
                "version_id": version.pk,
                "number": version.number,
                "question_keys": [s["key"] for s in specs],
            },
            aggregate=version,
        )
        action = "survey.version_create"
    else:
        version = current
        by_key = {q.key: q for q in existing}
        keep = {s["key"] for s in specs}
        Question.objects.filter(version=version).exclude(key__in=keep).delete()
        new, changed = [], []
        for spec in specs:
            question = by_key.get(spec["key"])
            if question is None:
                new.append(Question(organization_id=org_id, version=version, **spec))
            elif _spec(question) != spec:
                for name, value in spec.items():
                    setattr(question, name, value)
                changed.append(question)
        if changed:
            Question.objects.bulk_update(changed, [f for f in QUESTION_FIELDS if f != "key"] + ["position"])
        Question.objects.bulk_create(new)
        action = "survey.questions_update"
    audit_log_write(
        organization=org_id,
        actor=actor,
        action=action,
        instance=survey,
        changes={"version": version.number, "questions": [s["key"] for s in specs]},
    )
    return version
