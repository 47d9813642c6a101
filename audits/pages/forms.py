"""Audit form builder pages: list, settings, structure editor (sections and items), versions.

Built like the survey builder (feedback/pages/surveys.py). Every write goes through
audits.form_services, so the browser gets the API's validation and versioning: publishing the
structure of a form some audit already uses creates version N+1 and those audits keep theirs.
A service error such as ``items[3].standard`` lands on the row and field it names.

The editor holds two plain formsets (sections, items). Adding, removing and moving rows post the
form back (htmx swaps just the editor; without it the page reloads); nothing is stored until
"Publish".
"""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.views.generic import DetailView, FormView, ListView

from audits import form_services as svc
from audits.form_builder_forms import (
    EDITOR_LOCALES,
    AuditFormSettingsForm,
    ItemForm,
    ItemFormSet,
    SectionForm,
    SectionFormSet,
    item_initial,
    section_initial,
    standard_options,
)
from audits.models import Audit, AuditForm, AuditFormVersion, FormItem, FormSection, Program, ScenarioLeg
from cem.pages import TenantPageMixin
from cem.permissions import role_can
from cem.views_manage import add_service_errors

STATUS_LABELS = {
    "draft": "Draft — no items yet",
    "published": "Published",
    "in_use": "In use",
}


def _status(version_number, in_use: bool) -> str:
    """Derived, not stored: the newest version is the live one (jobs and evaluations take it)."""
    if version_number is None:
        return "draft"
    return "in_use" if in_use else "published"


class FormBuilderPage(TenantPageMixin):
    model = AuditForm

    def can(self, action: str) -> bool:
        return role_can(self.request.membership.role, action)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx["can_add"] = self.can("audit_forms.add")
        ctx["can_change"] = self.can("audit_forms.change")
        return ctx


def _with_current_version(queryset):
    latest = AuditFormVersion.objects.filter(form=OuterRef("pk")).order_by("-number")
    items = (
        FormItem.objects.filter(version_id=OuterRef("current_version_id"))
        .order_by()
        .values("version_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return queryset.annotate(
        current_version_id=Subquery(latest.values("pk")[:1]),
        current_version=Subquery(latest.values("number")[:1]),
        item_count=Subquery(items),
        in_use=Exists(Audit.objects.filter(version_id=OuterRef("current_version_id"))),
    )


class FormListPage(FormBuilderPage, ListView):
    template_name = "audits/forms/list.html"
    required_action = "audit_forms.view"
    paginate_by = 50

    def page_queryset(self):
        return _with_current_version(AuditForm.objects.only("id", "name", "kind").order_by("name", "id"))

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        for form in ctx["object_list"]:
            form.status = _status(form.current_version, form.in_use)
            form.status_label = STATUS_LABELS[form.status]
        return ctx


class FormDetailPage(FormBuilderPage, DetailView):
    template_name = "audits/forms/detail.html"
    required_action = "audit_forms.view"

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        form = self.object
        versions = list(
            AuditFormVersion.objects.filter(form=form)
            .prefetch_related(
                Prefetch("sections", queryset=FormSection.objects.order_by("position", "id")),
                Prefetch(
                    "items", queryset=FormItem.objects.select_related("standard").order_by("position", "id")
                ),
            )
            .order_by("-number")
        )
        # Counted in the viewer's scope: a store manager sees how many of *their* audits use it.
        counts = dict(
            self.scoped(Audit.objects.filter(version__form=form))
            .order_by()
            .values_list("version_id")
            .annotate(n=Count("id"))
        )
        for version in versions:
            version.audit_count = counts.get(version.pk, 0)
            version.grouped = _grouped(version)
        current = versions[0] if versions else None
        in_use = current is not None and svc.version_in_use(current)
        legs = _legs_by_section(form)
        if current is not None:
            for section, _items in current.grouped:
                section.legs = legs.get(section.key, [])
        placed = {section.key for section, _ in current.grouped} if current else set()
        status = _status(current.number if current else None, in_use)
        ctx.update(
            title=form.name,
            versions=versions,
            current=current,
            status=status,
            status_label=STATUS_LABELS[status],
            programs=list(
                Program.objects.filter(form=form).order_by("name", "id").only("id", "name", "active")
            ),
            # Legs naming a section the current version lacks are scored nowhere: say so.
            unplaced_legs=[leg for key, group in legs.items() if key not in placed for leg in group],
        )
        return ctx


def _legs_by_section(form: AuditForm) -> dict[str, list[ScenarioLeg]]:
    """The cross-channel scenario legs of the form's programs, by the section key they score in."""
    legs: dict[str, list[ScenarioLeg]] = {}
    for leg in (
        ScenarioLeg.objects.filter(scenario__program__form=form)
        .select_related("scenario__program")
        .order_by("scenario__title", "position", "id")
    ):
        legs.setdefault(leg.section_key, []).append(leg)
    return legs


def _grouped(version) -> list[tuple[FormSection, list[FormItem]]]:
    """The version's sections in order, each with its items (prefetched; no queries)."""
    by_section: dict[int, list[FormItem]] = {}
    for item in version.items.all():
        by_section.setdefault(item.section_id, []).append(item)
    return [(section, by_section.get(section.pk, [])) for section in version.sections.all()]


def _name_clash_on_name(form, error: ValidationError) -> ValidationError | None:
    """The model checks the per-organization unique name as (organization, name), a non-field
    error; the page shows it on the name field. Returns what is left to attach, if anything."""
    if not hasattr(error, "error_dict"):
        return error
    errors = dict(error.error_dict)
    general = errors.pop(NON_FIELD_ERRORS, [])
    clash = [e for e in general if e.code == "unique_together"]
    if clash:
        form.add_error("name", "An audit form with this name already exists.")
    rest = [e for e in general if e not in clash]
    if rest:
        errors[NON_FIELD_ERRORS] = rest
    return ValidationError(errors) if errors else None


class FormCreatePage(FormBuilderPage, FormView):
    template_name = "audits/forms/settings.html"
    required_action = "audit_forms.add"
    form_class = AuditFormSettingsForm
    extra_context = {"title": "New audit form", "submit_label": "Create and add sections"}

    def form_valid(self, form):
        try:
            audit_form = svc.form_create(
                organization=self.organization, actor=self.actor, data=form.settings_data()
            )
        except ValidationError as error:
            rest = _name_clash_on_name(form, error)
            if rest is not None:
                add_service_errors(form, rest)
            return self.render_to_response(self.get_context_data(form=form), status=400)
        messages.success(self.request, f"Created “{audit_form.name}”. Now add its sections and items.")
        return HttpResponseRedirect(reverse("audit_form_structure", args=[audit_form.pk]))

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "cancel_url": reverse("audit_forms")}


