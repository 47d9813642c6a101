from django.contrib.auth.password_validation import validate_password
from rest_framework import serializers

from cem.models import (
    ApiKey,
    AuditLog,
    BrandMessage,
    Channel,
    Customer,
    CustomerExpectation,
    Employee,
    EmployeeAssignment,
    Interaction,
    InteractionCategory,
    Location,
    Membership,
    Organization,
    OutboxEvent,
    Region,
    Role,
    Segment,
    SkillCategory,
    Standard,
    Team,
    Touchpoint,
)
from cem.permissions import API_KEY_SCOPES


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = [
            "id",
            "name",
            "slug",
            "time_zone",
            "locale",
            "settings",
            "require_admin_two_factor",
            "created_at",
        ]
        # Who must use two-factor is a people's setting: changed on the page by an admin, never by a key.
        read_only_fields = ["slug", "require_admin_two_factor", "created_at"]

    def validate_settings(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be an object.")
        return value


class RegionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Region
        fields = ["id", "name", "code"]


class LocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Location
        fields = ["id", "region", "name", "code", "kind", "address", "latitude", "longitude", "active"]


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "location", "name"]


class EmployeeSerializer(serializers.ModelSerializer):
    location = serializers.PrimaryKeyRelatedField(
        queryset=Location.objects,
        write_only=True,
        required=False,
        help_text="Where the employee starts; opens the first assignment.",
    )
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects, write_only=True, required=False, allow_null=True
    )
    start_date = serializers.DateField(write_only=True, required=False)

    class Meta:
        model = Employee
        fields = [
            "id",
            "name",
            "email",
            "external_id",
            "role",
            "active",
            "current_location",
            "current_team",
            "location",
            "team",
            "start_date",
        ]
        read_only_fields = ["current_location", "current_team"]

    def validate(self, attrs):
        if self.instance is not None and {"location", "team", "start_date"} & set(attrs):
            raise serializers.ValidationError(
                {"location": "Use POST /employees/{id}/move/ to change location."}
            )
        team, location = attrs.get("team"), attrs.get("location")
        if team is not None and (location is None or team.location_id != location.pk):
            raise serializers.ValidationError({"team": "The team must belong to the given location."})
        return attrs


class EmployeeMoveSerializer(serializers.Serializer):
    location = serializers.PrimaryKeyRelatedField(queryset=Location.objects)
    team = serializers.PrimaryKeyRelatedField(queryset=Team.objects, required=False, allow_null=True)
    start_date = serializers.DateField(required=False)


class EmployeeAssignmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = EmployeeAssignment
        fields = ["id", "employee", "location", "team", "start_date", "end_date"]


class ChannelSerializer(serializers.ModelSerializer):
    class Meta:
        model = Channel
        fields = ["id", "code", "name", "kind"]


class TouchpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Touchpoint
        fields = ["id", "channel", "code", "name", "category", "journey_order"]


class SkillCategorySerializer(serializers.ModelSerializer):
    class Meta:
        model = SkillCategory
        fields = ["id", "name", "description"]


class CustomerExpectationSerializer(serializers.ModelSerializer):
    class Meta:
        model = CustomerExpectation
        fields = ["id", "name", "description", "importance"]


class BrandMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = BrandMessage
        fields = ["id", "title", "text"]


class StandardSerializer(serializers.ModelSerializer):
    class Meta:
        model = Standard
        fields = [
            "id",
            "code",
            "title",
            "description",
            "skill_category",
            "expectation",
            "brand_message",
            "category",
            "active",
        ]


_SEGMENT_OPS = {"eq", "ne", "lt", "lte", "gt", "gte", "in", "contains"}


class SegmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Segment
        fields = ["id", "name", "description", "rule"]

    def validate_rule(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a list of {field, op, value} conditions.")
        for i, cond in enumerate(value):
            if not isinstance(cond, dict) or set(cond) != {"field", "op", "value"}:
                raise serializers.ValidationError(f"Condition {i} must have exactly field, op and value.")
            if cond["op"] not in _SEGMENT_OPS:
                raise serializers.ValidationError(
                    f"Condition {i}: op must be one of {', '.join(sorted(_SEGMENT_OPS))}."
                )
            if not isinstance(cond["field"], str) or not cond["field"]:
                raise serializers.ValidationError(f"Condition {i}: field must be a non-empty string.")
        return value


class CustomerSerializer(serializers.ModelSerializer):
    consent_detail = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="Where the customer gave or withdrew the consent this request changes (e.g. 'checkout "
        "tablet'); recorded with the time in the consent history (/api/v1/privacy/consents/).",
    )

    class Meta:
        model = Customer
        fields = [
            "id",
            "external_id",
            "segment",
            "email",
            "phone",
            "locale",
            "consent_email",
            "consent_sms",
            "opted_out_at",
            "created_at",
            "consent_detail",
        ]
        read_only_fields = ["created_at"]


class InteractionSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True, allow_null=True)
    location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    channel = serializers.SlugRelatedField(slug_field="code", read_only=True)
    touchpoint = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    employees = serializers.SerializerMethodField()

    class Meta:
        model = Interaction
        fields = [
            "id",
            "external_id",
            "customer",
            "location",
            "channel",
            "touchpoint",
            "category",
            "occurred_at",
            "amount",
            "attributes",
            "employees",
            "created_at",
        ]
        read_only_fields = fields

    def get_employees(self, obj) -> list[str]:
        return [e.external_id for e in obj.employees.all()]


class InteractionInputSerializer(serializers.Serializer):
    """Documents the ingest row; validation itself is cem.ingest's, shared with the bulk path."""

    external_id = serializers.CharField(
        max_length=100, help_text="Unique per organization; re-sending is a no-op."
    )
    occurred_at = serializers.DateTimeField(
        help_text="ISO 8601; without an offset, the organization's time zone."
    )
    location = serializers.CharField(help_text="Location code.")
    channel = serializers.CharField(
        required=False, help_text="Channel code (optional when touchpoint is given)."
    )
    touchpoint = serializers.CharField(required=False)
    category = serializers.ChoiceField(
        choices=InteractionCategory.choices,
        required=False,
        help_text="Defaults to the touchpoint's category.",
    )
    customer = serializers.CharField(required=False, help_text="Customer external id; created when new.")
    employees = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Employee external ids."
    )
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, required=False)
    attributes = serializers.DictField(required=False)


class IngestRowResultSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    external_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["created", "duplicate", "error"])
    id = serializers.IntegerField(required=False)
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False)


class IngestResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    error = serializers.IntegerField()
    results = IngestRowResultSerializer(many=True)


class InteractionStatsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    by_category = serializers.DictField(child=serializers.IntegerField())
    by_channel = serializers.DictField(child=serializers.IntegerField())


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "role", "region", "location", "team", "employee", "is_active", "created_at"]
        read_only_fields = ["created_at"]

    def validate(self, attrs):
        merged = {f: getattr(self.instance, f, None) for f in ("role", "region", "location", "employee")}
        merged.update(attrs)
        needs = {Role.REGIONAL_MANAGER: "region", Role.STORE_MANAGER: "location", Role.EMPLOYEE: "employee"}
        field = needs.get(merged["role"])
        if field and merged.get(field) is None:
            raise serializers.ValidationError({field: f"Required for the {merged['role']} role."})
        return attrs


class MembershipCreateSerializer(MembershipSerializer):
    email = serializers.EmailField(write_only=True)
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})

    class Meta(MembershipSerializer.Meta):
        fields = [*MembershipSerializer.Meta.fields, "password"]

    def validate_password(self, value):
        validate_password(value)
        return value


class ApiKeySerializer(serializers.ModelSerializer):
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=[*API_KEY_SCOPES, "*"]), allow_empty=False
    )

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "rate_limit_per_minute",
            "created_at",
            "last_used_at",
            "revoked_at",
        ]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
        extra_kwargs = {"rate_limit_per_minute": {"min_value": 1, "max_value": 100_000}}


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]


class AuditLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = [
            "id",
            "actor_user",
            "actor_api_key",
            "action",
            "object_type",
            "object_id",
            "changes",
            "request_id",
            "created_at",
        ]
        read_only_fields = fields


class OutboxEventSerializer(serializers.ModelSerializer):
    handlers_done = serializers.SerializerMethodField()

    class Meta:
        model = OutboxEvent
        fields = [
            "id",
            "event_type",
            "aggregate_type",
            "aggregate_id",
            "payload",
            "created_at",
            "completed_at",
            "dispatch_count",
            "last_error",
            "handlers_done",
        ]
        read_only_fields = fields

    def get_handlers_done(self, obj) -> list[str]:
        return sorted(d.handler for d in obj.deliveries.all())
