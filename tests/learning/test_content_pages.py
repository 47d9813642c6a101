"""Learning content pages: library browser and search, lesson preview, trainer editors."""

from __future__ import annotations

from cem.principals import Actor
from cem.tenancy import tenant_context
from learning import content as svc
from learning import models as lm
from learning.pages.content import parse_questions, questions_to_text
from tests import factories as f
from tests.learning import factories as lf

SYSTEM = Actor.system()


def _lesson(org, **data):
    with tenant_context(org):
        return svc.lesson_create(
            organization=org, actor=SYSTEM, data={"title": "Greeting", "body": "Say **hello**.", **data}
        )


def _publish(org, lesson):
    with tenant_context(org):
        return svc.lesson_publish(organization=org, actor=SYSTEM, lesson=lesson)


def _lesson_post(**overrides):
    return {
        "title": "Welcome customers",
        "summary": "The first ten seconds",
        "language": "en",
        "audience": "employees",
        "estimated_minutes": "5",
        "video_url": "",
        "body": "# Welcome\n\n<script>alert(1)</script><img src=x onerror=alert(1)>Smile.",
        "translation_language": "es",
        "translation_title": "",
        "translation_body": "",
        "save": "1",
        **overrides,
    }


def test_trainer_creates_previews_and_edits_a_lesson(world, client):
    client.force_login(world.users["trainer"])
    resp = client.post("/learning/content/lessons/new/", _lesson_post(preview="1", save=None) | {"save": ""})
    assert resp.status_code == 200
    html = resp.content.decode()
    preview = html.split('data-testid="preview-body"', 1)[1].split("</article>", 1)[0]
    assert "<h1>Welcome</h1>" in preview and "Smile." in preview
    assert "<script" not in preview and "onerror" not in preview
    with tenant_context(world.a.org):
        assert not lm.Lesson.objects.exists()

    data = _lesson_post(standards=[str(world.a.standard.pk)])
    data.pop("preview", None)
    resp = client.post("/learning/content/lessons/new/", data)
    assert resp.status_code == 302, resp.content.decode()[:2000]
    with tenant_context(world.a.org):
        lesson = lm.Lesson.objects.get()
        assert list(lesson.standards.all()) == [world.a.standard]
    resp = client.post(f"/learning/content/lessons/{lesson.pk}/publish/")
    assert resp.status_code == 302
    resp = client.post(f"/learning/content/lessons/{lesson.pk}/edit/", _lesson_post(body="Changed"))
    assert resp.status_code == 302
    with tenant_context(world.a.org):
        lesson.refresh_from_db()
        assert lesson.status == "published" and lesson.current_version.number == 2
    resp = client.get(f"/learning/content/lessons/{lesson.pk}/edit/")
    assert resp.status_code == 200 and b"version 2" in resp.content


def test_editor_shows_service_errors_on_the_field(world, client):
    client.force_login(world.users["trainer"])
    resp = client.post(
        "/learning/content/lessons/new/",
        _lesson_post(video_url="javascript:alert(1)", translation_title="Solo título"),
    )
    assert resp.status_code == 200
    html = resp.content.decode()
    assert 'data-testid="error-video_url"' in html
    assert 'data-testid="error-translation_body"' in html


def test_employee_reads_published_lessons_and_cannot_edit(world, client):
    org = world.a.org
    published = _publish(org, _lesson(org, title="Published lesson", body="Hi <script>x</script>"))
    draft = _lesson(org, title="Draft lesson")
    client.force_login(world.users["employee"])
    resp = client.get("/learning/content/")
    assert resp.status_code == 200
    assert b"Published lesson" in resp.content and b"Draft lesson" not in resp.content
    resp = client.get(f"/learning/content/lessons/{published.pk}/")
    assert resp.status_code == 200 and b"<script>x" not in resp.content
    assert client.get(f"/learning/content/lessons/{draft.pk}/").status_code == 404
    assert client.get(f"/learning/content/lessons/{published.pk}/edit/").status_code == 403
    assert client.get("/learning/content/lessons/new/").status_code == 403
    assert client.post(f"/learning/content/lessons/{published.pk}/archive/").status_code == 403
    assert client.get("/learning/content/quizzes/").status_code == 403


