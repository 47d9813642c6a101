"""Quiz attempts: start (attempt limits, a stored seed, the questions as shown), submit (scoring).

The order of questions and choices comes from the attempt's seed alone (``shuffled``), so the
same seed always gives the same order and a result page can be rebuilt exactly. The attempt
stores a snapshot of the questions in the learner's language, with which choices are correct
and the explanations; the API and pages hide both until the attempt is submitted.

Score: the percentage of questions answered fully right (a multiple-answer question needs exactly
the set of correct choices). Passed: score ≥ the quiz's pass mark. Attempts are counted per
assignment (a learner reassigned a lesson later gets fresh attempts), or per learner for a quiz
taken outside any assignment. Passing the quiz of a lesson completes the lesson.
"""

from __future__ import annotations

import random
import secrets
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from cem.events import emit
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from learning import progress, xapi
from learning.models import Assignment, ContentStatus, Lesson, PathStep, Quiz, QuizAttempt, QuizQuestion
from learning.progress import Conflict, Learner

SEED_BITS = 62  # fits a signed bigint with room to spare


def shuffled(questions: list[dict], seed: int, *, randomise: bool = True) -> list[dict]:
    """Questions (and their choices) in the order a seed gives; true/false keeps true, false."""
    ordered = sorted(questions, key=lambda q: (q["position"], q["question_id"]))
    if not randomise:
        return ordered
    rng = random.Random(seed)
    rng.shuffle(ordered)
    out = []
    for q in ordered:
        choices = list(q["choices"])
        if q["kind"] != QuizQuestion.Kind.TRUE_FALSE:
            rng.shuffle(choices)
        out.append({**q, "choices": choices})
    return out


def _translated(question: QuizQuestion, language: str) -> dict:
    """The question in the learner's language when the author translated it, else as written.
    Translations: {"es": {"text": …, "explanation": …, "choices": {"a": "…"} or [{"key", "text"}]}}."""
    tr = (question.translations or {}).get(language) or {}
    texts = tr.get("choices") or {}
    if isinstance(texts, list):
        texts = {c.get("key"): c.get("text") for c in texts if isinstance(c, dict)}
    choices = [
        {
            "key": str(c["key"]),
            "text": texts.get(c["key"]) or c.get("text", ""),
            "correct": bool(c.get("correct")),
        }
        for c in question.choices
    ]
    return {
        "question_id": question.pk,
        "position": question.position,
        "kind": question.kind,
        "text": tr.get("text") or question.text,
        "choices": choices,
        "explanation": tr.get("explanation") or question.explanation,
    }


def _learner_attempts(quiz: Quiz, learner: Learner):
    return QuizAttempt.objects.filter(learner.q(), quiz=quiz)


def _context_attempts(quiz: Quiz, learner: Learner, assignment: Assignment | None):
    qs = _learner_attempts(quiz, learner)
    return qs.filter(assignment=assignment) if assignment is not None else qs.filter(assignment__isnull=True)


def attempts_left(quiz: Quiz, used: int) -> int | None:
    return None if quiz.attempts_allowed is None else max(quiz.attempts_allowed - used, 0)


def assignment_for(quiz: Quiz, learner: Learner) -> Assignment | None:
    """The learner's open assignment this quiz belongs to: of its lesson, or of a path containing it."""
    if quiz.lesson_id is None:
        return None
    paths = PathStep.objects.filter(lesson_id=quiz.lesson_id).values("path_id")
    return (
        Assignment.objects.filter(learner.q(), status__in=Assignment.OPEN)
        .filter(Q(lesson_id=quiz.lesson_id) | Q(path_id__in=paths))
        .order_by("due_at", "pk")
        .first()
    )


