"""Opt out of all surveys from a link in the message: no login, the signed token names the customer.

The token signs (organization id, customer id) with a purpose salt, so it cannot be forged or
re-pointed at another customer, and it does not expire (an old email must still unsubscribe).
GET only shows a confirmation (mail scanners and link previews follow links); POST opts out. POST
is exempt from CSRF on purpose: the token is the credential, and RFC 8058 one-click unsubscribe
has mail clients POST to this URL without any form.
"""

from __future__ import annotations

from django.core import signing
from django.db import transaction
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from cem import public_throttle
from cem.models import Customer, Organization
from cem.principals import Actor
from cem.services import customer_opt_out
from cem.tenancy import tenant_context
from feedback.invitations import invitations_suppress_for_customer

_SALT = "feedback.unsubscribe"


def unsubscribe_token(organization_id: int, customer_id: int) -> str:
    return signing.dumps([organization_id, customer_id], salt=_SALT)


def read_unsubscribe_token(token: str) -> tuple[int, int] | None:
    try:
        value = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return None
    return value[0], value[1]


def _invalid(request):
    return render(request, "feedback/unsubscribe_invalid.html", status=404)


def _slow_down(request):
    return render(request, "feedback/unsubscribe_invalid.html", {"slow_down": True}, status=429)


@method_decorator([csrf_exempt, never_cache], name="dispatch")
class UnsubscribeView(View):
    model = Customer
    http_method_names = ["get", "post"]
    template_name = "feedback/unsubscribe.html"

    def dispatch(self, request, *args, token: str, **kwargs):
        wait = public_throttle.blocked_for(request, "unknown_token") or public_throttle.wait_seconds(
            request, "unsubscribe"
        )
        if wait:
            return public_throttle.with_retry_after(_slow_down(request), wait)
        ref = read_unsubscribe_token(token)
        if ref is None:
            public_throttle.wait_seconds(request, "unknown_token")
            return _invalid(request)
        organization_id, customer_id = ref
        # The tenant comes from the signed token, whoever (if anyone) is signed in.
        with tenant_context(organization_id):
            organization = Organization.objects.filter(pk=organization_id).first()
            customer = Customer.objects.filter(pk=customer_id).first()
            if organization is None or customer is None:
                return _invalid(request)
            response = super().dispatch(request, organization=organization, customer=customer)
            response["X-Robots-Tag"] = "noindex"
            return response

    def get(self, request, *, organization, customer):
        return render(
            request,
            self.template_name,
            {"organization": organization, "done": customer.opted_out_at is not None},
        )

    def post(self, request, *, organization, customer):
        actor = Actor.system()
        with transaction.atomic():
            customer = customer_opt_out(organization=organization, actor=actor, customer=customer)
            invitations_suppress_for_customer(
                organization=organization, actor=actor, customer=customer, reason="customer opted out"
            )
        return render(request, self.template_name, {"organization": organization, "done": True})
