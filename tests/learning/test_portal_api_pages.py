"""The portal over HTTP: the API (my-learning, quiz-attempts, xapi-statements) and the pages."""

from __future__ import annotations

import json

import pytest

from cem.tenancy import tenant_context
from learning import models as lm
from tests.learning import factories as lf
from tests.learning.portal_helpers import assign, quiz_with

S = lm.Assignment.Status


def _mine_and_others(world):
    org = world.a.org
    mine = assign(
        world, lf.LessonFactory(organization=org, title="acme mine"), reason="Customers rated Greeting 2.1/5"
    )
    other = lf.AssignmentFactory(
        organization=org,
        lesson=lf.LessonFactory(organization=org, title="acme theirs"),
        employee=world.a.employees["a-n2"],
    )
    return mine, other


def test_my_learning_lists_only_own(world, api, django_assert_max_num_queries):
    mine, other = _mine_and_others(world)
    for _ in range(3):
        assign(world, lf.LessonFactory(organization=world.a.org))
    client = api(world.users["employee"])
    with django_assert_max_num_queries(12):
        resp = client.get("/api/v1/my-learning/")
    assert resp.status_code == 200
    ids = {row["id"] for row in resp.json()["results"]}
    assert mine.pk in ids and other.pk not in ids and len(ids) == 4
    row = next(r for r in resp.json()["results"] if r["id"] == mine.pk)
    assert row["reason"] == "Customers rated Greeting 2.1/5" and row["lesson"]["title"] == "acme mine"
    assert client.get(f"/api/v1/my-learning/{other.pk}/").status_code == 404
    assert client.post(f"/api/v1/my-learning/{other.pk}/start/", {}).status_code == 404
    # An org-wide role still sees only their own learning here.
    admin = api(world.users["admin"]).get("/api/v1/my-learning/")
    assert admin.status_code == 200 and admin.json()["count"] == 0


def test_org_b_gets_404_and_api_keys_403(world, api):
    mine, _ = _mine_and_others(world)
    outsider = api(world.users["outsider"])
    assert outsider.get(f"/api/v1/my-learning/{mine.pk}/").status_code == 404
    assert outsider.post(f"/api/v1/my-learning/{mine.pk}/complete/", {}).status_code == 404
    assert api(key=world.a.api_key).get("/api/v1/my-learning/").status_code == 403
    lesson_a = lf.LessonFactory(organization=world.a.org)
    resp = outsider.post("/api/v1/my-learning/self-start/", {"lesson": lesson_a.pk}, format="json")
    assert resp.status_code == 400 and "lesson" in resp.json()


def test_start_progress_complete_over_api(world, api):
    mine, _ = _mine_and_others(world)
    client = api(world.users["employee"])
    assert client.post(f"/api/v1/my-learning/{mine.pk}/start/", {}).json()["status"] == S.IN_PROGRESS
    resp = client.post(f"/api/v1/my-learning/{mine.pk}/progress/", {"percent": 40}, format="json")
    assert resp.json()["progress"] == 40
    bad = client.post(f"/api/v1/my-learning/{mine.pk}/progress/", {"percent": 140}, format="json")
    assert bad.status_code == 400 and "percent" in bad.json()
    done = client.post(f"/api/v1/my-learning/{mine.pk}/complete/", {}).json()
    assert done["result"] == "completed" and done["assignment"]["status"] == S.COMPLETED
    assert client.post(f"/api/v1/my-learning/{mine.pk}/complete/", {}).json()["result"] == "already"
    completed = client.get("/api/v1/my-learning/?state=completed").json()
    assert [r["id"] for r in completed["results"]] == [mine.pk]


def test_self_start_over_api(world, api):
    lesson = lf.LessonFactory(organization=world.a.org)
    client = api(world.users["employee"])
    resp = client.post("/api/v1/my-learning/self-start/", {"lesson": lesson.pk}, format="json")
    assert resp.status_code == 201 and resp.json()["source"] == "self"
    again = client.post("/api/v1/my-learning/self-start/", {"lesson": lesson.pk}, format="json")
    assert again.json()["id"] == resp.json()["id"]