class FormEditPage(FormBuilderPage, FormView):
    template_name = "audits/forms/settings.html"
    required_action = "audit_forms.change"
    form_class = AuditFormSettingsForm

    @cached_property
    def object(self) -> AuditForm:
        # Looked up in the scoped queryset: another tenant's id is a 404.
        return get_object_or_404(self.get_queryset(), pk=self.kwargs["pk"])

    def get_initial(self):
        return AuditFormSettingsForm.initial_for(self.object)

    def get_form_kwargs(self):
        kind_locked = Program.objects.filter(form=self.object).exists()
        return {**super().get_form_kwargs(), "kind_locked": kind_locked}

    def form_valid(self, form):
        try:
            svc.form_update(
                organization=self.organization, actor=self.actor, form=self.object, data=form.settings_data()
            )
        except ValidationError as error:
            rest = _name_clash_on_name(form, error)
            if rest is not None:
                add_service_errors(form, rest)
            return self.form_invalid(form)
        messages.success(self.request, "Saved the form settings.")
        return HttpResponseRedirect(reverse("audit_form_detail", args=[self.object.pk]))

    def form_invalid(self, form):
        return self.render_to_response(self.get_context_data(form=form), status=400)

    def get_context_data(self, **kwargs):
        ctx = super().get_context_data(**kwargs)
        ctx.update(
            object=self.object,
            title=f"Edit form: {self.object.name}",
            submit_label="Save",
            cancel_url=reverse("audit_form_detail", args=[self.object.pk]),
        )
        return ctx


_BOOLEAN_ITEM_FIELDS = ("required", "critical", "comment_required_on_fail")
_OP = re.compile(r"^(add|remove|up|down)-(section|item)(?:-(\d{1,4}))?$")


def _raw_rows(data, prefix: str, names: list[str], booleans=()) -> list[dict]:
    """The rows of a posted formset as plain values, to re-render after add/remove/move."""
    try:
        total = min(int(data.get(f"{prefix}-TOTAL_FORMS", 0)), 500)
    except ValueError:
        total = 0
    rows = []
    for i in range(total):
        row = {name: data.get(f"{prefix}-{i}-{name}", "") for name in names if name not in booleans}
        for name in booleans:
            row[name] = data.get(f"{prefix}-{i}-{name}") in ("on", "true", "1", "True")
        rows.append(row)
    return rows


def _grouped_rows(sections: list[dict], items: list[dict]) -> list[dict]:
    """Items in their sections' order (stable inside a section); unknown sections last."""
    order = {}
    for i, s in enumerate(sections):
        order.setdefault(s.get("key", ""), i)
    return sorted(items, key=lambda it: order.get(it.get("section", ""), len(sections)))


