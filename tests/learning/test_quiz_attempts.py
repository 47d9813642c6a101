"""Quiz attempts: pass mark, attempts allowed, the seed's order, exact sets for multi, double submit."""

from __future__ import annotations

import pytest

from cem.models import OutboxEvent
from cem.tenancy import tenant_context
from learning import models as lm
from learning import quizzes
from learning.progress import Conflict
from tests.learning import factories as lf
from tests.learning.portal_helpers import actor_of, assign, learner_of, quiz_with, right_answers


def _start(world, quiz, **kw):
    with tenant_context(world.a.org):
        return quizzes.attempt_start(
            organization=world.a.org, actor=actor_of(world), learner=learner_of(world), quiz=quiz, **kw
        )


def _submit(world, attempt, answers):
    with tenant_context(world.a.org):
        return quizzes.attempt_submit(
            organization=world.a.org,
            actor=actor_of(world),
            learner=learner_of(world),
            attempt=attempt,
            answers=answers,
        )


def _answers_with(attempt, right: int) -> dict:
    """The first ``right`` questions (in stored order) answered right, the others wrong."""
    out = {}
    for i, q in enumerate(attempt.questions):
        good = [c["key"] for c in q["choices"] if c["correct"]]
        bad = [c["key"] for c in q["choices"] if not c["correct"]][:1]
        out[str(q["question_id"])] = good if i < right else bad
    return out


@pytest.mark.parametrize(("right", "passed"), [(4, True), (3, False)])
def test_pass_mark(world, right, passed):
    quiz = quiz_with(world.a.org, n=5, pass_mark=80)
    attempt = _start(world, quiz)
    attempt = _submit(world, attempt, _answers_with(attempt, right))
    assert attempt.score == right * 20
    assert attempt.passed is passed


def test_pass_mark_boundary_is_inclusive(world):
    quiz = quiz_with(world.a.org, n=4, pass_mark=75)
    attempt = _start(world, quiz)
    assert _submit(world, attempt, _answers_with(attempt, 3)).passed is True


def test_attempts_allowed_refuses_naming_the_reason(world):
    quiz = quiz_with(world.a.org, n=2, attempts_allowed=2)
    for _ in range(2):
        attempt = _start(world, quiz)
        _submit(world, attempt, _answers_with(attempt, 0))
    with pytest.raises(Conflict) as exc:
        _start(world, quiz)
    assert exc.value.field == "attempts_allowed"
    assert "2 attempts" in exc.value.message


def test_unlimited_attempts_and_resume_of_open_attempt(world):
    quiz = quiz_with(world.a.org, n=2, attempts_allowed=None)
    first = _start(world, quiz)
    assert _start(world, quiz).pk == first.pk  # a second click resumes the open attempt
    for _ in range(4):
        attempt = _start(world, quiz)
        _submit(world, attempt, _answers_with(attempt, 0))
    assert _start(world, quiz).number == 5  # the resumed first one counted among the four


def test_passed_quiz_is_not_restarted(world):
    quiz = quiz_with(world.a.org, n=2)
    attempt = _start(world, quiz)
    _submit(world, attempt, right_answers(attempt))
    with pytest.raises(Conflict) as exc:
        _start(world, quiz)
    assert exc.value.field == "passed"


def _six(world):
    return quiz_with(world.a.org, n=6, attempts_allowed=None)


def test_same_seed_same_order(world):
    quiz = _six(world)
    a = _start(world, quiz, seed=12345)
    _submit(world, a, {})
    b = _start(world, quiz, seed=12345)
    assert a.seed == b.seed == 12345
    assert [q["question_id"] for q in a.questions] == [q["question_id"] for q in b.questions]
    assert [[c["key"] for c in q["choices"]] for q in a.questions] == [
        [c["key"] for c in q["choices"]] for q in b.questions
    ]


def test_different_seed_different_order(world):
    quiz = _six(world)
    a = _start(world, quiz, seed=1)
    _submit(world, a, {})
    b = _start(world, quiz, seed=2)
    assert sorted(q["question_id"] for q in a.questions) == sorted(q["question_id"] for q in b.questions)
    assert [q["question_id"] for q in a.questions] != [q["question_id"] for q in b.questions]


def test_order_comes_from_the_seed_alone():
    questions = [
        {"question_id": i, "position": i, "kind": "single", "choices": [{"key": k} for k in "abcd"]}
        for i in range(1, 7)
    ]
    assert quizzes.shuffled(questions, 99) == quizzes.shuffled(list(reversed(questions)), 99)
    assert [q["question_id"] for q in quizzes.shuffled(questions, 5, randomise=False)] == [1, 2, 3, 4, 5, 6]


