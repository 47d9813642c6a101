"""Org-admin pages: hierarchy, standards, users, API keys, audit log."""

from django.urls import path

from cem import views_manage as v
from cem import views_privacy as pv
from cem import views_webhooks as wh


def crud(
    prefix: str,
    record: v.Record,
    *,
    list_view=v.RecordListView,
    create_view=v.RecordCreateView,
    update_view=v.RecordUpdateView,
    delete_view=v.RecordDeleteView,
):
    """List, create, edit and (if the record is deletable) delete pages of one record."""
    urls = [path(f"{prefix}/", list_view.for_record(record).as_view(), name=record.plural)]
    if create_view is not None:
        urls.append(
            path(f"{prefix}/new/", create_view.for_record(record).as_view(), name=f"{record.name}_create")
        )
    if update_view is not None:
        urls.append(
            path(
                f"{prefix}/<int:pk>/edit/",
                update_view.for_record(record).as_view(),
                name=f"{record.name}_edit",
            )
        )
    if delete_view is not None and record.deletable:
        urls.append(
            path(
                f"{prefix}/<int:pk>/delete/",
                delete_view.for_record(record).as_view(),
                name=f"{record.name}_delete",
            )
        )
    return urls


urlpatterns = [
    # Hierarchy
    *crud("regions", v.REGIONS),
    *crud("locations", v.LOCATIONS),
    *crud("teams", v.TEAMS),
    path("teams/options/", v.TeamOptionsView.as_view(), name="team_options"),
    *crud("employees", v.EMPLOYEES, create_view=v.EmployeeCreateView, update_view=v.EmployeeUpdateView),
    path(
        "employees/<int:pk>/", v.EmployeeDetailView.for_record(v.EMPLOYEES).as_view(), name="employee_detail"
    ),
    path(
        "employees/<int:pk>/move/", v.EmployeeMoveView.for_record(v.EMPLOYEES).as_view(), name="employee_move"
    ),
    # Standards
    *crud("standards", v.STANDARDS),
    *crud("skill-categories", v.SKILL_CATEGORIES),
    *crud("expectations", v.EXPECTATIONS),
    *crud("brand-messages", v.BRAND_MESSAGES),
    *crud("channels", v.CHANNELS),
    *crud("touchpoints", v.TOUCHPOINTS),
    # The organization itself
    path("organization/", v.OrganizationSettingsView.as_view(), name="organization_settings"),
    # Users
    *crud(
        "users",
        v.MEMBERS,
        list_view=v.MemberListView,
        create_view=v.MemberCreateView,
        update_view=v.MemberUpdateView,
    ),
    path(
        "users/<int:pk>/deactivate/",
        v.MemberDeactivateView.for_record(v.MEMBERS).as_view(),
        name="member_deactivate",
    ),
    path(
        "users/<int:pk>/reactivate/",
        v.MemberReactivateView.for_record(v.MEMBERS).as_view(),
        name="member_reactivate",
    ),
    # API keys
    *crud(
        "api-keys", v.API_KEYS, list_view=v.ApiKeyListView, create_view=v.ApiKeyCreateView, update_view=None
    ),
    path(
        "api-keys/<int:pk>/revoke/",
        v.ApiKeyRevokeView.for_record(v.API_KEYS).as_view(),
        name="api_key_revoke",
    ),
    # Outgoing webhooks
    *crud(
        "webhooks",
        wh.WEBHOOKS,
        list_view=wh.WebhookListView,
        create_view=wh.WebhookCreateView,
        update_view=wh.WebhookUpdateView,
        delete_view=wh.WebhookDeleteView,
    ),
    path("webhooks/<int:pk>/", wh.WebhookDetailView.for_record(wh.WEBHOOKS).as_view(), name="webhook_detail"),
    path(
        "webhooks/<int:pk>/rotate/",
        wh.WebhookRotateView.for_record(wh.WEBHOOKS).as_view(),
        name="webhook_rotate",
    ),
    path(
        "webhooks/<int:pk>/disable/",
        wh.WebhookDisableView.for_record(wh.WEBHOOKS).as_view(),
        name="webhook_disable",
    ),
    path(
        "webhooks/deliveries/<int:pk>/redeliver/",
        wh.WebhookRedeliverView.as_view(),
        name="webhook_redeliver",
    ),
    # Privacy (GDPR / CCPA): data-subject exports and erasures, consent, retention
    path("privacy/", pv.PrivacyHomeView.as_view(), name="privacy"),
    path("privacy/retention/", pv.RetentionView.as_view(), name="privacy_retention"),
    path("privacy/suppressions/", pv.SuppressionView.as_view(), name="privacy_suppressions"),
    path("privacy/requests/<int:pk>/", pv.RequestDetailView.as_view(), name="privacy_request"),
    path(
        "privacy/requests/<int:pk>/download/",
        pv.RequestDownloadView.as_view(),
        name="privacy_request_download",
    ),
    *[
        path(f"privacy/{kind}s/<int:pk>/{suffix}", views[name].as_view(), name=f"privacy_{kind}_{name}")
        for kind, views in (("customer", pv.CUSTOMER_VIEWS), ("employee", pv.EMPLOYEE_VIEWS))
        for name, suffix in (
            ("detail", ""),
            ("export", "export/"),
            ("consent", "consent/"),
            ("erase", "erase/"),
        )
        if not (kind == "employee" and name == "consent")
    ],
    # Audit log (read-only)
    *crud("audit-log", v.AUDIT_LOG, list_view=v.AuditLogListView, create_view=None, update_view=None),
]
