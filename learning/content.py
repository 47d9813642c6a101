"""Writes of learning content: lessons (versioned), attachments, quizzes, libraries and paths.

Keyword-only, organization first, atomic, audited.

Versioning follows the survey and audit-form builders: a draft lesson's version is edited in
place; once a version has been published (or anybody completed it) it is frozen, and a change
creates version N+1 that becomes the lesson's ``current_version``. Completions and quiz attempts
keep pointing at the version they were made on. Saving the same content again changes nothing.

Ids from the caller (standards, skill categories, lessons) resolve through the scoped managers,
so another tenant's id is unknown here and the error names the field.
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile
from decimal import Decimal, InvalidOperation
from pathlib import PurePath
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from audits.photos import _decode as decode_image
from audits.photos import _encode as encode_image
from cem.models import SkillCategory, Standard
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from learning.models import (
    Audience,
    Completion,
    ContentStatus,
    LearningPath,
    Lesson,
    LessonAttachment,
    LessonSkillCategory,
    LessonStandard,
    LessonVersion,
    Library,
    LibraryLesson,
    PathStep,
    Quiz,
    QuizAttempt,
    QuizQuestion,
)
from learning.rendering import render_markdown

LANGUAGES = ("en", "es")  # the languages lesson and quiz texts are written in (settings.LANGUAGES)
MAX_BODY = 100_000
MAX_QUESTIONS = 100
MAX_CHOICES = 10
MAX_PATH_STEPS = 100
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
ATTACHMENT_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]+")
LESSON_FIELDS = ("title", "summary", "language", "estimated_minutes", "audience")
VERSION_FIELDS = ("title", "body", "video_url", "translations", "estimated_minutes")


class _Errors:
    def __init__(self):
        self.by_field: dict[str, list[str]] = {}

    def add(self, field: str, message: str) -> None:
        self.by_field.setdefault(field, []).append(message)

    def raise_any(self) -> None:
        if self.by_field:
            raise ValidationError(self.by_field)


def _unique(field: str, message: str, write):
    """Run ``write``; a unique-name race lost to a concurrent save is the same 400 as the check."""
    try:
        with transaction.atomic():
            return write()
    except IntegrityError as error:
        if "_uniq" in str(error):
            raise ValidationError({field: message}) from None
        raise


# --- small cleaners ------------------------------------------------------------------------------


def _text(value, field: str, errors: _Errors, *, max_length: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors.add(field, "Must be text.")
        return ""
    value = value.strip()
    if required and not value:
        errors.add(field, "This field is required.")
    if len(value) > max_length:
        errors.add(field, f"At most {max_length} characters.")
    return value


def _language(value, field: str, errors: _Errors) -> str:
    if value not in LANGUAGES:
        errors.add(field, f"Must be one of {', '.join(LANGUAGES)}.")
        return LANGUAGES[0]
    return value


def _video_url(value, errors: _Errors) -> str:
    value = _text(value, "video_url", errors, max_length=200)
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        errors.add("video_url", "Must be an http:// or https:// address.")
        return ""
    return value


def _ids(value, field: str, errors: _Errors, model, label: str) -> list[int] | None:
    """Ids (or instances) of the tenant's rows; None when not given (keep what is there)."""
    if value is None:
        return None
    if not isinstance(value, list | tuple | set) and not hasattr(value, "__iter__"):
        errors.add(field, "Must be a list of ids.")
        return None
    raw = [getattr(v, "pk", v) for v in value]
    if any(isinstance(v, bool) or not isinstance(v, int) for v in raw):
        errors.add(field, "Must be a list of ids.")
        return None
    # The scoped manager: another tenant's id is simply unknown here.
    known = set(model.objects.filter(pk__in=raw).values_list("pk", flat=True))
    missing = [v for v in raw if v not in known]
    if missing:
        errors.add(field, f"Unknown {label}: {', '.join(str(v) for v in missing)}.")
        return None
    return list(dict.fromkeys(raw))


