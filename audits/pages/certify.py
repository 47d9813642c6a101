"""/audits/jobs/certify/<program id>/: certification is taken on the learning portal.

Opening it gives the signed-in shopper the programme's certification path (or finds the one
they have open) and sends them to it on the portal; passing it certifies them
(audits.certification, on the PathCompleted event). The URL is kept because job boards and
emails link to it.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.urls import path
from django.views.generic import DetailView

from audits import certification, jobs
from audits.models import Program
from cem.pages import TenantPageMixin


class CertifyPage(TenantPageMixin, DetailView):
    """GET: assign (idempotently) and redirect to the portal. Programmes of the tenant only."""

    model = Program
    required_action = "training.take"

    def page_queryset(self):
        return Program.objects.filter(active=True).select_related("certification_path")

    def get(self, request, pk):
        program = self.get_object()  # 404 for another tenant's programme, before anything else
        shopper = jobs.shopper_for_user(request.user)
        if shopper is None:
            raise PermissionDenied("You have no shopper profile in this organization.")
        try:
            assignment = certification.certification_start(
                organization=self.organization, actor=self.actor, shopper=shopper, program=program
            )
        except ValidationError as exc:
            for message in exc.messages:
                messages.error(request, message)
            return redirect("audit_jobs")
        return redirect("learning_take", pk=assignment.pk)


urlpatterns = [path("<int:pk>/", CertifyPage.as_view(), name="audit_certify")]
