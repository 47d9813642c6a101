"""Org-admin pages: hierarchy, standards, users, API keys and the audit log.

Every plain model is described once by a :class:`Record` (model, form, permission resource,
list columns and filters) and served by one generic family: :class:`RecordListView`,
:class:`RecordCreateView`, :class:`RecordUpdateView` and :class:`RecordDeleteView`.
``View.for_record(record)`` makes the concrete page class (it carries ``model``, which the
cross-tenant sweep reads). Pages needing a service other than record_* (employees, members,
API keys) subclass the generic ones.

Rules every page here keeps:

* The permission is ``f"{resource}.{verb}"`` (view / add / change / delete), checked by
  TenantPageMixin before dispatch; buttons the role can't use are not rendered.
* Objects are looked up in ``self.scoped(...)`` querysets, so another tenant's or another
  scope's id is a 404.
* Writes go through cem.services only; a service's ValidationError becomes form errors.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from operator import or_

from django import forms
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import ProtectedError, Q, RestrictedError
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.views.generic import CreateView, DetailView, FormView, ListView, TemplateView, UpdateView, View

from cem import forms as f
from cem import services
from cem.models import (
    ApiKey,
    AuditLog,
    BrandMessage,
    Channel,
    CustomerExpectation,
    Employee,
    EmployeeAssignment,
    InteractionCategory,
    Location,
    Membership,
    Region,
    Role,
    SkillCategory,
    Standard,
    Team,
    Touchpoint,
)
from cem.pages import TenantPageMixin
from cem.params import id_of
from cem.permissions import VERBS, role_can

# --- describing a record ----------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    label: str
    accessor: str | Callable  # dotted attribute path (callables on the way are called) or f(obj)
    badge: str = ""  # attribute whose value becomes the cell's badge class


@dataclass(frozen=True)
class ListFilter:
    """A ``<select>`` above a list. Only values among ``options`` are applied (others are ignored)."""

    param: str
    label: str
    options: Callable  # (view) -> [(value, label)], evaluated per request inside the tenant
    lookup: str = ""  # filter(**{lookup: value}); or
    apply: Callable | None = None  # (queryset, value) -> queryset


def fk_options(model, label: str = "name"):
    def options(view):
        rows = view.scoped(model.objects.all()).order_by(label).values_list("pk", label)
        return [(str(pk), text) for pk, text in rows]

    return options


def choice_options(choices):
    return lambda view: [(str(value), str(text)) for value, text in choices]


def distinct_options(model, field: str, limit: int = 200):
    def options(view):
        values = view.scoped(model.objects.all()).order_by(field).values_list(field, flat=True).distinct()
        return [(v, v) for v in values[:limit] if v]

    return options


@dataclass(frozen=True)
class Record:
    model: type
    form_class: type | None
    resource: str  # cem.permissions resource: "hierarchy", "standards", …
    section: str  # sub-navigation group
    name: str  # URL-name stem: <name>_create, <name>_edit, <name>_delete
    plural: str  # URL name of the list
    columns: tuple[Column, ...] = ()
    filters: tuple[ListFilter, ...] = ()
    search: tuple[str, ...] = ()  # fields matched by ?q= (icontains)
    select_related: tuple[str, ...] = ()
    order_by: tuple[str, ...] = ()
    deletable: bool = True
    detail_url_name: str = ""  # rows link here instead of to the edit page
    list_template: str = "cem/manage/record_list.html"

    @property
    def verbose_name(self) -> str:
        return str(self.model._meta.verbose_name)

    @property
    def verbose_name_plural(self) -> str:
        return str(self.model._meta.verbose_name_plural)

    def url(self, kind: str, pk=None) -> str:
        name = self.plural if kind == "list" else f"{self.name}_{kind}"
        return reverse(name, args=[pk] if pk is not None else None)


# Sub-navigation: (label, URL name, required action). Shown only where the role may go.
SECTIONS = {
    "hierarchy": [
        ("Regions", "regions", "hierarchy.view"),
        ("Locations", "locations", "hierarchy.view"),
        ("Teams", "teams", "hierarchy.view"),
        ("Employees", "employees", "hierarchy.view"),
    ],
    "standards": [
        ("Standards", "standards", "standards.view"),
        ("Skill categories", "skill_categories", "standards.view"),
        ("Customer expectations", "expectations", "standards.view"),
        ("Brand messages", "brand_messages", "standards.view"),
        ("Channels", "channels", "standards.view"),
        ("Touchpoints", "touchpoints", "standards.view"),
    ],
    "admin": [
        ("Organization", "organization_settings", "organization.change"),
        ("Users", "members", "memberships.view"),
        ("API keys", "api_keys", "apikeys.view"),
        ("Webhooks", "webhooks", "webhooks.view"),
        ("Privacy", "privacy", "privacy.view"),
        ("Audit log", "audit_log", "auditlog.view"),
    ],
}


def _status_filter(field: str, active_when_null: bool, labels=("Active", "Revoked")) -> ListFilter:
    def apply(qs, value):
        is_null = (value == "active") == active_when_null
        return qs.filter(**{f"{field}__isnull": is_null})

    return ListFilter(
        "status", "Status", choice_options([("active", labels[0]), ("inactive", labels[1])]), apply=apply
    )


CATEGORY_FILTER = ListFilter(
    "category", "Category", choice_options(InteractionCategory.choices), lookup="category"
)

REGIONS = Record(
    Region,
    f.RegionForm,
    "hierarchy",
    "hierarchy",
    "region",
    "regions",
    columns=(Column("Name", "name"), Column("Code", "code")),
    search=("name", "code"),
)
LOCATIONS = Record(
    Location,
    f.LocationForm,
    "hierarchy",
    "hierarchy",
    "location",
    "locations",
    columns=(
        Column("Name", "name"),
        Column("Code", "code"),
        Column("Region", "region.name"),
        Column("Type", "get_kind_display"),
        Column("Active", "active"),
    ),
    filters=(
        ListFilter("region", "Region", fk_options(Region), lookup="region_id"),
        ListFilter("kind", "Type", choice_options(Location.Kind.choices), lookup="kind"),
    ),
    search=("name", "code"),
    select_related=("region",),
    list_template="cem/locations.html",
)
TEAMS = Record(
    Team,
    f.TeamForm,
    "hierarchy",
    "hierarchy",
    "team",
    "teams",
    columns=(Column("Name", "name"), Column("Location", "location.name")),
    filters=(ListFilter("location", "Location", fk_options(Location), lookup="location_id"),),
    search=("name",),
    select_related=("location",),
    order_by=("location__name", "name"),
)
EMPLOYEES = Record(
    Employee,
    f.EmployeeForm,
    "hierarchy",
    "hierarchy",
    "employee",
    "employees",
    columns=(
        Column("Name", "name"),
        Column("External id", "external_id"),
        Column("Role", "get_role_display"),
        Column("Location", "current_location.name"),
        Column("Team", "current_team.name"),
        Column("Active", "active"),
    ),
    filters=(
        ListFilter("location", "Location", fk_options(Location), lookup="current_location_id"),
        ListFilter("role", "Role", choice_options(Employee.Role.choices), lookup="role"),
    ),
    search=("name", "external_id", "email"),
    select_related=("current_location", "current_team"),
    deletable=False,
    detail_url_name="employee_detail",
    list_template="cem/employees.html",
)
CHANNELS = Record(
    Channel,
    f.ChannelForm,
    "standards",
    "standards",
    "channel",
    "channels",
    columns=(Column("Name", "name"), Column("Code", "code"), Column("Kind", "get_kind_display")),
    search=("name", "code"),
)
TOUCHPOINTS = Record(
    Touchpoint,
    f.TouchpointForm,
    "standards",
    "standards",
    "touchpoint",
    "touchpoints",
    columns=(
        Column("Name", "name"),
        Column("Code", "code"),
        Column("Channel", "channel.name"),
        Column("Category", "get_category_display", badge="category"),
        Column("Journey order", "journey_order"),
    ),
    filters=(ListFilter("channel", "Channel", fk_options(Channel), lookup="channel_id"), CATEGORY_FILTER),
    search=("name", "code"),
    select_related=("channel",),
    order_by=("channel__name", "journey_order", "name"),
)
SKILL_CATEGORIES = Record(
    SkillCategory,
    f.SkillCategoryForm,
    "standards",
    "standards",
    "skill_category",
    "skill_categories",
    columns=(Column("Name", "name"), Column("Description", "description")),
    search=("name",),
)
EXPECTATIONS = Record(
    CustomerExpectation,
    f.CustomerExpectationForm,
    "standards",
    "standards",
    "expectation",
    "expectations",
    columns=(
        Column("Name", "name"),
        Column("Importance (1-5)", "importance"),
        Column("Description", "description"),
    ),
    search=("name",),
)
BRAND_MESSAGES = Record(
    BrandMessage,
    f.BrandMessageForm,
    "standards",
    "standards",
    "brand_message",
    "brand_messages",
    columns=(Column("Title", "title"), Column("Text", "text")),
    search=("title", "text"),
)
STANDARDS = Record(
    Standard,
    f.StandardForm,
    "standards",
    "standards",
    "standard",
    "standards",
    columns=(
        Column("Code", "code"),
        Column("Standard", "title"),
        Column("Expectation", "expectation.name"),
        Column("Brand message", "brand_message.title"),
        Column("Category", "get_category_display", badge="category"),
        Column("Active", "active"),
    ),
    filters=(
        ListFilter("skill", "Skill category", fk_options(SkillCategory), lookup="skill_category_id"),
        CATEGORY_FILTER,
    ),
    search=("code", "title"),
    select_related=("skill_category", "expectation", "brand_message"),
    order_by=("skill_category__name", "code"),
    list_template="cem/standards.html",
)
MEMBERS = Record(
    Membership,
    f.MembershipUpdateForm,
    "memberships",
    "admin",
    "member",
    "members",
    filters=(
        ListFilter("role", "Role", choice_options(Role.choices), lookup="role"),
        ListFilter(
            "status",
            "Status",
            choice_options([("active", "Active"), ("inactive", "Deactivated")]),
            apply=lambda qs, v: qs.filter(is_active=v == "active"),
        ),
    ),
    search=("user__email", "user__username"),
    select_related=("user", "region", "location", "employee"),
    order_by=("user__username",),
    deletable=False,
    list_template="cem/members.html",
)
API_KEYS = Record(
    ApiKey,
    None,
    "apikeys",
    "admin",
    "api_key",
    "api_keys",
    filters=(_status_filter("revoked_at", active_when_null=True),),
    search=("name", "prefix"),
    select_related=("created_by",),
    order_by=("-created_at", "-id"),
    deletable=False,
    list_template="cem/api_keys.html",
)
AUDIT_LOG = Record(
    AuditLog,
    None,
    "auditlog",
    "admin",
    "audit_entry",
    "audit_log",
    filters=(
        ListFilter("action", "Action", distinct_options(AuditLog, "action"), lookup="action"),
        ListFilter(
            "object_type", "Object type", distinct_options(AuditLog, "object_type"), lookup="object_type"
        ),
    ),
    select_related=("actor_user", "actor_api_key"),
    deletable=False,
    list_template="cem/audit_log.html",
)


# --- helpers ----------------------------------------------------------------------------------


def add_service_errors(form: forms.BaseForm, error: ValidationError) -> None:
    """Attach a service's ValidationError to the form: per field where the form has it."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, errors in error.error_dict.items():
        if name in form.fields:
            form.add_error(name, errors)
        elif name == NON_FIELD_ERRORS:
            form.add_error(None, errors)
        else:
            label = name.replace("_", " ").capitalize()
            form.add_error(None, [f"{label}: {message}" for message in ValidationError(errors).messages])


