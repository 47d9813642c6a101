"""Learning content pages (/learning/content/): the library browser with search (everyone who may
view lessons), the lesson read preview, and the trainers' editors for lessons (Markdown with a
preview), attachments, quizzes, libraries and paths.

Every write goes through learning.content, so the pages get the API's validation and versioning:
saving a published lesson creates version N+1 and completions keep theirs. Learners see
published content only.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.views.generic import FormView, ListView, TemplateView, View

from cem.models import SkillCategory, Standard
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.views_manage import add_service_errors
from learning import content as svc
from learning import content_selectors as sel
from learning.models import (
    Audience,
    ContentStatus,
    LearningPath,
    Lesson,
    LessonAttachment,
    LessonVersion,
    Library,
    PathStep,
    Quiz,
    QuizQuestion,
)
from learning.rendering import render_markdown

LANGUAGE_NAMES = {"en": "English", "es": "Español"}


class ContentPage(TenantPageMixin):
    model = Lesson

    def can(self, action: str) -> bool:
        return role_can(self.request.membership.role, action)

    @cached_property
    def can_edit(self) -> bool:
        return self.can("lessons.change")

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["can_add"] = self.can("lessons.add")
        ctx["can_edit"] = self.can_edit
        return ctx

    def object_or_404(self, queryset=None):
        queryset = self.get_queryset() if queryset is None else self.scoped(queryset)
        return get_object_or_404(queryset, pk=self.kwargs["pk"])


# --- library browser and preview -----------------------------------------------------------------


class LibraryBrowserPage(ContentPage, ListView):
    """Search the catalogue (title, summary, standard, skill category), optionally in one library."""

    template_name = "learning/content/library.html"
    required_action = "lessons.view"
    paginate_by = 30

    def page_queryset(self):
        params = self.request.GET
        return sel.lesson_search(
            q=params.get("q", ""),
            library=params.get("library"),
            skill_category=params.get("skill"),
            status=params.get("status") if self.can_edit else None,
            published_only=not self.can_edit,
            audiences=None if self.can_edit else sel.learner_audiences(self.request.membership.role),
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            title="Lesson library",
            q=self.request.GET.get("q", ""),
            library_id=self.request.GET.get("library", ""),
            skill_id=self.request.GET.get("skill", ""),
            status=self.request.GET.get("status", ""),
            libraries=list(sel.libraries()),
            skills=list(SkillCategory.objects.order_by("name").only("id", "name")),
            statuses=ContentStatus.choices,
        )
        return ctx


class LessonPreviewPage(ContentPage, TemplateView):
    """How a learner sees the lesson (``?lang=es``); editors may look at any version (``?version=``)."""

    template_name = "learning/content/lesson.html"
    required_action = "lessons.view"

    def page_queryset(self):
        queryset = sel.lessons_with_tags()
        if self.can_edit:
            return queryset
        audiences = sel.learner_audiences(self.request.membership.role)
        if audiences is not None:
            queryset = queryset.filter(audience__in=audiences)
        return queryset.filter(status=ContentStatus.PUBLISHED)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        lesson = self.object_or_404()
        version = lesson.current_version
        versions = []
        if self.can_edit:
            versions = list(LessonVersion.objects.filter(lesson=lesson).only("id", "number", "published_at"))
            wanted = self.request.GET.get("version", "")
            if wanted.isdigit():
                version = next((v for v in versions if v.number == int(wanted)), None)
                if version is None:
                    raise Http404("No such version.")
                version = LessonVersion.objects.get(pk=version.pk)
        if version is None:
            raise Http404("This lesson has no content yet.")
        lang = self.request.GET.get("lang") or lesson.language
        content = svc.lesson_content(version, lang, lesson_language=lesson.language)
        quiz = Quiz.objects.filter(lesson=lesson).only("id", "title", "pass_mark", "status").first()
        ctx.update(
            title=content["title"],
            lesson=lesson,
            version=version,
            versions=versions,
            content=content,
            languages=[(code, LANGUAGE_NAMES[code]) for code in svc.LANGUAGES],
            attachments=list(LessonAttachment.objects.filter(version=version).order_by("name", "pk")),
            quiz=quiz,
            question_count=QuizQuestion.objects.filter(quiz=quiz).count() if quiz else 0,
        )
        return ctx


# --- lesson editor -------------------------------------------------------------------------------


class LessonForm(forms.Form):
    title = forms.CharField(max_length=200)
    summary = forms.CharField(max_length=300, required=False)
    language = forms.ChoiceField(choices=[(c, LANGUAGE_NAMES[c]) for c in svc.LANGUAGES])
    audience = forms.ChoiceField(choices=Audience.choices)
    estimated_minutes = forms.IntegerField(min_value=1, max_value=600, initial=5)
    standards = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    skill_categories = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    video_url = forms.CharField(max_length=200, required=False, label="Video URL (http/https)")
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "data-testid": "body"}),
        required=False,
        help_text="Markdown: # headings, **bold**, lists, [links](https://…), ![images](https://…), tables.",
    )
    translation_language = forms.ChoiceField(
        choices=[(c, LANGUAGE_NAMES[c]) for c in svc.LANGUAGES], initial="es", label="Translation into"
    )
    translation_title = forms.CharField(max_length=200, required=False, label="Translated title")
    translation_body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8}), required=False, label="Translated body (Markdown)"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["standards"].choices = [
            (str(s.pk), f"{s.code} — {s.title}")
            for s in Standard.objects.order_by("code").only("id", "code", "title")
        ]
        self.fields["skill_categories"].choices = [
            (str(s.pk), s.name) for s in SkillCategory.objects.order_by("name").only("id", "name")
        ]

    def service_data(self) -> dict:
        d = self.cleaned_data
        translations = {}
        lang = d["translation_language"]
        if lang != d["language"] and (d["translation_title"] or d["translation_body"]):
            translations[lang] = {"title": d["translation_title"], "body": d["translation_body"]}
        return {
            "title": d["title"],
            "summary": d["summary"],
            "language": d["language"],
            "audience": d["audience"],
            "estimated_minutes": d["estimated_minutes"],
            "standards": [int(v) for v in d["standards"]],
            "skill_categories": [int(v) for v in d["skill_categories"]],
            "video_url": d["video_url"],
            "body": d["body"],
            "translations": translations,
        }


def _lesson_initial(lesson: Lesson) -> dict:
    version = lesson.current_version
    translations = (version.translations if version else {}) or {}
    other = next(iter(translations), next(c for c in svc.LANGUAGES if c != lesson.language))
    entry = translations.get(other, {})
    return {
        "title": lesson.title,
        "summary": lesson.summary,
        "language": lesson.language,
        "audience": lesson.audience,
        "estimated_minutes": lesson.estimated_minutes,
        "standards": [str(pk) for pk in lesson.standard_links.values_list("standard_id", flat=True)],
        "skill_categories": [
            str(pk) for pk in lesson.skill_links.values_list("skill_category_id", flat=True)
        ],
        "video_url": version.video_url if version else "",
        "body": version.body if version else "",
        "translation_language": other,
        "translation_title": entry.get("title", ""),
        "translation_body": entry.get("body", ""),
    }


def _field_errors(form, error: ValidationError) -> None:
    """Service errors such as ``translations.es.body`` land on the editor's field for them."""
    if hasattr(error, "error_dict"):
        renamed = {}
        for name, errors in error.error_dict.items():
            if name.startswith("translations."):
                name = "translation_body" if name.endswith(".body") else "translation_title"
            elif name == "translations":
                name = "translation_language"
            renamed.setdefault(name, []).extend(errors)
        error = ValidationError(renamed)
    add_service_errors(form, error)


