"""The signed-in person's own account: password and optional two-factor sign-in."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.mixins import LoginRequiredMixin
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from cem import two_factor
from cem.principals import Actor
from cem.services import audit_log_write


class AccountView(LoginRequiredMixin, View):
    def get(self, request):
        return TemplateResponse(
            request,
            "cem/account/account.html",
            {
                "two_factor_on": two_factor.has_two_factor(request.user),
                "two_factor_required": two_factor.required_anywhere(request.memberships),
            },
        )


class PasswordChangeView(auth_views.PasswordChangeView):
    # Django's form runs AUTH_PASSWORD_VALIDATORS on the new password (errors on new_password2).
    template_name = "cem/account/password.html"
    success_url = reverse_lazy("account")

    def form_valid(self, form):
        response = super().form_valid(form)
        if self.request.tenant is not None:
            audit_log_write(
                organization=self.request.tenant,
                actor=Actor.from_request(self.request),
                action="password.changed",
                object_type="auth.User",
                object_id=self.request.user.pk,
            )
        messages.success(self.request, "Your password was changed.")
        return response


class TwoFactorCodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=10,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


@method_decorator(sensitive_post_parameters("code"), name="dispatch")
class TwoFactorSetupView(LoginRequiredMixin, View):
    """Scan the QR code, type the code the app shows: two-factor is on from the next sign-in."""

    template_name = "cem/account/two_factor.html"

    def render(self, form):
        user = self.request.user
        required = two_factor.required_anywhere(self.request.memberships)
        if two_factor.has_two_factor(user):
            return TemplateResponse(
                self.request, self.template_name, {"form": form, "enabled": True, "required": required}
            )
        device = two_factor.pending_device(user)
        return TemplateResponse(
            self.request,
            self.template_name,
            {
                "form": form,
                "enabled": False,
                "required": required,
                "qr": two_factor.qr_svg(device),
                "manual_key": two_factor.manual_key(device),
            },
        )

    def get(self, request):
        return self.render(TwoFactorCodeForm())

    def post(self, request):
        form = TwoFactorCodeForm(request.POST)
        if not form.is_valid():
            return self.render(form)
        code = form.cleaned_data["code"]
        common = {"organization": request.tenant, "actor": Actor.from_request(request), "user": request.user}
        if two_factor.has_two_factor(request.user):
            if two_factor.required_anywhere(request.memberships):
                form.add_error(
                    "code", "An organization you administer requires two-factor sign-in: it stays on."
                )
                return self.render(form)
            if not two_factor.two_factor_disable(**common, token=code):
                form.add_error("code", "That code is not right. Enter the one your app shows now.")
                return self.render(form)
            messages.success(request, "Two-factor sign-in is off. You sign in with your password alone.")
            return redirect("account")
        device = two_factor.pending_device(request.user)
        if not two_factor.two_factor_enable(**common, device=device, token=code):
            form.add_error("code", "That code is not right. Enter the current code your app shows for CEM.")
            return self.render(form)
        device.refresh_from_db()
        otp_login(request, device)
        messages.success(request, "Two-factor sign-in is on. Next time you will be asked for a code.")
        return redirect("account")