def _cell_value(obj, accessor):
    if callable(accessor):
        return accessor(obj)
    value = obj
    for part in accessor.split("."):
        value = getattr(value, part, None)
        if callable(value):
            value = value()
        if value is None:
            break
    return value


def _display(value) -> str:
    if value is True:
        return "Yes"
    if value is False:
        return "No"
    if value is None or value == "":
        return "—"
    return str(value)


def _protected_message(obj, error: ProtectedError | RestrictedError) -> str:
    used_by = Counter(str(type(o)._meta.verbose_name_plural) for o in error.args[1])
    what = ", ".join(f"{n} {label}" for label, n in sorted(used_by.items()))
    return f"“{obj}” is still used by {what}, so it can't be deleted. Change or remove those first."


# --- generic pages ----------------------------------------------------------------------------


class ManagePage(TenantPageMixin):
    """A page whose permission is ``<resource>.<verb>``, with the section's sub-navigation."""

    resource = ""
    verb = "view"
    section = ""
    nav_current = ""  # the sub-navigation entry to mark current
    title = ""

    @property
    def required_action(self) -> str:
        return f"{self.resource}.{self.verb}" if self.resource else ""

    def can(self, verb: str, resource: str | None = None) -> bool:
        return role_can(self.request.membership.role, f"{resource or self.resource}.{verb}")

    def subnav(self):
        items = [
            (label, name)
            for label, name, action in SECTIONS.get(self.section, ())
            if role_can(self.request.membership.role, action)
        ]
        return items if len(items) > 1 else []

    def get_title(self) -> str:
        return self.title

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            can={verb: self.can(verb) for verb in VERBS},
            subnav=self.subnav(),
            nav_current=self.nav_current,
            title=self.get_title(),
        )
        return ctx


