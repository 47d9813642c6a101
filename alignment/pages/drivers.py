"""Alignment pages: drivers (being built)."""

urlpatterns: list = []