def _lesson_translations(value, errors: _Errors, *, own_language: str) -> dict:
    """{"es": {"title": …, "body": …}} → with the rendered body_html; the lesson's own language is
    its main text, not a translation."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        errors.add("translations", 'Must be an object like {"es": {"title": "…", "body": "…"}}.')
        return {}
    out = {}
    for lang, entry in value.items():
        at = f"translations.{lang}"
        if lang not in LANGUAGES:
            errors.add("translations", f"Not a supported language: {lang!r} (use {', '.join(LANGUAGES)}).")
            continue
        if lang == own_language:
            errors.add(at, "This is the lesson's own language; edit the lesson's text instead.")
            continue
        if not isinstance(entry, dict):
            errors.add(at, "Must be an object with title and body.")
            continue
        unknown = set(entry) - {"title", "body", "body_html"}
        if unknown:
            errors.add(at, f"Unknown field(s): {', '.join(sorted(unknown))}.")
        title = _text(entry.get("title"), f"{at}.title", errors, max_length=200)
        body = _text(entry.get("body"), f"{at}.body", errors, max_length=MAX_BODY)
        if not title and not body:
            continue  # an empty translation is no translation: learners get the lesson language
        if not body:
            errors.add(f"{at}.body", "A translation needs the body as well as the title.")
            continue
        out[lang] = {"title": title, "body": body, "body_html": render_markdown(body)}
    return out


def lesson_content(version: LessonVersion, language: str | None, *, lesson_language: str = "en") -> dict:
    """What a learner reading in ``language`` sees: the translation when there is one, else the
    lesson's own text (never an empty page or a translation key)."""
    entry = (version.translations or {}).get(language or "") if language != lesson_language else None
    if entry and entry.get("body_html"):
        return {
            "language": language,
            "title": entry.get("title") or version.title,
            "body_html": entry["body_html"],
            "fallback": False,
        }
    return {
        "language": lesson_language,
        "title": version.title,
        "body_html": version.body_html,
        "fallback": bool(language) and language != lesson_language,
    }


# --- lessons -------------------------------------------------------------------------------------


def _clean_lesson(data: dict, lesson: Lesson | None) -> tuple[dict, dict, list | None, list | None]:
    errors = _Errors()
    unknown = set(data) - set(LESSON_FIELDS) - set(VERSION_FIELDS) - {"standards", "skill_categories"}
    if unknown:
        errors.add("non_field_errors", f"Unknown field(s): {', '.join(sorted(unknown))}.")
    current = lesson.current_version if lesson is not None else None

    def given(name, default):
        return data.get(name, default)

    lesson_fields = {
        "title": _text(
            given("title", lesson.title if lesson else None), "title", errors, max_length=200, required=True
        ),
        "summary": _text(
            given("summary", lesson.summary if lesson else ""), "summary", errors, max_length=300
        ),
        "language": _language(given("language", lesson.language if lesson else "en"), "language", errors),
        "audience": given("audience", lesson.audience if lesson else Audience.EMPLOYEES),
    }
    if lesson_fields["audience"] not in Audience.values:
        errors.add("audience", f"Must be one of {', '.join(Audience.values)}.")
    minutes = given("estimated_minutes", lesson.estimated_minutes if lesson else 5)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 600:
        errors.add("estimated_minutes", "Must be a whole number of minutes between 1 and 600.")
        minutes = 5
    lesson_fields["estimated_minutes"] = minutes
    body = _text(given("body", current.body if current else ""), "body", errors, max_length=MAX_BODY)
    version_fields = {
        "title": lesson_fields["title"],
        "body": body,
        "video_url": _video_url(given("video_url", current.video_url if current else ""), errors),
        "translations": _lesson_translations(
            given("translations", _strip_html(current.translations) if current else {}),
            errors,
            own_language=lesson_fields["language"],
        ),
        "estimated_minutes": minutes,
    }
    standards = _ids(data.get("standards"), "standards", errors, Standard, "standard")
    skills = _ids(data.get("skill_categories"), "skill_categories", errors, SkillCategory, "skill category")
    errors.raise_any()
    return lesson_fields, version_fields, standards, skills


def _strip_html(translations: dict) -> dict:
    return {
        lang: {k: v for k, v in t.items() if k != "body_html"} for lang, t in (translations or {}).items()
    }


def _set_links(org_id: int, lesson: Lesson, standards: list[int] | None, skills: list[int] | None) -> dict:
    changes = {}
    if standards is not None:
        LessonStandard.objects.filter(lesson=lesson).exclude(standard_id__in=standards).delete()
        have = set(LessonStandard.objects.filter(lesson=lesson).values_list("standard_id", flat=True))
        LessonStandard.objects.bulk_create(
            [
                LessonStandard(organization_id=org_id, lesson=lesson, standard_id=s)
                for s in standards
                if s not in have
            ]
        )
        changes["standards"] = standards
    if skills is not None:
        LessonSkillCategory.objects.filter(lesson=lesson).exclude(skill_category_id__in=skills).delete()
        have = set(
            LessonSkillCategory.objects.filter(lesson=lesson).values_list("skill_category_id", flat=True)
        )
        LessonSkillCategory.objects.bulk_create(
            [
                LessonSkillCategory(organization_id=org_id, lesson=lesson, skill_category_id=s)
                for s in skills
                if s not in have
            ]
        )
        changes["skill_categories"] = skills
    return changes