class RecordPage(ManagePage):
    """A page about one :class:`Record`; ``for_record`` makes the concrete class."""

    record: Record | None = None
    model = None

    @classmethod
    def for_record(cls, record: Record):
        model_name = record.model.__name__
        name = cls.__name__ if cls.__name__.startswith(model_name) else f"{model_name}{cls.__name__}"
        return type(name, (cls,), {"record": record, "model": record.model, "__module__": __name__})

    @property
    def resource(self):
        return self.record.resource

    @property
    def section(self):
        return self.record.section

    @property
    def nav_current(self):
        return self.record.plural

    def page_queryset(self):
        qs = self.record.model.objects.select_related(*self.record.select_related)
        return qs.order_by(*self.record.order_by) if self.record.order_by else qs

    def get_object(self, queryset=None):
        obj = super().get_object(queryset)
        self.object_label = str(obj)  # before a bound form changes the instance
        return obj

    def list_url(self) -> str:
        return self.record.url("list")


class RecordListView(RecordPage, ListView):
    paginate_by = 50

    def get_template_names(self):
        return [self.record.list_template]

    def get_title(self):
        return capfirst_str(self.record.verbose_name_plural)

    def filters(self) -> list[dict]:
        """The record's filters with their options and the (validated) selected value; once per request."""
        if not hasattr(self, "_filters"):
            self._filters = []
            for flt in self.record.filters:
                options = flt.options(self)
                value = self.request.GET.get(flt.param, "")
                selected = value if value in {v for v, _ in options} else ""
                self._filters.append(
                    {
                        "spec": flt,
                        "param": flt.param,
                        "label": flt.label,
                        "options": options,
                        "selected": selected,
                    }
                )
        return self._filters

    def search_query(self) -> str:
        return self.request.GET.get("q", "").strip()[:100] if self.record.search else ""

    def page_queryset(self):
        qs = super().page_queryset()
        for flt in self.filters():
            value, spec = flt["selected"], flt["spec"]
            if value:
                qs = spec.apply(qs, value) if spec.apply else qs.filter(**{spec.lookup: value})
        q = self.search_query()
        if q:
            qs = qs.filter(reduce(or_, (Q(**{f"{name}__icontains": q}) for name in self.record.search)))
        return qs

    def row(self, obj) -> dict:
        rec = self.record
        edit_url = rec.url("edit", obj.pk) if rec.form_class and self.can("change") else ""
        delete_url = rec.url("delete", obj.pk) if rec.deletable and self.can("delete") else ""
        url = reverse(rec.detail_url_name, args=[obj.pk]) if rec.detail_url_name else edit_url
        cells = []
        for column in rec.columns:
            badge = _cell_value(obj, column.badge) if column.badge else ""
            text = _display(_cell_value(obj, column.accessor))
            cells.append({"label": column.label, "text": text, "badge": badge})
        return {"obj": obj, "cells": cells, "url": url, "edit_url": edit_url, "delete_url": delete_url}

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        rec = self.record
        ctx.update(
            record=rec,
            rows=[self.row(obj) for obj in ctx["object_list"]],
            columns=[c.label for c in rec.columns],
            filters=self.filters(),
            search=bool(rec.search),
            q=self.search_query(),
            total=ctx["paginator"].count if ctx.get("paginator") else len(ctx["object_list"]),
            create_url=rec.url("create") if self.can("add") and self.has_create_page() else "",
        )
        ctx["show_actions"] = any(row["edit_url"] or row["delete_url"] for row in ctx["rows"])
        return ctx

    def has_create_page(self) -> bool:
        return self.record.form_class is not None


