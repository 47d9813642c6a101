"""Forms of the survey builder pages. They validate shapes; feedback.survey_services validates meaning.

Choice querysets are built in ``__init__`` (request time, inside the tenant), never at class level.
"""

from __future__ import annotations

from django import forms

from cem.forms import ScopedFormMixin
from cem.models import Channel, Standard, Touchpoint
from feedback.models import DeliveryChannel, Question, QuestionType
from feedback.survey_services import SHOW_IF_OPS

# Every question editor offers at least these languages, whatever the survey's list says.
EDITOR_LOCALES = ("en", "es")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").replace(",", "\n").splitlines() if line.strip()]


class SurveySettingsForm(ScopedFormMixin, forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    default_locale = forms.CharField(max_length=16, initial="en", help_text="e.g. en")
    locales = forms.CharField(
        required=False, initial="en, es", help_text="Languages offered, comma-separated (e.g. en, es)."
    )
    delivery_channel = forms.ChoiceField(choices=DeliveryChannel.choices, initial=DeliveryChannel.EMAIL)
    send_delay_minutes = forms.IntegerField(min_value=0, initial=60, label="Send delay (minutes)")
    reminder_after_days = forms.IntegerField(
        min_value=0, max_value=365, required=False, initial=3, help_text="Empty: no reminder."
    )
    expires_after_days = forms.IntegerField(min_value=1, max_value=365, initial=7)
    allowed_origins = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Web origins allowed to embed the widget, one per line (https://shop.example.com).",
    )
    channels = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Survey after any interaction on these channels.",
    )
    touchpoints = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Survey after interactions at these touchpoints.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channels"].queryset = Channel.objects.order_by("name")
        self.fields["touchpoints"].queryset = Touchpoint.objects.select_related("channel").order_by(
            "channel__name", "journey_order", "name"
        )

    @classmethod
    def initial_for(cls, survey) -> dict:
        triggers = list(survey.triggers.all())
        return {
            "name": survey.name,
            "description": survey.description,
            "default_locale": survey.default_locale,
            "locales": ", ".join(survey.locales or []),
            "delivery_channel": survey.delivery_channel,
            "send_delay_minutes": survey.send_delay_minutes,
            "reminder_after_days": survey.reminder_after_days,
            "expires_after_days": survey.expires_after_days,
            "allowed_origins": "\n".join(survey.allowed_origins or []),
            "channels": [t.channel_id for t in triggers if t.channel_id],
            "touchpoints": [t.touchpoint_id for t in triggers if t.touchpoint_id],
        }

    def settings_data(self) -> dict:
        data = {
            name: self.cleaned_data[name] for name in self.fields if name not in ("channels", "touchpoints")
        }
        data["locales"] = _lines(data["locales"])
        data["allowed_origins"] = _lines(data["allowed_origins"])
        return data


