from cem.tenancy import tenant_context
from learning import models as lm
from tests.learning.factories import AssignmentFactory, PathStepFactory, QuizQuestionFactory


def test_learning_factories_build_consistent_rows(world):
    org = world.a.org
    emp = world.a.employees["a-n1"]
    assignment = AssignmentFactory(organization=org, employee=emp)
    question = QuizQuestionFactory(organization=org, quiz__lesson=assignment.lesson)
    step = PathStepFactory(organization=org, lesson=assignment.lesson)
    with tenant_context(org):
        lesson = lm.Lesson.objects.get(pk=assignment.lesson_id)
        assert lesson.current_version.number == 1
        assert assignment.location_id == emp.current_location_id
        assert question.quiz.lesson_id == lesson.pk
        assert step.path.steps.count() == 1
