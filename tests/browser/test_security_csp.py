"""The Content-Security-Policy in a real browser: representative pages load and work with no violation.

(Issue 9's security proofs live in tests/security/; this one is here to share the browser fixture:
a second Playwright session in the same run would not start.)

Headless chromium (tests/browser/conftest.py) records every ``securitypolicyviolation`` event and
console error. Pages: the store dashboard (htmx filter swap, plotly charts), the feedback
dashboard (plotly), a survey respondent page answered and sent (respond.js), the audit job form
(autosave.js), the learning portal, the rewards portal, the account pages with two-factor
enrolment (inline SVG QR code) and the sign-in code step, Swagger UI, and the staff admin.
"""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audits import models as am
from cem.tenancy import tenant_context
from feedback import models as fm
from tests.audits.sweep_workforce import make_job, make_program, make_shopper
from tests.browser.conftest import login
from tests.browser.test_journey_alignment import _history
from tests.conftest import PASSWORD
from tests.factories import UserFactory
from tests.security.test_two_factor import code_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(
    `${e.violatedDirective} blocked ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`
  );
});
"""


class Watch:
    """CSP violations (the DOM event and chromium's console report) and any other page error."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda msg: self._console(msg))
        page.on("pageerror", lambda exc: self.errors.append(f"{page.url}: {exc}"))

    def _console(self, msg):
        if msg.type == "error":
            self.errors.append(f"{self.page.url}: {msg.text}")

    def assert_clean(self, where: str):
        violations = self.page.evaluate("window.__cspViolations || []")
        assert violations == [], f"{where}: {violations}"
        csp_console = [e for e in self.errors if "Content Security Policy" in e or "Refused to" in e]
        assert csp_console == [], f"{where}: {csp_console}"
        assert self.errors == [], f"{where}: {self.errors}"


def _sign_in(page, email):
    page.context.clear_cookies()
    login(page, email, PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)


def test_representative_pages_run_under_the_policy_without_violations(world, page, api):
    survey, integrator = _history(world, api)
    # A comment, so the feedback dashboard has its sentiment and topic charts to draw.
    resp = integrator.post(
        "/api/v1/responses/",
        {
            "survey": survey.pk,
            "answers": {"nps": 9, "comment": "Friendly staff and a quick checkout, great service"},
            "interaction": "acme-int-a-n2",
            "external_id": "acme-csp-comment",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    org, store = world.a.org, world.a.locations["a-n1"]
    watch = Watch(page)

    # The strict policy is really in force on what the browser got.
    response = page.goto("/login/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy.split("script-src")[1].split(";")[0]
    watch.assert_clean("login")

    # Store dashboard: htmx swaps the body on a filter change; plotly draws the panels.
    _sign_in(page, "manager@acme.test")
    page.goto("/alignment/")
    page.wait_for_url(f"**/alignment/stores/{store.pk}/")
    page.locator(".js-plotly-plot").first.wait_for()
    page.get_by_test_id("filter-period").select_option("30")
    page.wait_for_url("**period=30**")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=dashboard-body]').dataset.query === 'period=30'"
    )
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.locator(".js-plotly-plot .main-svg").count() >= 1
    watch.assert_clean("store dashboard")

    # Feedback dashboard (plotly) as the org admin.
    _sign_in(page, "admin@acme.test")
    page.goto("/feedback/")
    page.locator(".js-plotly-plot").first.wait_for()
    watch.assert_clean("feedback dashboard")
    page.goto("/")
    watch.assert_clean("home")

    # Swagger UI: its start-up script is a static file now.
    page.goto("/api/docs/")
    page.locator(".swagger-ui .info").wait_for()
    watch.assert_clean("api docs")

    # Survey respondent page, answered and sent (respond.js drives the form).
    with tenant_context(org):
        link = fm.AnonymousLink.objects.create(organization=org, survey=survey, location=store)
    page.context.clear_cookies()
    page.goto(f"/r/a/{link.token}/")
    nps = page.get_by_test_id("question-nps")
    nps.locator("label.scale-point", has=page.locator('input[value="9"]')).click()
    watch.assert_clean("respondent page")
    page.locator("[data-testid=submit], [data-testid=next]").first.click()
    page.wait_for_load_state()
    watch.assert_clean("respondent page, sent")

    # Audit job form (autosave.js) as the mystery shopper.
    program, scenario = make_program(org)
    shopper = make_shopper(
        org, email="shopper@acme.test", user=world.users["shopper"], certify_program=program
    )
    job = make_job(
        org,
        program,
        scenario,
        store,
        shopper=shopper,
        status=am.Assignment.Status.IN_PROGRESS,
        assigned_at=timezone.now(),
    )
    _sign_in(page, "shopper@acme.test")
    page.goto(f"/audits/jobs/{job.pk}/")
    page.locator("[data-testid=save-status]").wait_for()
    watch.assert_clean("audit job form")

    # Learning portal and rewards portal as the employee.
    _sign_in(page, "employee@acme.test")
    page.goto("/learning/")
    watch.assert_clean("learning portal")
    page.goto("/rewards/")
    watch.assert_clean("rewards portal")


def test_two_factor_enrolment_and_sign_in_in_the_browser(world, page):
    watch = Watch(page)
    _sign_in(page, "admin@acme.test")
    page.get_by_test_id("account").click()
    page.get_by_test_id("two-factor-setup").click()
    qr = page.get_by_test_id("two-factor-qr").locator("svg")
    assert qr.bounding_box()["width"] >= 150  # drawn, big enough to scan
    watch.assert_clean("two-factor enrolment")
    device = TOTPDevice.objects.get(user=world.users["admin"], confirmed=False)
    page.fill("input[name=code]", code_for(device))
    page.get_by_test_id("two-factor-confirm").click()
    page.wait_for_url("**/account/")
    assert page.get_by_test_id("two-factor-status").inner_text().startswith("On")
    watch.assert_clean("account")

    page.get_by_test_id("logout").click()
    login(page, "admin@acme.test", PASSWORD)
    page.wait_for_url("**/login/code/")
    page.fill("input[name=code]", "000000" if code_for(device, steps_ahead=1) != "000000" else "111111")
    page.get_by_test_id("verify-code").click()
    assert page.get_by_test_id("error-code").is_visible()
    watch.assert_clean("code step")
    page.wait_for_timeout(1_100)  # django-otp's back-off after a wrong code
    page.fill("input[name=code]", code_for(device, steps_ahead=1))
    page.get_by_test_id("verify-code").click()
    page.wait_for_url(lambda url: "/login/" not in url)
    page.get_by_test_id("account").wait_for()
    watch.assert_clean("signed in with the code")


def test_staff_admin_runs_under_the_policy(db, page):
    UserFactory(
        username="staff@cem.test", email="staff@cem.test", is_staff=True, is_superuser=True, password=PASSWORD
    )
    watch = Watch(page)
    page.goto("/admin/")
    page.wait_for_url("**/login/?next=/admin/")
    page.fill("input[name=username]", "staff@cem.test")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/admin/")
    page.goto("/admin/auth/user/add/")
    page.locator("#id_username").wait_for()
    watch.assert_clean("admin")
