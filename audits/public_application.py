"""The public shopper application form at ``/shop/<org slug>/apply/`` (no login).

The organization comes from the slug, looked up in a narrow ``unscoped()`` block; everything
after runs inside that tenant only. CSRF stays on (it is a same-site HTML form), bodies are
capped, and submissions are limited per client IP (HMAC'd, never stored raw).
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.views import View

from audits.models import Shopper
from audits.workforce import shopper_apply
from cem.models import Organization
from cem.principals import Actor
from cem.tenancy import tenant_context, unscoped
from cem.throttle import content_length, ip_hash, window_limited

MAX_BODY = 32 * 1024
RATE_WINDOW = 3600


def ip_limit() -> int:
    return getattr(settings, "AUDITS_APPLY_IP_LIMIT_PER_HOUR", 10)


def _rate_limited(org_id: int, hashed_ip: str) -> int | None:
    """Count one submission; the seconds to wait when over the limit, else None."""
    return window_limited(f"audits:apply:{org_id}:{hashed_ip}", limit=ip_limit(), window=RATE_WINDOW)


def _split(value: str, *, limit: int, each: int, label: str) -> list[str]:
    parts = [p.strip() for p in (value or "").split(",") if p.strip()]
    if len(parts) > limit:
        raise ValidationError(f"At most {limit} {label}.")
    if any(len(p) > each for p in parts):
        raise ValidationError(f"Each entry may have at most {each} characters.")
    return parts


class ApplicationForm(forms.Form):
    name = forms.CharField(max_length=160)
    email = forms.EmailField(max_length=254)
    phone = forms.CharField(max_length=32, required=False)
    home_area = forms.CharField(max_length=200, required=False, label="Home area (town or postcode)")
    latitude = forms.DecimalField(max_digits=9, decimal_places=6, min_value=-90, max_value=90, required=False)
    longitude = forms.DecimalField(
        max_digits=9, decimal_places=6, min_value=-180, max_value=180, required=False
    )
    radius_km = forms.IntegerField(
        min_value=1, max_value=500, initial=25, label="How far will you travel (km)?"
    )
    languages = forms.CharField(max_length=200, required=False, help_text="Comma-separated, e.g. en, es")
    age_band = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Prefer not to say"),
            ("18-24", "18–24"),
            ("25-34", "25–34"),
            ("35-49", "35–49"),
            ("50-64", "50–64"),
            ("65+", "65+"),
        ],
    )
    gender = forms.CharField(max_length=40, required=False)
    availability = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[
            ("weekday_day", "Weekdays, daytime"),
            ("weekday_evening", "Weekday evenings"),
            ("weekend", "Weekends"),
        ],
    )
    employers = forms.CharField(
        max_length=1000,
        required=False,
        label="Employers (current)",
        help_text="Comma-separated. You will never be sent to audit a business you work for.",
    )
    consent = forms.BooleanField(
        required=True,
        label="I agree to the shopper terms and to my data being used to offer me jobs.",
    )

    def clean_languages(self):
        return [
            p.lower() for p in _split(self.cleaned_data["languages"], limit=10, each=16, label="languages")
        ]

    def clean_employers(self):
        return _split(self.cleaned_data["employers"], limit=10, each=200, label="employers")

    def clean(self):
        data = super().clean()
        if (data.get("latitude") is None) != (data.get("longitude") is None):
            self.add_error(
                "longitude" if data.get("longitude") is None else "latitude", "Give both or neither."
            )
        return data

    def shopper_data(self) -> dict:
        d = self.cleaned_data
        demographics = {k: d[k] for k in ("age_band", "gender") if d.get(k)}
        return {
            "name": d["name"].strip(),
            "email": d["email"],
            "phone": d["phone"].strip(),
            "home_area": d["home_area"].strip(),
            "latitude": d.get("latitude"),
            "longitude": d.get("longitude"),
            "radius_km": d["radius_km"],
            "languages": d["languages"],
            "demographics": demographics,
            "availability": {"slots": d["availability"]},
            "employer_organization_names": d["employers"],
        }


class ShopperApplyView(View):
    """GET shows the form, POST records an application (422 with the form's errors when invalid)."""

    model = Organization  # what the slug resolves to (the cross-tenant page sweep reads it)
    http_method_names = ["get", "post"]

    def dispatch(self, request, *args, **kwargs):
        slug = kwargs.get("org_slug", "")
        with unscoped():
            org = Organization.objects.filter(slug=slug).only("pk").first() if len(slug) <= 80 else None
        if org is None:
            raise Http404
        if request.method == "POST" and content_length(request) > MAX_BODY:
            return self._message(request, None, "Too large", "That submission is too large.", 413)
        with tenant_context(org.pk):
            self.organization = Organization.objects.get(pk=org.pk)
            return super().dispatch(request, *args, **kwargs)

    def _message(self, request, org, title, body, status, retry_after=None):
        response = render(
            request,
            "audits/apply_done.html",
            {"title": title, "body": body, "organization": org},
            status=status,
        )
        if retry_after:
            response["Retry-After"] = str(retry_after)
        return response

    def _form(self, request, form, status=200):
        return render(
            request, "audits/apply.html", {"form": form, "organization": self.organization}, status=status
        )

    def get(self, request, *args, **kwargs):
        return self._form(request, ApplicationForm())

    def post(self, request, *args, **kwargs):
        org = self.organization
        wait = _rate_limited(org.pk, ip_hash(request))
        if wait:
            return self._message(
                request, org, "Please try later", "Too many applications from your network.", 429, wait
            )
        form = ApplicationForm(request.POST)
        if not form.is_valid():
            return self._form(request, form, status=422)
        email = form.cleaned_data["email"].strip().lower()
        if Shopper.objects.filter(email=email).exists():
            # Same page as a fresh application: the form must not reveal who already applied.
            return self._message(request, org, "Thank you", "We have your application.", 201)
        try:
            shopper_apply(
                organization=org,
                actor=Actor.system(),
                data=form.shopper_data(),
                consent=form.cleaned_data["consent"],
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
            return self._form(request, form, status=422)
        return self._message(request, org, "Thank you", "We have your application.", 201)
