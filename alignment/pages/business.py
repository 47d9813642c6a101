"""Alignment pages: business (being built)."""

urlpatterns: list = []