def test_quiz_attempt_api_hides_answers_until_submitted(world, api):
    lesson = lf.LessonFactory(organization=world.a.org)
    quiz = quiz_with(world.a.org, n=2, lesson=lesson, attempts_allowed=1)
    mine = assign(world, lesson)
    client = api(world.users["employee"])
    done = client.post(f"/api/v1/my-learning/{mine.pk}/complete/", {}).json()
    assert done["result"] == "quiz_required" and done["quiz"] == quiz.pk
    resp = client.post("/api/v1/quiz-attempts/", {"quiz": quiz.pk}, format="json")
    assert resp.status_code == 201, resp.content
    attempt = resp.json()
    assert attempt["assignment"] == mine.pk and attempt["attempts_left"] == 1
    raw = json.dumps(attempt["questions"])
    assert "correct" not in raw and "explanation" not in raw
    wrong = {str(q["question_id"]): ["b"] for q in attempt["questions"]}
    result = client.post(
        f"/api/v1/quiz-attempts/{attempt['id']}/submit/", {"answers": wrong}, format="json"
    ).json()
    assert result["passed"] is False and result["attempts_left"] == 0
    assert result["questions"][0]["explanation"] == "Because that is the standard."
    assert result["questions"][0]["correct_keys"] == ["a"]
    again = client.post(
        f"/api/v1/quiz-attempts/{attempt['id']}/submit/", {"answers": {}}, format="json"
    ).json()
    assert again["score"] == result["score"]
    refused = client.post("/api/v1/quiz-attempts/", {"quiz": quiz.pk}, format="json")
    assert refused.status_code == 409 and "attempts_allowed" in refused.json()
    # Others' attempts are not listed or readable.
    assert api(world.users["admin"]).get(f"/api/v1/quiz-attempts/{attempt['id']}/").status_code == 404
    assert api(world.users["outsider"]).get("/api/v1/quiz-attempts/").json()["count"] == 0


def _statements(world, api):
    mine, _other = _mine_and_others(world)
    client = api(world.users["employee"])
    client.post(f"/api/v1/my-learning/{mine.pk}/start/", {})
    client.post(f"/api/v1/my-learning/{mine.pk}/complete/", {})
    return mine


def test_statements_scoped_and_exported(world, api, django_assert_max_num_queries):
    _statements(world, api)
    trainer = api(world.users["trainer"])
    with django_assert_max_num_queries(10):
        resp = trainer.get("/api/v1/xapi-statements/")
    assert resp.status_code == 200 and resp.json()["count"] == 2
    assert {r["verb"] for r in resp.json()["results"]} == {"experienced", "completed"}
    export = trainer.get("/api/v1/xapi-statements/?format=json")
    assert export.status_code == 200 and "attachment" in export["Content-Disposition"]
    body = json.loads(b"".join(export.streaming_content))
    assert isinstance(body, list) and len(body) == 2 and all(s["version"] == "1.0.3" for s in body)
    assert api(world.users["employee"]).get("/api/v1/xapi-statements/").status_code == 403
    # A store manager of another store sees none; of the learner's store, both.
    assert api(world.users["manager"]).get("/api/v1/xapi-statements/").json()["count"] == 2
    outsider = api(world.users["outsider"])
    assert outsider.get("/api/v1/xapi-statements/").json()["count"] == 0
    assert json.loads(b"".join(outsider.get("/api/v1/xapi-statements/?format=json").streaming_content)) == []


# --- pages ---------------------------------------------------------------------------------------