def _render(version_fields: dict) -> dict:
    return {**version_fields, "body_html": render_markdown(version_fields["body"])}


def version_frozen(version: LessonVersion) -> bool:
    """A published version, or one somebody learned from, is history and never edited."""
    return version.published_at is not None or Completion.objects.filter(version=version).exists()


def _new_version(org_id: int, lesson: Lesson, fields: dict, *, copy_attachments_from=None) -> LessonVersion:
    number = (
        LessonVersion.objects.filter(lesson=lesson)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
        or 0
    ) + 1
    version = LessonVersion.objects.create(
        organization_id=org_id,
        lesson=lesson,
        number=number,
        published_at=timezone.now() if lesson.status != ContentStatus.DRAFT else None,
        **fields,
    )
    if copy_attachments_from is not None:
        # The file stays shared: attachment files are never rewritten, only added.
        LessonAttachment.objects.bulk_create(
            [
                LessonAttachment(
                    organization_id=org_id,
                    version=version,
                    name=a.name,
                    file=a.file.name,
                    content_type=a.content_type,
                    size=a.size,
                )
                for a in LessonAttachment.objects.filter(version=copy_attachments_from)
            ]
        )
    return version


def _validate_unique_title(lesson_fields: dict, lesson: Lesson | None) -> None:
    clash = Lesson.objects.filter(title=lesson_fields["title"])
    if lesson is not None:
        clash = clash.exclude(pk=lesson.pk)
    if clash.exists():
        raise ValidationError({"title": "Another lesson already has this title."})


@transaction.atomic
def lesson_create(*, organization, actor: Actor, data: dict) -> Lesson:
    """A draft lesson with its version 1."""
    org_id = _check_tenant(organization)
    lesson_fields, version_fields, standards, skills = _clean_lesson(data, None)
    _validate_unique_title(lesson_fields, None)
    lesson = _unique(
        "title",
        "Another lesson already has this title.",
        lambda: Lesson.objects.create(
            organization_id=org_id, status=ContentStatus.DRAFT, created_by_id=actor.user_id, **lesson_fields
        ),
    )
    version = _new_version(org_id, lesson, _render(version_fields))
    lesson.current_version = version
    lesson.save(update_fields=["current_version"])
    links = _set_links(org_id, lesson, standards, skills)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="lesson.create",
        instance=lesson,
        changes={"title": lesson.title, "version": 1, **links},
    )
    return lesson


def _locked(lesson: Lesson) -> Lesson:
    # Serialises editors of one lesson, so two saves cannot both create version N+1.
    return Lesson.objects.select_for_update(of=("self",)).select_related("current_version").get(pk=lesson.pk)


def _editable_version(org_id: int, lesson: Lesson, fields: dict | None = None) -> tuple[LessonVersion, bool]:
    """The version a change goes into: the current draft one, or a new one copied from the frozen
    current version (with ``fields`` applied). Returns (version, created)."""
    current = lesson.current_version
    if current is not None and not version_frozen(current):
        return current, False
    base = (
        {f: getattr(current, f) for f in (*VERSION_FIELDS, "body_html")}
        if current is not None
        else {"title": lesson.title, "body": "", "body_html": "", "video_url": "", "translations": {}}
    )
    version = _new_version(org_id, lesson, {**base, **(fields or {})}, copy_attachments_from=current)
    lesson.current_version = version
    lesson.save(update_fields=["current_version", "updated_at"])
    return version, True


@transaction.atomic
def lesson_update(*, organization, actor: Actor, lesson: Lesson, data: dict) -> tuple[Lesson, bool]:
    """Change a lesson; returns (lesson, whether a new version was created).

    A draft's version is edited in place; a published lesson gets version N+1 (live at once) and
    whoever completed version N keeps it.
    """
    org_id = _check_tenant(organization)
    lesson = _locked(lesson)
    lesson_fields, version_fields, standards, skills = _clean_lesson(data, lesson)
    _validate_unique_title(lesson_fields, lesson)
    before = {f: getattr(lesson, f) for f in LESSON_FIELDS}
    for name, value in lesson_fields.items():
        setattr(lesson, name, value)
    _unique("title", "Another lesson already has this title.", lesson.save)
    current = lesson.current_version
    rendered = _render(version_fields)
    same = current is not None and all(getattr(current, f) == rendered[f] for f in rendered)
    created = False
    if not same:
        if current is None or version_frozen(current):
            _, created = _editable_version(org_id, lesson, rendered)
        else:
            for name, value in rendered.items():
                setattr(current, name, value)
            current.save()
    links = _set_links(org_id, lesson, standards, skills)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="lesson.version_create" if created else "lesson.update",
        instance=lesson,
        changes={
            "version": lesson.current_version.number,
            **{
                f: {"before": before[f], "after": lesson_fields[f]}
                for f in LESSON_FIELDS
                if before[f] != lesson_fields[f]
            },
            **({"content": "changed"} if not same else {}),
            **links,
        },
    )
    return lesson, created


