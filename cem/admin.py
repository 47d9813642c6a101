"""Django admin for staff. Staff requests on /admin/ run in the system context (see TenantMiddleware)."""

from django.contrib import admin

from cem import models as m


@admin.register(m.Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "time_zone", "locale", "created_at"]
    search_fields = ["name", "slug"]


class TenantAdmin(admin.ModelAdmin):
    list_select_related = ["organization"]
    list_filter = ["organization"]

    def has_delete_permission(self, request, obj=None):
        # Deletes go through services (audit log, events); the admin is for looking and fixing.
        return False


@admin.register(m.Region)
class RegionAdmin(TenantAdmin):
    list_display = ["name", "code", "organization"]
    search_fields = ["name", "code"]


@admin.register(m.Location)
class LocationAdmin(TenantAdmin):
    list_display = ["name", "code", "kind", "region", "organization"]
    search_fields = ["name", "code"]
    raw_id_fields = ["region"]


@admin.register(m.Employee)
class EmployeeAdmin(TenantAdmin):
    list_display = ["name", "external_id", "role", "current_location", "organization"]
    search_fields = ["name", "external_id", "email"]
    raw_id_fields = ["current_location", "current_team"]


@admin.register(m.Standard)
class StandardAdmin(TenantAdmin):
    list_display = ["code", "title", "skill_category", "category", "organization"]
    search_fields = ["code", "title"]
    raw_id_fields = ["skill_category", "expectation", "brand_message"]


@admin.register(m.Membership)
class MembershipAdmin(TenantAdmin):
    list_display = ["user", "role", "organization", "is_active"]
    search_fields = ["user__username"]
    raw_id_fields = ["user", "region", "location", "team", "employee"]


@admin.register(m.Interaction)
class InteractionAdmin(TenantAdmin):
    list_display = ["external_id", "occurred_at", "location", "channel", "category", "organization"]
    search_fields = ["external_id"]
    raw_id_fields = ["customer", "location", "channel", "touchpoint"]
    show_full_result_count = False


@admin.register(m.OutboxEvent)
class OutboxEventAdmin(TenantAdmin):
    list_display = ["id", "event_type", "created_at", "completed_at", "dispatch_count", "organization"]
    list_filter = ["event_type", "organization"]
    readonly_fields = [f.name for f in m.OutboxEvent._meta.fields]
    show_full_result_count = False


@admin.register(m.AuditLog)
class AuditLogAdmin(TenantAdmin):
    list_display = ["created_at", "action", "object_type", "object_id", "actor_user", "organization"]
    list_filter = ["action", "organization"]
    readonly_fields = [f.name for f in m.AuditLog._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
