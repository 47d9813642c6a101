"""The interim certification quiz page: /audits/jobs/certify/<program id>/.

The signed-in shopper answers the programme's fixed quiz (audits.certify_quiz); a score at or
above the pass mark is recorded through audits.workforce.shopper_certify. The learning app's
quizzes will replace this page.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from django.urls import path
from django.views.generic import DetailView

from audits import certify_quiz, jobs, workforce
from audits.models import Program
from cem.pages import TenantPageMixin


class CertifyPage(TenantPageMixin, DetailView):
    """GET shows the quiz; POST scores it and certifies on a pass. Programmes of the tenant only."""

    model = Program
    required_action = "assignments.change"  # what taking a job needs: shoppers have it
    template_name = "audits/jobs/certify.html"
    context_object_name = "program"

    def page_queryset(self):
        return Program.objects.filter(active=True)

    def _shopper(self):
        shopper = jobs.shopper_for_user(self.request.user)
        if shopper is None:
            raise PermissionDenied("You have no shopper profile in this organization.")
        return shopper

    def _render(self, request, *, answers=None, result=None, status=200):
        quiz = certify_quiz.quiz_for(self.object)
        answers = answers or {}
        questions = [
            {
                **q,
                "chosen": answers.get(q["key"], ""),
                "correct": result is not None and answers.get(q["key"]) == q["answer"],
            }
            for q in quiz
        ]
        ctx = self.get_context_data(questions=questions, result=result, pass_mark=certify_quiz.PASS_MARK)
        return render(request, self.template_name, ctx, status=status)

    def get(self, request, pk):
        self.object = self.get_object()  # 404 for another tenant's programme, before anything else
        self._shopper()
        return self._render(request)

    def post(self, request, pk):
        self.object = program = self.get_object()
        shopper = self._shopper()
        quiz = certify_quiz.quiz_for(program)
        answers = {q["key"]: request.POST.get(f"q-{q['key']}", "") for q in quiz}
        score = certify_quiz.score(quiz, answers)
        passed = score >= certify_quiz.PASS_MARK
        if passed:
            try:
                workforce.shopper_certify(
                    organization=self.organization,
                    actor=self.actor,
                    shopper=shopper,
                    program=program,
                    score=score,
                    pass_mark=certify_quiz.PASS_MARK,
                )
            except ValidationError as exc:
                for message in exc.messages:
                    messages.error(request, message)
                return self._render(request, answers=answers, status=400)
        result = {"score": score, "passed": passed}
        return self._render(request, answers=answers, result=result)


urlpatterns = [path("<int:pk>/", CertifyPage.as_view(), name="audit_certify")]
