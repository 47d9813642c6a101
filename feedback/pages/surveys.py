from django.urls import path
from django.views.generic import TemplateView

from cem.pages import TenantPageMixin


class SurveysPage(TenantPageMixin, TemplateView):
    template_name = "feedback/placeholder.html"
    required_action = "surveys.view"
    extra_context = {"title": "Surveys"}


urlpatterns = [path("", SurveysPage.as_view(), name="feedback_surveys")]