def test_portal_page_sections_and_reasons(world, client, django_assert_max_num_queries):
    from django.utils import timezone

    org = world.a.org
    assign(
        world,
        lf.LessonFactory(organization=org, title="acme due soon"),
        due_at=timezone.now() + timezone.timedelta(days=2),
        reason="Customers rated Greeting 2.1/5",
    )
    assign(
        world,
        lf.LessonFactory(organization=org, title="acme late"),
        due_at=timezone.now() - timezone.timedelta(days=1),
        reason="Your manager assigned this.",
    )
    path = lf.LearningPathFactory(organization=org, name="acme onboarding")
    lf.PathStepFactory(organization=org, path=path, lesson=lf.LessonFactory(organization=org), position=1)
    assign(world, path=path, due_at=timezone.now() + timezone.timedelta(days=20))
    other = lf.AssignmentFactory(
        organization=org,
        lesson=lf.LessonFactory(organization=org, title="acme secret"),
        employee=world.a.employees["a-n2"],
    )
    client.force_login(world.users["employee"])
    with django_assert_max_num_queries(16):
        resp = client.get("/learning/")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "Customers rated Greeting 2.1/5" in html and "acme late" in html and "acme onboarding" in html
    assert 'data-testid="section-overdue"' in html and 'data-testid="section-due-soon"' in html
    assert "acme secret" not in html
    assert client.get(f"/learning/assignments/{other.pk}/").status_code == 404


def test_take_lesson_language_progress_and_complete(world, client):
    org = world.a.org
    lesson = lf.LessonFactory(organization=org, title="acme greet")
    with tenant_context(org):
        lm.LessonVersion.objects.filter(pk=lesson.current_version_id).update(
            translations={"es": {"title": "Saludo", "body_html": "<p>Saluda en diez segundos.</p>"}},
            video_url="https://video.acme.test/greet",
        )
    a = assign(world, lesson)
    client.force_login(world.users["employee"])
    html = client.get(f"/learning/assignments/{a.pk}/?lang=es").content.decode()
    assert "Saluda en diez segundos." in html and "https://video.acme.test/greet" in html
    html = client.get(f"/learning/assignments/{a.pk}/?lang=fr").content.decode()
    assert "Greet every customer within ten seconds." in html  # falls back to the lesson's language
    resp = client.post(f"/learning/assignments/{a.pk}/start/", {"lesson": lesson.pk}, HTTP_HX_REQUEST="true")
    assert resp.status_code == 200 and 'data-testid="save-status"' in resp.content.decode()
    resp = client.post(f"/learning/assignments/{a.pk}/progress/", {"percent": "50", "lesson": lesson.pk})
    assert "50 % done" in resp.content.decode()
    resp = client.post(f"/learning/assignments/{a.pk}/complete/", {"lesson": lesson.pk})
    assert resp.status_code == 302 and resp["Location"] == "/learning/"
    with tenant_context(org):
        a.refresh_from_db()
    assert a.status == S.COMPLETED


def test_quiz_pages_result_and_retry(world, client):
    org = world.a.org
    lesson = lf.LessonFactory(organization=org)
    quiz = quiz_with(org, n=2, lesson=lesson, attempts_allowed=2)
    a = assign(world, lesson)
    client.force_login(world.users["employee"])
    resp = client.post(f"/learning/assignments/{a.pk}/complete/", {"lesson": lesson.pk})
    assert resp["Location"] == f"/learning/quizzes/{quiz.pk}/"
    assert "Start the quiz" in client.get(resp["Location"]).content.decode()
    resp = client.post(f"/learning/quizzes/{quiz.pk}/start/")
    attempt_url = resp["Location"]
    form = client.get(attempt_url).content.decode()
    assert "attempt-form" in form and "Because that is the standard." not in form
    with tenant_context(org):
        attempt = lm.QuizAttempt.objects.get()
    wrong = {f"q-{q['question_id']}": "b" for q in attempt.questions}
    client.post(f"/learning/attempts/{attempt.pk}/submit/", wrong)
    result = client.get(attempt_url).content.decode()
    assert (
        "Not passed" in result
        and "Because that is the standard." in result
        and 'data-testid="retry"' in result
    )
    resp = client.post(f"/learning/quizzes/{quiz.pk}/start/")
    with tenant_context(org):
        second = lm.QuizAttempt.objects.exclude(pk=attempt.pk).get()
    right = {f"q-{q['question_id']}": "a" for q in second.questions}
    client.post(f"/learning/attempts/{second.pk}/submit/", right)
    result = client.get(f"/learning/attempts/{second.pk}/").content.decode()
    assert "Passed" in result and 'data-testid="retry"' not in result
    with tenant_context(org):
        a.refresh_from_db()
    assert a.status == S.COMPLETED


