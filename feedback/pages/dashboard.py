from django.urls import path
from django.views.generic import TemplateView

from cem.pages import TenantPageMixin


class DashboardPage(TenantPageMixin, TemplateView):
    template_name = "feedback/placeholder.html"
    required_action = "responses.view"
    extra_context = {"title": "Feedback"}


urlpatterns = [path("", DashboardPage.as_view(), name="feedback_dashboard")]
