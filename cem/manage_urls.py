"""Org-admin pages: hierarchy, standards, users, API keys, audit log."""

from django.urls import path

from cem import views

urlpatterns = [
    path("locations/", views.LocationListView.as_view(), name="locations"),
    path("employees/", views.EmployeeListView.as_view(), name="employees"),
    path("standards/", views.StandardListView.as_view(), name="standards"),
    path("users/", views.MemberListView.as_view(), name="members"),
    path("api-keys/", views.ApiKeyListView.as_view(), name="api_keys"),
    path("audit-log/", views.AuditLogListView.as_view(), name="audit_log"),
]