@transaction.atomic
def lesson_publish(*, organization, actor: Actor, lesson: Lesson) -> Lesson:
    org_id = _check_tenant(organization)
    lesson = _locked(lesson)
    version = lesson.current_version
    if version is None or not version.body.strip():
        raise ValidationError({"body": "A lesson needs some content before it can be published."})
    if lesson.status == ContentStatus.PUBLISHED:
        return lesson
    lesson.status = ContentStatus.PUBLISHED
    lesson.save(update_fields=["status", "updated_at"])
    if version.published_at is None:
        version.published_at = timezone.now()
        version.save(update_fields=["published_at"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="lesson.publish",
        instance=lesson,
        changes={"version": version.number},
    )
    return lesson


@transaction.atomic
def lesson_archive(*, organization, actor: Actor, lesson: Lesson) -> Lesson:
    """Archived lessons leave the catalogue; assignments and completions keep them."""
    org_id = _check_tenant(organization)
    lesson = _locked(lesson)
    if lesson.status == ContentStatus.ARCHIVED:
        return lesson
    before = lesson.status
    lesson.status = ContentStatus.ARCHIVED
    lesson.save(update_fields=["status", "updated_at"])
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="lesson.archive",
        instance=lesson,
        changes={"status": {"before": before, "after": lesson.status}},
    )
    return lesson


# --- attachments ---------------------------------------------------------------------------------


def _sniff(data: bytes) -> str | None:
    """The attachment's type from its bytes (never from its name or declared type)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if data.startswith(b"PK\x03\x04"):
        try:
            # Only the central directory is read; nothing is decompressed.
            names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if "[Content_Types].xml" not in names:
            return None
        if "word/document.xml" in names:
            return "docx"
        if "ppt/presentation.xml" in names:
            return "pptx"
    return None


def safe_name(name: str, ext: str) -> str:
    """A display name without paths or odd characters, ending in the type's real extension."""
    stem = PurePath(str(name or "").replace("\\", "/")).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    stem = _SAFE_NAME.sub("_", stem).strip(" ._-")[:150] or "attachment"
    return f"{stem}.{ext}"


@transaction.atomic
def attachment_add(*, organization, actor: Actor, lesson: Lesson, upload, name: str = "") -> LessonAttachment:
    """Attach a file to the lesson's current version (a new version if that one is published)."""
    org_id = _check_tenant(organization)
    size = getattr(upload, "size", None)
    too_large = ValidationError({"file": f"At most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB."})
    if size is not None and size > MAX_ATTACHMENT_BYTES:
        raise too_large
    upload.seek(0)
    data = upload.read(MAX_ATTACHMENT_BYTES + 1)
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise too_large
    if not data:
        raise ValidationError({"file": "The file is empty."})
    ext = _sniff(data)
    if ext is None:
        raise ValidationError({"file": "Only PDF, PNG, JPEG, Word (.docx) and PowerPoint (.pptx) files."})
    if ext in ("png", "jpg"):
        # Images are decoded and re-encoded as the audit photos are: a PNG or JPEG header on
        # anything else is refused, and no metadata (EXIF with GPS, XMP, text chunks) is kept.
        image, fmt = decode_image(ContentFile(data))
        data = encode_image(image, fmt)
        ext = "png" if fmt == "PNG" else "jpg"
    lesson = _locked(lesson)
    version, created = _editable_version(org_id, lesson)
    display = safe_name(name or getattr(upload, "name", ""), ext)
    attachment = LessonAttachment(
        organization_id=org_id,
        version=version,
        name=display,
        content_type=ATTACHMENT_TYPES[ext],
        size=len(data),
    )
    # Stored under a random name: the author's file name never reaches the file system.
    attachment.file.save(f"{org_id}-{uuid.uuid4().hex}.{ext}", ContentFile(data), save=False)
    attachment.save()
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="lesson.attachment_add",
        instance=lesson,
        changes={"version": version.number, "new_version": created, "name": display, "size": len(data)},
    )
    return attachment