def _free_key(stem: str, rows: list[dict]) -> str:
    taken = {r.get("key") for r in rows}
    n = len(rows) + 1
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


NEW_ITEM = {
    "type": "yes_no",
    "weight": "1",
    "required": True,
    "critical": False,
    "comment_required_on_fail": True,
    "pass_fraction": "1",
    "scale_min": 1,
    "scale_max": 5,
}


class FormStructurePage(FormBuilderPage, DetailView):
    """Sections and items of the form as two formsets; publishing goes through form_structure_save."""

    template_name = "audits/forms/structure.html"
    required_action = "audit_forms.change"

    def formsets(self, *, data=None, sections=None, items=None):
        locales = list(EDITOR_LOCALES)
        if data is not None:
            keys = [r["key"] for r in _raw_rows(data, "s", ["key"])]
        else:
            keys = [r.get("key", "") for r in sections]
        # Every posted row is a row: a blank one is an error, not silently skipped.
        section_fs = SectionFormSet(
            data=data,
            initial=sections,
            prefix="s",
            form_kwargs={"locales": locales, "empty_permitted": False},
        )
        item_fs = ItemFormSet(
            data=data,
            initial=items,
            prefix="i",
            form_kwargs={
                "locales": locales,
                "section_keys": keys,
                "standard_choices": standard_options(),
                "empty_permitted": False,
            },
        )
        return section_fs, item_fs

    @cached_property
    def current(self) -> AuditFormVersion | None:
        return AuditFormVersion.objects.filter(form=self.object).order_by("-number").first()

    def current_initial(self) -> tuple[list[dict], list[dict]]:
        if self.current is None:
            return [{"key": "section-1"}], []
        locales = list(EDITOR_LOCALES)
        sections = list(FormSection.objects.filter(version=self.current).order_by("position", "id"))
        keys = {s.pk: s.key for s in sections}
        items = FormItem.objects.filter(version=self.current).order_by("position", "id")
        section_rows = [section_initial(s, locales) for s in sections]
        item_rows = [item_initial(i, keys[i.section_id], locales) for i in items]
        return section_rows, _grouped_rows(section_rows, item_rows)

    def get(self, request, *args, **kwargs):
        self.object = self.get_object()
        sections, items = self.current_initial()
        return self.render_editor(*self.formsets(sections=sections, items=items))

    def post(self, request, *args, **kwargs):
        self.object = audit_form = self.get_object()
        op = request.POST.get("op", "publish")
        if op != "publish":
            return self.render_editor(*self.rearranged(op))
        section_fs, item_fs = self.formsets(data=request.POST)
        sections_ok = section_fs.is_valid()
        if not (item_fs.is_valid() and sections_ok):
            return self.render_editor(section_fs, item_fs, status=400)
        sections = [form.section(i) for i, form in enumerate(section_fs.forms)]
        items = [form.item(i) for i, form in enumerate(item_fs.forms)]
        try:
            version, created = svc.form_structure_save(
                organization=self.organization,
                actor=self.actor,
                form=audit_form,
                sections=sections,
                items=items,
            )
        except ValidationError as error:
            self.attach_errors(section_fs, item_fs, error)
            return self.render_editor(section_fs, item_fs, status=400)
        if created and version.number > 1:
            note = (
                f"Published version {version.number}. Audits made with version {version.number - 1} keep it."
            )
        elif created:
            note = "Published version 1."
        else:
            note = f"Saved version {version.number} (no audit uses it yet, so it was updated in place)."
        messages.success(request, note)
        return HttpResponseRedirect(reverse("audit_form_detail", args=[audit_form.pk]))

    def rearranged(self, op: str):
        """add / remove / up / down of a section or an item: the same rows, changed, not yet stored."""
        locales = list(EDITOR_LOCALES)
        section_names = list(SectionForm(locales=locales).fields)
        item_names = list(ItemForm(locales=locales, standard_choices=[]).fields)
        sections = _raw_rows(self.request.POST, "s", section_names)
        items = _raw_rows(self.request.POST, "i", item_names, _BOOLEAN_ITEM_FIELDS)
        match = _OP.match(op)
        if match:
            verb, target, index = match[1], match[2], match[3]
            i = int(index) if index is not None else -1
            if target == "section":
                sections = self.rearrange_sections(verb, i, sections, items)
                if verb == "remove" and i >= 0:
                    # A removed section takes its items with it (nothing is stored before Publish).
                    keys = {s.get("key") for s in sections}
                    items = [it for it in items if it.get("section") in keys]
            else:
                items = self.rearrange_items(verb, i, sections, items)
        items = _grouped_rows(sections, items)
        return self.formsets(sections=sections, items=items)

    @staticmethod
    def rearrange_sections(verb, i, sections, items):
        if verb == "add":
            sections.append({"key": _free_key("section", sections)})
        elif verb == "remove" and 0 <= i < len(sections):
            sections.pop(i)
        elif verb == "up" and 0 < i < len(sections):
            sections[i - 1], sections[i] = sections[i], sections[i - 1]
        elif verb == "down" and 0 <= i < len(sections) - 1:
            sections[i + 1], sections[i] = sections[i], sections[i + 1]
        return sections

    @staticmethod
    def rearrange_items(verb, i, sections, items):
        """``i`` is the posted row index of the item (or, for add, of the section it goes in)."""
        if verb == "add":
            # Without an index it goes in the last section.
            at = i if 0 <= i < len(sections) else len(sections) - 1
            section = sections[at].get("key", "") if at >= 0 else ""
            return [*items, {**NEW_ITEM, "key": _free_key("item", items), "section": section}]
        if not 0 <= i < len(items):
            return items
        if verb == "remove":
            return items[:i] + items[i + 1 :]
        # Items move inside their section as shown (grouped); another section is the section select.
        target = items[i]
        items = _grouped_rows(sections, items)
        at = next(n for n, row in enumerate(items) if row is target)
        j = at - 1 if verb == "up" else at + 1
        if 0 <= j < len(items) and items[j].get("section") == target.get("section"):
            items[at], items[j] = items[j], items[at]
        return items

    def attach_errors(self, section_fs, item_fs, error: ValidationError) -> None:
        if not hasattr(error, "error_dict"):
            item_fs._non_form_errors = item_fs.error_class(error.messages)
            return
        general = {"sections": [], "items": []}
        for field, errors in error.message_dict.items():
            match = re.match(r"^(sections|items)\[(\d+)\]\.?(.*)$", field)
            if match:
                formset = section_fs if match[1] == "sections" else item_fs
                index = int(match[2])
                if index < len(formset.forms):
                    formset.forms[index].add_service_error(match[3], errors)
                    continue
            target = "sections" if field.startswith("sections") else "items"
            general[target].extend(
                errors if field in ("sections", "items") else [f"{field}: {e}" for e in errors]
            )
        section_fs._non_form_errors = section_fs.error_class(general["sections"])
        item_fs._non_form_errors = item_fs.error_class(general["items"])

    def render_editor(self, section_fs, item_fs, status: int = 200):
        ctx = self.get_context_data(object=self.object)
        current = self.current
        in_use = current is not None and svc.version_in_use(current)
        ctx.update(
            title=f"Sections and items: {self.object.name}",
            section_formset=section_fs,
            item_formset=item_fs,
            groups=_editor_groups(section_fs, item_fs, _legs_by_section(self.object)),
            current=current,
            in_use=in_use,
            next_number=(current.number + 1) if current else 1,
        )
        return self.render_to_response(ctx, status=status)


