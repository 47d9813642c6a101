"""Builders shared by the portal, quiz and xAPI tests."""

from __future__ import annotations

from cem.models import Membership
from cem.principals import Actor
from cem.tenancy import tenant_context
from learning import models as lm
from learning.progress import Learner
from tests.learning import factories as lf


def learner_of(world, persona: str = "employee") -> Learner:
    user = world.users[persona]
    with tenant_context(world.a.org):
        membership = Membership.objects.select_related("user").get(user=user)
        return Learner.of(membership)


def actor_of(world, persona: str = "employee") -> Actor:
    return Actor(user_id=world.users[persona].pk)


def quiz_with(org, *, n: int = 3, lesson=None, **quiz_fields) -> lm.Quiz:
    """A published quiz of ``n`` single-answer questions whose right answer is "a"."""
    quiz = lf.QuizFactory(
        organization=org, **({"lesson": lesson} if lesson is not None else {}), **quiz_fields
    )
    for i in range(n):
        lf.QuizQuestionFactory(organization=org, quiz=quiz, position=i + 1, text=f"Question {i + 1}?")
    return quiz


def assign(world, lesson=None, *, path=None, persona: str = "employee", **fields) -> lm.Assignment:
    org = world.a.org
    learner = (
        {"employee": world.a.employees["a-n1"]}
        if persona == "employee"
        else {"user": world.users[persona], "location": None}
    )
    if path is not None:
        return lf.AssignmentFactory(organization=org, lesson=None, path=path, **learner, **fields)
    return lf.AssignmentFactory(organization=org, lesson=lesson, **learner, **fields)


def right_answers(attempt) -> dict[str, list[str]]:
    return {
        str(q["question_id"]): [c["key"] for c in q["choices"] if c["correct"]] for q in attempt.questions
    }
