"""Signed-in audit pages; each area's pages live in audits/pages/<area>.py."""

from django.urls import include, path

urlpatterns = [
    path("results/", include("audits.pages.results")),
    path("forms/", include("audits.pages.forms")),
    path("shoppers/", include("audits.pages.workforce")),
    path("monitoring/", include("audits.pages.monitoring")),
    path("jobs/certify/", include("audits.pages.certify")),
    path("jobs/", include("audits.pages.jobs")),
]