# --- quizzes -------------------------------------------------------------------------------------

QUIZ_FIELDS = ("lesson", "title", "pass_mark", "attempts_allowed", "randomise", "status", "questions")
QUESTION_FIELDS = ("kind", "text", "choices", "explanation", "translations", "answer", "id", "position")


def _question_translations(value, where: str, errors: _Errors, keys: list[str]) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        errors.add(
            f"{where}.translations",
            'Must be like {"es": {"text": "…", "explanation": "…", "choices": {"a": "…"}}}.',
        )
        return {}
    out = {}
    for lang, entry in value.items():
        at = f"{where}.translations.{lang}"
        if lang not in LANGUAGES:
            errors.add(f"{where}.translations", f"Not a supported language: {lang!r}.")
            continue
        if not isinstance(entry, dict):
            errors.add(at, "Must be an object.")
            continue
        text = _text(entry.get("text"), f"{at}.text", errors, max_length=2000)
        explanation = _text(entry.get("explanation"), f"{at}.explanation", errors, max_length=2000)
        choices = entry.get("choices") or {}
        if not isinstance(choices, dict) or not all(isinstance(v, str) for v in choices.values()):
            errors.add(f"{at}.choices", "Must be an object of {choice key: text}.")
            choices = {}
        stray = set(choices) - set(keys)
        if stray:
            errors.add(f"{at}.choices", f"No such choice: {', '.join(sorted(stray))}.")
        if text or explanation or choices:
            out[lang] = {
                "text": text,
                "explanation": explanation,
                "choices": {k: v.strip() for k, v in choices.items() if k in keys and v.strip()},
            }
    return out


def _clean_question(q, where: str, errors: _Errors) -> dict | None:
    if not isinstance(q, dict):
        errors.add(where, "Must be an object.")
        return None
    unknown = set(q) - set(QUESTION_FIELDS)
    if unknown:
        errors.add(where, f"Unknown field(s): {', '.join(sorted(unknown))}.")
    kind = q.get("kind") or QuizQuestion.Kind.SINGLE
    if kind not in QuizQuestion.Kind.values:
        errors.add(f"{where}.kind", f"Must be one of {', '.join(QuizQuestion.Kind.values)}.")
        return None
    text = _text(q.get("text"), f"{where}.text", errors, max_length=2000, required=True)
    explanation = _text(q.get("explanation"), f"{where}.explanation", errors, max_length=2000)
    raw = q.get("choices")
    if kind == QuizQuestion.Kind.TRUE_FALSE and not raw and isinstance(q.get("answer"), bool):
        raw = [
            {"key": "true", "text": "True", "correct": q["answer"]},
            {"key": "false", "text": "False", "correct": not q["answer"]},
        ]
    choices: list[dict] = []
    if not isinstance(raw, list) or len(raw) < 2:
        errors.add(f"{where}.choices", "A question needs at least two choices.")
        return None
    if len(raw) > MAX_CHOICES:
        errors.add(f"{where}.choices", f"At most {MAX_CHOICES} choices.")
        return None
    seen = set()
    for j, c in enumerate(raw):
        at = f"{where}.choices[{j}]"
        if not isinstance(c, dict):
            errors.add(at, "Must be an object with key, text and correct.")
            continue
        key = c.get("key") or "abcdefghij"[j]
        if kind == QuizQuestion.Kind.TRUE_FALSE and key not in ("true", "false"):
            errors.add(f"{at}.key", 'True/false choices have the keys "true" and "false".')
            continue
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]{1,20}", key):
            errors.add(f"{at}.key", "Use 1–20 lower-case letters, digits or _.")
            continue
        if key in seen:
            errors.add(f"{at}.key", f"The key {key!r} is used twice.")
            continue
        seen.add(key)
        ctext = _text(
            c.get("text") or (key.capitalize() if kind == QuizQuestion.Kind.TRUE_FALSE else ""),
            f"{at}.text",
            errors,
            max_length=500,
            required=True,
        )
        correct = c.get("correct", False)
        if not isinstance(correct, bool):
            errors.add(f"{at}.correct", "Must be true or false.")
            correct = False
        choices.append({"key": key, "text": ctext, "correct": correct})
    if kind == QuizQuestion.Kind.TRUE_FALSE and len(raw) != 2:
        errors.add(f"{where}.choices", "A true/false question has exactly the choices true and false.")
    n_correct = sum(1 for c in choices if c["correct"])
    if len(choices) == len(raw):
        if n_correct == 0:
            errors.add(f"{where}.choices", "Mark at least one choice correct.")
        elif kind != QuizQuestion.Kind.MULTI and n_correct != 1:
            errors.add(
                f"{where}.choices", "A single-answer or true/false question has exactly one correct choice."
            )
    return {
        "kind": kind,
        "text": text,
        "choices": choices,
        "explanation": explanation,
        "translations": _question_translations(
            q.get("translations"), where, errors, [c["key"] for c in choices]
        ),
    }


