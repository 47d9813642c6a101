"""Signed-in feedback pages. Each area's pages live in feedback/pages/<area>.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("feedback.pages.dashboard")),
    path("surveys/", include("feedback.pages.surveys")),
    path("cases/", include("feedback.pages.cases")),
    path("exports/", include("feedback.pages.exports")),
    path("links/", include("feedback.pages.links")),
]