class LessonEditPage(ContentPage, FormView):
    """New lesson (no pk) or edit; "Preview" renders the Markdown without saving anything."""

    template_name = "learning/content/lesson_edit.html"
    form_class = LessonForm

    @property
    def required_action(self):
        return "lessons.change" if "pk" in self.kwargs else "lessons.add"

    @cached_property
    def lesson(self) -> Lesson | None:
        if "pk" not in self.kwargs:
            return None
        return self.object_or_404(Lesson.objects.select_related("current_version"))

    def get_initial(self):
        return (
            _lesson_initial(self.lesson)
            if self.lesson
            else {"language": "en", "audience": Audience.EMPLOYEES}
        )

    def form_valid(self, form):
        if "preview" in self.request.POST:
            data = form.service_data()
            return self.render_to_response(
                self.get_context_data(form=form, preview_html=render_markdown(data["body"]), previewing=True)
            )
        try:
            if self.lesson is None:
                lesson = svc.lesson_create(
                    organization=self.organization, actor=self.actor, data=form.service_data()
                )
                messages.success(self.request, "Lesson created as a draft.")
            else:
                lesson, created = svc.lesson_update(
                    organization=self.organization,
                    actor=self.actor,
                    lesson=self.lesson,
                    data=form.service_data(),
                )
                messages.success(
                    self.request,
                    f"Saved as version {lesson.current_version.number}; earlier completions keep theirs."
                    if created
                    else "Saved.",
                )
        except ValidationError as error:
            _field_errors(form, error)
            return self.form_invalid(form)
        return HttpResponseRedirect(reverse("learning_lesson_edit", args=[lesson.pk]))

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        lesson = self.lesson
        ctx.update(
            title=f"Edit: {lesson.title}" if lesson else "New lesson",
            lesson=lesson,
            attachments=list(
                LessonAttachment.objects.filter(version_id=lesson.current_version_id).order_by("name", "pk")
            )
            if lesson
            else [],
            max_mb=svc.MAX_ATTACHMENT_BYTES // (1024 * 1024),
        )
        return ctx


