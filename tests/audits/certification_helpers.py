"""A programme's certification learning path, for the certification and journey tests."""

from __future__ import annotations

from learning import models as lm
from tests.learning import factories as lf
from tests.learning.portal_helpers import quiz_with


def certification_path(org, *, name="Mystery shopper certification", quiz=True) -> lm.LearningPath:
    """Two shopper lessons; the second ends with a three-question quiz (right answer "a")."""
    path = lf.LearningPathFactory(organization=org, name=name, audience=lm.Audience.SHOPPERS)
    first = lf.LessonFactory(organization=org, title=f"{name}: the visit", audience=lm.Audience.SHOPPERS)
    second = lf.LessonFactory(organization=org, title=f"{name}: the report", audience=lm.Audience.SHOPPERS)
    lf.PathStepFactory(organization=org, path=path, lesson=first, position=1)
    lf.PathStepFactory(organization=org, path=path, lesson=second, position=2)
    if quiz:
        quiz_with(org, lesson=second, n=3, title=f"{name} test")
    return path
