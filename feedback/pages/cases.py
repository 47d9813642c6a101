from django.urls import path
from django.views.generic import TemplateView

from cem.pages import TenantPageMixin


class CasesPage(TenantPageMixin, TemplateView):
    template_name = "feedback/placeholder.html"
    required_action = "cases.view"
    extra_context = {"title": "Cases"}


urlpatterns = [path("", CasesPage.as_view(), name="feedback_cases")]
