"""Signed-in alignment pages; each area's pages live in alignment/pages/<area>.py."""

from django.urls import include, path

urlpatterns = [
    path("", include("alignment.pages.dashboards")),  # home, store, region, executive, agent, me, trainer
    path("", include("alignment.pages.overview")),  # executive, region, drill-down, agent, me, trainer
    path("scores/", include("alignment.pages.scores")),  # explanations, "How scores are computed", settings
    path("business/", include("alignment.pages.business")),  # business metrics and CRM imports
    path("drivers/", include("alignment.pages.drivers")),  # driver analysis
    path("journeys/", include("alignment.pages.journeys")),  # customer journey maps
]
