"""Alignment pages: journeys (being built)."""

urlpatterns: list = []
