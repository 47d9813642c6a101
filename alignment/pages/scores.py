"""Alignment pages: scores (being built)."""

urlpatterns: list = []
