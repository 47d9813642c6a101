"""Forms of the org-admin pages.

Tenant-owned managers raise TenantNotSet outside a tenant, so no form may build a queryset at
class level — not even the one Django derives for a ForeignKey. :func:`deferred_formfield`
builds FK fields with ``queryset=None`` and :class:`TenantModelForm` fills every such field in
``__init__`` (request time, inside the tenant), narrowed by the page's hierarchy scope.

Forms validate; they never save. Views hand ``cleaned_data`` to :mod:`cem.services`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from functools import lru_cache

from django import forms
from django.contrib.auth import password_validation
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.text import capfirst

from cem.models import (
    BrandMessage,
    Channel,
    CustomerExpectation,
    Employee,
    Location,
    Membership,
    Region,
    Role,
    SkillCategory,
    Standard,
    Team,
    Touchpoint,
)
from cem.permissions import API_KEY_SCOPES

Scope = Callable[[models.QuerySet], models.QuerySet]


def _unscoped(queryset):
    return queryset


def deferred_formfield(db_field, **kwargs):
    """Like ``db_field.formfield()`` but FK fields get no queryset until the form is bound to a request."""
    if isinstance(db_field, models.ForeignKey):
        defaults = {
            "queryset": None,
            "required": not db_field.blank,
            "label": capfirst(db_field.verbose_name),
            "help_text": db_field.help_text,
        }
        defaults.update(kwargs)
        form_class = defaults.pop("form_class", forms.ModelChoiceField)
        return form_class(**defaults)
    return db_field.formfield(**kwargs)


class TeamChoiceField(forms.ModelChoiceField):
    """Teams share names across stores, so each option says where it is."""

    def label_from_instance(self, obj):
        return f"{obj.location.name} — {obj.name}"


def teams_queryset():
    return Team.objects.select_related("location").order_by("location__name", "name")


def _team_picker(form: forms.BaseForm) -> None:
    """Reload the team options with htmx when the location changes (the server still checks the pair)."""
    form.fields["location"].widget.attrs.update(
        {
            "hx-get": reverse("team_options"),
            "hx-target": "#id_team",
            "hx-trigger": "change",
            "hx-swap": "innerHTML",
        }
    )


class ScopedFormMixin:
    """``scope`` narrows choice querysets to what the member may see (the page's ``scoped``)."""

    def __init__(self, *args, scope: Scope | None = None, **kwargs):
        self.scope = scope or _unscoped
        super().__init__(*args, **kwargs)


class TenantModelForm(ScopedFormMixin, forms.ModelForm):
    """ModelForm safe for tenant models: per-request FK querysets and tenant-wide unique checks."""

    class Meta:
        formfield_callback = deferred_formfield

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if isinstance(field, forms.ModelChoiceField) and field.queryset is None:
                field.queryset = self.scope(self.choices_for(name))

    def choices_for(self, name: str) -> models.QuerySet:
        """The choices of FK field ``name``, built now from the related model's tenant manager."""
        return self._meta.model._meta.get_field(name).related_model.objects.all()

    def record_data(self) -> dict:
        """The model fields to hand to record_create / record_update."""
        return {name: self.cleaned_data[name] for name in self._meta.fields if name in self.cleaned_data}

    def validate_unique(self):
        super().validate_unique()
        self._validate_tenant_unique()

    def _validate_tenant_unique(self):
        """Check ``UniqueConstraint(organization, …)`` here, with a field error, not at save time.

        Django skips these in forms because ``organization`` is not a form field.
        """
        opts = self.instance._meta
        exclude = self._get_validation_exclusions() - {"organization"}
        for constraint in opts.constraints:
            if not isinstance(constraint, models.UniqueConstraint) or constraint.condition is not None:
                continue
            fields = list(constraint.fields)
            if len(fields) < 2 or fields[0] != "organization":
                continue
            others = fields[1:]
            if any(name in exclude or name not in self.fields for name in others):
                continue
            lookup = {}
            for name in others:
                field = opts.get_field(name)
                lookup[field.attname] = getattr(self.instance, field.attname)
            if any(value is None for value in lookup.values()):
                continue
            clash = opts.default_manager.filter(**lookup)  # the whole tenant, not just the member's scope
            if self.instance.pk is not None:
                clash = clash.exclude(pk=self.instance.pk)
            if clash.exists():
                labels = " and ".join(str(opts.get_field(n).verbose_name) for n in others)
                self.add_error(others[-1], f"A {opts.verbose_name} with this {labels} already exists.")


# --- hierarchy --------------------------------------------------------------------------------


class RegionForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = Region
        fields = ["name", "code"]


class LocationForm(TenantModelForm):
    latitude = forms.DecimalField(max_digits=9, decimal_places=6, min_value=-90, max_value=90, required=False)
    longitude = forms.DecimalField(
        max_digits=9, decimal_places=6, min_value=-180, max_value=180, required=False
    )

    class Meta(TenantModelForm.Meta):
        model = Location
        fields = ["name", "code", "region", "kind", "address", "latitude", "longitude", "active"]
        widgets = {"address": forms.Textarea(attrs={"rows": 2})}


class TeamForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = Team
        fields = ["location", "name"]


class EmployeeForm(TenantModelForm):
    """Who the employee is. Where they work changes only through a move (kept as history)."""

    class Meta(TenantModelForm.Meta):
        model = Employee
        fields = ["name", "external_id", "email", "role", "active"]
        help_texts = {"external_id": "The id in your HR or POS system; unique in the organization."}


class _PlacementMixin:
    """Location + team + start date, checked as a pair; shared by create and move."""

    def _placement_fields(self, *, location_required: bool):
        self.fields["location"] = forms.ModelChoiceField(
            queryset=self.scope(Location.objects.filter(active=True)),
            required=location_required,
        )
        self.fields["team"] = TeamChoiceField(queryset=self.scope(teams_queryset()), required=False)
        self.fields["start_date"] = forms.DateField(
            required=False,
            initial=timezone.localdate,
            widget=forms.DateInput(attrs={"type": "date"}),
            help_text="Defaults to today.",
        )
        _team_picker(self)

    def _clean_placement(self, cleaned):
        location, team = cleaned.get("location"), cleaned.get("team")
        if team is not None and location is None and "location" not in self.errors:
            self.add_error("location", "Choose the location the team belongs to.")
        elif team is not None and location is not None and team.location_id != location.pk:
            self.add_error("team", f"{team.name} is a team of {team.location.name}, not of {location.name}.")
        return cleaned


class EmployeeCreateForm(_PlacementMixin, EmployeeForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._placement_fields(location_required=False)
        self.fields["location"].help_text = "Where they start; leave empty to place them later."

    def clean(self):
        return self._clean_placement(super().clean())


class EmployeeMoveForm(_PlacementMixin, ScopedFormMixin, forms.Form):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._placement_fields(location_required=True)

    def clean(self):
        return self._clean_placement(super().clean())


# --- standards --------------------------------------------------------------------------------


class ChannelForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = Channel
        fields = ["name", "code", "kind"]


class TouchpointForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = Touchpoint
        fields = ["name", "code", "channel", "category", "journey_order"]
        help_texts = {
            "category": "Stabilizing: routine, keeps the relationship steady. Critical: emotionally charged, "
            "makes or breaks it. Planned: the company initiates it.",
            "journey_order": "Position in the customer journey of the channel (lower comes first).",
        }


class SkillCategoryForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = SkillCategory
        fields = ["name", "description"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class CustomerExpectationForm(TenantModelForm):
    importance = forms.IntegerField(
        min_value=1, max_value=5, initial=3, help_text="1 (nice to have) to 5 (vital)."
    )

    class Meta(TenantModelForm.Meta):
        model = CustomerExpectation
        fields = ["name", "description", "importance"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class BrandMessageForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = BrandMessage
        fields = ["title", "text"]
        widgets = {"text": forms.Textarea(attrs={"rows": 4})}


class StandardForm(TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = Standard
        fields = [
            "code",
            "title",
            "description",
            "skill_category",
            "expectation",
            "brand_message",
            "category",
            "active",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


# --- users ------------------------------------------------------------------------------------

# The one scope field each hierarchy-bound role needs; every other role is organization-wide.
SCOPE_FIELD_FOR_ROLE = {
    Role.REGIONAL_MANAGER: "region",
    Role.STORE_MANAGER: "location",
    Role.EMPLOYEE: "employee",
}
SCOPE_FIELDS = ("region", "location", "employee")


class _MembershipScopeMixin:
    """Require the scope field the role needs (as a field error) and clear the ones it doesn't."""

    def _scope_help(self):
        for role, name in SCOPE_FIELD_FOR_ROLE.items():
            self.fields[name].required = False
            self.fields[name].help_text = f"Required for a {Role(role).label.lower()}."

    def _clean_scope(self, cleaned):
        role = cleaned.get("role")
        needed = SCOPE_FIELD_FOR_ROLE.get(role)
        if needed and cleaned.get(needed) is None and needed not in self.errors:
            self.add_error(needed, f"A {Role(role).label.lower()} needs a {needed}.")
        for name in SCOPE_FIELDS:
            if name != needed and name in cleaned:
                cleaned[name] = None
        return cleaned


class MembershipCreateForm(_MembershipScopeMixin, ScopedFormMixin, forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "off"}))
    role = forms.ChoiceField(choices=Role.choices)
    password = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Optional. Leave empty and they are emailed a link to choose their own; "
        "ignored for an existing user.",
    )
    region = forms.ModelChoiceField(queryset=None, required=False)
    location = forms.ModelChoiceField(queryset=None, required=False)
    employee = forms.ModelChoiceField(queryset=None, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].queryset = self.scope(Region.objects.all())
        self.fields["location"].queryset = self.scope(Location.objects.all())
        self.fields["employee"].queryset = self.scope(Employee.objects.filter(active=True))
        self._scope_help()

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if Membership.objects.filter(user__username=email).exists():
            raise forms.ValidationError("This person is already a member of the organization.")
        return email

    def clean_password(self):
        password = self.cleaned_data.get("password")
        if password:
            password_validation.validate_password(password)
        return password

    def clean(self):
        return self._clean_scope(super().clean())


class MembershipUpdateForm(_MembershipScopeMixin, TenantModelForm):
    class Meta(TenantModelForm.Meta):
        model = Membership
        fields = ["role", "region", "location", "employee"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._scope_help()

    def clean(self):
        return self._clean_scope(super().clean())


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Who or what uses it, e.g. “POS export”.")
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in API_KEY_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="Grant only what the integration needs.",
    )
    rate_limit_per_minute = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        label="Rate limit per minute",
        help_text="Leave empty for the platform default.",
    )


@lru_cache(maxsize=1)
def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name.replace("_", " ")) for name in sorted(zoneinfo.available_timezones())]


class OrganizationSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    time_zone = forms.ChoiceField(
        choices=(),
        help_text="Pages show dates and times in this zone; local days (quiet hours, due dates, "
        "reward periods, dashboards) follow it.",
    )
    require_admin_two_factor = forms.BooleanField(
        required=False,
        label="Require two-factor authentication for administrators",
        help_text="Organization admins must sign in with a code from an authenticator app; those "
        "without one are asked to set it up before anything else. API keys are not affected.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["time_zone"].choices = time_zone_choices()