def attempt_start(
    *,
    organization,
    actor: Actor,
    learner: Learner,
    quiz: Quiz,
    assignment: Assignment | None = None,
    language: str = "en",
    seed: int | None = None,
) -> QuizAttempt:
    """A new attempt, or the learner's unsubmitted one (a second click resumes it). Refused with
    Conflict("attempts_allowed") once the attempts are used, or ("passed") once passed."""
    org_id = _check_tenant(organization)
    if quiz.status != ContentStatus.PUBLISHED:
        raise ValidationError({"quiz": "This quiz is not published."})
    with transaction.atomic():
        if assignment is None:
            assignment = assignment_for(quiz, learner)
        if assignment is not None:
            # Serialises concurrent starts and submits of one assignment.
            assignment = progress._locked(assignment, learner)
            if assignment.status == Assignment.Status.WITHDRAWN:
                raise Conflict("assignment", "This assignment was withdrawn.")
            if quiz.lesson_id is None or (
                assignment.lesson_id != quiz.lesson_id
                and quiz.lesson_id not in progress.path_lesson_ids(assignment.path_id or 0)
            ):
                raise ValidationError({"assignment": "This quiz is not part of the assignment."})
        context = _context_attempts(quiz, learner, assignment)
        open_attempt = context.filter(submitted_at__isnull=True).order_by("-number").first()
        if open_attempt is not None:
            return open_attempt
        if context.filter(passed=True).exists():
            raise Conflict("passed", "You have already passed this quiz.")
        used = context.count()
        if quiz.attempts_allowed is not None and used >= quiz.attempts_allowed:
            raise Conflict(
                "attempts_allowed",
                f"All {quiz.attempts_allowed} attempt{'s' if quiz.attempts_allowed != 1 else ''} "
                "allowed for this quiz are used.",
            )
        questions = [
            _translated(q, language) for q in QuizQuestion.objects.filter(quiz=quiz).order_by("position")
        ]
        if not questions:
            raise Conflict("quiz", "This quiz has no questions yet.")
        seed = secrets.randbits(SEED_BITS) if seed is None else seed
        number = (_learner_attempts(quiz, learner).aggregate(n=Max("number"))["n"] or 0) + 1
        now = timezone.now()
        try:
            with transaction.atomic():
                attempt = QuizAttempt.objects.create(
                    organization_id=org_id,
                    quiz=quiz,
                    assignment=assignment,
                    **learner.learner_fields(),
                    location_id=(assignment.location_id if assignment else None) or learner.location_id,
                    number=number,
                    seed=seed,
                    questions=shuffled(questions, seed, randomise=quiz.randomise),
                    started_at=now,
                )
        except IntegrityError:
            # Another tab started an attempt in the same instant (unique attempt number): resume it.
            attempt = _learner_attempts(quiz, learner).filter(number=number).first()
            if attempt is None:
                raise
            return attempt
        if assignment is not None:
            progress._mark_started(assignment, now)
        audit_log_write(organization=org_id, actor=actor, action="learning.attempt_start", instance=attempt)
    return attempt


def _clean_answers(questions: list[dict], answers) -> dict[str, list[str]]:
    if not isinstance(answers, dict):
        raise ValidationError({"answers": 'An object of question id → chosen key(s), e.g. {"12": ["a"]}.'})
    by_id = {str(q["question_id"]): q for q in questions}
    unknown = sorted(set(map(str, answers)) - set(by_id))
    if unknown:
        raise ValidationError({"answers": f"Not questions of this attempt: {', '.join(unknown[:10])}."})
    clean: dict[str, list[str]] = {}
    for qid, raw in answers.items():
        q = by_id[str(qid)]
        picked = [raw] if isinstance(raw, str) else raw
        if not isinstance(picked, list) or not all(isinstance(k, str) for k in picked):
            raise ValidationError({"answers": f"Question {qid}: give the chosen key or a list of keys."})
        keys = {c["key"] for c in q["choices"]}
        bad = sorted(set(picked) - keys)
        if bad:
            raise ValidationError({"answers": f"Question {qid}: no choice {', '.join(bad)}."})
        picked = sorted(set(picked))
        if q["kind"] != QuizQuestion.Kind.MULTI and len(picked) > 1:
            raise ValidationError({"answers": f"Question {qid} takes one answer."})
        clean[str(qid)] = picked
    return clean


