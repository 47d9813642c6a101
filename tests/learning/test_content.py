"""Learning content services: rendering and sanitising, lesson versioning, translations,
attachments, quiz validation, libraries and paths."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cem.principals import Actor
from cem.tenancy import tenant_context
from learning import content as svc
from learning import content_selectors as sel
from learning import models as lm
from learning.rendering import render_markdown
from tests import factories as f

SYSTEM = Actor.system()


def _create(org, **data):
    with tenant_context(org):
        return svc.lesson_create(
            organization=org, actor=SYSTEM, data={"title": "Greeting", "body": "# Greet\n\nSmile.", **data}
        )


def _errors(exc) -> dict:
    return exc.value.message_dict


# --- rendering ---------------------------------------------------------------------------------


def test_markdown_renders_tables_headings_and_images():
    html = render_markdown("# Title\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![shop](https://cdn.test/s.png)")
    assert "<h1>Title</h1>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert '<img src="https://cdn.test/s.png" alt="shop">' in html


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        '<img src="x.png" onerror="alert(1)">',
        "[click](javascript:alert(1))",
        '<a href="javascript:alert(1)">click</a>',
        '<iframe src="https://evil.test"></iframe>',
        "<style>body{display:none}</style>",
        '<p style="color:red" onclick="x()">hi</p>',
        "![x](data:image/png;base64,AAAA)",
    ],
)
def test_sanitiser_removes_dangerous_markup(source):
    html = render_markdown(source).lower()
    for bad in ("<script", "onerror", '="javascript:', "<iframe", "<style", "style=", "onclick", '="data:'):
        assert bad not in html, (source, html)


def test_links_get_noopener_and_relative_images_are_kept():
    html = render_markdown("[site](https://ok.test) ![a](/media/a.png)")
    assert 'rel="noopener noreferrer"' in html
    assert '<img src="/media/a.png" alt="a">' in html


# --- lessons and versions ----------------------------------------------------------------------


def test_create_is_a_draft_with_version_1_rendered_on_save(world):
    lesson = _create(world.a.org, body="Hello <script>x</script>**there**")
    with tenant_context(world.a.org):
        lesson.refresh_from_db()
        v = lesson.current_version
        assert lesson.status == lm.ContentStatus.DRAFT
        assert v.number == 1 and v.published_at is None
        assert "<strong>there</strong>" in v.body_html and "script" not in v.body_html
        assert lm.LessonVersion.objects.filter(lesson=lesson).count() == 1


def test_editing_a_draft_edits_version_1_in_place(world):
    org = world.a.org
    lesson = _create(org)
    with tenant_context(org):
        lesson, created = svc.lesson_update(
            organization=org, actor=SYSTEM, lesson=lesson, data={"body": "New"}
        )
        assert not created
        assert lm.LessonVersion.objects.filter(lesson=lesson).count() == 1
        assert lesson.current_version.body_html == "<p>New</p>\n"


def test_editing_a_published_lesson_creates_v2_and_completions_keep_v1(world):
    org = world.a.org
    lesson = _create(org)
    with tenant_context(org):
        lesson = svc.lesson_publish(organization=org, actor=SYSTEM, lesson=lesson)
        v1 = lesson.current_version
        completion = lm.Completion.objects.create(
            organization=org,
            lesson=lesson,
            version=v1,
            employee=world.a.employees["a-n1"],
            completed_at=timezone.now(),
        )
        lesson, created = svc.lesson_update(
            organization=org, actor=SYSTEM, lesson=lesson, data={"body": "Greet *within* 10 s."}
        )
        assert created
        v2 = lesson.current_version
        assert v2.number == 2 and v2.published_at is not None
        assert "<em>within</em>" in v2.body_html
        completion.refresh_from_db()
        assert completion.version_id == v1.pk
        v1.refresh_from_db()
        assert v1.body == "# Greet\n\nSmile."
        # Saving the same content again makes no version 3.
        _, created = svc.lesson_update(
            organization=org, actor=SYSTEM, lesson=lesson, data={"body": "Greet *within* 10 s."}
        )
        assert not created and lm.LessonVersion.objects.filter(lesson=lesson).count() == 2


def test_standards_and_skills_are_tenant_checked(world):
    org = world.a.org
    skill = f.SkillCategoryFactory(organization=org)
    other = f.StandardFactory(organization=world.b.org)
    lesson = _create(org, standards=[world.a.standard.pk], skill_categories=[skill.pk])
    with tenant_context(org):
        assert list(lesson.standards.values_list("pk", flat=True)) == [world.a.standard.pk]
        with pytest.raises(ValidationError) as exc:
            svc.lesson_update(organization=org, actor=SYSTEM, lesson=lesson, data={"standards": [other.pk]})
        assert "standards" in _errors(exc)
        with pytest.raises(ValidationError) as exc:
            svc.lesson_update(
                organization=org,
                actor=SYSTEM,
                lesson=lesson,
                data={"skill_categories": [other.skill_category_id]},
            )
        assert "skill_categories" in _errors(exc)


def test_video_url_must_be_http(world):
    with pytest.raises(ValidationError) as exc:
        _create(world.a.org, video_url="javascript:alert(1)")
    assert "video_url" in _errors(exc)
    lesson = _create(world.a.org, video_url="https://video.test/v/1")
    assert lesson.current_version.video_url == "https://video.test/v/1"


def test_translation_and_fallback(world):
    lesson = _create(
        world.a.org, translations={"es": {"title": "Saludo", "body": "Sonría <script>x</script>"}}
    )
    v = lesson.current_version
    assert v.translations["es"]["body_html"] == "<p>Sonría </p>\n"
    es = svc.lesson_content(v, "es", lesson_language="en")
    assert es["title"] == "Saludo" and not es["fallback"]
    # No French translation (and French is no supported language): the lesson's own text.
    fr = svc.lesson_content(v, "fr", lesson_language="en")
    assert fr["title"] == "Greeting" and fr["body_html"] == v.body_html and fr["fallback"]
    with pytest.raises(ValidationError) as exc:
        _create(world.a.org, title="Other", translations={"xx": {"title": "?", "body": "?"}})
    assert "translations" in _errors(exc)
    with pytest.raises(ValidationError) as exc:
        _create(world.a.org, title="Other", translations={"es": {"title": "Solo título"}})
    assert "translations.es.body" in _errors(exc)


def test_archive_and_publish_need_content(world):
    org = world.a.org
    lesson = _create(org, body="")
    with tenant_context(org), pytest.raises(ValidationError) as exc:
        svc.lesson_publish(organization=org, actor=SYSTEM, lesson=lesson)
    assert "body" in _errors(exc)
    with tenant_context(org):
        lesson = svc.lesson_archive(organization=org, actor=SYSTEM, lesson=lesson)
        assert lesson.status == lm.ContentStatus.ARCHIVED


# --- attachments -------------------------------------------------------------------------------


def _docx() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


def test_attachments_typed_by_content_with_sanitised_names(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    org = world.a.org
    lesson = _create(org)
    with tenant_context(org):
        pdf = svc.attachment_add(
            organization=org,
            actor=SYSTEM,
            lesson=lesson,
            upload=SimpleUploadedFile("../../etc/<evil>.exe", b"%PDF-1.4 tiny", content_type="text/html"),
        )
        assert pdf.name == "evil.pdf" and pdf.content_type == "application/pdf"
        assert "evil" not in pdf.file.name and pdf.file.name.endswith(".pdf")
        doc = svc.attachment_add(
            organization=org, actor=SYSTEM, lesson=lesson, upload=SimpleUploadedFile("notes.docx", _docx())
        )
        assert doc.content_type.endswith("wordprocessingml.document")
        with pytest.raises(ValidationError) as exc:
            svc.attachment_add(
                organization=org,
                actor=SYSTEM,
                lesson=lesson,
                upload=SimpleUploadedFile("fake.pdf", b"<html><script>x</script>"),
            )
        assert "file" in _errors(exc)
        with pytest.raises(ValidationError) as exc:
            svc.attachment_add(
                organization=org,
                actor=SYSTEM,
                lesson=lesson,
                upload=SimpleUploadedFile("big.pdf", b"%PDF-" + b"0" * svc.MAX_ATTACHMENT_BYTES),
            )
        assert "MB" in _errors(exc)["file"][0]
        assert lm.LessonAttachment.objects.filter(version=lesson.current_version).count() == 2


def test_attachment_on_a_published_lesson_goes_into_a_new_version(world, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    org = world.a.org
    lesson = _create(org)
    with tenant_context(org):
        svc.attachment_add(
            organization=org, actor=SYSTEM, lesson=lesson, upload=SimpleUploadedFile("a.pdf", b"%PDF-1")
        )
        lesson = svc.lesson_publish(organization=org, actor=SYSTEM, lesson=lesson)
        v1 = lesson.current_version
        svc.attachment_add(
            organization=org, actor=SYSTEM, lesson=lesson, upload=SimpleUploadedFile("b.pdf", b"%PDF-2")
        )
        lesson.refresh_from_db()
        assert lesson.current_version.number == 2
        assert v1.attachments.count() == 1
        assert sorted(lesson.current_version.attachments.values_list("name", flat=True)) == ["a.pdf", "b.pdf"]


# --- quizzes -----------------------------------------------------------------------------------


def _questions():
    return [
        {
            "kind": "single",
            "text": "First?",
            "choices": [{"text": "Hello", "correct": True}, {"text": "Bye"}],
            "explanation": "Greet first.",
            "translations": {"es": {"text": "¿Primero?", "choices": {"a": "Hola"}}},
        },
        {
            "kind": "multi",
            "text": "Which?",
            "choices": [
                {"key": "a", "text": "Eye contact", "correct": True},
                {"key": "b", "text": "Smile", "correct": True},
                {"key": "c", "text": "Ignore"},
            ],
        },
        {"kind": "true_false", "text": "Greeting matters.", "answer": True},
    ]


def test_quiz_create_with_questions(world):
    org = world.a.org
    lesson = _create(org)
    with tenant_context(org):
        quiz = svc.quiz_create(
            organization=org,
            actor=SYSTEM,
            data={"title": "Greeting quiz", "lesson": lesson.pk, "pass_mark": 75, "attempts_allowed": None,
                  "randomise": False, "questions": _questions(), "status": "published"},
        )  # fmt: skip
        qs = list(quiz.questions.order_by("position"))
        assert [q.kind for q in qs] == ["single", "multi", "true_false"]
        assert qs[0].choices[0] == {"key": "a", "text": "Hello", "correct": True}
        assert qs[2].choices == [
            {"key": "true", "text": "True", "correct": True},
            {"key": "false", "text": "False", "correct": False},
        ]
        assert qs[0].translations["es"]["choices"] == {"a": "Hola"}
        assert quiz.attempts_allowed is None and quiz.pass_mark == 75
        quiz = svc.quiz_update(
            organization=org, actor=SYSTEM, quiz=quiz, data={"questions": _questions()[:1]}
        )
        assert quiz.questions.count() == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"pass_mark": 101}, "pass_mark"),
        ({"pass_mark": "abc"}, "pass_mark"),
        ({"attempts_allowed": 0}, "attempts_allowed"),
        ({"randomise": "yes"}, "randomise"),
        ({"questions": [{"kind": "single", "text": "Q", "choices": [{"text": "a"}, {"text": "b"}]}]},
         "questions[0].choices"),
        ({"questions": [{"kind": "single", "text": "Q",
                         "choices": [{"text": "a", "correct": True}, {"text": "b", "correct": True}]}]},
         "questions[0].choices"),
        ({"questions": [{"kind": "true_false", "text": "Q",
                         "choices": [{"key": "yes", "text": "Y"}, {"key": "false", "correct": True}]}]},
         "questions[0].choices[0].key"),
        ({"questions": [{"kind": "essay", "text": "Q"}]}, "questions[0].kind"),
        ({"questions": [{"kind": "single", "text": "", "choices": [{"text": "a", "correct": True},
                                                                    {"text": "b"}]}]}, "questions[0].text"),
        ({"status": "published", "questions": []}, "questions"),
    ],
)  # fmt: skip
def test_quiz_validation_names_the_field(world, data, field):
    org = world.a.org
    with tenant_context(org), pytest.raises(ValidationError) as exc:
        svc.quiz_create(organization=org, actor=SYSTEM, data={"title": "Q", **data})
    assert field in _errors(exc), _errors(exc)


def test_quiz_lesson_is_tenant_checked_and_unique(world):
    other = _create(world.b.org, title="Beta lesson")
    org = world.a.org
    lesson = _create(org)
    with tenant_context(org):
        with pytest.raises(ValidationError) as exc:
            svc.quiz_create(organization=org, actor=SYSTEM, data={"title": "Q", "lesson": other.pk})
        assert "lesson" in _errors(exc)
        svc.quiz_create(organization=org, actor=SYSTEM, data={"title": "Q", "lesson": lesson.pk})
        with pytest.raises(ValidationError) as exc:
            svc.quiz_create(organization=org, actor=SYSTEM, data={"title": "Q2", "lesson": lesson.pk})
        assert "lesson" in _errors(exc)


# --- libraries, search and paths ---------------------------------------------------------------


def test_library_and_search_by_title_summary_standard_and_skill(world):
    org = world.a.org
    skill = f.SkillCategoryFactory(organization=org, name="Complaint handling")
    std = f.StandardFactory(organization=org, code="apology", title="Sincere apology", skill_category=skill)
    a = _create(org, title="Greeting basics", summary="Say hello")
    b = _create(org, title="Calm customers", summary="De-escalation", standards=[std.pk])
    c = _create(org, title="Refunds", skill_categories=[skill.pk])
    with tenant_context(org):
        library = svc.library_create(
            organization=org, actor=SYSTEM, data={"name": "Service", "lessons": [a.pk, b.pk, c.pk]}
        )

        def titles(q, **kw):
            return sorted(x.title for x in sel.lesson_search(q=q, **kw))

        assert titles("greet") == ["Greeting basics"]
        assert titles("escalation") == ["Calm customers"]
        assert titles("apology") == ["Calm customers"]
        assert titles("complaint") == ["Calm customers", "Refunds"]
        assert titles("", library=library.pk) == ["Calm customers", "Greeting basics", "Refunds"]
        library = svc.library_update(
            organization=org, actor=SYSTEM, library=library, data={"lessons": [a.pk]}
        )
        assert list(library.lessons.all()) == [a]
        with pytest.raises(ValidationError) as exc:
            svc.library_create(organization=org, actor=SYSTEM, data={"name": "Service"})
        assert "name" in _errors(exc)


def test_path_steps_order_and_reorder(world):
    org = world.a.org
    a, b, c = (_create(org, title=t) for t in ("One", "Two", "Three"))
    with tenant_context(org):
        path = svc.path_create(
            organization=org,
            actor=SYSTEM,
            data={"name": "Onboarding", "audience": "shoppers", "lessons": [a.pk, b.pk, c.pk]},
        )
        step_ids = dict(lm.PathStep.objects.filter(path=path).values_list("lesson_id", "pk"))
        svc.path_reorder(organization=org, actor=SYSTEM, path=path, lessons=[c.pk, a.pk, b.pk])
        steps = list(lm.PathStep.objects.filter(path=path).order_by("position"))
        assert [s.lesson_id for s in steps] == [c.pk, a.pk, b.pk]
        assert [s.position for s in steps] == [1, 2, 3]
        assert {s.lesson_id: s.pk for s in steps} == step_ids  # rows kept
        with pytest.raises(ValidationError) as exc:
            svc.path_reorder(organization=org, actor=SYSTEM, path=path, lessons=[a.pk, b.pk])
        assert "lessons" in _errors(exc)
        with pytest.raises(ValidationError) as exc:
            svc.path_update(organization=org, actor=SYSTEM, path=path, data={"audience": "robots"})
        assert "audience" in _errors(exc)


def test_a_lost_unique_title_race_is_a_field_error(world, monkeypatch):
    """Two trainers saving the same title at once: the loser gets the same 400 as the check."""
    monkeypatch.setattr(svc, "_validate_unique_title", lambda *a, **k: None)
    _create(world.a.org, title="Same")
    with pytest.raises(ValidationError) as exc:
        _create(world.a.org, title="Same")
    assert "title" in _errors(exc)