def _clean_quiz(data: dict, quiz: Quiz | None) -> tuple[dict, list[dict] | None]:
    errors = _Errors()
    unknown = set(data) - set(QUIZ_FIELDS)
    if unknown:
        errors.add("non_field_errors", f"Unknown field(s): {', '.join(sorted(unknown))}.")

    def given(name, default):
        return data.get(name, default)

    fields = {
        "title": _text(
            given("title", quiz.title if quiz else None), "title", errors, max_length=200, required=True
        )
    }
    lesson = given("lesson", quiz.lesson_id if quiz else None)
    lesson = getattr(lesson, "pk", lesson)
    if lesson is not None:
        if (
            isinstance(lesson, bool)
            or not isinstance(lesson, int)
            or not Lesson.objects.filter(pk=lesson).exists()
        ):
            errors.add("lesson", f"Unknown lesson: {lesson!r}.")
        elif Quiz.objects.filter(lesson_id=lesson).exclude(pk=quiz.pk if quiz else None).exists():
            errors.add("lesson", "This lesson already ends with another quiz.")
    fields["lesson_id"] = lesson
    pass_mark = given("pass_mark", quiz.pass_mark if quiz else Decimal(80))
    try:
        pass_mark = Decimal(str(pass_mark))
        if isinstance(given("pass_mark", 0), bool) or not pass_mark.is_finite() or not 0 <= pass_mark <= 100:
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors.add("pass_mark", "Must be a number from 0 to 100 (percent).")
        pass_mark = Decimal(80)
    fields["pass_mark"] = pass_mark.quantize(Decimal("0.01"))
    attempts = given("attempts_allowed", quiz.attempts_allowed if quiz else 3)
    if attempts is not None and (
        isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 100
    ):
        errors.add("attempts_allowed", "Must be a whole number from 1 to 100, or null for unlimited.")
        attempts = 3
    fields["attempts_allowed"] = attempts
    randomise = given("randomise", quiz.randomise if quiz else True)
    if not isinstance(randomise, bool):
        errors.add("randomise", "Must be true or false.")
        randomise = True
    fields["randomise"] = randomise
    status = given("status", quiz.status if quiz else ContentStatus.DRAFT)
    if status not in ContentStatus.values:
        errors.add("status", f"Must be one of {', '.join(ContentStatus.values)}.")
    fields["status"] = status
    questions = None
    if "questions" in data and data["questions"] is not None:
        raw = data["questions"]
        if not isinstance(raw, list):
            errors.add("questions", "Must be a list of questions.")
        elif len(raw) > MAX_QUESTIONS:
            errors.add("questions", f"At most {MAX_QUESTIONS} questions.")
        else:
            questions = [_clean_question(q, f"questions[{i}]", errors) for i, q in enumerate(raw)]
    if status == ContentStatus.PUBLISHED:
        count = len(questions) if questions is not None else (quiz.questions.count() if quiz else 0)
        if count == 0:
            errors.add("questions", "A published quiz needs at least one question.")
    errors.raise_any()
    return fields, questions


def _replace_questions(org_id: int, quiz: Quiz, questions: list[dict]) -> None:
    # Attempts keep a copy of the questions they showed, so replacing the rows loses nothing.
    QuizQuestion.objects.filter(quiz=quiz).delete()
    QuizQuestion.objects.bulk_create(
        [
            QuizQuestion(organization_id=org_id, quiz=quiz, position=i + 1, **q)
            for i, q in enumerate(questions)
        ]
    )


@transaction.atomic
def quiz_create(*, organization, actor: Actor, data: dict) -> Quiz:
    org_id = _check_tenant(organization)
    fields, questions = _clean_quiz(data, None)
    quiz = Quiz.objects.create(organization_id=org_id, **fields)
    if questions:
        _replace_questions(org_id, quiz, questions)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="quiz.create",
        instance=quiz,
        changes={"title": quiz.title, "lesson": quiz.lesson_id, "questions": len(questions or [])},
    )
    return quiz


