"""Mystery shopper on a phone: applies on the public page, is approved by the org admin, takes the
certification course and passes its test, takes a job from the board, fills the visit form with a
photo of the receipt and submits it; the reviewer (evaluator@northwind.demo) returns it with a
reason, the shopper revises and resubmits, and the reviewer approves: the visit is published."""

import datetime as dt
import re
import zoneinfo
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from PIL import Image

from audits import models as am
from cem.models import Location
from cem.tenancy import tenant_context
from learning.models import Assignment as LearningAssignment
from learning.models import Quiz
from tests.e2e.conftest import DEMO_PASSWORD, PHONE, answer_quiz

pytestmark = [pytest.mark.browser, pytest.mark.django_db]

EMAIL = "e2e.shopper@example.test"
NAME = "Erin Endtoend"
STORE = "S010"
RETURN_REASON = "The wait looks too long for a quiet Tuesday: check it against the receipt time."


def _post_todays_job(api, org, program, store):
    """Jobs have no page to create them: the programme manager posts them through the API."""
    admin = get_user_model().objects.get(username="admin@northwind.demo")
    with tenant_context(org):
        scenario = program.scenarios.filter(active=True).order_by("pk").first()
    now = timezone.now()
    resp = api(admin).post(
        "/api/v1/assignments/",
        {
            "program": program.pk,
            "scenario": scenario.pk,
            "location": store.pk,
            "window_start": (now - dt.timedelta(hours=3)).isoformat(),
            "window_end": (now + dt.timedelta(days=2)).isoformat(),
            "fee": "25.00",
            "reimbursement_cap": "20.00",
        },
        format="json",
    )
    assert resp.status_code == 201, resp.content
    return resp.json()["id"]


def _fill_visit(page, org, wait_seconds: str):
    # The page reads the time typed in as the organization's local time (New York here).
    local = (timezone.now() - dt.timedelta(minutes=40)).astimezone(zoneinfo.ZoneInfo(org.time_zone))
    page.get_by_test_id("visited-at").fill(local.strftime("%Y-%m-%dT%H:%M"))
    page.locator("input[name=value-greeted-seconds]").fill(wait_seconds)
    page.locator("textarea[name=comment-greeted-seconds]").fill(
        "Nobody at the entrance; I waited by the door."
    )
    for key in ("eye-contact", "open-offer", "compare", "walked", "add-on", "returns-told", "thanked"):
        page.locator(f"input[name=value-{key}][value=yes]").check()
    page.locator("input[name=value-needs-asked][value=asked]").check()
    page.locator("input[name=value-knowledge][value='5']").check()
    page.locator("textarea[name=text-notes]").fill("Busy at noon; two tills open.")
    page.get_by_test_id("reimbursement").fill("4.50")


def _submit(page):
    page.get_by_test_id("submit-report").click()
    page.wait_for_selector(
        "[data-testid=job-status]:has-text('Submitted'), [data-testid=submit-errors], .error"
    )
    assert page.get_by_test_id("job-status").inner_text() == "Submitted", page.locator("form").inner_text()


def _fits_the_phone(page):
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width} px wide on a {PHONE['width']} px phone"