def _editor_groups(section_fs, item_fs, legs: dict[str, list[ScenarioLeg]]) -> dict:
    """Item rows under the section row whose key they name; rows naming no section at the end.

    Each section row also carries the scenario legs scored in it, so renaming or removing a
    section a leg names is done knowingly; legs whose section is gone are listed on their own.
    """
    keys = [form["key"].value() or "" for form in section_fs.forms]
    by_key: dict[str, list] = {}
    orphans = []
    for index, form in enumerate(item_fs.forms):
        section = form["section"].value() or ""
        if section in keys:
            by_key.setdefault(section, []).append((index, form))
        else:
            orphans.append((index, form))
    sections = []
    seen = set()
    for index, form in enumerate(section_fs.forms):
        key = keys[index]
        # A duplicated key shows its items once, under the first section with it.
        rows = by_key.get(key, []) if key not in seen else []
        seen.add(key)
        sections.append({"index": index, "form": form, "items": rows, "legs": legs.get(key, [])})
    unplaced = [leg for key, group in legs.items() if key not in seen for leg in group]
    return {"sections": sections, "orphans": orphans, "unplaced_legs": unplaced}


urlpatterns = [
    path("", FormListPage.as_view(), name="audit_forms"),
    path("new/", FormCreatePage.as_view(), name="audit_form_create"),
    path("<int:pk>/", FormDetailPage.as_view(), name="audit_form_detail"),
    path("<int:pk>/edit/", FormEditPage.as_view(), name="audit_form_edit"),
    path("<int:pk>/structure/", FormStructurePage.as_view(), name="audit_form_structure"),
]
