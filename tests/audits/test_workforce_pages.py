"""Workforce pages (/audits/shoppers/): applications, profiles, payments; rating on the review page."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from audits import models as am
from cem import models as m
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_workforce import make_job, make_program, make_shopper

S = am.Assignment.Status
P = am.Payable.Status


class WP:
    def __init__(self, world):
        self.world = world
        self.org = world.a.org
        self.program, self.scenario = make_program(self.org)
        self.shopper = make_shopper(
            self.org,
            email="shopper@acme.test",
            name="Sam Shopper",
            user=world.users["shopper"],
            certify_program=self.program,
        )
        self.applicant = make_shopper(
            self.org, email="new@acme.test", name="Nina Applicant", status=am.Shopper.Status.APPLIED
        )

    def job(self, location="a-n1", **fields):
        return make_job(self.org, self.program, self.scenario, self.world.a.locations[location], **fields)

    def reload(self, obj):
        with tenant_context(self.org):
            return type(obj).objects.get(pk=obj.pk)

    def paid_job(self, *, location="a-n1", shopper=None, status=P.PAYABLE, batch=None, score=4):
        shopper = shopper or self.shopper
        job = self.job(location, shopper=shopper, status=S.PUBLISHED, submitted_at=timezone.now())
        with tenant_context(self.org):
            am.ShopperRating.objects.create(
                organization=self.org,
                shopper=shopper,
                assignment=job,
                score=score,
                comment=f"acme note {job.pk}",
            )
            am.Payable.objects.create(
                organization=self.org,
                assignment=job,
                shopper=shopper,
                fee=Decimal("25.00"),
                reimbursement=Decimal("5.00"),
                status=status,
                approved_at=timezone.now(),
                batch=batch,
                paid_at=timezone.now() if status == P.PAID else None,
            )
        return job


@pytest.fixture
def wp(world):
    return WP(world)


def test_navigation_and_list_filters_by_status(wp, client, django_assert_max_num_queries):
    client.force_login(wp.world.users["admin"])
    for i in range(8):
        make_shopper(wp.org, email=f"applicant{i}@acme.test", status=am.Shopper.Status.APPLIED)
    with django_assert_max_num_queries(14):
        resp = client.get("/audits/shoppers/")
    html = resp.content.decode()
    assert resp.status_code == 200 and 'href="/audits/shoppers/"' in html
    assert "Nina Applicant" in html and "Sam Shopper" in html
    html = client.get("/audits/shoppers/?status=applied").content.decode()
    assert "Nina Applicant" in html and "Sam Shopper" not in html
    assert html.count('data-testid="shopper-row"') == 9
    html = client.get("/audits/shoppers/?q=nina").content.decode()
    assert html.count('data-testid="shopper-row"') == 1
    # Evaluators read the workforce; store managers have no shoppers.view and no link.
    client.force_login(wp.world.users["evaluator"])
    assert client.get("/audits/shoppers/").status_code == 200
    client.force_login(wp.world.users["manager"])
    assert client.get("/audits/shoppers/").status_code == 403
    assert 'href="/audits/shoppers/"' not in client.get("/audits/results/").content.decode()


def test_application_detail_approve_and_reject_with_reason(wp, client):
    client.force_login(wp.world.users["admin"])
    url = f"/audits/shoppers/{wp.applicant.pk}/"
    html = client.get(url).content.decode()
    assert 'data-testid="approve"' in html and 'data-testid="reject"' in html
    resp = client.post(f"{url}reject/", {"reason": " "}, follow=True)
    assert "This field is required." in resp.content.decode()
    assert wp.reload(wp.applicant).status == am.Shopper.Status.APPLIED
    resp = client.post(f"{url}reject/", {"reason": "Outside our area"}, follow=True)
    assert wp.reload(wp.applicant).status == am.Shopper.Status.REJECTED
    assert "Outside our area" in resp.content.decode()
    client.post(f"{url}approve/", {"reason": "Moved into the area"})
    applicant = wp.reload(wp.applicant)
    assert applicant.status == am.Shopper.Status.APPROVED and applicant.user_id is not None
    with tenant_context(wp.org):
        assert m.Membership.objects.filter(user_id=applicant.user_id, role=m.Role.SHOPPER).exists()
    # Evaluators see applications but do not decide on them.
    other = make_shopper(wp.org, email="later@acme.test", status=am.Shopper.Status.APPLIED)
    client.force_login(wp.world.users["evaluator"])
    html = client.get(f"/audits/shoppers/{other.pk}/").content.decode()
    assert 'data-testid="approve"' not in html
    assert client.post(f"/audits/shoppers/{other.pk}/approve/").status_code == 403
    assert wp.reload(other).status == am.Shopper.Status.APPLIED


def test_shopper_page_shows_certifications_blocks_lockouts_ratings_jobs_payments(wp, client):
    with tenant_context(wp.org):
        am.Certification.objects.create(
            organization=wp.org,
            shopper=wp.shopper,
            program=make_program(wp.org, name="acme old programme")[0],
            passed_at=timezone.now() - dt.timedelta(days=400),
            expires_at=timezone.now() - dt.timedelta(days=35),
            score=Decimal(85),
        )
        am.LocationBlock.objects.create(
            organization=wp.org,
            shopper=wp.shopper,
            location=wp.world.a.locations["a-s1"],
            reason="Recognised",
        )
    job = wp.paid_job(location="a-n2", score=3)
    client.force_login(wp.world.users["admin"])
    html = client.get(f"/audits/shoppers/{wp.shopper.pk}/").content.decode()
    assert "acme old programme" in html and "expired" in html
    assert "Blocked: Recognised" in html
    assert "90-day lockout" in html and wp.world.a.locations["a-n2"].name in html
    assert f"acme note {job.pk}" in html and "3 / 5" in html
    assert 'data-testid="payables"' in html and "30.00" in html


def test_shoppers_see_only_their_own_profile_without_ratings(wp, client, world):
    wp.paid_job()
    other = make_shopper(wp.org, email="other@acme.test", name="Olga Other")
    client.force_login(world.users["shopper"])
    html = client.get("/audits/shoppers/").content.decode()
    assert "Sam Shopper" in html and "Olga Other" not in html and "Nina Applicant" not in html
    html = client.get(f"/audits/shoppers/{wp.shopper.pk}/").content.decode()
    assert "acme note" not in html and 'data-testid="ratings"' not in html
    assert 'data-testid="approve"' not in html and 'data-testid="payables"' in html
    assert client.get(f"/audits/shoppers/{other.pk}/").status_code == 404
    assert client.post(f"/audits/shoppers/{other.pk}/approve/").status_code == 403


def test_payments_page_exports_a_batch_and_marks_it_paid_once(wp, client, django_assert_max_num_queries):
    for i in range(6):
        wp.paid_job(location=["a-n1", "a-n2", "a-s1"][i % 3])
    pending = wp.job("a-n1", shopper=wp.shopper, status=S.SUBMITTED)
    with tenant_context(wp.org):
        am.Payable.objects.create(
            organization=wp.org, assignment=pending, shopper=wp.shopper, fee=Decimal(25)
        )
    client.force_login(wp.world.users["admin"])
    with django_assert_max_num_queries(14):
        resp = client.get("/audits/shoppers/payments/")
    html = resp.content.decode()
    assert html.count('data-testid="payable-row"') == 6
    assert 'data-testid="export"' in html
    resp = client.post("/audits/shoppers/payments/export/", follow=True)
    assert "6 items, 180.00 in total" in resp.content.decode()
    with tenant_context(wp.org):
        batch = am.PaymentBatch.objects.get()
        assert am.Payable.objects.filter(batch=batch).count() == 6
        assert am.Payable.objects.get(assignment=pending).batch_id is None
    resp = client.get(f"/audits/shoppers/payments/batches/{batch.pk}/csv/")
    rows = list(csv.reader(io.StringIO(resp.content.decode())))
    assert resp.status_code == 200 and len(rows) == 7 and rows[1][1] == "Sam Shopper"
    resp = client.post(f"/audits/shoppers/payments/batches/{batch.pk}/paid/", follow=True)
    assert "is marked paid" in resp.content.decode()
    paid_at = wp.reload(batch).paid_at
    resp = client.post(f"/audits/shoppers/payments/batches/{batch.pk}/paid/", follow=True)
    assert "already marked paid" in resp.content.decode()
    assert wp.reload(batch).paid_at == paid_at
    with tenant_context(wp.org):
        assert am.Payable.objects.filter(status=P.PAID).count() == 6
    # Nothing left to export: a message, no empty batch.
    resp = client.post("/audits/shoppers/payments/export/", follow=True)
    assert "Nothing is payable" in resp.content.decode()


def test_payments_page_for_shoppers_lists_only_their_own(wp, client, world):
    wp.paid_job()
    user = f.UserFactory(username="other@acme.test", email="other@acme.test")
    f.MembershipFactory(organization=wp.org, user=user, role=m.Role.SHOPPER)
    other = make_shopper(wp.org, email="other@acme.test", name="Olga Other", user=user)
    wp.paid_job(location="a-n2", shopper=other)
    client.force_login(world.users["shopper"])
    html = client.get("/audits/shoppers/payments/").content.decode()
    assert html.count('data-testid="payable-row"') == 1 and "Olga Other" not in html
    assert 'data-testid="export"' not in html
    assert client.post("/audits/shoppers/payments/export/").status_code == 403
    client.force_login(world.users["manager"])
    assert client.get("/audits/shoppers/payments/").status_code == 403


def test_review_page_rates_and_adjusts_the_reimbursement(wp, client, world):
    job = wp.job(shopper=wp.shopper, status=S.IN_PROGRESS, assigned_at=timezone.now())
    with tenant_context(wp.org):
        version = am.AuditFormVersion.objects.get(form=wp.program.form)
        audit = am.Audit.objects.create(
            organization=wp.org,
            version=version,
            assignment=job,
            location=job.location,
            visited_at=job.window_start + dt.timedelta(minutes=5),
        )
        for key, value in (("greeted", "yes"), ("wait", "20")):
            am.AuditAnswer.objects.create(
                organization=wp.org,
                audit=audit,
                item=am.FormItem.objects.get(version=version, key=key),
                value=value,
            )
        am.AuditPhoto.objects.create(
            organization=wp.org,
            audit=audit,
            item=am.FormItem.objects.get(version=version, key="receipt"),
            file_path="p.jpg",
            thumbnail_path="t.jpg",
            content_type="image/jpeg",
            size=10,
        )
    client.force_login(world.users["shopper"])
    resp = client.post(f"/audits/jobs/{job.pk}/submit/", {"reimbursement": "15"})
    assert resp.status_code == 400 and "At most 10.00" in resp.content.decode()
    resp = client.post(f"/audits/jobs/{job.pk}/submit/", {"reimbursement": "8.40"})
    assert resp.status_code == 302 and wp.reload(job).reimbursement == Decimal("8.40")
    client.force_login(world.users["evaluator"])
    html = client.get(f"/audits/jobs/review/{job.pk}/").content.decode()
    assert 'data-testid="rating"' in html and 'value="8.40"' in html
    resp = client.post(f"/audits/jobs/review/{job.pk}/approve/", {"rating": "9"}, follow=True)
    assert "whole number from 1 to 5" in resp.content.decode()
    assert wp.reload(job).status == S.SUBMITTED
    client.post(
        f"/audits/jobs/review/{job.pk}/approve/",
        {"rating": "4", "rating_comment": "Good photos", "reimbursement": "6.00"},
    )
    assert wp.reload(job).status == S.PUBLISHED
    assert wp.reload(wp.shopper).rating == Decimal("4.00")
    with tenant_context(wp.org):
        payable = am.Payable.objects.get(assignment=job)
        assert (payable.status, payable.reimbursement) == (P.PAYABLE, Decimal("6.00"))
        assert am.ShopperRating.objects.get(assignment=job).comment == "Good photos"