class LessonActionPage(ContentPage, View):
    """POST publish / archive / attachment upload for one lesson."""

    required_action = "lessons.change"
    http_method_names = ["post"]
    operation = ""

    def post(self, request, pk):
        lesson = self.object_or_404(Lesson.objects.select_related("current_version"))
        try:
            if self.operation == "publish":
                svc.lesson_publish(organization=self.organization, actor=self.actor, lesson=lesson)
                messages.success(request, "Published: learners can now take it.")
            elif self.operation == "archive":
                svc.lesson_archive(organization=self.organization, actor=self.actor, lesson=lesson)
                messages.success(request, "Archived.")
            elif self.operation == "attach":
                upload = request.FILES.get("file")
                if upload is None:
                    raise ValidationError({"file": "Choose a file."})
                svc.attachment_add(
                    organization=self.organization, actor=self.actor, lesson=lesson, upload=upload
                )
                messages.success(request, "Attachment added.")
        except ValidationError as error:
            for message in ValidationError(error).messages:
                messages.error(request, message)
        return HttpResponseRedirect(reverse("learning_lesson_edit", args=[lesson.pk]))


# --- quizzes -------------------------------------------------------------------------------------

_KIND = re.compile(r"^\[(single|multi|true_false)\]\s*", re.IGNORECASE)


