"""An org admin in the browser: an application approved from its page, then a payment run exported,
downloaded and marked paid (phone viewport, as every journey)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.utils import timezone

from audits import models as am
from cem.tenancy import tenant_context
from tests.audits.sweep_workforce import make_job, make_program, make_shopper
from tests.browser.conftest import login
from tests.conftest import PASSWORD


def test_admin_approves_an_application_and_pays_a_batch(world, page):
    org = world.a.org
    program, scenario = make_program(org)
    applicant = make_shopper(
        org, email="nina@acme.test", name="Nina Applicant", status=am.Shopper.Status.APPLIED
    )
    worker = make_shopper(org, email="sam@acme.test", name="Sam Shopper", certify_program=program)
    with tenant_context(org):
        for code in ("a-n1", "a-n2"):
            job = make_job(
                org, program, scenario, world.a.locations[code], shopper=worker, status="published"
            )
            am.Payable.objects.create(
                organization=org,
                assignment=job,
                shopper=worker,
                fee=Decimal("25.00"),
                reimbursement=Decimal("4.00"),
                status=am.Payable.Status.PAYABLE,
                approved_at=timezone.now(),
            )

    login(page, "admin@acme.test", PASSWORD)
    page.wait_for_url(lambda url: "/login/" not in url)
    page.goto("/audits/shoppers/")
    page.get_by_test_id("status-applied").click()
    page.get_by_role("link", name="Nina Applicant").click()
    page.wait_for_url(f"**/audits/shoppers/{applicant.pk}/")
    page.get_by_test_id("approve").click()
    page.wait_for_selector("[data-testid=shopper-status]:has-text('Approved')")
    with tenant_context(org):
        assert am.Shopper.objects.get(pk=applicant.pk).user_id is not None

    page.goto("/audits/shoppers/payments/")
    assert page.get_by_test_id("payable-row").count() == 2
    page.get_by_test_id("export").click()
    page.wait_for_selector("[data-testid=batch-row]")
    with page.expect_download() as download:
        page.get_by_test_id("batch-csv").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    assert text.count("Sam Shopper") == 2 and "29.00" in text
    page.get_by_test_id("mark-paid").click()
    page.wait_for_selector("text=is marked paid")
    with tenant_context(org):
        assert set(am.Payable.objects.values_list("status", flat=True)) == {am.Payable.Status.PAID}
