"""Reads of learning content for pages and the API: catalogue search, libraries, paths, quizzes.

Each returns a queryset that fetches a page of rows in a fixed number of queries (relations
joined or prefetched), whatever the number of rows.
"""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from learning.models import (
    Audience,
    ContentStatus,
    LearningPath,
    Lesson,
    LessonAttachment,
    LessonSkillCategory,
    LessonStandard,
    LessonVersion,
    Library,
    LibraryLesson,
    PathStep,
    Quiz,
    QuizQuestion,
)


def learner_audiences(role: str | None) -> tuple[str, ...] | None:
    """The lesson audiences a learner of ``role`` is offered (None: no narrowing). Shoppers see
    certification content, employees staff training; lessons for everyone reach both."""
    from cem.models import Role

    if role == Role.SHOPPER:
        return (Audience.SHOPPERS, Audience.EVERYONE)
    if role == Role.EMPLOYEE:
        return (Audience.EMPLOYEES, Audience.EVERYONE)
    return None


def _int(value) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def lessons_with_tags(queryset: QuerySet | None = None) -> QuerySet:
    """Lessons with their current version, standards and skill categories (3 queries a page)."""
    queryset = Lesson.objects.all() if queryset is None else queryset
    return queryset.select_related("current_version").prefetch_related(
        Prefetch("standard_links", queryset=LessonStandard.objects.select_related("standard").order_by("pk")),
        Prefetch(
            "skill_links",
            queryset=LessonSkillCategory.objects.select_related("skill_category").order_by("pk"),
        ),
    )


def text_match(queryset: QuerySet, q: str) -> QuerySet:
    """Lessons whose title, summary, linked standard (code, title or its skill category) or
    tagged skill category contains ``q``."""
    q = (q or "").strip()
    if not q:
        return queryset
    std_match = LessonStandard.objects.filter(lesson=OuterRef("pk")).filter(
        Q(standard__title__icontains=q)
        | Q(standard__code__icontains=q)
        | Q(standard__skill_category__name__icontains=q)
    )
    skill_match = LessonSkillCategory.objects.filter(lesson=OuterRef("pk"), skill_category__name__icontains=q)
    return queryset.filter(
        Q(title__icontains=q) | Q(summary__icontains=q) | Exists(std_match) | Exists(skill_match)
    )


def lesson_search(
    *,
    q: str = "",
    library=None,
    standard=None,
    skill_category=None,
    status: str | None = None,
    published_only: bool = False,
    audiences: tuple[str, ...] | None = None,
) -> QuerySet:
    """The catalogue: matches ``q`` in title, summary, a linked standard (code or title) or skill
    category (tagged directly or through a linked standard)."""
    queryset = text_match(Lesson.objects.all(), q)
    if (library := _int(getattr(library, "pk", library))) is not None:
        queryset = queryset.filter(
            Exists(LibraryLesson.objects.filter(lesson=OuterRef("pk"), library_id=library))
        )
    if (standard := _int(getattr(standard, "pk", standard))) is not None:
        queryset = queryset.filter(
            Exists(LessonStandard.objects.filter(lesson=OuterRef("pk"), standard_id=standard))
        )
    if (skill := _int(getattr(skill_category, "pk", skill_category))) is not None:
        queryset = queryset.filter(
            Exists(LessonSkillCategory.objects.filter(lesson=OuterRef("pk"), skill_category_id=skill))
            | Exists(LessonStandard.objects.filter(lesson=OuterRef("pk"), standard__skill_category_id=skill))
        )
    if audiences is not None:
        queryset = queryset.filter(audience__in=audiences)
    if published_only:
        queryset = queryset.filter(status=ContentStatus.PUBLISHED)
    elif status in ContentStatus.values:
        queryset = queryset.filter(status=status)
    return lessons_with_tags(queryset).order_by("title", "pk")


def lesson_versions(lesson: Lesson) -> QuerySet:
    return (
        LessonVersion.objects.filter(lesson=lesson)
        .prefetch_related(Prefetch("attachments", queryset=LessonAttachment.objects.order_by("name", "pk")))
        .order_by("-number")
    )


def libraries(queryset: QuerySet | None = None) -> QuerySet:
    queryset = Library.objects.all() if queryset is None else queryset
    return (
        queryset.select_related("skill_category")
        .annotate(lesson_count=Count("lesson_links", distinct=True))
        .order_by("name", "pk")
    )


def paths(queryset: QuerySet | None = None) -> QuerySet:
    queryset = LearningPath.objects.all() if queryset is None else queryset
    return queryset.prefetch_related(
        Prefetch("steps", queryset=PathStep.objects.select_related("lesson").order_by("position"))
    ).order_by("name", "pk")


def quizzes(queryset: QuerySet | None = None) -> QuerySet:
    queryset = Quiz.objects.all() if queryset is None else queryset
    return (
        queryset.select_related("lesson")
        .prefetch_related(Prefetch("questions", queryset=QuizQuestion.objects.order_by("position")))
        .order_by("title", "pk")
    )