def capfirst_str(text: str) -> str:
    return text[:1].upper() + text[1:]


class RecordFormMixin:
    """Shared by create and update: scoped form choices, service errors as form errors."""

    template_name = "cem/manage/record_form.html"
    submit_label = "Save"

    def get_form_class(self):
        return self.form_class or self.record.form_class

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["scope"] = self.scoped
        return kwargs

    def perform_save(self, form):
        raise NotImplementedError

    def success_message(self, obj) -> str:
        return f"Saved {self.record.verbose_name} “{obj}”."

    def form_valid(self, form):
        try:
            self.object = self.perform_save(form)
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, self.success_message(self.object))
        return redirect(self.get_success_url())

    def get_success_url(self):
        return self.list_url()

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(record=self.record, submit_label=self.submit_label, cancel_url=self.list_url())
        return ctx


class RecordCreateView(RecordFormMixin, RecordPage, CreateView):
    verb = "add"
    submit_label = "Create"

    def get_title(self):
        return f"New {self.record.verbose_name}"

    def perform_save(self, form):
        return services.record_create(
            organization=self.organization, actor=self.actor, model=self.record.model, data=form.record_data()
        )

    def success_message(self, obj):
        return f"Created {self.record.verbose_name} “{obj}”."


class RecordUpdateView(RecordFormMixin, RecordPage, UpdateView):
    verb = "change"

    def get_title(self):
        return f"Edit {self.record.verbose_name}: {self.object_label}"

    def perform_save(self, form):
        # The bound form already changed self.object; hand the service a pristine copy so the
        # audit log's before/after diff is real.
        instance = self.get_queryset().get(pk=self.object.pk)
        return services.record_update(
            organization=self.organization, actor=self.actor, instance=instance, data=form.record_data()
        )

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        if self.record.deletable and self.can("delete"):
            ctx["delete_url"] = self.record.url("delete", self.object.pk)
        return ctx