class QuestionForm(forms.Form):
    """One question row. Text fields are named text_<locale>; choices are one option per line."""

    key = forms.SlugField(max_length=60, help_text="Stays the same across versions.")
    type = forms.ChoiceField(choices=QuestionType.choices)
    required = forms.BooleanField(required=False)
    page = forms.IntegerField(min_value=1, max_value=100, initial=1, required=False)
    choices = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Single/multi: one option per line: value | English label | Spanish label.",
    )
    scale_min = forms.IntegerField(required=False, help_text="Rating only.")
    scale_max = forms.IntegerField(required=False, help_text="Rating only.")
    show_if_question = forms.ChoiceField(required=False, label="Show only if question")
    show_if_op = forms.ChoiceField(
        required=False,
        label="is",
        choices=[("", "—"), *[(op, op) for op in SHOW_IF_OPS]],
    )
    show_if_value = forms.CharField(
        required=False, label="value", help_text="For 'in': values separated by ;"
    )
    standard = forms.ModelChoiceField(queryset=None, required=False, label="Linked standard")

    def __init__(self, *args, locales=EDITOR_LOCALES, keys=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.locales = list(locales)
        for locale in self.locales:
            self.fields[f"text_{locale}"] = forms.CharField(
                required=False, label=f"Text ({locale})", max_length=1000
            )
        order = [f"text_{loc}" for loc in self.locales]
        self.order_fields(["key", "type", "required", "page", *order])
        self.fields["standard"].queryset = Standard.objects.filter(active=True).order_by("code")
        self.fields["show_if_question"].choices = [("", "—"), *[(k, k) for k in keys if k]]

    def text_fields(self):
        return [self[f"text_{loc}"] for loc in self.locales]

    def question(self) -> dict:
        """The row as the service's question dict."""
        data = self.cleaned_data
        out = {
            "key": data["key"],
            "type": data["type"],
            "required": bool(data.get("required")),
            "page": data.get("page") or 1,
            "text": {loc: data.get(f"text_{loc}", "") for loc in self.locales},
            "standard": data["standard"].pk if data.get("standard") else None,
        }
        if data["type"] in (QuestionType.SINGLE, QuestionType.MULTI):
            out["choices"] = parse_choices(data.get("choices", ""), self.locales)
        if data["type"] == QuestionType.RATING:
            out["scale_min"], out["scale_max"] = data.get("scale_min"), data.get("scale_max")
        if data.get("show_if_question") or data.get("show_if_op"):
            value = data.get("show_if_value", "")
            op = data.get("show_if_op") or "eq"
            out["show_if"] = {
                "question": data.get("show_if_question"),
                "op": op,
                "value": [v.strip() for v in value.split(";") if v.strip()] if op == "in" else value.strip(),
            }
        return out

    # Where a service error about ``questions[i].<field>`` is shown in this row.
    ERROR_FIELDS = {
        "key": "key",
        "type": "type",
        "required": "required",
        "page": "page",
        "choices": "choices",
        "scale_min": "scale_min",
        "scale_max": "scale_max",
        "standard": "standard",
        "show_if": "show_if_question",
    }

    def add_service_error(self, field: str, messages: list[str], default_locale: str) -> None:
        name = field.split(".")[0].split("[")[0]
        if name in ("text", "help_text"):
            target = f"text_{default_locale}" if f"text_{default_locale}" in self.fields else None
        else:
            target = self.ERROR_FIELDS.get(name)
        prefix = "" if name == field else f"{field}: "
        self.add_error(target, [f"{prefix}{m}" for m in messages])


def parse_choices(text: str, locales: list[str]) -> list[dict]:
    """``value | English | Español`` per line → [{"value", "label": {locale: text}}]."""
    out = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        value, labels = parts[0], parts[1:]
        label = {loc: text for loc, text in zip(locales, labels, strict=False) if text}
        if not label and value:
            label = {locales[0]: value}
        out.append({"value": value, "label": label})
    return out


def format_choices(choices: list[dict], locales: list[str]) -> str:
    lines = []
    for c in choices or []:
        label = c.get("label") or {}
        lines.append(
            " | ".join([str(c.get("value", "")), *[label.get(loc, "") for loc in locales]]).rstrip(" |")
        )
    return "\n".join(lines)


def question_initial(question: Question, locales: list[str]) -> dict:
    show_if = question.show_if or {}
    value = show_if.get("value", "")
    return {
        "key": question.key,
        "type": question.type,
        "required": question.required,
        "page": question.page,
        **{f"text_{loc}": (question.text or {}).get(loc, "") for loc in locales},
        "choices": format_choices(question.choices, locales),
        "scale_min": question.scale_min,
        "scale_max": question.scale_max,
        "show_if_question": show_if.get("question", ""),
        "show_if_op": show_if.get("op", "") if show_if else "",
        "show_if_value": ";".join(map(str, value))
        if isinstance(value, list)
        else ("" if value is None else value),
        "standard": question.standard_id,
    }


QuestionFormSet = forms.formset_factory(QuestionForm, extra=0, max_num=200, absolute_max=200)