def questions_to_text(questions) -> str:
    """The editor's plain-text form of questions (see QuizForm.questions' help text)."""
    blocks = []
    for q in questions:
        lines = [f"? [{q.kind}] {q.text}"]
        lines += [f"{'*' if c.get('correct') else '-'} {c.get('text', '')}" for c in q.choices]
        lines += [f"> {line}" for line in (q.explanation or "").splitlines() if line.strip()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def parse_questions(text: str) -> list[dict]:
    """``? [kind] text`` starts a question, ``*`` marks a correct choice, ``-`` a wrong one and
    ``>`` the explanation shown after submitting. Lines the format does not know are an error."""
    questions: list[dict] = []
    errors = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        marker, rest = line[0], line[1:].strip()
        if marker == "?":
            match = _KIND.match(rest)
            kind = match.group(1).lower() if match else "single"
            questions.append({"kind": kind, "text": rest[match.end() :] if match else rest, "choices": [],
                              "explanation": ""})  # fmt: skip
        elif not questions:
            errors.append(f"Line {number}: start a question with “? ”.")
        elif marker in "*-":
            q = questions[-1]
            choice = {"text": rest, "correct": marker == "*"}
            if q["kind"] == QuizQuestion.Kind.TRUE_FALSE:
                choice["key"] = rest.lower() if rest.lower() in ("true", "false") else rest
            q["choices"].append(choice)
        elif marker == ">":
            q = questions[-1]
            q["explanation"] = f"{q['explanation']}\n{rest}".strip()
        else:
            errors.append(f"Line {number}: begin with ?, *, - or >.")
    if errors:
        raise ValidationError({"questions": errors})
    return questions


class QuizForm(forms.Form):
    title = forms.CharField(max_length=200)
    lesson = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Ends lesson")
    pass_mark = forms.DecimalField(
        min_value=0, max_value=100, decimal_places=2, initial=80, label="Pass mark (%)"
    )
    attempts_allowed = forms.IntegerField(
        min_value=1, max_value=100, required=False, initial=3, help_text="Empty: unlimited attempts."
    )
    randomise = forms.BooleanField(required=False, initial=True, label="Randomise question and choice order")
    status = forms.ChoiceField(choices=ContentStatus.choices)
    questions = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "data-testid": "questions"}),
        required=False,
        help_text="“? [single|multi|true_false] Question”, then “* right answer”, “- wrong answer”, "
        "“> explanation”; a blank line between questions.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["lesson"].choices = [
            ("", "—"),
            *Lesson.objects.order_by("title").values_list("pk", "title"),
        ]


def _question_errors(error: ValidationError) -> ValidationError:
    """``questions[2].choices`` → a message on the questions box naming question 3."""
    if not hasattr(error, "error_dict"):
        return error
    out: dict[str, list] = {}
    for name, errors in error.error_dict.items():
        match = re.match(r"^questions\[(\d+)\]\.?(.*)$", name)
        if match:
            where = f"Question {int(match.group(1)) + 1}" + (f" ({match.group(2)})" if match.group(2) else "")
            out.setdefault("questions", []).extend(f"{where}: {m}" for m in ValidationError(errors).messages)
        else:
            out.setdefault(name, []).extend(errors)
    return ValidationError(out)


class QuizListPage(ContentPage, ListView):
    template_name = "learning/content/quizzes.html"
    required_action = "lessons.change"
    paginate_by = 50
    model = Quiz

    def page_queryset(self):
        return sel.quizzes()

    def get_context_data(self, **kwargs):
        return super().get_context_data(title="Quizzes", **kwargs)


class QuizEditPage(ContentPage, FormView):
    template_name = "learning/content/quiz_edit.html"
    form_class = QuizForm
    model = Quiz

    @property
    def required_action(self):
        return "lessons.change" if "pk" in self.kwargs else "lessons.add"

    @cached_property
    def quiz(self) -> Quiz | None:
        return self.object_or_404(Quiz.objects.all()) if "pk" in self.kwargs else None

    def get_initial(self):
        quiz = self.quiz
        if quiz is None:
            return {"status": ContentStatus.DRAFT, "lesson": self.request.GET.get("lesson") or None}
        return {
            "title": quiz.title,
            "lesson": quiz.lesson_id,
            "pass_mark": quiz.pass_mark,
            "attempts_allowed": quiz.attempts_allowed,
            "randomise": quiz.randomise,
            "status": quiz.status,
            "questions": questions_to_text(quiz.questions.order_by("position")),
        }

    def form_valid(self, form):
        d = form.cleaned_data
        try:
            data = {
                "title": d["title"],
                "lesson": d["lesson"],
                "pass_mark": d["pass_mark"],
                "attempts_allowed": d["attempts_allowed"],
                "randomise": d["randomise"],
                "status": d["status"],
                "questions": parse_questions(d["questions"]),
            }
            if self.quiz is None:
                quiz = svc.quiz_create(organization=self.organization, actor=self.actor, data=data)
            else:
                quiz = svc.quiz_update(
                    organization=self.organization, actor=self.actor, quiz=self.quiz, data=data
                )
        except ValidationError as error:
            add_service_errors(form, _question_errors(error))
            return self.form_invalid(form)
        messages.success(self.request, "Quiz saved.")
        return HttpResponseRedirect(reverse("learning_quiz_edit", args=[quiz.pk]))

    def get_context_data(self, **kwargs):
        return super().get_context_data(
            title=f"Quiz: {self.quiz.title}" if self.quiz else "New quiz", **kwargs
        )


