"""Forgotten password and first password: Django's reset views in the product's pages.

The request form never says whether the address has an account: the same page follows every
valid address, and the email is queued, not sent, so the answer takes as long either way. It is
limited per address (429 past it, like sign-in) and per email address (quietly: no more mail to
that inbox for the window, so nobody can flood someone's inbox from many networks).
"""

from __future__ import annotations

import math

from axes.helpers import get_client_ip_address
from axes.utils import reset as axes_reset
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse_lazy

from cem import passwords, public_throttle


class PasswordResetView(auth_views.PasswordResetView):
    form_class = passwords.ResetRequestForm
    template_name = "registration/password_reset_form.html"
    success_url = reverse_lazy("password_reset_done")

    def post(self, request, *args, **kwargs):
        wait = public_throttle.wait_seconds(request, "password_reset")
        if wait:
            form = self.get_form_class()(initial={"email": request.POST.get("email", "")})
            form.cleaned_data = {}  # add_error expects it; an unbound form never cleans
            form.add_error(
                None,
                f"Too many reset requests from your network. Try again in {math.ceil(wait / 60)} minute(s).",
            )
            response = self.render_to_response(self.get_context_data(form=form), status=429)
            return public_throttle.with_retry_after(response, wait)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        email = form.cleaned_data["email"]
        # Counted for every address, known or not, so the limit itself tells nothing.
        if not public_throttle.subject_wait_seconds("password_reset_email", email.casefold()):
            for user in form.get_users(email):
                passwords.reset_email_schedule(user.pk)
        return redirect(self.success_url)


class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "registration/password_reset_done.html"


class _LinkConfirmView(auth_views.PasswordResetConfirmView):
    """Open the link, choose the password (Django's form: AUTH_PASSWORD_VALIDATORS apply).

    A link that matches nothing counts towards the address's ``unknown_token`` limit, like
    every public page that takes a token; once over it, even a good link is refused.
    """

    success_url = reverse_lazy("password_reset_complete")
    audit_action = ""

    def dispatch(self, request, *args, **kwargs):
        wait = public_throttle.blocked_for(request, "unknown_token")
        if wait:
            response = render(request, self.template_name, {"validlink": False, "limited": True}, status=429)
            return public_throttle.with_retry_after(response, wait)
        response = super().dispatch(request, *args, **kwargs)
        if not self.validlink and response.status_code == 200:
            public_throttle.wait_seconds(request, "unknown_token")
        return response

    def get_user(self, uidb64):
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None

    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        passwords.password_set_record(user=user, action=self.audit_action)
        # Failed sign-ins from this address paused the account here; a new password lifts that
        # (other addresses' counts stay: someone else may be guessing).
        axes_reset(ip=get_client_ip_address(self.request), username=user.get_username())
        return response


class PasswordResetConfirmView(_LinkConfirmView):
    template_name = "registration/password_reset_confirm.html"
    audit_action = "password.reset"


class PasswordSetConfirmView(_LinkConfirmView):
    template_name = "registration/password_set_confirm.html"
    token_generator = passwords.invitation_token_generator
    audit_action = "password.set"


class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "registration/password_reset_complete.html"
