"""Customer, on a phone:

- a Spanish-speaking Northwind customer shops at a store; the store visit is recorded, the
  invitation goes out by e-mail after the survey's delay, and its link opens the survey in Spanish
  (the second language) and ends on the thank-you page;
- the org admin lists the online shop's origin among the "Web checkout" survey's widget origins;
  on the shop's order page, served by another origin, the pop-up asks the survey and submits.
"""

from __future__ import annotations

import datetime as dt
import http.server
import re
import threading
import uuid

import pytest
from django.core import mail
from django.db.models import Q
from django.utils import timezone

from cem.ingest import interactions_ingest
from cem.models import Customer, Employee, Location
from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback.invitations import invitations_send_due
from feedback.models import Answer, Invitation, Response, Survey
from tests.e2e.conftest import PHONE

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

STORE = "S007"


def _spanish_customer_to_invite(now) -> Customer:
    """Reachable by e-mail, Spanish-speaking, and not contacted within the contact cap."""
    recently = Invitation.objects.filter(
        created_at__gte=now - dt.timedelta(days=31), customer__isnull=False
    ).values("customer_id")
    return (
        Customer.objects.filter(locale__startswith="es", consent_email=True, opted_out_at__isnull=True)
        .exclude(Q(email="") | Q(pk__in=recently))
        .order_by("pk")
        .first()
    )


def _answer_every_page(page, answers: dict[str, str]):
    """Fill what each page shows, then Next, until the last page's submit."""
    while True:
        form = page.get_by_test_id("survey-form")
        for key, value in answers.items():
            question = form.get_by_test_id(f"question-{key}")
            if not question.count():
                continue
            field = question.locator("textarea")
            if field.count():
                field.fill(value)
            else:
                question.locator(f"input[value='{value}']").check()
        if page.get_by_test_id("submit").count():
            page.get_by_test_id("submit").click()
            return
        page.get_by_test_id("next").click()
        page.wait_for_load_state()


def test_customer_answers_the_invitation_in_spanish(demo, journey, settings):
    org = demo.orgs["northwind"]
    settings.SITE_URL = journey.server.url  # the links in the e-mails point at this server
    now = timezone.now()
    with tenant_context(org):
        customer = _spanish_customer_to_invite(now)
        assert customer is not None
        store = Location.objects.get(code=STORE)
        employee = Employee.objects.filter(current_location=store).order_by("pk").first()
        survey = Survey.objects.get(name="Store visit")
        # The till records the visit (the point-of-sale import, as the integrator's bulk POST does).
        ref = f"E2E-VISIT-{uuid.uuid4().hex[:8]}"
        [result] = interactions_ingest(
            organization=org,
            actor=Actor.system(),
            rows=[
                {
                    "external_id": ref,
                    "occurred_at": (now - dt.timedelta(minutes=90)).isoformat(),
                    "location": STORE,
                    "touchpoint": "store-checkout",
                    "customer": customer.external_id,
                    "employees": [employee.external_id],
                    "amount": "58.40",
                }
            ],
        )
        assert result.status == "created", result.as_dict()
        invitation = Invitation.objects.get(interaction__external_id=ref)
        assert invitation.survey_id == survey.pk and invitation.status == Invitation.Status.SCHEDULED
        # The beat task sends what is due; here it runs at the invitation's send time.
        sent_before = len(mail.outbox)
        counts = invitations_send_due(
            organization=org, invitation_ids=[invitation.pk], now=max(invitation.send_at, now)
        )
    assert counts.get("sent") == 1, counts
    [message] = [m for m in mail.outbox[sent_before:] if customer.email in m.to]
    links = re.findall(r"https?://[^\s\"'<>]+/r/i/[^\s\"'<>]+", message.body)
    assert links, message.body
    page = journey.new_page(PHONE)

    # The link opens the survey in Spanish.
    page.goto(links[0])
    page.get_by_test_id("survey-form").wait_for()
    assert page.locator("html").get_attribute("lang") == "es"
    assert "¿Qué probabilidad hay de que recomiende" in page.get_by_test_id("question-nps").inner_text()
    journey.screenshot(page, "-survey-es")
    _answer_every_page(
        page,
        {
            "nps": "9",
            "csat": "5",
            "staff_knowledge": "4",
            "checkout_ease": "6",
            "comment": "La cajera fue muy amable y me ayudó a encontrar la talla.",
        },
    )
    page.get_by_test_id("thank-you").wait_for()
    assert "Gracias" in page.get_by_test_id("thank-you").inner_text()
    journey.assert_no_console_errors()
    with tenant_context(org):
        response = Response.objects.get(interaction__external_id=ref)
        invitation.refresh_from_db()
    assert response.locale == "es" and response.location_id == store.pk
    assert invitation.status == Invitation.Status.RESPONDED


class ShopSite:
    """The online shop: another origin (127.0.0.1 and its own port) whose order page embeds the widget."""

    def __init__(self, cem_url: str, survey_key: str):
        page = (
            "<!doctype html><html lang='es'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            "<link rel='icon' href='data:,'>"
            "<title>Northwind online: pedido confirmado</title></head><body>"
            "<h1>¡Gracias por su pedido!</h1><p>Pedido NW-10442 confirmado.</p>"
            f"<script src='{cem_url}/static/feedback/widget.js' data-survey-key='{survey_key}'"
            " data-trigger='load' data-lang='es' async></script></body></html>"
        ).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200 if self.path.startswith("/order") else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page if self.path.startswith("/order") else b"not found")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_customer_answers_the_popup_on_the_online_shop(demo, journey):
    org = demo.orgs["northwind"]
    with tenant_context(org):
        survey = Survey.objects.get(name="Web checkout")
        widget_before = Response.objects.filter(survey=survey, source="widget").count()
    shop = ShopSite(journey.server.url, survey.public_key)
    try:
        # The org admin lets the shop's origin embed the survey.
        admin = journey.new_page()
        journey.sign_in(admin, "admin@northwind.demo")
        admin.goto(f"/feedback/surveys/{survey.pk}/")
        admin.get_by_test_id("edit-settings").click()
        origins = admin.locator("textarea[name=allowed_origins]")
        origins.fill("\n".join(filter(None, [origins.input_value().strip(), shop.origin])))
        admin.get_by_test_id("submit").click()
        admin.wait_for_url(f"**/feedback/surveys/{survey.pk}/")
        assert shop.origin in admin.get_by_test_id("survey-settings").inner_text()

        # The customer's order page on the shop: the pop-up opens, in Spanish.
        page = journey.new_page(PHONE)
        page.goto(f"{shop.origin}/order/thanks")
        dialog = page.get_by_role("dialog")
        dialog.wait_for()
        assert "¿Qué probabilidad hay de que recomiende" in dialog.inner_text()
        dialog.locator("fieldset").filter(has_text="recomiende").locator("input[value='8']").check()
        dialog.locator("fieldset").filter(has_text="finalizar la compra").locator("input[value='6']").check()
        dialog.locator("textarea").fill("Todo bien, el pago fue rápido.")
        journey.screenshot(page, "-popup")
        dialog.get_by_role("button", name=re.compile("Enviar")).click()
        dialog.get_by_role("status").filter(has_text="Gracias").wait_for()
        journey.assert_no_console_errors()
    finally:
        shop.close()
    with tenant_context(org):
        latest = Response.objects.filter(survey=survey, source="widget").order_by("-pk")
        assert latest.count() == widget_before + 1
        response = latest.first()
        nps = Answer.objects.get(response=response, question__key="nps")
    assert response.locale == "es" and nps.number == 8
