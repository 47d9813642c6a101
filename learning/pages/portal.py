"""The learner's portal in the browser: My learning, taking a lesson and its quiz, certificates.

Everything is the signed-in learner's own (assignments, attempts, certificates are filtered to
them on top of the role's scope); other ids are 404s. No business rules here: writes call
learning.progress and learning.quizzes, as the API does. Progress is saved by htmx as the
learner scrolls (markers at a quarter, half, three quarters and the end of the lesson).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import get_language_from_request
from django.views.generic import DetailView, ListView, TemplateView, View
from django.views.generic.detail import SingleObjectMixin

from cem import public_throttle
from cem.models import Organization, SkillCategory
from cem.pages import TenantPageMixin
from cem.tenancy import tenant_context, unscoped
from learning import content_selectors, progress, quizzes
from learning.models import (
    Assignment,
    ContentStatus,
    LearningPath,
    Lesson,
    LessonAttachment,
    LessonVersion,
    PathCertificate,
    PathStep,
    Quiz,
    QuizAttempt,
)
from learning.portal_selectors import localised, my_assignments, own_q, portal_sections

TAKE = "training.take"
PROGRESS_MARKS = (25, 50, 75, 100)


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [msg for msgs in exc.message_dict.values() for msg in msgs]
    return list(exc.messages)


def _language(request) -> str:
    lang = (
        request.GET.get("lang") or getattr(request, "LANGUAGE_CODE", "") or get_language_from_request(request)
    )
    return (lang or "en").split("-")[0][:8]


class LearnerPage(TenantPageMixin):
    required_action = TAKE

    def learner(self) -> progress.Learner:
        return progress.Learner.of(self.request.membership, user=self.request.user)

    def own(self, queryset):
        return queryset.filter(own_q(self.request.membership))

    def call(self, service, **kwargs):
        return service(organization=self.organization, actor=self.actor, learner=self.learner(), **kwargs)


class MyLearningPage(LearnerPage, TemplateView):
    template_name = "learning/portal/my_learning.html"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        mine = my_assignments(self.own(self.scoped(Assignment.objects.all())))
        ctx["sections"] = portal_sections(mine)
        ctx["certificates"] = list(
            self.own(self.scoped(PathCertificate.objects.all()))
            .select_related("path")
            .order_by("-issued_at")[:20]
        )
        ctx["now"] = timezone.now()
        return ctx


class CataloguePage(LearnerPage, ListView):
    """Published lessons and learning paths for the learner's audience, to start without an
    assignment; lessons searchable by title, summary, standard or skill, within a library."""

    template_name = "learning/portal/catalogue.html"
    paginate_by = 50

    def page_queryset(self):
        get = self.request.GET
        return content_selectors.lesson_search(
            q=get.get("q", "").strip()[:100],
            library=get.get("library"),
            skill_category=get.get("skill"),
            published_only=True,
            audiences=self.learner().audiences,
        )

    def get_context_data(self, **kwargs):
        get = self.request.GET
        q = get.get("q", "").strip()[:100]
        paths = LearningPath.objects.filter(
            status=ContentStatus.PUBLISHED, audience__in=self.learner().audiences, steps__isnull=False
        ).distinct()
        if q:
            paths = paths.filter(Q(name__icontains=q) | Q(description__icontains=q))
        return super().get_context_data(
            q=get.get("q", ""),
            library_id=get.get("library", ""),
            skill_id=get.get("skill", ""),
            libraries=list(content_selectors.libraries()),
            skills=list(SkillCategory.objects.order_by("name").only("id", "name")),
            # Paths are few; a library or skill filter is about lessons, so paths show without one.
            paths=[] if get.get("library") or get.get("skill") else list(content_selectors.paths(paths)[:20]),
            **kwargs,
        )


class PathSelfStartPage(LearnerPage, SingleObjectMixin, View):
    model = LearningPath
    http_method_names = ["post"]

    def page_queryset(self):
        return self.model.objects.filter(status=ContentStatus.PUBLISHED)

    def post(self, request, pk):
        path_ = self.get_object()
        try:
            assignment = self.call(progress.path_self_start, path=path_)
        except ValidationError as exc:
            for m in _messages_of(exc):
                messages.error(request, m)
            return redirect("learning_catalogue")
        return redirect("learning_take", pk=assignment.pk)


class LessonSelfStartPage(LearnerPage, SingleObjectMixin, View):
    model = Lesson
    http_method_names = ["post"]

    def page_queryset(self):
        return self.model.objects.filter(status=ContentStatus.PUBLISHED)

    def post(self, request, pk):
        lesson = self.get_object()
        try:
            assignment = self.call(progress.lesson_self_start, lesson=lesson)
        except ValidationError as exc:
            for m in _messages_of(exc):
                messages.error(request, m)
            return redirect("learning_catalogue")
        return redirect("learning_take", pk=assignment.pk)


class OwnAssignmentMixin(LearnerPage):
    model = Assignment

    def page_queryset(self):
        return self.own(Assignment.objects.exclude(status=Assignment.Status.WITHDRAWN)).select_related(
            "lesson", "path"
        )


class TakeLessonPage(OwnAssignmentMixin, DetailView):
    """One lesson of the assignment (for a path: ``?lesson=<id>``, default the first not done)."""

    template_name = "learning/portal/take.html"
    context_object_name = "assignment"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        a = self.object
        steps = []
        if a.path_id:
            steps = list(
                PathStep.objects.filter(path_id=a.path_id).select_related("lesson").order_by("position")
            )
            wanted = self.request.GET.get("lesson", "")
            chosen = next((s.lesson for s in steps if str(s.lesson_id) == wanted), None)
            if chosen is None:
                chosen = next((s.lesson for s in steps if s.lesson_id not in a.completed_lesson_ids), None)
            lesson = chosen or (steps[0].lesson if steps else None)
        else:
            lesson = a.lesson
        version = None
        if lesson is not None and lesson.current_version_id:
            version = LessonVersion.objects.get(pk=lesson.current_version_id)
        lang = _language(self.request)
        ctx.update(
            lesson=lesson,
            version=version,
            content=localised(version, lang) if version else None,
            attachments=list(LessonAttachment.objects.filter(version=version)) if version else [],
            steps=steps,
            done_ids=set(a.completed_lesson_ids),
            quiz=progress.published_quiz(lesson.pk) if lesson else None,
            completed=lesson is not None
            and a.completions.filter(lesson=lesson).exists(),  # this lesson of this assignment
            marks=PROGRESS_MARKS,
            lang=lang,
        )
        return ctx


def _status_fragment(request, assignment, *, error: str = "", saved: bool = False):
    return render(
        request,
        "learning/portal/_progress_status.html",
        {"assignment": assignment, "error": error, "saved_at": timezone.now() if saved else None},
    )


class LessonStartAction(OwnAssignmentMixin, SingleObjectMixin, View):
    """htmx, on opening the lesson: in progress, and the xAPI "experienced" statement."""

    http_method_names = ["post"]

    def post(self, request, pk):
        assignment = self.get_object()
        lesson_id = progress_lesson(request)
        try:
            assignment = self.call(progress.lesson_start, assignment=assignment, lesson_id=lesson_id)
        except (ValidationError, progress.Conflict) as exc:
            return _status_fragment(request, assignment, error=_error_text(exc))
        return _status_fragment(request, assignment)


def progress_lesson(request) -> int | None:
    raw = request.POST.get("lesson", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _error_text(exc) -> str:
    if isinstance(exc, progress.Conflict):
        return exc.message
    return "; ".join(_messages_of(exc))


class LessonProgressAction(OwnAssignmentMixin, SingleObjectMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        assignment = self.get_object()
        raw = request.POST.get("percent", "")
        percent = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 4 else -1
        try:
            assignment = self.call(
                progress.progress_save,
                assignment=assignment,
                percent=percent,
                lesson_id=progress_lesson(request),
            )
        except (ValidationError, progress.Conflict) as exc:
            return _status_fragment(request, assignment, error=_error_text(exc))
        return _status_fragment(request, assignment, saved=True)


class LessonCompleteAction(OwnAssignmentMixin, SingleObjectMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        assignment = self.get_object()
        lesson_id = progress_lesson(request)
        try:
            result = self.call(progress.lesson_complete, assignment=assignment, lesson_id=lesson_id)
        except (ValidationError, progress.Conflict) as exc:
            messages.error(request, _error_text(exc))
            return redirect("learning_take", pk=assignment.pk)
        if result.status == "quiz_required":
            messages.info(request, "Pass the quiz to complete this lesson.")
            return redirect("learning_quiz", pk=result.quiz.pk)
        if result.certificate is not None:
            messages.success(request, "Path completed: your certificate is ready.")
            return redirect("learning_certificate", pk=result.certificate.pk)
        messages.success(
            request, "Lesson completed." if result.status == "completed" else "Already completed."
        )
        if assignment.path_id and result.assignment.status != Assignment.Status.COMPLETED:
            return redirect("learning_take", pk=assignment.pk)
        return redirect("learning_portal")


class QuizPage(LearnerPage, DetailView):
    """The quiz's rules and the learner's attempts; starting one is a POST."""

    template_name = "learning/portal/quiz.html"
    model = Quiz
    context_object_name = "quiz"

    def page_queryset(self):
        return Quiz.objects.filter(status=ContentStatus.PUBLISHED).select_related("lesson")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        quiz, learner = self.object, self.learner()
        assignment = quizzes.assignment_for(quiz, learner)
        context = quizzes._context_attempts(quiz, learner, assignment)
        attempts = list(context.order_by("-number"))
        used = sum(1 for t in attempts if t.submitted_at)
        ctx.update(
            assignment=assignment,
            attempts=attempts,
            open_attempt=next((t for t in attempts if t.submitted_at is None), None),
            passed=any(t.passed for t in attempts),
            attempts_left=quizzes.attempts_left(quiz, used),
            question_count=quiz.questions.count(),
        )
        return ctx


class QuizStartAction(LearnerPage, SingleObjectMixin, View):
    model = Quiz
    http_method_names = ["post"]

    def page_queryset(self):
        return Quiz.objects.filter(status=ContentStatus.PUBLISHED)

    def post(self, request, pk):
        quiz = self.get_object()
        try:
            attempt = self.call(quizzes.attempt_start, quiz=quiz, language=_language(request))
        except (ValidationError, progress.Conflict, PermissionDenied) as exc:
            messages.error(request, _error_text(exc) if not isinstance(exc, PermissionDenied) else str(exc))
            return redirect("learning_quiz", pk=quiz.pk)
        return redirect("learning_attempt", pk=attempt.pk)


class OwnAttemptMixin(LearnerPage):
    model = QuizAttempt

    def page_queryset(self):
        return self.own(QuizAttempt.objects.select_related("quiz", "quiz__lesson"))


class AttemptPage(OwnAttemptMixin, DetailView):
    """The attempt as one form; once submitted, the result with the right answers and why."""

    template_name = "learning/portal/attempt.html"
    context_object_name = "attempt"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        attempt, learner = self.object, self.learner()
        assignment = Assignment(pk=attempt.assignment_id) if attempt.assignment_id else None
        used = quizzes._context_attempts(attempt.quiz, learner, assignment).filter(submitted_at__isnull=False)
        left = quizzes.attempts_left(attempt.quiz, used.count())
        ctx.update(
            questions=quizzes.attempt_result(attempt)
            if attempt.submitted_at
            else quizzes.public_questions(attempt),
            attempts_left=left,
            can_retry=bool(attempt.submitted_at and not attempt.passed and (left is None or left > 0)),
        )
        return ctx


class AttemptSubmitAction(OwnAttemptMixin, SingleObjectMixin, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        attempt = self.get_object()
        answers = {}
        for q in attempt.questions:
            picked = request.POST.getlist(f"q-{q['question_id']}")
            if picked:
                answers[str(q["question_id"])] = picked
        try:
            self.call(quizzes.attempt_submit, attempt=attempt, answers=answers)
        except ValidationError as exc:
            for m in _messages_of(exc):
                messages.error(request, m)
        return redirect("learning_attempt", pk=attempt.pk)


class CertificatesPage(LearnerPage, ListView):
    template_name = "learning/portal/certificates.html"
    paginate_by = 50

    def page_queryset(self):
        return self.own(PathCertificate.objects.select_related("path")).order_by("-issued_at")


class CertificatePage(LearnerPage, DetailView):
    """Printable (print CSS hides everything but the certificate)."""

    template_name = "learning/portal/certificate.html"
    model = PathCertificate
    context_object_name = "certificate"

    def page_queryset(self):
        return self.own(PathCertificate.objects.select_related("path"))

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["verify_url"] = self.request.build_absolute_uri(
            reverse("learning_certificate_verify", kwargs={"code": self.object.code})
        )
        return ctx


class CertificateVerifyPage(View):
    """Public: anyone holding a certificate's code (a random UUID) can check it is genuine."""

    model = PathCertificate  # for the sweep: the code is looked up across tenants, never an id

    def get(self, request, code):
        wait = public_throttle.blocked_for(request, "unknown_token") or public_throttle.wait_seconds(
            request, "certificate_verify"
        )
        if wait:
            refusal = HttpResponse(
                "Too many certificate checks from your network. Please try again later.",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            return public_throttle.with_retry_after(refusal, wait)
        with unscoped():
            cert = PathCertificate.objects.filter(code=code).values("organization_id", "pk").first()
        if cert is None:
            public_throttle.wait_seconds(request, "unknown_token")
            raise Http404
        with tenant_context(cert["organization_id"]):
            certificate = PathCertificate.objects.select_related("path").get(pk=cert["pk"])
            organization = Organization.objects.get(pk=cert["organization_id"])
        return render(
            request,
            "learning/portal/certificate_verify.html",
            {"certificate": certificate, "organization": organization},
        )


class AttachmentDownload(LearnerPage, SingleObjectMixin, View):
    """A lesson's attachment, for members who may take lessons (the catalogue is theirs to read)."""

    model = LessonAttachment

    def get(self, request, pk):
        attachment = self.get_object()
        try:
            handle = attachment.file.open("rb")
        except (FileNotFoundError, OSError):
            raise Http404 from None
        return FileResponse(
            handle, as_attachment=True, filename=attachment.name, content_type=attachment.content_type
        )


urlpatterns = [
    path("", MyLearningPage.as_view(), name="learning_portal"),
    path("catalogue/", CataloguePage.as_view(), name="learning_catalogue"),
    path("lessons/<int:pk>/start/", LessonSelfStartPage.as_view(), name="learning_self_start"),
    path("paths/<int:pk>/start/", PathSelfStartPage.as_view(), name="learning_path_self_start"),
    path("assignments/<int:pk>/", TakeLessonPage.as_view(), name="learning_take"),
    path("assignments/<int:pk>/start/", LessonStartAction.as_view(), name="learning_start"),
    path("assignments/<int:pk>/progress/", LessonProgressAction.as_view(), name="learning_progress"),
    path("assignments/<int:pk>/complete/", LessonCompleteAction.as_view(), name="learning_complete"),
    path("quizzes/<int:pk>/", QuizPage.as_view(), name="learning_quiz"),
    path("quizzes/<int:pk>/start/", QuizStartAction.as_view(), name="learning_quiz_start"),
    path("attempts/<int:pk>/", AttemptPage.as_view(), name="learning_attempt"),
    path("attempts/<int:pk>/submit/", AttemptSubmitAction.as_view(), name="learning_attempt_submit"),
    path("certificates/", CertificatesPage.as_view(), name="learning_certificates"),
    path("certificates/<int:pk>/", CertificatePage.as_view(), name="learning_certificate"),
    path(
        "certificates/verify/<uuid:code>/",
        CertificateVerifyPage.as_view(),
        name="learning_certificate_verify",
    ),
    path("attachments/<int:pk>/", AttachmentDownload.as_view(), name="learning_attachment"),
]