def test_shopper_applies_certifies_and_a_revised_visit_is_approved(demo, journey, api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    org = demo.orgs["northwind"]
    with tenant_context(org):
        program = am.Program.objects.get(name="In-store mystery shopping")
        store = Location.objects.get(code=STORE)
        final_quiz = Quiz.objects.get(lesson__path_steps__path=program.certification_path)
    job_id = _post_todays_job(api, org, program, store)
    receipt = tmp_path / "receipt.jpg"
    Image.new("RGB", (120, 200), (240, 240, 230)).save(receipt, "JPEG")
    phone = journey.new_page(PHONE)

    # 1. The public application, on a phone.
    phone.goto(f"/shop/{org.slug}/apply/")
    form = phone.get_by_test_id("apply-form")
    form.locator("input[name=name]").fill(NAME)
    form.locator("input[name=email]").fill(EMAIL)
    form.locator("input[name=home_area]").fill("Queens, NY")
    form.locator("input[name=consent]").check()
    _fits_the_phone(phone)
    form.get_by_role("button", name="Apply").click()
    phone.get_by_test_id("apply-message").wait_for()
    with tenant_context(org):
        shopper = am.Shopper.objects.get(email=EMAIL)
    assert shopper.status == am.Shopper.Status.APPLIED
    journey.assert_no_console_errors()

    # 2. The org admin approves the application, which gives the shopper a login.
    desk = journey.new_page()
    journey.sign_in(desk, "admin@northwind.demo")
    desk.goto("/audits/shoppers/")
    desk.get_by_test_id("status-applied").click()
    desk.get_by_role("link", name=NAME).click()
    desk.wait_for_url(f"**/audits/shoppers/{shopper.pk}/")
    desk.get_by_test_id("approve").click()
    desk.wait_for_selector("[data-testid=shopper-status]:has-text('Approved')")
    with tenant_context(org):
        shopper.refresh_from_db()
    user = shopper.user
    # The approval emails the new shopper a link to choose their password, opened on the phone.
    message = next(msg for msg in mail.outbox if msg.to == [EMAIL])
    assert message.subject == f"{org.name}: set your password for CEM"
    phone.goto(re.search(r"https?://\S+?(/login/welcome/\S+/)", message.body).group(1))
    phone.wait_for_url("**/set-password/")
    phone.fill("input[name=new_password1]", DEMO_PASSWORD)
    phone.fill("input[name=new_password2]", DEMO_PASSWORD)
    _fits_the_phone(phone)
    phone.get_by_test_id("save-password").click()
    phone.get_by_test_id("password-set-complete").wait_for()

    # 3. Certification: the board sends them to the course; its last lesson ends with the test.
    journey.sign_in(phone, EMAIL)
    phone.goto("/audits/jobs/")
    phone.get_by_test_id("board-ineligible").filter(has_text=store.name).get_by_test_id(
        "certify-link"
    ).click()
    with tenant_context(org):
        course = LearningAssignment.objects.get(user=user, path=program.certification_path)
    phone.wait_for_url(f"**/learning/assignments/{course.pk}/")
    assert program.name in phone.get_by_test_id("reason").inner_text()
    while "/learning/quizzes/" not in phone.url:
        done = phone.locator("ol.path-steps li.done").count()
        phone.get_by_test_id("complete").click()
        phone.wait_for_function(
            "(done) => location.pathname.includes('/learning/quizzes/') || "
            "document.querySelectorAll('ol.path-steps li.done').length > done",
            arg=done,
        )
    phone.wait_for_url(f"**/learning/quizzes/{final_quiz.pk}/")
    phone.get_by_test_id("start-attempt").click()
    phone.wait_for_url("**/learning/attempts/*/")
    answer_quiz(phone, final_quiz)
    phone.get_by_test_id("submit-attempt").click()
    phone.wait_for_selector("[data-testid=result-verdict]:has-text('Passed')")
    with tenant_context(org):
        assert am.Certification.objects.filter(shopper=shopper, program=program).exists()
    journey.assert_no_console_errors()

    # 4. The job board: today's job at the store, taken.
    phone.goto("/audits/jobs/")
    phone.get_by_test_id("board-job").filter(has_text=store.name).get_by_test_id("take-job").click()
    phone.wait_for_url(f"**/audits/jobs/{job_id}/")

    # 5. The visit form on the phone: the answers, a photo of the receipt, submit.
    _fill_visit(phone, org, wait_seconds="240")
    phone.locator("input[type=file][form=photo-receipt]").set_input_files(str(receipt))
    phone.locator("button[form=photo-receipt]").click()
    phone.wait_for_selector("[data-testid=item-receipt] img[alt='Photo 1']")
    _fits_the_phone(phone)
    journey.screenshot(phone, "-visit-form")
    _submit(phone)
    journey.assert_no_console_errors()

    # 6. The reviewer returns it with a reason.
    journey.sign_in(desk, "evaluator@northwind.demo")
    desk.goto(f"/audits/jobs/review/{job_id}/")
    assert "Photo 1" in desk.get_by_test_id("answer-receipt").inner_html()
    desk.locator("textarea[name=reason]").fill(RETURN_REASON)
    desk.get_by_test_id("return").click()
    desk.wait_for_url("**/audits/jobs/review/")
    with tenant_context(org):
        assert am.Assignment.objects.get(pk=job_id).status == am.Assignment.Status.RETURNED

    # 7. The shopper sees why, corrects the wait and resubmits.
    phone.goto(f"/audits/jobs/{job_id}/")
    assert RETURN_REASON in phone.get_by_test_id("return-reason").inner_text()
    phone.locator("input[name=value-greeted-seconds]").fill("8")
    phone.locator("textarea[name=comment-greeted-seconds]").fill("Checked against the receipt: 8 s.")
    _submit(phone)

    # 8. The reviewer approves: the visit is published with its score, and the shopper is owed.
    desk.goto(f"/audits/jobs/review/{job_id}/")
    desk.get_by_test_id("rating").select_option("5")
    desk.get_by_test_id("approve").click()
    desk.wait_for_url("**/audits/jobs/review/")
    with tenant_context(org):
        job = am.Assignment.objects.get(pk=job_id)
        audit = am.Audit.objects.get(assignment=job)
        payable = am.Payable.objects.get(assignment=job)
    assert job.status == am.Assignment.Status.PUBLISHED
    assert audit.score == Decimal(100)  # every item met, 8 s within the 10 s target
    assert payable.status == am.Payable.Status.PAYABLE and payable.total == Decimal("29.50")
    phone.goto(f"/audits/jobs/{job_id}/")
    assert phone.get_by_test_id("job-status").inner_text() == "Published"
    journey.assert_no_console_errors()
