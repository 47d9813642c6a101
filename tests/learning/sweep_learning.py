"""Org A rows behind the learning routes, for tests/test_cross_tenant_sweep.py.

Content (lessons, versions, attachments, quizzes, libraries, paths) is added here; other learning
areas add their rows below, in their own section (add, don't rewrite).
"""

from __future__ import annotations

from cem.tenancy import tenant_context
from learning import models as lm
from tests.learning import factories as lf


def _content(world) -> None:
    org = world.a.org
    lesson = lf.LessonFactory(organization=org, title="acme greeting lesson", summary="acme")
    with tenant_context(org):
        lm.LessonAttachment.objects.create(
            organization=org,
            version=lesson.current_version,
            name="acme-guide.pdf",
            file=f"learning/attachments/{org.pk}-acme-missing.pdf",
            content_type="application/pdf",
            size=1,
        )
        library = lm.Library.objects.create(organization=org, name="acme library", description="acme")
        lm.LibraryLesson.objects.create(organization=org, library=library, lesson=lesson)
    lf.QuizQuestionFactory(
        organization=org,
        quiz=lf.QuizFactory(organization=org, lesson=lesson, title="acme quiz"),
        text="acme?",
    )
    lf.PathStepFactory(
        organization=org,
        path=lf.LearningPathFactory(organization=org, name="acme path"),
        lesson=lesson,
        position=1,
    )


def _assignments(world) -> None:
    """Assignment area: a manual assignment, a gap rule and a trigger with its assignment."""
    from decimal import Decimal

    from django.utils import timezone

    org = world.a.org
    emp = world.a.employees["a-n1"]
    lesson = lf.LessonFactory(organization=org, title="acme assign lesson")
    lf.AssignmentFactory(organization=org, employee=emp, lesson=lesson, reason="acme manual")
    with tenant_context(org):
        rule = lm.GapRule.objects.create(
            organization=org,
            name="acme gap rule",
            standard=world.a.standard,
            subject="location",
            target="location",
            threshold=Decimal(60),
            lesson=lesson,
        )
        trigger = lm.GapTrigger.objects.create(
            organization=org,
            rule=rule,
            standard=world.a.standard,
            subject="location",
            location=world.a.locations["a-n1"],
            score=Decimal(40),
            points=6,
            evidence={"feedback": {"n": 6, "mean": 40, "native": "2.6/5"}, "note": "acme"},
            outcome="assigned",
            created_at=timezone.now(),
        )
    rule_lesson = lf.LessonFactory(organization=org, title="acme rule lesson")
    lf.AssignmentFactory(
        organization=org,
        employee=emp,
        lesson=rule_lesson,
        source="rule",
        rule=rule,
        trigger=trigger,
        reason="acme gap reason",
    )


def _portal(world) -> None:
    """The employee's assignments (a lesson with a quiz attempted and passed, a finished path with
    its certificate) and the xAPI statements they left."""
    from cem.models import Membership
    from cem.principals import Actor
    from learning import progress, quizzes

    org = world.a.org
    employee = world.a.employees["a-n1"]
    lesson = lf.LessonFactory(organization=org, title="acme portal lesson", summary="acme")
    quiz = lf.QuizFactory(organization=org, lesson=lesson, title="acme portal quiz")
    lf.QuizQuestionFactory(organization=org, quiz=quiz, text="acme portal question?", position=1)
    path = lf.LearningPathFactory(organization=org, name="acme portal path")
    step = lf.LessonFactory(organization=org, title="acme portal path lesson")
    lf.PathStepFactory(organization=org, path=path, lesson=step, position=1)
    lesson_assignment = lf.AssignmentFactory(
        organization=org, lesson=lesson, employee=employee, reason="acme gap"
    )
    path_assignment = lf.AssignmentFactory(
        organization=org, lesson=None, path=path, employee=employee, reason="acme onboarding"
    )
    with tenant_context(org):
        membership = Membership.objects.select_related("user").get(user=world.users["employee"])
        ctx = {
            "organization": org,
            "actor": Actor(user_id=membership.user_id),
            "learner": progress.Learner.of(membership),
        }
        progress.lesson_start(assignment=lesson_assignment, **ctx)
        attempt = quizzes.attempt_start(quiz=quiz, **ctx)
        answers = {
            str(q["question_id"]): [c["key"] for c in q["choices"] if c["correct"]] for q in attempt.questions
        }
        quizzes.attempt_submit(attempt=attempt, answers=answers, **ctx)
        progress.lesson_complete(assignment=path_assignment, lesson_id=step.pk, **ctx)


def _analytics(world) -> None:
    """Analytics area: a lesson effectiveness snapshot (the stats list reads the assignments above)."""
    from django.utils import timezone

    org = world.a.org
    lesson = lf.LessonFactory(organization=org, title="acme effect lesson")
    with tenant_context(org):
        lm.LessonEffect.objects.create(
            organization=org,
            lesson=lesson,
            standard=world.a.standard,
            computed_at=timezone.now(),
            treated_n=25,
            control_n=9,
            difference=4.2,
            ci_low=-1.0,
            ci_high=9.4,
            verdict="ineffective",
            changes={"note": "acme"},
        )


def _settings(world) -> None:
    """Org A's learning settings with an LRS, which org B's settings page must not show."""
    org = world.a.org
    with tenant_context(org):
        lm.LearningSettings.objects.create(
            organization=org, lrs_url="https://acme-lrs.test/xapi/", lrs_secret="acme-secret"
        )


def populate(world) -> None:
    _content(world)
    _portal(world)
    _assignments(world)
    _analytics(world)
    _settings(world)