def test_certificate_printable_and_verifiable(world, client):
    org = world.a.org
    path = lf.LearningPathFactory(organization=org, name="acme certification")
    lesson = lf.LessonFactory(organization=org)
    lf.PathStepFactory(organization=org, path=path, lesson=lesson, position=1)
    a = assign(world, path=path)
    client.force_login(world.users["employee"])
    resp = client.post(f"/learning/assignments/{a.pk}/complete/", {"lesson": lesson.pk})
    with tenant_context(org):
        cert = lm.PathCertificate.objects.get()
    assert resp["Location"] == f"/learning/certificates/{cert.pk}/"
    html = client.get(resp["Location"]).content.decode()
    assert "acme certification" in html and str(cert.code) in html and "portal.css" in html
    client.logout()
    verify = client.get(f"/learning/certificates/verify/{cert.code}/")
    assert verify.status_code == 200 and world.a.employees["a-n1"].name in verify.content.decode()
    assert (
        client.get("/learning/certificates/verify/00000000-0000-4000-8000-000000000000/").status_code == 404
    )
    client.force_login(world.users["outsider"])
    assert client.get(f"/learning/certificates/{cert.pk}/").status_code == 404


def test_catalogue_and_self_start_page(world, client):
    org = world.a.org
    lesson = lf.LessonFactory(organization=org, title="acme open lesson")
    lf.LessonFactory(organization=org, title="acme draft", status=lm.ContentStatus.DRAFT)
    client.force_login(world.users["employee"])
    html = client.get("/learning/catalogue/?q=acme").content.decode()
    assert "acme open lesson" in html and "acme draft" not in html
    resp = client.post(f"/learning/lessons/{lesson.pk}/start/")
    with tenant_context(org):
        a = lm.Assignment.objects.get(lesson=lesson)
    assert resp["Location"] == f"/learning/assignments/{a.pk}/" and a.source == "self"


@pytest.mark.parametrize("persona", ["manager", "executive"])
def test_roles_without_take_are_refused(world, client, persona):
    client.force_login(world.users[persona])
    assert client.get("/learning/").status_code == 403


def test_shopper_uses_the_same_portal(world, client, api):
    org = world.a.org
    lesson = lf.LessonFactory(organization=org, title="acme shopper lesson", audience=lm.Audience.SHOPPERS)
    lf.LessonFactory(organization=org, title="acme staff only")
    mine = assign(world, lesson, persona="shopper", reason="Certification for the acme programme")
    staff = assign(world, lf.LessonFactory(organization=org, title="acme employee lesson"))
    client.force_login(world.users["shopper"])
    html = client.get("/learning/").content.decode()
    assert "Certification for the acme programme" in html and "acme employee lesson" not in html
    catalogue = client.get("/learning/catalogue/").content.decode()
    assert "acme shopper lesson" in catalogue and "acme staff only" not in catalogue
    assert client.get(f"/learning/assignments/{staff.pk}/").status_code == 404
    client.post(f"/learning/assignments/{mine.pk}/complete/", {"lesson": lesson.pk})
    with tenant_context(org):
        completion = lm.Completion.objects.get(assignment=mine)
    assert completion.user_id == world.users["shopper"].pk and completion.employee_id is None
    ids = [r["id"] for r in api(world.users["shopper"]).get("/api/v1/my-learning/").json()["results"]]
    assert ids == [mine.pk]


def test_attempt_list_query_count(world, api, django_assert_max_num_queries):
    from cem.principals import Actor
    from learning import quizzes
    from tests.learning.portal_helpers import learner_of

    for _ in range(4):
        quiz = quiz_with(world.a.org, n=3)
        with tenant_context(world.a.org):
            quizzes.attempt_start(
                organization=world.a.org,
                actor=Actor(user_id=world.users["employee"].pk),
                learner=learner_of(world),
                quiz=quiz,
            )
    client = api(world.users["employee"])
    with django_assert_max_num_queries(10):
        resp = client.get("/api/v1/quiz-attempts/")
    assert resp.json()["count"] == 4