def test_org_b_gets_404_for_org_a_content(world, client):
    lesson = lf.LessonFactory(organization=world.a.org)
    quiz = lf.QuizFactory(organization=world.a.org, lesson=lesson)
    client.force_login(world.users["outsider"])
    for url in (
        f"/learning/content/lessons/{lesson.pk}/",
        f"/learning/content/lessons/{lesson.pk}/edit/",
        f"/learning/content/quizzes/{quiz.pk}/edit/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/learning/content/lessons/{lesson.pk}/publish/").status_code == 404


def test_preview_translation_and_fallback(world, client):
    org = world.a.org
    translated = _publish(org, _lesson(org, translations={"es": {"title": "Saludo", "body": "Diga *hola*."}}))
    plain = _publish(org, _lesson(org, title="Only English"))
    client.force_login(world.users["employee"])
    resp = client.get(f"/learning/content/lessons/{translated.pk}/?lang=es")
    assert b"Saludo" in resp.content and b"<em>hola</em>" in resp.content
    resp = client.get(f"/learning/content/lessons/{plain.pk}/?lang=es")
    assert b"Only English" in resp.content and b'data-testid="fallback"' in resp.content


def test_library_search_page(world, client):
    org = world.a.org
    skill = f.SkillCategoryFactory(organization=org, name="Complaints")
    std = f.StandardFactory(organization=org, code="apology", title="Sincere apology", skill_category=skill)
    _publish(org, _lesson(org, title="Calm customers", standards=[std.pk]))
    _publish(org, _lesson(org, title="Greeting basics"))
    client.force_login(world.users["employee"])
    resp = client.get("/learning/content/", {"q": "apology"})
    assert b"Calm customers" in resp.content and b"Greeting basics" not in resp.content
    resp = client.get("/learning/content/", {"skill": skill.pk})
    assert b"Calm customers" in resp.content and b"Greeting basics" not in resp.content


def test_library_page_query_count_is_flat(world, client, django_assert_max_num_queries):
    org = world.a.org
    for _ in range(3):
        lf.LessonFactory(organization=org, standards=[world.a.standard])
    client.force_login(world.users["trainer"])
    with django_assert_max_num_queries(30) as small:
        assert client.get("/learning/content/").status_code == 200
    for _ in range(15):
        lf.LessonFactory(organization=org, standards=[world.a.standard])
    with django_assert_max_num_queries(len(small.captured_queries)):
        resp = client.get("/learning/content/")
    assert resp.content.count(b'data-testid="lesson-row"') == 18


def test_quiz_editor_text_format_and_errors(world, client):
    org = world.a.org
    lesson = _lesson(org)
    client.force_login(world.users["trainer"])
    text = "? [single] First?\n* Hello\n- Bye\n> Greet first.\n\n? [true_false] Smile?\n* True\n- False\n"
    resp = client.post(
        "/learning/content/quizzes/new/",
        {"title": "Greeting quiz", "lesson": lesson.pk, "pass_mark": "80", "attempts_allowed": "",
         "randomise": "on", "status": "published", "questions": text},
    )  # fmt: skip
    assert resp.status_code == 302, resp.content.decode()[:3000]
    with tenant_context(org):
        quiz = lm.Quiz.objects.get()
        assert quiz.attempts_allowed is None and quiz.lesson_id == lesson.pk
        qs = list(quiz.questions.order_by("position"))
        assert [q.kind for q in qs] == ["single", "true_false"]
        assert qs[1].choices[0] == {"key": "true", "text": "True", "correct": True}
        assert parse_questions(questions_to_text(qs))[0]["explanation"] == "Greet first."
    resp = client.post(
        f"/learning/content/quizzes/{quiz.pk}/edit/",
        {"title": "Greeting quiz", "pass_mark": "80", "status": "draft", "questions": "? Which?\n- a\n- b\n"},
    )
    assert resp.status_code == 200 and b"Question 1" in resp.content
    resp = client.get("/learning/content/quizzes/")
    assert resp.status_code == 200 and b"Greeting quiz" in resp.content