# --- libraries -----------------------------------------------------------------------------------


class LibraryForm(forms.Form):
    name = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    skill_category = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    lessons = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["skill_category"].choices = [
            ("", "—"),
            *SkillCategory.objects.order_by("name").values_list("pk", "name"),
        ]
        self.fields["lessons"].choices = list(Lesson.objects.order_by("title").values_list("pk", "title"))


class LibraryEditPage(ContentPage, FormView):
    template_name = "learning/content/edit.html"
    form_class = LibraryForm
    model = Library

    @property
    def required_action(self):
        return "lessons.change" if "pk" in self.kwargs else "lessons.add"

    @cached_property
    def library(self) -> Library | None:
        return self.object_or_404(Library.objects.all()) if "pk" in self.kwargs else None

    def get_initial(self):
        lib = self.library
        if lib is None:
            return {}
        return {
            "name": lib.name,
            "description": lib.description,
            "skill_category": lib.skill_category_id,
            "lessons": list(lib.lesson_links.values_list("lesson_id", flat=True)),
        }

    def form_valid(self, form):
        try:
            if self.library is None:
                svc.library_create(organization=self.organization, actor=self.actor, data=form.cleaned_data)
            else:
                svc.library_update(
                    organization=self.organization,
                    actor=self.actor,
                    library=self.library,
                    data=form.cleaned_data,
                )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Library saved.")
        return HttpResponseRedirect(reverse("learning_library"))

    def get_context_data(self, **kwargs):
        title = f"Library: {self.library.name}" if self.library else "New library"
        return super().get_context_data(title=title, cancel_url=reverse("learning_library"), **kwargs)


# --- paths ---------------------------------------------------------------------------------------


class PathForm(forms.Form):
    name = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    audience = forms.ChoiceField(choices=Audience.choices)
    status = forms.ChoiceField(choices=ContentStatus.choices)

    def __init__(self, *args, lessons=(), steps=None, **kwargs):
        super().__init__(*args, **kwargs)
        steps = steps or {}
        # One "step number" box per lesson: the path is the numbered lessons, in number order.
        self.step_fields = []
        for pk, title in lessons:
            name = f"step_{pk}"
            self.fields[name] = forms.IntegerField(
                min_value=1, max_value=999, required=False, label=title, initial=steps.get(pk)
            )
            self.step_fields.append(name)

    def service_data(self) -> dict:
        d = self.cleaned_data
        numbered = sorted(
            (d[name], int(name.removeprefix("step_"))) for name in self.step_fields if d.get(name) is not None
        )
        return {
            "name": d["name"],
            "description": d["description"],
            "audience": d["audience"],
            "status": d["status"],
            "lessons": [pk for _, pk in numbered],
        }


class PathListPage(ContentPage, ListView):
    template_name = "learning/content/paths.html"
    required_action = "lessons.view"
    paginate_by = 50
    model = LearningPath

    def page_queryset(self):
        queryset = sel.paths()
        if self.can_edit:
            return queryset
        audiences = sel.learner_audiences(self.request.membership.role)
        if audiences is not None:
            queryset = queryset.filter(audience__in=audiences)
        return queryset.filter(status=ContentStatus.PUBLISHED)

    def get_context_data(self, **kwargs):
        return super().get_context_data(title="Learning paths", **kwargs)