class ModelFormEditPage(TenantPageMixin, View):
    """New row (no ``pk`` in the URL) or edit one through a ModelForm, saved by the generic record
    services so the audit log and tenant checks apply; service errors land on the named fields.
    Subclasses set ``model``, ``form_class``, ``resource``, ``template_name`` and ``success_url_name``."""

    form_class: type[forms.ModelForm]
    resource: str
    success_url_name: str
    saved_message = "Saved."

    @property
    def required_action(self):
        return f"{self.resource}.change" if "pk" in self.kwargs else f"{self.resource}.add"

    def _instance(self):
        if "pk" not in self.kwargs:
            return None
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def render(self, form, instance):
        return TemplateResponse(self.request, self.template_name, {"form": form, "rule": instance})

    def get(self, request, **kwargs):
        instance = self._instance()
        return self.render(self.form_class(instance=instance), instance)

    def post(self, request, **kwargs):
        instance = self._instance()
        # The form fills its own copy; the service compares the stored row with the new values.
        form = self.form_class(request.POST, instance=self._instance())
        if form.is_valid():
            data = {name: form.cleaned_data[name] for name in self.form_class.Meta.fields}
            try:
                if instance is None:
                    services.record_create(
                        organization=self.organization, actor=self.actor, model=self.model, data=data
                    )
                else:
                    services.record_update(
                        organization=self.organization, actor=self.actor, instance=instance, data=data
                    )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                messages.success(request, self.saved_message)
                return redirect(reverse(self.success_url_name))
        return self.render(form, instance)