def score_of(questions: list[dict], answers: dict[str, list[str]]) -> Decimal:
    """% of questions answered exactly right (the full set of correct choices, nothing more)."""
    if not questions:
        return Decimal("0.00")
    right = sum(
        1
        for q in questions
        if set(answers.get(str(q["question_id"]), [])) == {c["key"] for c in q["choices"] if c["correct"]}
    )
    return (Decimal(right) * 100 / len(questions)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def attempt_submit(
    *, organization, actor: Actor, learner: Learner, attempt: QuizAttempt, answers
) -> QuizAttempt:
    """Score the attempt; passing completes the lesson of its assignment. Submitting again returns
    the stored result unchanged (the first answers count)."""
    org_id = _check_tenant(organization)
    if not learner.owns(attempt):
        raise PermissionDenied("This is not your attempt.")
    with transaction.atomic():
        assignment = None
        if attempt.assignment_id:
            # Lock order: assignment, then attempt (lesson_complete takes the assignment too).
            assignment = progress._locked(Assignment(pk=attempt.assignment_id), learner)
        row = QuizAttempt.objects.select_for_update().select_related("quiz").get(pk=attempt.pk)
        if row.submitted_at is not None:
            return row
        quiz = row.quiz
        clean = _clean_answers(row.questions, answers)
        now = timezone.now()
        row.answers = clean
        row.score = score_of(row.questions, clean)
        row.passed = row.score >= quiz.pass_mark
        row.submitted_at = now
        row.save(update_fields=["answers", "score", "passed", "submitted_at"])
        used = _context_attempts(quiz, learner, assignment).filter(submitted_at__isnull=False).count()
        left = attempts_left(quiz, used)
        audit_log_write(
            organization=org_id,
            actor=actor,
            action="learning.attempt_submit",
            instance=row,
            changes={"score": str(row.score), "passed": row.passed},
        )
        payload = {
            "attempt_id": row.pk,
            "quiz_id": quiz.pk,
            "lesson_id": quiz.lesson_id,
            "employee_id": row.employee_id,
            "user_id": row.user_id,
            "location_id": row.location_id,
            "score": str(row.score),
            "attempt_number": used,
        }
        if row.passed:
            emit(
                organization=org_id,
                event_type="QuizPassed",
                aggregate=row,
                payload={**payload, "first_try": used == 1},
            )
        else:
            emit(
                organization=org_id,
                event_type="QuizFailed",
                aggregate=row,
                payload={**payload, "attempts_left": left},
            )
        xapi.record_quiz_result(organization=org_id, learner=learner, attempt=row, quiz=quiz, when=now)
        if row.passed and assignment is not None and assignment.status in Assignment.OPEN and quiz.lesson_id:
            lesson = Lesson.objects.select_related("current_version").get(pk=quiz.lesson_id)
            if lesson.current_version_id is not None:
                progress.complete_locked(
                    organization=org_id,
                    actor=actor,
                    learner=learner,
                    assignment=assignment,
                    lesson=lesson,
                    now=now,
                )
    return row


def attempt_result(attempt: QuizAttempt) -> list[dict]:
    """Each question as shown, with the learner's answer, the right one and the explanation."""
    out = []
    for q in attempt.questions:
        picked = set((attempt.answers or {}).get(str(q["question_id"]), []))
        correct = {c["key"] for c in q["choices"] if c["correct"]}
        out.append(
            {
                **q,
                "picked": sorted(picked),
                "correct_keys": sorted(correct),
                "is_correct": picked == correct,
                "choices": [{**c, "picked": c["key"] in picked} for c in q["choices"]],
            }
        )
    return out


def public_questions(attempt: QuizAttempt) -> list[dict]:
    """The questions without which choices are right or the explanations (before submission)."""
    return [
        {
            "question_id": q["question_id"],
            "kind": q["kind"],
            "text": q["text"],
            "choices": [{"key": c["key"], "text": c["text"]} for c in q["choices"]],
        }
        for q in attempt.questions
    ]