def test_stored_seed_is_random_when_not_given(world):
    quiz = _six(world)
    a = _start(world, quiz)
    assert a.seed > 0
    # The stored order is reproducible from the stored seed.
    again = quizzes.shuffled(a.questions, a.seed)
    assert [q["question_id"] for q in again] == [q["question_id"] for q in a.questions]


def test_multi_requires_the_exact_set(world):
    org = world.a.org
    quiz = lf.QuizFactory(organization=org, pass_mark=100, attempts_allowed=None)
    q = lf.QuizQuestionFactory(
        organization=org,
        quiz=quiz,
        position=1,
        kind=lm.QuizQuestion.Kind.MULTI,
        choices=[
            {"key": "a", "text": "A", "correct": True},
            {"key": "b", "text": "B", "correct": True},
            {"key": "c", "text": "C", "correct": False},
        ],
    )
    qid = str(q.pk)
    for picked, ok in ((["a"], False), (["a", "b", "c"], False), (["b", "a"], True)):
        attempt = _start(world, quiz)
        assert _submit(world, attempt, {qid: picked}).passed is ok, picked
        if ok:
            break


def test_single_answer_question_refuses_two(world):
    from django.core.exceptions import ValidationError

    quiz = quiz_with(world.a.org, n=1)
    attempt = _start(world, quiz)
    qid = str(attempt.questions[0]["question_id"])
    with pytest.raises(ValidationError) as exc:
        _submit(world, attempt, {qid: ["a", "b"]})
    assert "answers" in exc.value.message_dict
    with pytest.raises(ValidationError):
        _submit(world, attempt, {"999999": ["a"]})


def test_double_submit_is_idempotent(world):
    quiz = quiz_with(world.a.org, n=2)
    attempt = _start(world, quiz)
    first = _submit(world, attempt, _answers_with(attempt, 0))
    again = _submit(world, attempt, right_answers(attempt))
    assert again.score == first.score == 0 and again.passed is False
    with tenant_context(world.a.org):
        assert OutboxEvent.objects.filter(event_type="QuizFailed").count() == 1
        assert lm.Statement.objects.filter(verb="failed").count() == 1


def test_events_first_try_and_attempts_left(world):
    quiz = quiz_with(world.a.org, n=2, attempts_allowed=3)
    a1 = _start(world, quiz)
    _submit(world, a1, _answers_with(a1, 0))
    a2 = _start(world, quiz)
    _submit(world, a2, right_answers(a2))
    with tenant_context(world.a.org):
        failed = OutboxEvent.objects.get(event_type="QuizFailed").payload
        passed = OutboxEvent.objects.get(event_type="QuizPassed").payload
    assert failed["attempts_left"] == 2 and failed["attempt_number"] == 1
    assert passed["first_try"] is False and passed["attempt_number"] == 2
    assert passed["employee_id"] == world.a.employees["a-n1"].pk


def test_passing_the_lesson_quiz_completes_the_assignment(world):
    org = world.a.org
    lesson = lf.LessonFactory(organization=org)
    quiz = quiz_with(org, n=2, lesson=lesson)
    assignment = assign(world, lesson)
    attempt = _start(world, quiz)
    assert attempt.assignment_id == assignment.pk
    _submit(world, attempt, right_answers(attempt))
    with tenant_context(org):
        assignment.refresh_from_db()
        assert assignment.status == lm.Assignment.Status.COMPLETED
        assert lm.Completion.objects.get(assignment=assignment).version_id == lesson.current_version_id
        assert OutboxEvent.objects.filter(event_type="LessonCompleted").count() == 1


def test_attempts_count_per_assignment(world):
    org = world.a.org
    lesson = lf.LessonFactory(organization=org)
    quiz = quiz_with(org, n=2, lesson=lesson, attempts_allowed=1)
    first = assign(world, lesson)
    attempt = _start(world, quiz)
    _submit(world, attempt, _answers_with(attempt, 0))
    with pytest.raises(Conflict):
        _start(world, quiz)
    with tenant_context(org):
        lm.Assignment.objects.filter(pk=first.pk).update(status="withdrawn")
    assign(world, lesson)  # reassigned later: a fresh attempt
    assert _start(world, quiz).number == 2


def test_questions_snapshot_in_the_learners_language(world):
    org = world.a.org
    quiz = lf.QuizFactory(organization=org)
    lf.QuizQuestionFactory(
        organization=org,
        quiz=quiz,
        position=1,
        text="Greet?",
        translations={"es": {"text": "¿Saludar?", "choices": {"a": "Sí"}}},
    )
    attempt = _start(world, quiz, language="es")
    assert attempt.questions[0]["text"] == "¿Saludar?"
    assert {c["text"] for c in attempt.questions[0]["choices"]} >= {"Sí", "Wrong"}