class ConfirmPage(RecordPage, DetailView):
    """GET shows a confirmation; POST acts (``act``) and redirects with a message."""

    template_name = "cem/manage/confirm.html"
    confirm_label = "Confirm"
    danger = True

    def confirm_text(self) -> str:
        return ""

    def can_confirm(self) -> bool:
        return True

    def act(self, obj):
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        self.object = self.get_object()
        return self.act(self.object)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            confirm_text=self.confirm_text(),
            confirm_label=self.confirm_label,
            cancel_url=self.list_url(),
            danger=self.danger,
            can_confirm=self.can_confirm(),
        )
        return ctx


class RecordDeleteView(ConfirmPage):
    verb = "delete"
    confirm_label = "Delete"

    def get_title(self):
        return f"Delete {self.record.verbose_name}: {self.object_label}"

    def confirm_text(self):
        return f"Delete {self.record.verbose_name} “{self.object_label}”? This can't be undone."

    def act(self, obj):
        try:
            services.record_delete(organization=self.organization, actor=self.actor, instance=obj)
        except (ProtectedError, RestrictedError) as error:
            messages.error(self.request, _protected_message(obj, error))
            return redirect(self.record.url("edit", obj.pk) if self.record.form_class else self.list_url())
        messages.success(self.request, f"Deleted {self.record.verbose_name} “{self.object_label}”.")
        return redirect(self.list_url())


# --- employees --------------------------------------------------------------------------------


class EmployeeCreateView(RecordCreateView):
    form_class = f.EmployeeCreateForm

    def perform_save(self, form):
        cd = form.cleaned_data
        return services.employee_create(
            organization=self.organization,
            actor=self.actor,
            data=form.record_data(),
            location=cd.get("location"),
            team=cd.get("team"),
            start_date=cd.get("start_date"),
        )

    def get_success_url(self):
        return reverse("employee_detail", args=[self.object.pk])


class EmployeeUpdateView(RecordUpdateView):
    def get_success_url(self):
        return reverse("employee_detail", args=[self.object.pk])


class EmployeeDetailView(RecordPage, DetailView):
    template_name = "cem/manage/employee_detail.html"

    def get_title(self):
        return self.object.name

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        employee = self.object
        ctx["assignments"] = self.scoped(
            EmployeeAssignment.objects.filter(employee=employee).select_related("location", "team")
        ).order_by("-start_date", "-id")
        if self.can("change"):
            ctx["move_form"] = f.EmployeeMoveForm(
                scope=self.scoped, initial={"location": employee.current_location_id}
            )
        ctx["can_audit"] = self.can("view", "auditlog")
        return ctx


class EmployeeMoveView(RecordPage, FormView):
    """Close the open assignment and open a new one (services.employee_move); history is kept."""

    verb = "change"
    form_class = f.EmployeeMoveForm
    template_name = "cem/manage/employee_move.html"

    def get_title(self):
        return f"Move {self.object.name}"

    def _load(self):
        self.object = get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def get(self, request, *args, **kwargs):
        self._load()
        return super().get(request, *args, **kwargs)

    def post(self, request, *args, **kwargs):
        self._load()
        return super().post(request, *args, **kwargs)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["scope"] = self.scoped
        return kwargs

    def get_initial(self):
        return {"location": self.object.current_location_id}

    def form_valid(self, form):
        cd = form.cleaned_data
        try:
            assignment = services.employee_move(
                organization=self.organization,
                actor=self.actor,
                employee=self.object,
                location=cd["location"],
                team=cd.get("team"),
                start_date=cd.get("start_date"),
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"{self.object.name} moved to {assignment.location.name} from {assignment.start_date:%Y-%m-%d}.",
        )
        return redirect("employee_detail", self.object.pk)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            object=self.object,
            employee=self.object,
            submit_label="Move",
            cancel_url=reverse("employee_detail", args=[self.object.pk]),
        )
        return ctx


