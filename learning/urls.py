"""Signed-in learning pages; each area's pages live in learning/pages/<area>.py."""

from django.urls import include, path

urlpatterns = [
    path("content/", include("learning.pages.content")),  # trainers: lessons, quizzes, libraries, paths
    path("assign/", include("learning.pages.assign")),  # trainers/managers: assignments and gap rules
    path("analytics/", include("learning.pages.analytics")),  # trainers: most sent, effectiveness
    path("", include("learning.pages.portal")),  # everyone: My learning
]
