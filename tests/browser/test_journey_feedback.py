"""The closed loop in a real browser: a customer's poor answer on a phone becomes a case the store
manager sees, works and resolves."""

import datetime as dt

import pytest
from django.utils import timezone

from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import cases
from feedback.models import Case, DeliveryChannel, Invitation
from feedback.tokens import new_token
from tests.browser.conftest import login
from tests.conftest import PASSWORD
from tests.feedback.conftest import make_survey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _invitation(world) -> str:
    org, store = world.a.org, "a-n1"
    survey, version, _ = make_survey(org, name="Store visit", touchpoint=world.a.touchpoint)
    raw, token_hash = new_token()
    interaction = world.a.interactions[store]
    now = timezone.now()
    with tenant_context(org):
        cases.alert_rules_install_defaults(organization=org, actor=Actor.system())
        # Made here rather than by the invitation scheduler, so the journey needs no email sending.
        Invitation.objects.create(
            organization=org,
            survey=survey,
            version=version,
            interaction=interaction,
            customer=world.a.customer,
            location=world.a.locations[store],
            employee=world.a.employees[store],
            delivery_channel=DeliveryChannel.EMAIL,
            locale="en",
            token_hash=token_hash,
            status=Invitation.Status.SENT,
            send_at=now,
            sent_at=now,
            expires_at=now + dt.timedelta(days=7),
        )
    return raw


def test_a_detractor_on_a_phone_becomes_a_case_the_store_manager_resolves(world, page, mailoutbox):
    raw = _invitation(world)

    # The customer, on a 390x844 viewport, switches the survey to Spanish and answers.
    page.goto(f"/r/i/{raw}/")
    page.get_by_test_id("languages").get_by_role("link", name="Español").click()
    page.wait_for_url("**lang=es")
    nps = page.get_by_test_id("question-nps")
    assert "¿Qué probabilidad hay de que nos recomiende?" in nps.inner_text()
    nps.locator("label.scale-point", has=page.locator('input[value="2"]')).click()
    page.get_by_test_id("question-comment").locator("textarea").fill(
        "El cajero fue muy grosero y la espera fue terrible."
    )
    page.get_by_test_id("submit").click()
    page.wait_for_selector("text=¡Gracias!")

    # The on-commit ResponseReceived delivery (eager in tests) opened a case for the store manager.
    with tenant_context(world.a.org):
        [case] = Case.objects.all()
    assert case.assignee_id == world.users["manager"].pk
    assert case.location_id == world.a.locations["a-n1"].pk
    assert case.status == Case.Status.OPEN
    assert "manager@acme.test" in [to for mail in mailoutbox for to in mail.to]

    # The store manager signs in, sees it on the feedback dashboard and on the case list,
    # opens it and resolves it.
    login(page, "manager@acme.test", PASSWORD)
    page.wait_for_url("**/")
    page.get_by_role("link", name="Feedback", exact=True).click()
    page.wait_for_url("**/feedback/")
    assert page.get_by_test_id("open-case").count() == 1
    assert "NPS 2" in page.get_by_test_id("open-cases").inner_text()
    page.get_by_role("link", name="Cases", exact=True).click()
    page.wait_for_url("**/feedback/cases/")
    rows = page.get_by_test_id("case-row")
    assert rows.count() == 1
    assert "NPS 2" in rows.first.inner_text()
    rows.first.get_by_test_id("case-link").click()
    page.wait_for_url(f"**/feedback/cases/{case.pk}/")
    assert "El cajero fue muy grosero" in page.get_by_test_id("case-answers").inner_text()

    page.get_by_test_id("note-text").fill("Llamé al cliente; pedimos disculpas.")
    page.get_by_test_id("note-submit").click()
    page.get_by_test_id("case-note").filter(has_text="Llamé al cliente").wait_for()

    page.get_by_test_id("case-start").click()
    page.get_by_test_id("resolve-reason").fill("Apologised and sent a voucher")
    page.get_by_test_id("case-resolve").click()
    page.wait_for_selector("[data-testid=case-status]:has-text('Resolved')")
    assert "Apologised and sent a voucher" in page.get_by_test_id("case-outcome").inner_text()

    with tenant_context(world.a.org):
        case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED and case.resolved_at is not None