class TeamOptionsView(ManagePage, TemplateView):
    """``<option>``s of the teams at ?location= (htmx swaps them into a team select)."""

    resource = "hierarchy"
    template_name = "cem/manage/_team_options.html"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        teams = self.scoped(f.teams_queryset())
        location = self.request.GET.get("location", "")
        if (location_id := id_of(location)) is not None:
            teams = teams.filter(location_id=location_id)
        ctx["teams"] = teams
        return ctx


# --- the organization ---------------------------------------------------------------------------


class OrganizationSettingsView(ManagePage, FormView):
    """Org admins: the organization's name, time zone and whether its admins need two-factor."""

    resource = "organization"
    verb = "change"
    section = "admin"
    nav_current = "organization_settings"
    title = "Organization"
    template_name = "cem/manage/organization.html"
    form_class = f.OrganizationSettingsForm
    FIELDS = ("name", "time_zone", "require_admin_two_factor")

    def get_initial(self):
        return {name: getattr(self.organization, name) for name in self.FIELDS}

    def form_valid(self, form):
        try:
            services.organization_update(
                organization=self.organization,
                actor=self.actor,
                data={name: form.cleaned_data[name] for name in self.FIELDS},
            )
        except ValidationError as error:
            add_service_errors(form, error)
            return self.form_invalid(form)
        messages.success(self.request, "Organization settings saved.")
        return redirect("organization_settings")


# --- users ------------------------------------------------------------------------------------


def membership_scope_label(membership: Membership) -> str:
    if membership.role == Role.REGIONAL_MANAGER and membership.region_id:
        return f"Region {membership.region.name}"
    if membership.role == Role.STORE_MANAGER and membership.location_id:
        return membership.location.name
    if membership.role == Role.EMPLOYEE and membership.employee_id:
        return membership.employee.name
    return "Organization"


class MemberListView(RecordListView):
    def get_title(self):
        return "Users"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        for row in ctx["rows"]:
            m = row["obj"]
            row["scope"] = membership_scope_label(m)
            row["is_self"] = m.user_id == self.request.user.pk
            row["deactivate_url"] = (
                reverse("member_deactivate", args=[m.pk])
                if m.is_active and not row["is_self"] and self.can("delete")
                else ""
            )
            row["reactivate_url"] = (
                reverse("member_reactivate", args=[m.pk]) if not m.is_active and self.can("change") else ""
            )
        ctx["show_actions"] = self.can("change") or self.can("delete")
        return ctx


class MemberCreateView(RecordFormMixin, RecordPage, FormView):
    verb = "add"
    form_class = f.MembershipCreateForm
    template_name = "cem/manage/member_form.html"
    submit_label = "Add member"
    title = "Add a member"

    def perform_save(self, form):
        cd = form.cleaned_data
        return services.membership_create(
            organization=self.organization,
            actor=self.actor,
            email=cd["email"],
            role=cd["role"],
            password=cd.get("password") or None,
            region=cd.get("region"),
            location=cd.get("location"),
            employee=cd.get("employee"),
        )

    def success_message(self, obj):
        return f"Added {obj.user.email} as {obj.get_role_display().lower()}."


class MemberUpdateView(RecordUpdateView):
    template_name = "cem/manage/member_form.html"

    def get_title(self):
        return f"Change role or scope: {self.object.user.email}"

    def form_valid(self, form):
        if self.object.user_id == self.request.user.pk and form.cleaned_data.get("role") != Role.ORG_ADMIN:
            form.add_error("role", "You can't take away your own admin role; ask another admin.")
            return self.form_invalid(form)
        return super().form_valid(form)

    def success_message(self, obj):
        return f"Updated {obj.user.email}."


