"""Learning content API: lessons (versions, publish, attachments), quizzes, libraries, paths;
permissions, tenant isolation and query counts."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from cem.tenancy import tenant_context
from learning import models as lm
from tests import factories as f
from tests.learning import factories as lf


def _lesson(api, world, **data):
    resp = api(world.users["trainer"]).post(
        "/api/v1/lessons/",
        {"title": "Greeting", "body": "# Greet\n\n<script>x</script>Smile", **data},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    return resp.json()


def test_lesson_create_update_publish_and_versions(world, api):
    trainer = api(world.users["trainer"])
    body = _lesson(
        api,
        world,
        standards=[world.a.standard.pk],
        translations={"es": {"title": "Saludo", "body": "Sonría"}},
    )
    assert body["status"] == "draft" and body["version"]["number"] == 1
    assert "script" not in body["version"]["body_html"] and "<h1>Greet</h1>" in body["version"]["body_html"]
    assert body["version"]["translations"]["es"]["body_html"] == "<p>Sonría</p>\n"
    assert body["standards"] == [world.a.standard.pk]
    url = f"/api/v1/lessons/{body['id']}/"

    shown = trainer.get(f"{url}content/", {"lang": "es"}).json()
    assert shown["title"] == "Saludo" and not shown["fallback"]
    shown = trainer.get(f"{url}content/", {"lang": "fr"}).json()
    assert shown["title"] == "Greeting" and shown["fallback"] and shown["language"] == "en"

    resp = trainer.patch(url, {"body": "Draft edit"}, format="json")
    assert resp.status_code == 200 and resp.json()["version"]["number"] == 1

    resp = trainer.post(f"{url}publish/")
    assert resp.status_code == 200 and resp.json()["status"] == "published"
    with tenant_context(world.a.org):
        v1 = lm.LessonVersion.objects.get(lesson_id=body["id"], number=1)
        lm.Completion.objects.create(
            organization=world.a.org,
            lesson_id=body["id"],
            version=v1,
            employee=world.a.employees["a-n1"],
            completed_at=timezone.now(),
        )
    resp = trainer.patch(url, {"body": "Published edit"}, format="json")
    assert resp.status_code == 200 and resp.json()["version"]["number"] == 2
    with tenant_context(world.a.org):
        assert lm.Completion.objects.get(lesson_id=body["id"]).version_id == v1.pk

    versions = trainer.get(f"{url}versions/").json()
    assert [v["number"] for v in versions] == [2, 1]
    assert versions[1]["body"] == "Draft edit"

    resp = trainer.post(f"{url}archive/")
    assert resp.status_code == 200 and resp.json()["status"] == "archived"


def test_lesson_errors_name_the_field(world, api):
    trainer = api(world.users["trainer"])
    other = f.StandardFactory(organization=world.b.org)
    resp = trainer.post("/api/v1/lessons/", {"title": "X", "standards": [other.pk]}, format="json")
    assert resp.status_code == 400 and "standards" in resp.json()
    resp = trainer.post("/api/v1/lessons/", {"title": "X", "video_url": "ftp://x.test/v"}, format="json")
    assert resp.status_code == 400 and "video_url" in resp.json()
    resp = trainer.post(
        "/api/v1/lessons/", {"title": "X", "translations": {"es": {"title": "solo"}}}, format="json"
    )
    assert resp.status_code == 400 and "translations.es.body" in resp.json()
    _lesson(api, world)
    resp = trainer.post("/api/v1/lessons/", {"title": "Greeting"}, format="json")
    assert resp.status_code == 400 and "title" in resp.json()


def test_employee_reads_published_lessons_but_cannot_edit(world, api):
    published = lf.LessonFactory(organization=world.a.org, title="Published one")
    draft = _lesson(api, world)
    employee = api(world.users["employee"])
    titles = [row["title"] for row in employee.get("/api/v1/lessons/").json()["results"]]
    assert titles == ["Published one"]
    assert employee.get(f"/api/v1/lessons/{draft['id']}/").status_code == 404
    assert employee.get(f"/api/v1/lessons/{published.pk}/").status_code == 200
    resp = employee.patch(f"/api/v1/lessons/{published.pk}/", {"title": "Hacked"}, format="json")
    assert resp.status_code == 403
    assert employee.post("/api/v1/lessons/", {"title": "Mine"}, format="json").status_code == 403
    assert employee.post(f"/api/v1/lessons/{published.pk}/publish/").status_code == 403


def test_org_b_cannot_see_or_touch_org_a_lessons(world, api):
    lesson = lf.LessonFactory(organization=world.a.org)
    outsider = api(world.users["outsider"])
    assert outsider.get(f"/api/v1/lessons/{lesson.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/lessons/{lesson.pk}/archive/").status_code == 404
    assert outsider.get("/api/v1/lessons/").json()["results"] == []


def test_attachment_upload(world, api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    trainer = api(world.users["trainer"])
    lesson = _lesson(api, world)
    url = f"/api/v1/lessons/{lesson['id']}/attachments/"
    resp = trainer.post(url, {"file": SimpleUploadedFile("guide.pdf", b"%PDF-1.7 hello")}, format="multipart")
    assert resp.status_code == 201, resp.content
    assert resp.json()["name"] == "guide.pdf" and resp.json()["content_type"] == "application/pdf"
    resp = trainer.post(url, {"file": SimpleUploadedFile("run.pdf", b"MZ\x90\x00binary")}, format="multipart")
    assert resp.status_code == 400 and "file" in resp.json()
    listed = trainer.get(url).json()
    assert [a["name"] for a in listed] == ["guide.pdf"]
    download = trainer.get(f"/api/v1/lesson-attachments/{listed[0]['id']}/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"%PDF-1.7 hello"
    assert "attachment" in download["Content-Disposition"]


def test_attachment_too_large_is_413(world, api, settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT = tmp_path
    from learning import content

    monkeypatch.setattr(content, "MAX_ATTACHMENT_BYTES", 1000)
    lesson = _lesson(api, world)
    resp = api(world.users["trainer"]).post(
        f"/api/v1/lessons/{lesson['id']}/attachments/",
        {"file": SimpleUploadedFile("big.pdf", b"%PDF-" + b"0" * 70_000)},
        format="multipart",
    )
    assert resp.status_code in (400, 413) and "file" in resp.json()


def test_quiz_nested_questions_and_answers_hidden_from_learners(world, api):
    trainer = api(world.users["trainer"])
    lesson = _lesson(api, world)
    resp = trainer.post(
        "/api/v1/quizzes/",
        {
            "title": "Greeting quiz",
            "lesson": lesson["id"],
            "pass_mark": "70",
            "attempts_allowed": None,
            "status": "published",
            "questions": [
                {"kind": "single", "text": "First?", "explanation": "Because.",
                 "choices": [{"text": "Hello", "correct": True}, {"text": "Bye"}]},
                {"kind": "true_false", "text": "Smile?", "answer": True},
            ],
        },
        format="json",
    )  # fmt: skip
    assert resp.status_code == 201, resp.content
    quiz = resp.json()
    assert quiz["attempts_allowed"] is None and len(quiz["questions"]) == 2
    assert quiz["questions"][0]["choices"][0]["correct"] is True
    learner_view = api(world.users["employee"]).get(f"/api/v1/quizzes/{quiz['id']}/").json()
    assert all("correct" not in c for q in learner_view["questions"] for c in q["choices"])
    assert "explanation" not in learner_view["questions"][0]

    resp = trainer.patch(
        f"/api/v1/quizzes/{quiz['id']}/",
        {"questions": [{"kind": "multi", "text": "Which?", "choices": [{"text": "a"}, {"text": "b"}]}]},
        format="json",
    )
    assert resp.status_code == 400 and "questions[0].choices" in resp.json()
    resp = trainer.patch(f"/api/v1/quizzes/{quiz['id']}/", {"pass_mark": "150"}, format="json")
    assert resp.status_code == 400 and "pass_mark" in resp.json()
    resp = trainer.patch(f"/api/v1/quizzes/{quiz['id']}/", {"attempts_allowed": 0}, format="json")
    assert resp.status_code == 400 and "attempts_allowed" in resp.json()


def test_libraries_search_and_paths_reorder(world, api):
    trainer = api(world.users["trainer"])
    a = _lesson(api, world, title="Greeting basics", summary="hello")
    b = _lesson(api, world, title="Handling complaints", standards=[world.a.standard.pk])
    resp = trainer.post(
        "/api/v1/libraries/", {"name": "Service", "lessons": [a["id"], b["id"]]}, format="json"
    )
    assert resp.status_code == 201, resp.content
    library = resp.json()
    assert library["lesson_count"] == 2
    found = trainer.get(f"/api/v1/libraries/{library['id']}/search/", {"q": world.a.standard.code}).json()
    assert [r["title"] for r in found["results"]] == ["Handling complaints"]
    found = trainer.get("/api/v1/lessons/", {"q": "hello"}).json()
    assert [r["title"] for r in found["results"]] == ["Greeting basics"]

    resp = trainer.post(
        "/api/v1/learning-paths/",
        {"name": "Onboarding", "audience": "employees", "lessons": [a["id"], b["id"]]},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    path = resp.json()
    assert [s["lesson"] for s in path["steps"]] == [a["id"], b["id"]]
    resp = trainer.post(
        f"/api/v1/learning-paths/{path['id']}/reorder/", {"lessons": [b["id"], a["id"]]}, format="json"
    )
    assert resp.status_code == 200
    assert [s["lesson"] for s in resp.json()["steps"]] == [b["id"], a["id"]]
    resp = trainer.post(
        f"/api/v1/learning-paths/{path['id']}/reorder/", {"lessons": [b["id"]]}, format="json"
    )
    assert resp.status_code == 400 and "lessons" in resp.json()


def _attachment(org):
    lesson = lf.LessonFactory(organization=org)
    with tenant_context(org):
        return lm.LessonAttachment.objects.create(
            organization=org,
            version=lesson.current_version,
            name="a.pdf",
            file="learning/attachments/a.pdf",
            content_type="application/pdf",
            size=1,
        )


@pytest.mark.parametrize(
    ("url", "make"),
    [
        ("/api/v1/lessons/", lambda org, i, std: lf.LessonFactory(organization=org, standards=[std])),
        ("/api/v1/quizzes/", lambda org, i, std: lf.QuizQuestionFactory(organization=org)),
        ("/api/v1/libraries/", lambda org, i, std: f"lib{i}"),
        ("/api/v1/learning-paths/", lambda org, i, std: lf.PathStepFactory(organization=org)),
        ("/api/v1/lesson-attachments/", lambda org, i, std: _attachment(org)),
    ],
)
def test_list_query_counts_do_not_grow(world, api, django_assert_max_num_queries, url, make):
    org = world.a.org
    trainer = api(world.users["trainer"])

    def add(n):
        for i in range(n):
            made = make(org, i, world.a.standard)
            if isinstance(made, str):
                with tenant_context(org):
                    library = lm.Library.objects.create(
                        organization=org, name=f"{made}-{lm.Library.objects.count()}"
                    )
                    lesson = lf.LessonFactory(organization=org)
                    lm.LibraryLesson.objects.create(organization=org, library=library, lesson=lesson)

    add(2)
    with django_assert_max_num_queries(12) as small:
        assert trainer.get(url).status_code == 200
    add(10)
    with django_assert_max_num_queries(len(small.captured_queries)):
        resp = trainer.get(url)
    assert resp.status_code == 200 and resp.json()["count"] >= 12


def test_learners_see_their_audience(world, api):
    lf.LessonFactory(organization=world.a.org, title="Staff lesson", audience="employees")
    lf.LessonFactory(organization=world.a.org, title="Shopper certification", audience="shoppers")
    lf.LessonFactory(organization=world.a.org, title="For all", audience="everyone")

    def titles(user):
        return sorted(r["title"] for r in api(world.users[user]).get("/api/v1/lessons/").json()["results"])

    assert titles("employee") == ["For all", "Staff lesson"]
    assert titles("shopper") == ["For all", "Shopper certification"]
    assert titles("trainer") == ["For all", "Shopper certification", "Staff lesson"]
