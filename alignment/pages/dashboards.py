"""Alignment pages: dashboards (being built)."""

urlpatterns: list = []