def test_path_and_library_editors(world, client):
    org = world.a.org
    one, two = _lesson(org, title="One"), _lesson(org, title="Two")
    client.force_login(world.users["trainer"])
    resp = client.post(
        "/learning/content/paths/new/",
        {"name": "Onboarding", "description": "", "audience": "shoppers", "status": "draft",
         f"step_{one.pk}": "2", f"step_{two.pk}": "1"},
    )  # fmt: skip
    assert resp.status_code == 302, resp.content.decode()[:2000]
    with tenant_context(org):
        path = lm.LearningPath.objects.get()
        steps = list(path.steps.order_by("position").values_list("lesson_id", flat=True))
    assert steps == [two.pk, one.pk] and path.audience == "shoppers"
    assert b"Onboarding" in client.get("/learning/content/paths/").content

    resp = client.post(
        "/learning/content/libraries/new/", {"name": "Service", "description": "", "lessons": [one.pk]}
    )
    assert resp.status_code == 302
    with tenant_context(org):
        library = lm.Library.objects.get()
        assert list(library.lessons.all()) == [one]
    resp = client.get("/learning/content/", {"library": library.pk})
    assert b"One" in resp.content and b">Two<" not in resp.content


def test_quiz_and_path_lists_query_counts_are_flat(world, client, django_assert_max_num_queries):
    org = world.a.org
    client.force_login(world.users["trainer"])

    def add(n):
        for _ in range(n):
            lf.QuizQuestionFactory(organization=org)
            lf.PathStepFactory(organization=org)

    add(2)
    counts = {}
    for url in ("/learning/content/quizzes/", "/learning/content/paths/"):
        with django_assert_max_num_queries(30) as small:
            assert client.get(url).status_code == 200
        counts[url] = len(small.captured_queries)
    add(10)
    for url, n in counts.items():
        with django_assert_max_num_queries(n):
            assert client.get(url).status_code == 200


def test_preview_with_versions_attachments_and_quiz(world, client, settings, tmp_path):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.MEDIA_ROOT = tmp_path
    org = world.a.org
    lesson = _publish(org, _lesson(org, video_url="https://video.test/1"))
    lf.QuizQuestionFactory(
        organization=org, quiz=lf.QuizFactory(organization=org, lesson=lesson, title="Check")
    )
    client.force_login(world.users["trainer"])
    resp = client.post(
        f"/learning/content/lessons/{lesson.pk}/attachments/",
        {"file": SimpleUploadedFile("Guide (final).pdf", b"%PDF-1.4 x")},
    )
    assert resp.status_code == 302
    resp = client.post(
        f"/learning/content/lessons/{lesson.pk}/attachments/", {"file": SimpleUploadedFile("x.pdf", b"nope")}
    )
    assert resp.status_code == 302
    html = client.get(resp["Location"]).content.decode()
    assert "Only PDF, PNG, JPEG" in html and "Guide _final.pdf" in html
    resp = client.get(f"/learning/content/lessons/{lesson.pk}/")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert 'data-testid="attachments"' in html and "Guide _final.pdf" in html
    assert "Check" in html and 'href="?version=1"' in html and "https://video.test/1" in html
    assert (
        b"Say <strong>hello</strong>"
        in client.get(f"/learning/content/lessons/{lesson.pk}/?version=1").content
    )
    assert client.get(f"/learning/content/lessons/{lesson.pk}/?version=9").status_code == 404
    # The employee never sees other versions.
    client.force_login(world.users["employee"])
    assert b'href="?version=1"' not in client.get(f"/learning/content/lessons/{lesson.pk}/").content


def test_library_page_shows_learners_their_audience(world, client):
    lf.LessonFactory(organization=world.a.org, title="Staff lesson", audience="employees")
    shopper_lesson = lf.LessonFactory(
        organization=world.a.org, title="Shopper certification", audience="shoppers"
    )
    client.force_login(world.users["shopper"])
    html = client.get("/learning/content/").content
    assert b"Shopper certification" in html and b"Staff lesson" not in html
    client.force_login(world.users["employee"])
    assert b"Shopper certification" not in client.get("/learning/content/").content
    assert client.get(f"/learning/content/lessons/{shopper_lesson.pk}/").status_code == 404
