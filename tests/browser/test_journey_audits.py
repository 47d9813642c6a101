"""Mystery shopping end to end on a phone: a shopper applies, is approved, certifies, takes a job,
fills the visit form (autosave, resume, photo), submits; the reviewer returns it, the shopper fixes
it, the reviewer approves, and the store manager sees the score."""

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from PIL import Image

from audits import models as am
from cem.tenancy import tenant_context
from learning import models as lm
from tests.audits.certification_helpers import certification_path
from tests.browser.conftest import login
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "new.shopper@example.test"


def _programme(world):
    """A form whose scored items feed the organization's standard, one photo item, and an open job."""
    org, standard = world.a.org, world.a.standard
    with tenant_context(org):
        form = am.AuditForm.objects.create(organization=org, name="Store visit audit", kind="mystery_shop")
        version = am.AuditFormVersion.objects.create(organization=org, form=form, number=1)
        section = am.FormSection.objects.create(
            organization=org, version=version, key="visit", title={"en": "Visit"}
        )
        common = {"organization": org, "version": version, "section": section}
        am.FormItem.objects.create(
            **common, key="greeted", position=1, type="yes_no", text={"en": "Greeted?"}, standard=standard
        )
        am.FormItem.objects.create(
            **common,
            key="wait",
            position=2,
            type="time",
            text={"en": "Seconds waited"},
            target_max=Decimal(60),
            plausible_max=Decimal(1800),
            standard=standard,
        )
        am.FormItem.objects.create(**common, key="receipt", position=3, type="photo", text={"en": "Receipt"})
        program = am.Program.objects.create(
            organization=org,
            name="Store visits",
            kind="mystery_shop",
            form=form,
            certification_path=certification_path(org),
        )
        scenario = am.Scenario.objects.create(
            organization=org, program=program, title="Coffee visit", instructions="Buy a coffee."
        )
        start = timezone.now() - dt.timedelta(hours=2)
        job = am.Assignment.objects.create(
            organization=org,
            program=program,
            scenario=scenario,
            location=world.a.locations["a-n1"],
            window_start=start,
            window_end=start + dt.timedelta(hours=48),
            fee=Decimal("25.00"),
        )
    return program, job


def _sign_in(page, email):
    page.context.clear_cookies()
    login(page, email, PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)


