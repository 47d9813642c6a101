"""Forms of the audit form builder pages. They validate shapes; audits.form_services validates meaning.

Choice querysets are built in ``__init__`` (request time, inside the tenant), never at class level.
A row becomes the dict ``PUT /api/v1/audit-forms/{id}/structure/`` takes, so the browser and the
API share one validator (form_services.clean_structure) and one versioning rule.
"""

from __future__ import annotations

from decimal import Decimal

from django import forms

from audits.models import AuditForm, FormItem, FormSection, ProgramKind
from audits.scoring import ItemType
from cem.models import Channel, Standard

# Every editor offers at least these languages for titles and item texts.
EDITOR_LOCALES = ("en", "es")
DEFAULT_LOCALE = "en"


class AuditFormSettingsForm(forms.Form):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=ProgramKind.choices, initial=ProgramKind.MYSTERY_SHOP)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    critical_policy = forms.ChoiceField(
        choices=AuditForm.CriticalPolicy.choices,
        initial=AuditForm.CriticalPolicy.ZERO,
        widget=forms.RadioSelect,
        label="When a critical item fails",
    )
    critical_cap = forms.DecimalField(
        required=False,
        initial=0,
        label="Score cap (%)",
        help_text="With the cap policy: the most an audit with a failed critical item can score (0–100).",
    )

    def __init__(self, *args, kind_locked: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if kind_locked:
            # Programs check that their form is of their kind; changing it would break them.
            self.fields["kind"].disabled = True
            self.fields["kind"].help_text = "Programs use this form, so its kind stays."

    @classmethod
    def initial_for(cls, form: AuditForm) -> dict:
        return {
            "name": form.name,
            "kind": form.kind,
            "description": form.description,
            "critical_policy": form.critical_policy,
            "critical_cap": form.critical_cap,
        }

    def settings_data(self) -> dict:
        data = dict(self.cleaned_data)
        if data.get("critical_cap") is None:
            data["critical_cap"] = Decimal(0)
        return data


def _localized(form: forms.Form, stem: str, label: str, locales, *, textarea: bool = False) -> None:
    for locale in locales:
        widget = forms.Textarea(attrs={"rows": 2}) if textarea else None
        form.fields[f"{stem}_{locale}"] = forms.CharField(
            required=False, label=f"{label} ({locale})", max_length=1000, widget=widget
        )


class SectionForm(forms.Form):
    """One section row; its title is named title_<locale>."""

    key = forms.SlugField(max_length=60, help_text="Stays the same across versions; scenario legs name it.")
    channel_kind = forms.ChoiceField(
        required=False,
        choices=[("", "— any"), *Channel.Kind.choices],
        label="Scenario leg channel",
        help_text="For a cross-channel scenario: the leg (call, chat, visit…) scored in this section.",
    )

    def __init__(self, *args, locales=EDITOR_LOCALES, **kwargs):
        super().__init__(*args, **kwargs)
        self.locales = list(locales)
        _localized(self, "title", "Title", self.locales)
        self.order_fields(["key", *[f"title_{loc}" for loc in self.locales], "channel_kind"])

    def title_fields(self):
        return [self[f"title_{loc}"] for loc in self.locales]

    def section(self, position: int) -> dict:
        data = self.cleaned_data
        return {
            "key": data["key"],
            "title": {loc: data.get(f"title_{loc}", "") for loc in self.locales},
            "channel_kind": data.get("channel_kind") or "",
            "position": position,
        }

    ERROR_FIELDS = {"key": "key", "channel_kind": "channel_kind", "position": None}

    def add_service_error(self, field: str, messages: list[str]) -> None:
        name = field.split(".")[0].split("[")[0]
        target = f"title_{DEFAULT_LOCALE}" if name == "title" else self.ERROR_FIELDS.get(name)
        prefix = "" if name == field else f"{field}: "
        self.add_error(target, [f"{prefix}{m}" for m in messages])


class ItemForm(forms.Form):
    """One item row. Texts are text_<locale>; options are one per line: ``value | points | labels``."""

    key = forms.SlugField(max_length=60, help_text="Stays the same across versions.")
    section = forms.ChoiceField(help_text="The key of its section.")
    type = forms.ChoiceField(choices=FormItem.Type.choices)
    weight = forms.DecimalField(
        required=False, initial=1, help_text="Scored items: its share of the score (> 0)."
    )
    standard = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        label="Linked standard",
        help_text="Required for scored items.",
    )
    required = forms.BooleanField(required=False, initial=True)
    critical = forms.BooleanField(
        required=False, label="Critical", help_text="Failing it fails the audit (see the form's policy)."
    )
    comment_required_on_fail = forms.BooleanField(
        required=False, initial=True, label="Comment required when it fails"
    )
    pass_fraction = forms.DecimalField(
        required=False,
        initial=1,
        label="Pass mark (0–1)",
        help_text="The share of its points it must earn not to fail; 1 means full points.",
    )
    scale_min = forms.IntegerField(required=False, initial=1, help_text="Scale only.")
    scale_max = forms.IntegerField(required=False, initial=5, help_text="Scale only.")
    target_min = forms.DecimalField(required=False, help_text="Number / time only.")
    target_max = forms.DecimalField(
        required=False, help_text="Number / time only, e.g. 30 for “greeted within 30 s”."
    )
    plausible_max = forms.DecimalField(
        required=False, label="Plausible maximum", help_text="Number / time only: larger answers are refused."
    )
    choices = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Options",
        help_text="Choice only: one per line, value | points (0–1) | English label | Spanish label.",
    )

    def __init__(self, *args, locales=EDITOR_LOCALES, section_keys=(), standard_choices=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.locales = list(locales)
        _localized(self, "text", "Text", self.locales, textarea=True)
        self.order_fields(["key", "section", "type", *[f"text_{loc}" for loc in self.locales]])
        if standard_choices is None:
            standard_choices = standard_options()
        self.fields["standard"].choices = [("", "---------"), *standard_choices]
        self.fields["section"].choices = [(k, k) for k in dict.fromkeys(section_keys) if k]

    def text_fields(self):
        return [self[f"text_{loc}"] for loc in self.locales]

    def item(self, position: int) -> dict:
        """The row as one item of the service's structure; empty optional values are left out."""
        data = self.cleaned_data
        out = {
            "key": data["key"],
            "section": data["section"],
            "type": data["type"],
            "text": {loc: data.get(f"text_{loc}", "") for loc in self.locales},
            "critical": bool(data.get("critical")),
            "required": bool(data.get("required")),
            "comment_required_on_fail": bool(data.get("comment_required_on_fail")),
            "standard": data.get("standard"),
            "position": position,
        }
        for name in ("weight", "pass_fraction", "target_min", "target_max", "plausible_max"):
            if data.get(name) is not None:
                out[name] = str(data[name])
        for name in ("scale_min", "scale_max"):
            if data.get(name) is not None:
                out[name] = data[name]
        if (data.get("choices") or "").strip():
            out["choices"] = parse_choices(data["choices"], self.locales)
        return out

    # Every row field the service may name is a field of this form under the same name.
    ERROR_FIELDS = frozenset(
        [
            "key",
            "section",
            "type",
            "weight",
            "standard",
            "required",
            "critical",
            "comment_required_on_fail",
            "pass_fraction",
            "scale_min",
            "scale_max",
            "target_min",
            "target_max",
            "plausible_max",
            "choices",
        ]
    )

    def add_service_error(self, field: str, messages: list[str]) -> None:
        name = field.split(".")[0].split("[")[0]
        target = f"text_{DEFAULT_LOCALE}" if name == "text" else (name if name in self.ERROR_FIELDS else None)
        prefix = "" if name == field else f"{field}: "
        self.add_error(target, [f"{prefix}{m}" for m in messages])


def standard_options() -> list[tuple[int, str]]:
    """The tenant's standards as (id, label), read once per page and shared by every item row.

    Inactive ones stay selectable: an item linked to one must survive the next publish.
    """
    rows = Standard.objects.order_by("-active", "code").values_list("pk", "code", "title", "active")
    return [(pk, f"{code} — {title}" + ("" if active else " (inactive)")) for pk, code, title, active in rows]


def parse_choices(text: str, locales: list[str]) -> list[dict]:
    """``value | points | English | Español`` per line → [{"value", "points", "label"}].

    Points are passed on as typed; the service says which line's points are wrong.
    """
    out = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        value, points, labels = parts[0], (parts[1] if len(parts) > 1 else ""), parts[2:]
        label = {loc: text for loc, text in zip(locales, labels, strict=False) if text}
        out.append({"value": value, "points": points, "label": label})
    return out


def format_choices(choices: list[dict], locales: list[str]) -> str:
    lines = []
    for c in choices or []:
        label = c.get("label") or {}
        parts = [str(c.get("value", "")), str(c.get("points", "")), *[label.get(loc, "") for loc in locales]]
        lines.append(" | ".join(parts).rstrip(" |"))
    return "\n".join(lines)


def _plain(value: Decimal | None) -> str | None:
    """2.50 → "2.5", 10.00 → "10" (normalize alone would give 1E+1)."""
    return None if value is None else format(value.normalize(), "f")


def section_initial(section: FormSection, locales: list[str]) -> dict:
    return {
        "key": section.key,
        "channel_kind": section.channel_kind,
        **{f"title_{loc}": (section.title or {}).get(loc, "") for loc in locales},
    }


def item_initial(item: FormItem, section_key: str, locales: list[str]) -> dict:
    return {
        "key": item.key,
        "section": section_key,
        "type": item.type,
        **{f"text_{loc}": (item.text or {}).get(loc, "") for loc in locales},
        "weight": _plain(item.weight) if item.type in ItemType.SCORED else None,
        "standard": item.standard_id,
        "required": item.required,
        "critical": item.critical,
        "comment_required_on_fail": item.comment_required_on_fail,
        "pass_fraction": _plain(item.pass_fraction),
        "scale_min": item.scale_min,
        "scale_max": item.scale_max,
        "target_min": _plain(item.target_min),
        "target_max": _plain(item.target_max),
        "plausible_max": _plain(item.plausible_max),
        "choices": format_choices(item.choices, locales),
    }


SectionFormSet = forms.formset_factory(SectionForm, extra=0, max_num=50, absolute_max=50)
ItemFormSet = forms.formset_factory(ItemForm, extra=0, max_num=500, absolute_max=500)
