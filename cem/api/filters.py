"""Filter sets, declared field by field.

django-filter's ``Meta.fields`` shortcut resolves lookups through the model's default manager
at import time, when no tenant is set, and the fail-closed manager refuses; explicit filters
need no queryset until a request runs.
"""

import django_filters as f
from django import forms
from django.utils import timezone
from django_filters.fields import IsoDateTimeField

from cem.models import Channel, InteractionCategory, Location, Role
from cem.params import as_utc


class UTCIsoDateTimeField(IsoDateTimeField):
    def to_python(self, value):
        moment = super().to_python(value)
        if moment is None or timezone.is_naive(moment):
            return moment
        utc = as_utc(moment)
        if utc is None:
            raise forms.ValidationError("Out of range.", code="overflow")
        return utc


class IsoDateTimeFilter(f.IsoDateTimeFilter):
    """django-filter's, with the moment in UTC: an offset PostgreSQL refuses (cem.params.as_utc)
    is no longer a server error."""

    field_class = UTCIsoDateTimeField


class LocationFilter(f.FilterSet):
    region = f.NumberFilter()
    kind = f.ChoiceFilter(choices=Location.Kind.choices)
    active = f.BooleanFilter()
    code = f.CharFilter()


class TeamFilter(f.FilterSet):
    location = f.NumberFilter()


class EmployeeFilter(f.FilterSet):
    location = f.NumberFilter(field_name="current_location")
    team = f.NumberFilter(field_name="current_team")
    role = f.CharFilter()
    active = f.BooleanFilter()
    external_id = f.CharFilter()


class ChannelFilter(f.FilterSet):
    kind = f.ChoiceFilter(choices=Channel.Kind.choices)
    code = f.CharFilter()


class TouchpointFilter(f.FilterSet):
    channel = f.NumberFilter()
    category = f.ChoiceFilter(choices=InteractionCategory.choices)
    code = f.CharFilter()


class StandardFilter(f.FilterSet):
    skill_category = f.NumberFilter()
    expectation = f.NumberFilter()
    brand_message = f.NumberFilter()
    category = f.ChoiceFilter(choices=InteractionCategory.choices)
    active = f.BooleanFilter()
    code = f.CharFilter()


class CustomerFilter(f.FilterSet):
    segment = f.NumberFilter()
    external_id = f.CharFilter()


class InteractionFilter(f.FilterSet):
    occurred_after = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    location = f.NumberFilter()
    location_code = f.CharFilter(field_name="location__code")
    channel = f.NumberFilter()
    touchpoint = f.NumberFilter()
    employee = f.NumberFilter(field_name="employees")
    customer = f.CharFilter(field_name="customer__external_id")
    category = f.ChoiceFilter(choices=InteractionCategory.choices)
    external_id = f.CharFilter()


class MembershipFilter(f.FilterSet):
    role = f.ChoiceFilter(choices=Role.choices)
    is_active = f.BooleanFilter()


class AuditLogFilter(f.FilterSet):
    action = f.CharFilter()
    object_type = f.CharFilter()
    object_id = f.CharFilter()
    actor_user = f.NumberFilter()
    actor_api_key = f.NumberFilter()
    request_id = f.CharFilter()


class OutboxEventFilter(f.FilterSet):
    event_type = f.CharFilter()
    pending = f.BooleanFilter(field_name="completed_at", lookup_expr="isnull")
