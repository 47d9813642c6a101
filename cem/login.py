"""Sign-in: the password, then (for users who turned two-factor on) a code from their app.

After a right password a two-factor user is not logged in yet: the session only remembers who
passed the first step, for a few minutes, and the code page finishes the login. Every failure
(password or code) is counted by django-axes, whose lockout page is ``lockout_response``.
"""

from __future__ import annotations

import math
import time

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, user_login_failed
from django.contrib.auth import login as auth_login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login

from cem import public_throttle, two_factor

PENDING_KEY = "cem_two_factor_pending"
PENDING_SECONDS = 300


def lockout_response(request, original_response=None, credentials=None):
    """axes' lockout as a page (429) that says how long to wait, not a bare line of text."""
    cool_off = get_cool_off(request)
    minutes = math.ceil(cool_off.total_seconds() / 60) if cool_off else None
    # Rendered now: axes' middleware returns it after the view, too late for a TemplateResponse.
    response = render(
        request,
        "registration/lockout.html",
        {"failure_limit": get_failure_limit(request, credentials), "minutes": minutes},
        status=429,
    )
    if cool_off:
        response["Retry-After"] = str(max(1, math.ceil(cool_off.total_seconds())))
    return response


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # axes locks one account after repeated failures; this caps one address trying many.
        wait = public_throttle.wait_seconds(request, "login")
        if wait:
            # Unbound: binding the POST would clean it, and AuthenticationForm.clean signs in.
            form = self.get_form_class()(request, initial={"username": request.POST.get("username", "")})
            form.cleaned_data = {}  # add_error expects it; an unbound form never cleans
            minutes = math.ceil(wait / 60)
            form.add_error(
                None, f"Too many sign-in attempts from your network. Try again in {minutes} minute(s)."
            )
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            return public_throttle.with_retry_after(response, wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        user = form.get_user()
        if not two_factor.has_two_factor(user):
            return super().form_valid(form)
        self.request.session[PENDING_KEY] = {
            "user": user.pk,
            "backend": user.backend,
            "next": self.get_success_url(),
            "at": time.time(),
        }
        return redirect("login_code")


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code from your authenticator app",
        max_length=10,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


def _pending_user(request):
    pending = request.session.get(PENDING_KEY)
    if not pending or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None, None
    user = get_user_model()._default_manager.filter(pk=pending["user"], is_active=True).first()
    return user, pending


@method_decorator([sensitive_post_parameters("code"), csrf_protect, never_cache], name="dispatch")
class LoginCodeView(View):
    """The second step: a code from the device the user enrolled."""

    template_name = "registration/login_code.html"

    def render(self, form):
        return TemplateResponse(self.request, self.template_name, {"form": form})

    def get(self, request):
        user, _pending = _pending_user(request)
        if user is None:
            return redirect("login")
        return self.render(CodeForm())

    def post(self, request):
        user, pending = _pending_user(request)
        if user is None:
            return redirect("login")
        credentials = {"username": user.get_username()}
        if AxesProxyHandler.is_locked(request, credentials):
            return lockout_response(request, credentials=credentials)
        form = CodeForm(request.POST)
        device = two_factor.verify(user, form.data.get("code", "")) if form.is_valid() else None
        if device is None:
            if form.is_valid():
                form.add_error("code", "That code is not right, or it has expired. Enter the current one.")
                # Counted like a wrong password: guessing codes locks the account the same way.
                user_login_failed.send(sender=__name__, credentials=credentials, request=request)
            return self.render(form)
        del request.session[PENDING_KEY]
        auth_login(request, user, backend=pending["backend"])
        otp_login(request, device)
        target = pending.get("next") or ""
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
            target = reverse(settings.LOGIN_REDIRECT_URL)
        return redirect(target)