@transaction.atomic
def quiz_update(*, organization, actor: Actor, quiz: Quiz, data: dict) -> Quiz:
    """``questions`` None keeps the questions; a list replaces them (attempts keep their copy)."""
    org_id = _check_tenant(organization)
    quiz = Quiz.objects.select_for_update().get(pk=quiz.pk)
    fields, questions = _clean_quiz(data, quiz)
    before = {k: str(getattr(quiz, k)) for k in fields}
    for name, value in fields.items():
        setattr(quiz, name, value)
    quiz.save()
    if questions is not None:
        _replace_questions(org_id, quiz, questions)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="quiz.update",
        instance=quiz,
        changes={
            **{k: {"before": before[k], "after": str(v)} for k, v in fields.items() if before[k] != str(v)},
            **({"questions": len(questions)} if questions is not None else {}),
            "attempts_so_far": QuizAttempt.objects.filter(quiz=quiz).count(),
        },
    )
    return quiz


# --- libraries -----------------------------------------------------------------------------------


def _clean_library(data: dict, library: Library | None) -> tuple[dict, list[int] | None]:
    errors = _Errors()
    unknown = set(data) - {"name", "description", "skill_category", "lessons"}
    if unknown:
        errors.add("non_field_errors", f"Unknown field(s): {', '.join(sorted(unknown))}.")

    def given(name, default):
        return data.get(name, default)

    fields = {
        "name": _text(
            given("name", library.name if library else None), "name", errors, max_length=160, required=True
        ),
        "description": _text(
            given("description", library.description if library else ""),
            "description",
            errors,
            max_length=5000,
        ),
    }
    skill = given("skill_category", library.skill_category_id if library else None)
    skill = getattr(skill, "pk", skill)
    if skill is not None and (
        isinstance(skill, bool)
        or not isinstance(skill, int)
        or not SkillCategory.objects.filter(pk=skill).exists()
    ):
        errors.add("skill_category", f"Unknown skill category: {skill!r}.")
    fields["skill_category_id"] = skill
    lessons = _ids(data.get("lessons"), "lessons", errors, Lesson, "lesson")
    if (
        fields["name"]
        and Library.objects.filter(name=fields["name"]).exclude(pk=library.pk if library else None).exists()
    ):
        errors.add("name", "Another library already has this name.")
    errors.raise_any()
    return fields, lessons


def _set_library_lessons(org_id: int, library: Library, lessons: list[int]) -> None:
    LibraryLesson.objects.filter(library=library).exclude(lesson_id__in=lessons).delete()
    have = set(LibraryLesson.objects.filter(library=library).values_list("lesson_id", flat=True))
    LibraryLesson.objects.bulk_create(
        [
            LibraryLesson(organization_id=org_id, library=library, lesson_id=pk)
            for pk in lessons
            if pk not in have
        ]
    )


@transaction.atomic
def library_create(*, organization, actor: Actor, data: dict) -> Library:
    org_id = _check_tenant(organization)
    fields, lessons = _clean_library(data, None)
    library = _unique(
        "name",
        "Another library already has this name.",
        lambda: Library.objects.create(organization_id=org_id, **fields),
    )
    if lessons:
        _set_library_lessons(org_id, library, lessons)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="library.create",
        instance=library,
        changes={"name": library.name, "lessons": lessons or []},
    )
    return library


@transaction.atomic
def library_update(*, organization, actor: Actor, library: Library, data: dict) -> Library:
    """``lessons`` None keeps the lessons; a list replaces them."""
    org_id = _check_tenant(organization)
    library = Library.objects.select_for_update().get(pk=library.pk)
    fields, lessons = _clean_library(data, library)
    for name, value in fields.items():
        setattr(library, name, value)
    _unique("name", "Another library already has this name.", library.save)
    if lessons is not None:
        _set_library_lessons(org_id, library, lessons)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="library.update",
        instance=library,
        changes={"name": library.name, **({"lessons": lessons} if lessons is not None else {})},
    )
    return library


# --- learning paths ------------------------------------------------------------------------------