class MemberDeactivateView(ConfirmPage):
    verb = "delete"
    confirm_label = "Deactivate"

    def get_title(self):
        return f"Deactivate {self.object.user.email}"

    def confirm_text(self):
        return (
            f"{self.object.user.email} will no longer be able to sign in to {self.organization.name}. "
            "Their history stays; you can reactivate them later."
        )

    def act(self, obj):
        if obj.user_id == self.request.user.pk:
            messages.error(self.request, "You can't deactivate yourself.")
        elif obj.is_active:
            services.record_update(
                organization=self.organization, actor=self.actor, instance=obj, data={"is_active": False}
            )
            messages.success(self.request, f"Deactivated {obj.user.email}.")
        return redirect(self.list_url())


class MemberReactivateView(RecordPage, DetailView):
    verb = "change"
    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        obj = self.get_object()
        if not obj.is_active:
            services.record_update(
                organization=self.organization, actor=self.actor, instance=obj, data={"is_active": True}
            )
            messages.success(request, f"Reactivated {obj.user.email}.")
        return redirect(self.list_url())


# --- API keys ---------------------------------------------------------------------------------


class ApiKeyListView(RecordListView):
    def get_title(self):
        return "API keys"

    def has_create_page(self):
        return True

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        for row in ctx["rows"]:
            key = row["obj"]
            revocable = key.is_active and self.can("delete")
            row["revoke_url"] = reverse("api_key_revoke", args=[key.pk]) if revocable else ""
        ctx["show_actions"] = self.can("delete")
        return ctx


class ApiKeyCreateView(RecordFormMixin, RecordPage, FormView):
    verb = "add"
    form_class = f.ApiKeyCreateForm
    submit_label = "Create key"
    title = "New API key"

    def get_form_kwargs(self):
        return FormView.get_form_kwargs(self)  # a plain form: no scope

    def form_valid(self, form):
        cd = form.cleaned_data
        key, secret = services.api_key_create(
            organization=self.organization,
            actor=self.actor,
            name=cd["name"],
            scopes=cd["scopes"],
            rate_limit_per_minute=cd.get("rate_limit_per_minute"),
        )
        # Rendered, not redirected: the secret exists only in this response and is never stored.
        response = TemplateResponse(
            self.request,
            "cem/manage/api_key_created.html",
            {
                **self.get_context_data(form=form),
                "key": key,
                "secret": secret,
                "title": "API key created",
            },
        )
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyRevokeView(ConfirmPage):
    verb = "delete"
    confirm_label = "Revoke key"

    def get_title(self):
        return f"Revoke API key {self.object.name}"

    def confirm_text(self):
        key = self.object
        if not key.is_active:
            return f"This key was already revoked on {key.revoked_at:%Y-%m-%d %H:%M}."
        return (
            f"Integrations using “{key.name}” (cem_{key.prefix}_…) stop working at once. "
            "This can't be undone; create a new key if you need one."
        )

    def can_confirm(self):
        return self.object.is_active

    def act(self, obj):
        if obj.is_active:
            services.api_key_revoke(organization=self.organization, actor=self.actor, api_key=obj)
            messages.success(self.request, f"Revoked API key “{obj.name}”.")
        else:
            messages.info(self.request, f"API key “{obj.name}” was already revoked.")
        return redirect(self.list_url())


# --- audit log --------------------------------------------------------------------------------


class AuditLogListView(RecordListView):
    def get_title(self):
        return "Audit log"

    def object_id(self) -> str:
        return self.request.GET.get("object_id", "").strip()[:64]

    def page_queryset(self):
        qs = super().page_queryset()
        return qs.filter(object_id=self.object_id()) if self.object_id() else qs

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        for row in ctx["rows"]:
            changes = row["obj"].changes
            pretty = json.dumps(changes, indent=1, sort_keys=True, default=str) if changes else ""
            row["changes"] = pretty[:4000]
        ctx.update(object_id=self.object_id(), show_object_id=True)
        return ctx
