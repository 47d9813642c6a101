from django.urls import path
from django.views.generic import TemplateView

from cem.pages import TenantPageMixin


class ExportsPage(TenantPageMixin, TemplateView):
    template_name = "feedback/placeholder.html"
    required_action = "exports.view"
    extra_context = {"title": "Exports"}


urlpatterns = [path("", ExportsPage.as_view(), name="feedback_exports")]