def _clean_path(data: dict, path: LearningPath | None) -> tuple[dict, list[int] | None]:
    errors = _Errors()
    unknown = set(data) - {"name", "description", "audience", "status", "lessons"}
    if unknown:
        errors.add("non_field_errors", f"Unknown field(s): {', '.join(sorted(unknown))}.")

    def given(name, default):
        return data.get(name, default)

    fields = {
        "name": _text(
            given("name", path.name if path else None), "name", errors, max_length=160, required=True
        ),
        "description": _text(
            given("description", path.description if path else ""), "description", errors, max_length=5000
        ),
        "audience": given("audience", path.audience if path else Audience.EMPLOYEES),
        "status": given("status", path.status if path else ContentStatus.DRAFT),
    }
    if fields["audience"] not in Audience.values:
        errors.add("audience", f"Must be one of {', '.join(Audience.values)}.")
    if fields["status"] not in ContentStatus.values:
        errors.add("status", f"Must be one of {', '.join(ContentStatus.values)}.")
    lessons = _ids(data.get("lessons"), "lessons", errors, Lesson, "lesson")
    if lessons is not None and data.get("lessons") is not None and len(lessons) != len(list(data["lessons"])):
        errors.add("lessons", "A lesson appears twice; each lesson is one step of a path.")
    if lessons is not None and len(lessons) > MAX_PATH_STEPS:
        errors.add("lessons", f"At most {MAX_PATH_STEPS} steps.")
    if fields["status"] == ContentStatus.PUBLISHED:
        count = len(lessons) if lessons is not None else (path.steps.count() if path else 0)
        if count == 0:
            errors.add("lessons", "A published path needs at least one lesson.")
    if (
        fields["name"]
        and LearningPath.objects.filter(name=fields["name"]).exclude(pk=path.pk if path else None).exists()
    ):
        errors.add("name", "Another path already has this name.")
    errors.raise_any()
    return fields, lessons


def _set_steps(org_id: int, path: LearningPath, lessons: list[int]) -> None:
    """Steps follow ``lessons``' order; steps of lessons that stay keep their row (and id)."""
    PathStep.objects.filter(path=path).exclude(lesson_id__in=lessons).delete()
    # Move the survivors out of the way first: (path, position) is unique at every moment.
    PathStep.objects.filter(path=path).update(position=F("position") + 10000)
    existing = {s.lesson_id: s for s in PathStep.objects.filter(path=path)}
    new = []
    for i, lesson_id in enumerate(lessons, start=1):
        step = existing.get(lesson_id)
        if step is not None:
            if step.position != i:
                step.position = i
                step.save(update_fields=["position"])
        else:
            new.append(PathStep(organization_id=org_id, path=path, lesson_id=lesson_id, position=i))
    PathStep.objects.bulk_create(new)


@transaction.atomic
def path_create(*, organization, actor: Actor, data: dict) -> LearningPath:
    org_id = _check_tenant(organization)
    fields, lessons = _clean_path(data, None)
    path = _unique(
        "name",
        "Another path already has this name.",
        lambda: LearningPath.objects.create(organization_id=org_id, **fields),
    )
    if lessons:
        _set_steps(org_id, path, lessons)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="learning_path.create",
        instance=path,
        changes={"name": path.name, "lessons": lessons or []},
    )
    return path


@transaction.atomic
def path_update(*, organization, actor: Actor, path: LearningPath, data: dict) -> LearningPath:
    """``lessons`` None keeps the steps; a list sets them in that order."""
    org_id = _check_tenant(organization)
    path = LearningPath.objects.select_for_update().get(pk=path.pk)
    fields, lessons = _clean_path(data, path)
    for name, value in fields.items():
        setattr(path, name, value)
    _unique("name", "Another path already has this name.", path.save)
    before = list(PathStep.objects.filter(path=path).order_by("position").values_list("lesson_id", flat=True))
    if lessons is not None:
        _set_steps(org_id, path, lessons)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="learning_path.update",
        instance=path,
        changes={
            "name": path.name,
            **({"lessons": {"before": before, "after": lessons}} if lessons is not None else {}),
        },
    )
    return path


@transaction.atomic
def path_reorder(*, organization, actor: Actor, path: LearningPath, lessons) -> LearningPath:
    """Put the path's steps in the order of ``lessons`` (exactly the path's lessons)."""
    org_id = _check_tenant(organization)
    path = LearningPath.objects.select_for_update().get(pk=path.pk)
    current = list(
        PathStep.objects.filter(path=path).order_by("position").values_list("lesson_id", flat=True)
    )
    raw = [getattr(v, "pk", v) for v in lessons] if isinstance(lessons, list) else None
    if raw is None or sorted(map(str, raw)) != sorted(map(str, current)) or len(set(raw)) != len(raw):
        raise ValidationError(
            {"lessons": "Must list each of the path's lessons exactly once, in the new order."}
        )
    _set_steps(org_id, path, raw)
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="learning_path.reorder",
        instance=path,
        changes={"before": current, "after": raw},
    )
    return path