class PathEditPage(ContentPage, FormView):
    template_name = "learning/content/path_edit.html"
    form_class = PathForm
    model = LearningPath

    @property
    def required_action(self):
        return "lessons.change" if "pk" in self.kwargs else "lessons.add"

    @cached_property
    def path_obj(self) -> LearningPath | None:
        return self.object_or_404(LearningPath.objects.all()) if "pk" in self.kwargs else None

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        steps = (
            dict(PathStep.objects.filter(path=self.path_obj).values_list("lesson_id", "position"))
            if self.path_obj
            else {}
        )
        kwargs["steps"] = steps
        lessons = list(Lesson.objects.exclude(status=ContentStatus.ARCHIVED).values_list("pk", "title"))
        lessons += list(
            Lesson.objects.filter(pk__in=steps, status=ContentStatus.ARCHIVED).values_list("pk", "title")
        )
        # Steps first, in order; then the rest alphabetically.
        kwargs["lessons"] = sorted(lessons, key=lambda pt: (steps.get(pt[0], 10_000), pt[1]))
        return kwargs

    def get_initial(self):
        p = self.path_obj
        if p is None:
            return {"audience": Audience.EMPLOYEES, "status": ContentStatus.DRAFT}
        return {"name": p.name, "description": p.description, "audience": p.audience, "status": p.status}

    def form_valid(self, form):
        try:
            if self.path_obj is None:
                p = svc.path_create(
                    organization=self.organization, actor=self.actor, data=form.service_data()
                )
            else:
                p = svc.path_update(
                    organization=self.organization,
                    actor=self.actor,
                    path=self.path_obj,
                    data=form.service_data(),
                )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Path saved.")
        return HttpResponseRedirect(reverse("learning_path_edit", args=[p.pk]))

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        form = ctx["form"]
        ctx.update(
            title=f"Path: {self.path_obj.name}" if self.path_obj else "New learning path",
            main_fields=[form[name] for name in ("name", "description", "audience", "status")],
            step_fields=[form[name] for name in form.step_fields],
        )
        return ctx


urlpatterns = [
    path("", LibraryBrowserPage.as_view(), name="learning_library"),
    path("lessons/new/", LessonEditPage.as_view(), name="learning_lesson_create"),
    path("lessons/<int:pk>/", LessonPreviewPage.as_view(), name="learning_lesson"),
    path("lessons/<int:pk>/edit/", LessonEditPage.as_view(), name="learning_lesson_edit"),
    path(
        "lessons/<int:pk>/publish/",
        LessonActionPage.as_view(operation="publish"),
        name="learning_lesson_publish",
    ),
    path(
        "lessons/<int:pk>/archive/",
        LessonActionPage.as_view(operation="archive"),
        name="learning_lesson_archive",
    ),
    path(
        "lessons/<int:pk>/attachments/",
        LessonActionPage.as_view(operation="attach"),
        name="learning_lesson_attach",
    ),
    path("quizzes/", QuizListPage.as_view(), name="learning_quizzes"),
    path("quizzes/new/", QuizEditPage.as_view(), name="learning_quiz_create"),
    path("quizzes/<int:pk>/edit/", QuizEditPage.as_view(), name="learning_quiz_edit"),
    path("libraries/new/", LibraryEditPage.as_view(), name="learning_library_create"),
    path("libraries/<int:pk>/edit/", LibraryEditPage.as_view(), name="learning_library_edit"),
    path("paths/", PathListPage.as_view(), name="learning_paths"),
    path("paths/new/", PathEditPage.as_view(), name="learning_path_create"),
    path("paths/<int:pk>/edit/", PathEditPage.as_view(), name="learning_path_edit"),
]
