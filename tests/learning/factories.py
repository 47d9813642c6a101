"""Learning factories shared by the learning tests. Each row is created in its organization's
tenant context (tests.factories.TenantFactory); a lesson comes with a published first version."""

import factory
from django.utils import timezone

from learning import models as lm
from tests.factories import TenantFactory


class LessonFactory(TenantFactory):
    class Meta:
        model = lm.Lesson
        skip_postgeneration_save = True  # the hooks save what they change, in the tenant context

    title = factory.Sequence(lambda n: f"Lesson {n}")
    status = lm.ContentStatus.PUBLISHED

    @factory.post_generation
    def version(obj, create, extracted, **kwargs):
        if not create or obj.current_version_id:
            return
        v = LessonVersionFactory(organization=obj.organization, lesson=obj, title=obj.title, **kwargs)
        obj.current_version = v
        from cem.tenancy import tenant_context

        with tenant_context(obj.organization):
            obj.save(update_fields=["current_version"])

    @factory.post_generation
    def standards(obj, create, extracted, **kwargs):
        if not create or not extracted:
            return
        from cem.tenancy import tenant_context

        with tenant_context(obj.organization):
            for s in extracted:
                lm.LessonStandard.objects.create(organization=obj.organization, lesson=obj, standard=s)


class LessonVersionFactory(TenantFactory):
    class Meta:
        model = lm.LessonVersion

    lesson = factory.SubFactory(LessonFactory, organization=factory.SelfAttribute("..organization"))
    number = 1
    title = factory.LazyAttribute(lambda o: o.lesson.title)
    body = "Greet every customer within ten seconds."
    body_html = "<p>Greet every customer within ten seconds.</p>"
    published_at = factory.LazyFunction(timezone.now)


class QuizFactory(TenantFactory):
    class Meta:
        model = lm.Quiz

    lesson = factory.SubFactory(LessonFactory, organization=factory.SelfAttribute("..organization"))
    title = factory.LazyAttribute(lambda o: f"Quiz: {o.lesson.title}" if o.lesson else "Quiz")
    pass_mark = 80
    attempts_allowed = 3
    status = lm.ContentStatus.PUBLISHED


class QuizQuestionFactory(TenantFactory):
    class Meta:
        model = lm.QuizQuestion

    quiz = factory.SubFactory(QuizFactory, organization=factory.SelfAttribute("..organization"))
    position = factory.Sequence(lambda n: n + 1)
    kind = lm.QuizQuestion.Kind.SINGLE
    text = factory.Sequence(lambda n: f"Question {n}?")
    choices = factory.LazyFunction(
        lambda: [
            {"key": "a", "text": "Right", "correct": True},
            {"key": "b", "text": "Wrong", "correct": False},
            {"key": "c", "text": "Also wrong", "correct": False},
        ]
    )
    explanation = "Because that is the standard."


class LearningPathFactory(TenantFactory):
    class Meta:
        model = lm.LearningPath

    name = factory.Sequence(lambda n: f"Path {n}")
    status = lm.ContentStatus.PUBLISHED


class PathStepFactory(TenantFactory):
    class Meta:
        model = lm.PathStep

    path = factory.SubFactory(LearningPathFactory, organization=factory.SelfAttribute("..organization"))
    lesson = factory.SubFactory(LessonFactory, organization=factory.SelfAttribute("..organization"))
    position = factory.Sequence(lambda n: n + 1)


class AssignmentFactory(TenantFactory):
    """A manual lesson assignment to an employee (pass employee=…), due in a week."""

    class Meta:
        model = lm.Assignment

    lesson = factory.SubFactory(LessonFactory, organization=factory.SelfAttribute("..organization"))
    location = factory.LazyAttribute(lambda o: o.employee.current_location if o.employee else None)
    source = lm.Assignment.Source.MANUAL
    assigned_at = factory.LazyFunction(timezone.now)
    due_at = factory.LazyFunction(lambda: timezone.now() + timezone.timedelta(days=7))
    reason = "Assigned by your trainer."