def _visited() -> str:
    return timezone.localtime(timezone.now() - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")


def test_a_shopper_applies_certifies_and_gets_a_visit_published(world, page, api, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    program, job = _programme(world)
    photo = tmp_path / "receipt.jpg"
    Image.new("RGB", (64, 48), (180, 40, 40)).save(photo, "JPEG")

    # 1. The applicant fills in the public form on a phone.
    page.goto(f"/shop/{world.a.org.slug}/apply/")
    form = page.get_by_test_id("apply-form")
    form.locator("input[name=name]").fill("Nora Shopper")
    form.locator("input[name=email]").fill(EMAIL)
    form.locator("input[name=home_area]").fill("North town")
    form.locator("input[name=consent]").check()
    form.get_by_role("button", name="Apply").click()
    page.get_by_test_id("apply-message").wait_for()
    with tenant_context(world.a.org):
        shopper = am.Shopper.objects.get(email=EMAIL)
    assert shopper.status == am.Shopper.Status.APPLIED

    # 2. An org admin approves the application through the API; the user gets a known password.
    resp = api(world.users["admin"]).post(f"/api/v1/shoppers/{shopper.pk}/approve/", {}, format="json")
    assert resp.status_code == 200, resp.content
    with tenant_context(world.a.org):
        shopper.refresh_from_db()
    assert shopper.status == am.Shopper.Status.APPROVED and shopper.user_id
    shopper.user.set_password(PASSWORD)
    shopper.user.save(update_fields=["password"])

    # 3. The shopper signs in, takes the certification path on the learning portal (approval
    # assigned it), passes its test and takes the job.
    with tenant_context(world.a.org):
        cert_assignment = lm.Assignment.objects.get(user=shopper.user, path=program.certification_path)
    assert cert_assignment.source == lm.Assignment.Source.CERTIFICATION
    _sign_in(page, EMAIL)
    page.goto("/audits/jobs/")
    page.get_by_test_id("certify-link").first.click()
    page.wait_for_url(f"**/learning/assignments/{cert_assignment.pk}/")
    assert "Store visits" in page.get_by_test_id("reason").inner_text()
    page.get_by_test_id("complete").click()  # the first lesson
    page.wait_for_selector("ol.path-steps li.done", state="attached")
    page.get_by_test_id("complete").click()  # the second ends with the test
    page.wait_for_url("**/learning/quizzes/*/")
    page.get_by_test_id("start-attempt").click()
    page.wait_for_url("**/learning/attempts/*/")
    for n in (1, 2, 3):
        page.get_by_test_id(f"q{n}-a").check()
    page.get_by_test_id("submit-attempt").click()
    page.wait_for_selector("[data-testid=result-verdict]:has-text('Passed')")
    with tenant_context(world.a.org):
        assert am.Certification.objects.filter(shopper=shopper, program=program).exists()
    page.goto("/audits/jobs/")
    page.get_by_test_id("take-job").click()
    page.wait_for_url(f"**/audits/jobs/{job.pk}/")

    # 4. Part of the form, autosaved; a reload resumes the draft.
    page.get_by_test_id("visited-at").fill(_visited())
    page.locator("input[name=value-greeted][value=yes]").check()
    page.wait_for_selector("[data-testid=save-status]:has-text('1/3 answered') [data-testid=saved]")
    page.reload()
    page.wait_for_selector("[data-testid=progress]:has-text('1/3 answered')")
    assert page.locator("input[name=value-greeted][value=yes]").is_checked()
    assert page.get_by_test_id("visited-at").input_value()

    # 5. A photo of the receipt, the wait time, submit.
    page.locator("input[type=file][form=photo-receipt]").set_input_files(str(photo))
    page.locator("button[form=photo-receipt]").click()
    page.wait_for_selector("[data-testid=item-receipt] img[alt='Photo 1']")
    page.locator("input[name=value-wait]").fill("300")
    page.locator("textarea[name=comment-wait]").fill("A long queue at the till.")
    page.get_by_test_id("submit-report").click()
    page.wait_for_selector("[data-testid=job-status]:has-text('Submitted')")

    # 6. The reviewer returns it with a reason.
    _sign_in(page, "evaluator@acme.test")
    page.goto("/audits/jobs/review/")
    page.get_by_test_id("queue-job").first.get_by_role("link").click()
    page.wait_for_url(f"**/audits/jobs/review/{job.pk}/")
    page.locator("textarea[name=reason]").fill("The wait looks wrong: check it against the receipt time.")
    page.get_by_test_id("return").click()
    page.wait_for_url("**/audits/jobs/review/")
    with tenant_context(world.a.org):
        assert am.Assignment.objects.get(pk=job.pk).status == am.Assignment.Status.RETURNED

    # 7. The shopper sees the reason, fixes the wait time and resubmits.
    _sign_in(page, EMAIL)
    page.goto(f"/audits/jobs/{job.pk}/")
    assert "The wait looks wrong" in page.get_by_test_id("return-reason").inner_text()
    page.locator("input[name=value-wait]").fill("40")
    page.get_by_test_id("submit-report").click()
    page.wait_for_selector("[data-testid=job-status]:has-text('Submitted')")

    # 8. The reviewer approves.
    _sign_in(page, "evaluator@acme.test")
    page.goto(f"/audits/jobs/review/{job.pk}/")
    page.get_by_test_id("rating").select_option("4")
    page.get_by_test_id("rating-comment").fill("Clear notes and a receipt photo.")
    page.get_by_test_id("approve").click()
    page.wait_for_url("**/audits/jobs/review/")
    with tenant_context(world.a.org):
        audit = am.Audit.objects.get(assignment=job)
        assert am.Assignment.objects.get(pk=job.pk).status == am.Assignment.Status.PUBLISHED
        # The rating and what the shopper is now owed.
        assert am.ShopperRating.objects.get(assignment=job).score == 4
        assert am.Payable.objects.get(assignment=job).status == am.Payable.Status.PAYABLE
    assert audit.score == 100  # greeted, and 40 s is within the 60 s target

    # 9. The store manager of a-n1 sees the score.
    _sign_in(page, "manager@acme.test")
    page.goto("/audits/results/")
    rows = page.get_by_test_id("audit-row")
    assert rows.count() == 1
    assert str(audit.score) in rows.first.inner_text()
