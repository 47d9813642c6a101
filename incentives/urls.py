"""Signed-in incentives pages; each area's pages live in incentives/pages/<area>.py."""

from django.urls import include, path

urlpatterns = [
    path("manage/", include("incentives.pages.manage")),  # admins: rules, budgets, catalogue, approvals
    path("bonus/", include("incentives.pages.bonus")),  # bonus periods and scorecards
    path("", include("incentives.pages.portal")),  # employees: balance, statement, catalogue, recognition
]
