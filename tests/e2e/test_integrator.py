"""Integrator: the org admin creates an API key and a webhook endpoint in the UI (each secret shown
once, copied from the page); the integration then bulk-POSTs interactions and survey responses with
``requests``; they show on the store's dashboard; the detractor among the responses opens a case,
and its CaseOpened event arrives at the integrator's receiver (a local HTTP server) signed with the
endpoint's secret, which the README's reference verifier accepts."""

import datetime as dt
import json
import time
import uuid

import pytest
import requests
from django.utils import timezone

from cem.models import Employee, Location
from cem.tenancy import tenant_context
from feedback.models import Case, Response, Survey
from tests.test_webhooks_docs import _snippet as readme_verifier_source
from tests.webhooks_support import LocalReceiver

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

STORE = "S005"
PREFIX = f"E2E-{uuid.uuid4().hex[:8]}"  # unique, so the journey also runs on a kept demo (CEM_E2E_KEEP_DEMO)


@pytest.fixture
def receiver():
    server = LocalReceiver()
    yield server
    server.close()


def readme_verify():
    namespace: dict = {}
    exec(compile(readme_verifier_source(), "README.md", "exec"), namespace)  # noqa: S102 - our README
    return namespace["verify"]


def _kpi(page, measure: str) -> int:
    return int(page.locator(f"[data-panel=kpis] [data-testid=kpi-{measure}]").get_attribute("data-n"))


def test_integrator_key_bulk_posts_dashboard_and_signed_webhook(demo, journey, receiver):
    org = demo.orgs["northwind"]
    with tenant_context(org):
        store = Location.objects.get(code=STORE)
        staff = list(
            Employee.objects.filter(current_location=store).values_list("external_id", flat=True)[:3]
        )
        survey = Survey.objects.get(name="Store visit")
    page = journey.new_page()
    journey.sign_in(page, "admin@northwind.demo")

    # The store's dashboard before.
    page.goto(f"/alignment/stores/{store.pk}/")
    responses_before, interactions_before = _kpi(page, "responses"), _kpi(page, "interactions")

    # An API key, created in the UI and shown once.
    page.get_by_role("link", name="API keys").first.click()
    page.goto("/manage/api-keys/new/")
    page.locator("input[name=name]").fill("POS and survey export (e2e)")
    for scope in ("core:write", "feedback:write"):
        page.locator(f"input[name=scopes][value='{scope}']").check()
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_test_id("api-key-secret").input_value().strip()
    assert key.startswith("cem_")
    page.get_by_test_id("done").click()

    # A webhook endpoint for "case opened", pointing at the integrator's receiver.
    page.get_by_role("link", name="Webhooks").first.click()
    page.goto("/manage/webhooks/new/")
    page.locator("input[name=url]").fill(receiver.url(path="/cem/events"))
    page.locator("input[name=description]").fill("Integrator's ticketing bridge")
    page.locator("input[name=event_types][value=CaseOpened]").check()
    page.get_by_role("button", name="Create endpoint").click()
    secret = page.get_by_test_id("secret").input_value().strip()
    assert secret.startswith("whsec_")
    journey.assert_no_console_errors()

    # The integration: interactions, then the answers to them, in bulk.
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {key}"
    now = timezone.now()
    interactions = [
        {
            "external_id": f"{PREFIX}-I{n}",
            "occurred_at": (now - dt.timedelta(hours=3, minutes=n)).isoformat(),
            "location": STORE,
            "touchpoint": "store-checkout",
            "employees": [staff[n % len(staff)]],
            "amount": "42.10",
        }
        for n in range(3)
    ]
    resp = api.post(f"{journey.server.url}/api/v1/interactions/bulk/", json=interactions, timeout=60)
    assert resp.status_code in (200, 201, 207), resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["created"] * 3, resp.text
    answers = [
        {"nps": 10, "csat": 5, "comment": "Quick and friendly at the till."},
        {"nps": 9, "csat": 4},
        {"nps": 2, "csat": 1, "why_low": "wait", "comment": "Twenty minutes at the till, nobody helped."},
    ]
    responses = [
        {
            "survey": survey.pk,
            "interaction": f"{PREFIX}-I{n}",
            "external_id": f"{PREFIX}-R{n}",
            "answers": answers[n],
            "submitted_at": (now - dt.timedelta(hours=2, minutes=n)).isoformat(),
        }
        for n in range(3)
    ]
    resp = api.post(f"{journey.server.url}/api/v1/responses/bulk/", json=responses, timeout=60)
    assert resp.status_code in (200, 201, 207), resp.text
    assert [r["status"] for r in resp.json()["results"]] == ["created"] * 3, resp.text

    # The store's dashboard shows them.
    page.goto(f"/alignment/stores/{store.pk}/")
    assert _kpi(page, "interactions") == interactions_before + 3
    assert _kpi(page, "responses") == responses_before + 3
    journey.screenshot(page, "-dashboard")
    journey.assert_no_console_errors()

    # The detractor opened a case; its CaseOpened reached the receiver, signed.
    with tenant_context(org):
        detractor = Response.objects.get(external_id=f"{PREFIX}-R2")
        case = Case.objects.get(response=detractor)
    deadline = time.monotonic() + 15
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(receiver.requests) == 1, receiver.requests
    headers, body = receiver.requests[0]
    assert headers["CEM-Event-Type"] == "CaseOpened"
    verify = readme_verify()
    assert verify(secret, headers["CEM-Signature"], body)
    assert not verify(secret, headers["CEM-Signature"], body + b" ")
    event = json.loads(body)
    assert event["type"] == "CaseOpened" and event["data"]["case_id"] == case.pk
    assert event["organization_id"] == org.pk

    # The delivery log in the UI says it succeeded.
    page.get_by_role("link", name="Webhooks").first.click()
    page.get_by_role("link", name=receiver.url(path="/cem/events")).click()
    delivery = page.get_by_test_id("delivery")
    assert delivery.count() == 1
    assert delivery.get_by_test_id("delivery-status").inner_text().lower() == "succeeded"
    assert delivery.get_by_test_id("last-code").inner_text() == "200"
    journey.assert_no_console_errors()
