"""Shopper ratings and what shoppers are owed: audits.workforce.shopper_rate, audits.payments, their API."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audits import audit_services, payments, workforce
from audits import models as am
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.audits.sweep_workforce import make_job, make_program, make_shopper

S = am.Assignment.Status
P = am.Payable.Status


class RP:
    def __init__(self, world, api):
        self.world, self.api = world, api
        self.org = world.a.org
        self.program, self.scenario = make_program(self.org)
        self.shopper = make_shopper(
            self.org,
            email="shopper@acme.test",
            name="Sam Shopper",
            phone="+44 20 7946 0000",
            user=world.users["shopper"],
            certify_program=self.program,
        )
        self.shopper_api = api(world.users["shopper"])
        self.reviewer = api(world.users["evaluator"])
        self.admin = api(world.users["admin"])

    def job(self, location="a-n1", **fields):
        return make_job(self.org, self.program, self.scenario, self.world.a.locations[location], **fields)

    def reload(self, obj):
        with tenant_context(self.org):
            return type(obj).objects.get(pk=obj.pk)

    def submitted(self, location="a-n1", *, client=None, **submit_body):
        """A job taken, filled in and submitted through the API by the shopper."""
        client = client or self.shopper_api
        job = self.job(location)
        url = f"/api/v1/assignments/{job.pk}"
        assert client.post(f"{url}/take/").status_code == 200
        assert client.post(f"{url}/start/").status_code == 200
        client.put(
            f"{url}/draft/",
            {
                "visited_at": (job.window_start + dt.timedelta(minutes=5)).isoformat(),
                "answers": [{"item": "greeted", "value": "yes"}, {"item": "wait", "value": "20"}],
            },
            format="json",
        )
        with tenant_context(self.org):
            audit = am.Audit.objects.get(assignment=job)
            am.AuditPhoto.objects.create(
                organization=self.org,
                audit=audit,
                item=am.FormItem.objects.get(version=audit.version, key="receipt"),
                file_path="p.jpg",
                thumbnail_path="t.jpg",
                content_type="image/jpeg",
                size=10,
            )
        resp = client.post(f"{url}/submit/", submit_body, format="json")
        assert resp.status_code == 200, resp.content
        return job

    def payable(self, job):
        with tenant_context(self.org):
            return am.Payable.objects.filter(assignment=job).first()


@pytest.fixture
def rp(world, api):
    return RP(world, api)


def _second_shopper(rp, email="other@acme.test", name="Olga Other"):
    user = f.UserFactory(username=email, email=email)
    f.MembershipFactory(organization=rp.org, user=user, role=m.Role.SHOPPER)
    make_shopper(rp.org, email=email, name=name, user=user, certify_program=rp.program)
    return user


# --- ratings ---------------------------------------------------------------------------------------


def test_rating_average_follows_every_rating_and_one_per_job(rp):
    first, second = rp.submitted("a-n1"), rp.submitted("a-n2")
    resp = rp.reviewer.post(
        f"/api/v1/assignments/{first.pk}/approve/", {"rating": 5, "rating_comment": "Thorough"}, format="json"
    )
    assert resp.status_code == 200, resp.content
    assert rp.reload(rp.shopper).rating == Decimal("5.00")
    resp = rp.reviewer.post(
        f"/api/v1/assignments/{second.pk}/return/", {"reason": "Add the till", "rating": 2}, format="json"
    )
    assert resp.status_code == 200, resp.content
    assert rp.reload(rp.shopper).rating == Decimal("3.50")
    # Resubmitted and approved with a better rating: the job's rating is replaced, not added.
    assert rp.shopper_api.post(f"/api/v1/assignments/{second.pk}/submit/").status_code == 200
    rp.reviewer.post(f"/api/v1/assignments/{second.pk}/approve/", {"rating": 4}, format="json")
    with tenant_context(rp.org):
        assert am.ShopperRating.objects.filter(shopper=rp.shopper).count() == 2
        assert am.ShopperRating.objects.get(assignment=second).score == 4
        assert m.AuditLog.objects.filter(action="shopper.rate").count() == 3
    assert rp.reload(rp.shopper).rating == Decimal("4.50")
    body = rp.reviewer.get(f"/api/v1/shopper-ratings/?shopper={rp.shopper.pk}").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert sorted(r["score"] for r in rows) == [4, 5]
    assert rp.admin.get(f"/api/v1/shoppers/{rp.shopper.pk}/").json()["rating"] == "4.50"


def test_only_reviewers_rate_and_only_reviewed_visits(rp, world, api):
    job = rp.submitted()
    url = f"/api/v1/assignments/{job.pk}"
    # The shopper cannot approve (so cannot rate) their own visit; a store manager cannot either.
    assert rp.shopper_api.post(f"{url}/approve/", {"rating": 5}, format="json").status_code == 403
    assert (
        api(world.users["manager"]).post(f"{url}/approve/", {"rating": 5}, format="json").status_code == 403
    )
    resp = rp.reviewer.post(f"{url}/approve/", {"rating": 6}, format="json")
    assert resp.status_code == 400 and "rating" in resp.json()
    assert rp.reload(job).status == S.SUBMITTED  # nothing happened
    with tenant_context(rp.org), pytest.raises(ValidationError) as exc:
        workforce.shopper_rate(organization=rp.org, actor=Actor.system(), assignment=rp.reload(job), score=3)
    assert "rating" in exc.value.message_dict  # a visit nobody has reviewed
    # Shoppers never see reviewers' ratings.
    rp.reviewer.post(f"{url}/approve/", {"rating": 3}, format="json")
    body = rp.shopper_api.get("/api/v1/shopper-ratings/").json()
    assert (body["results"] if isinstance(body, dict) else body) == []


# --- payables --------------------------------------------------------------------------------------


def test_payable_is_pending_at_submit_and_payable_only_after_approval(rp):
    job = rp.submitted("a-s1", reimbursement="7.50")
    payable = rp.payable(job)
    assert (payable.status, payable.fee, payable.reimbursement) == (
        P.PENDING,
        Decimal("25.00"),
        Decimal("7.50"),
    )
    assert payable.approved_at is None
    assert rp.admin.post("/api/v1/payment-batches/").status_code == 400  # pending is not payable
    resp = rp.reviewer.post(f"/api/v1/assignments/{job.pk}/approve/", {"reimbursement": "11"}, format="json")
    assert resp.status_code == 400 and "reimbursement" in resp.json()
    resp = rp.reviewer.post(
        f"/api/v1/assignments/{job.pk}/approve/", {"reimbursement": "5.00"}, format="json"
    )
    assert resp.status_code == 200, resp.content
    payable = rp.payable(job)
    assert (payable.status, payable.reimbursement, payable.total) == (
        P.PAYABLE,
        Decimal("5.00"),
        Decimal("30.00"),
    )
    assert payable.approved_at is not None
    # A rescore (a dispute accepted later) does not change what the shopper is owed.
    with tenant_context(rp.org):
        audit = am.Audit.objects.get(assignment=job)
        am.AuditAnswer.objects.filter(audit=audit, item__key="greeted").update(value="no")
        audit_services.audit_score_compute(organization=rp.org, actor=Actor.system(), audit=audit)
    after = rp.payable(job)
    assert (after.status, after.fee, after.reimbursement) == (P.PAYABLE, Decimal("25.00"), Decimal("5.00"))


def test_claim_above_the_cap_is_refused_naming_the_field(rp):
    job = rp.job()
    url = f"/api/v1/assignments/{job.pk}"
    rp.shopper_api.post(f"{url}/take/")
    rp.shopper_api.post(f"{url}/start/")
    rp.shopper_api.put(
        f"{url}/draft/",
        {
            "visited_at": (job.window_start + dt.timedelta(minutes=5)).isoformat(),
            "answers": [{"item": "greeted", "value": "yes"}, {"item": "wait", "value": "20"}],
        },
        format="json",
    )
    resp = rp.shopper_api.post(f"{url}/submit/", {"reimbursement": "10.01"}, format="json")
    assert resp.status_code == 400
    assert "reimbursement" in resp.json() and "answers.receipt" in resp.json()  # every problem at once
    assert rp.payable(job) is None


def test_rejected_and_cancelled_jobs_pay_nothing(rp):
    rejected = rp.submitted("a-n1", reimbursement="3")
    resp = rp.reviewer.post(
        f"/api/v1/assignments/{rejected.pk}/reject/", {"reason": "Wrong store", "rating": 1}, format="json"
    )
    assert resp.status_code == 200, resp.content
    assert rp.payable(rejected).status == P.CANCELLED
    open_job = rp.job("a-n2")
    assert (
        rp.admin.post(
            f"/api/v1/assignments/{open_job.pk}/cancel/", {"reason": "Closed"}, format="json"
        ).status_code
        == 200
    )
    assert rp.payable(open_job) is None
    assert rp.admin.post("/api/v1/payment-batches/").status_code == 400
    with tenant_context(rp.org):
        assert not payments.unexported().exists()


# --- export and payment ------------------------------------------------------------------------------


def test_export_csv_has_every_column_and_escapes_formulas(rp, world, api):
    with tenant_context(rp.org):
        m.Organization.objects.filter(pk=rp.org.pk).update(settings={**rp.org.settings, "currency": "eur"})
        am.Shopper.objects.filter(pk=rp.shopper.pk).update(name='=HYPERLINK("http://evil.test","x")')
        m.Location.objects.filter(pk=world.a.locations["a-n1"].pk).update(name="@SUM(A1)")
    job = rp.submitted("a-n1", reimbursement="4.25")
    rp.reviewer.post(f"/api/v1/assignments/{job.pk}/approve/")
    resp = rp.admin.post("/api/v1/payment-batches/")
    assert resp.status_code == 201, resp.content
    batch = resp.json()
    assert batch["item_count"] == 1 and batch["total"] == "29.25" and batch["paid_at"] is None
    assert rp.payable(job).batch_id == batch["id"]
    resp = rp.admin.get(f"/api/v1/payment-batches/{batch['id']}/csv/")
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.content.decode())))
    assert rows[0] == list(payments.CSV_COLUMNS)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["shopper"] == '\'=HYPERLINK("http://evil.test","x")'
    assert row["location"] == "'@SUM(A1)"
    assert row["phone"] == "'+44 20 7946 0000"
    assert row["email"] == "shopper@acme.test"
    assert row["job"] == str(job.pk) and row["program"] == rp.program.name
    assert (
        row["visit_date"] == timezone.localtime(job.window_start + dt.timedelta(minutes=5)).date().isoformat()
    )
    assert (row["fee"], row["reimbursement"], row["total"], row["currency"], row["time_zone"]) == (
        "25.00",
        "4.25",
        "29.25",
        "EUR",
        "UTC",
    )
    assert row["batch"] == batch["reference"]
    # Exported items are not exported twice.
    assert rp.admin.post("/api/v1/payment-batches/").status_code == 400


def test_export_csv_dates_visits_in_the_organizations_zone_from_the_page_and_the_api(rp, client):
    job = rp.submitted("a-n1")
    rp.reviewer.post(f"/api/v1/assignments/{job.pk}/approve/")
    with tenant_context(rp.org):
        # 03:00 UTC on the 15th is still the evening of the 14th in New York.
        am.Audit.objects.filter(assignment=job).update(
            visited_at=dt.datetime(2026, 1, 15, 3, 0, tzinfo=dt.UTC)
        )
        m.Organization.objects.filter(pk=rp.org.pk).update(time_zone="America/New_York")
    batch = rp.admin.post("/api/v1/payment-batches/").json()
    client.force_login(rp.world.users["admin"])
    for resp in (
        rp.admin.get(f"/api/v1/payment-batches/{batch['id']}/csv/"),
        client.get(f"/audits/shoppers/payments/batches/{batch['id']}/csv/"),
    ):
        rows = list(csv.reader(io.StringIO(resp.content.decode())))
        row = dict(zip(rows[0], rows[1], strict=True))
        assert (row["visit_date"], row["time_zone"]) == ("2026-01-14", "America/New_York")


def test_mark_paid_is_idempotent(rp):
    job = rp.submitted()
    rp.reviewer.post(f"/api/v1/assignments/{job.pk}/approve/")
    batch = rp.admin.post("/api/v1/payment-batches/").json()
    url = f"/api/v1/payment-batches/{batch['id']}/mark-paid/"
    first = rp.admin.post(url, HTTP_IDEMPOTENCY_KEY="pay-run-1")
    assert first.status_code == 200 and first.json()["paid_at"]
    replay = rp.admin.post(url, HTTP_IDEMPOTENCY_KEY="pay-run-1")
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    again = rp.admin.post(url)  # no key: the service itself changes nothing the second time
    assert again.status_code == 200 and again.json()["paid_at"] == first.json()["paid_at"]
    payable = rp.payable(job)
    assert payable.status == P.PAID and payable.paid_at is not None
    with tenant_context(rp.org):
        assert m.AuditLog.objects.filter(action="payment_batch.paid").count() == 1
    body = rp.shopper_api.get("/api/v1/payables/").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [(r["status"], r["batch_reference"]) for r in rows] == [("paid", batch["reference"])]


def test_payments_are_scoped_and_admin_only_writes(rp, world, api):
    mine = rp.submitted("a-n1")
    other_user = _second_shopper(rp)
    other_api = api(other_user)
    theirs = rp.submitted("a-n2", client=other_api)
    for job in (mine, theirs):
        rp.reviewer.post(f"/api/v1/assignments/{job.pk}/approve/")
    body = rp.shopper_api.get("/api/v1/payables/").json()
    rows = body["results"] if isinstance(body, dict) else body
    assert [r["assignment"] for r in rows] == [mine.pk]
    theirs_payable = rp.payable(theirs)
    assert rp.shopper_api.get(f"/api/v1/payables/{theirs_payable.pk}/").status_code == 404
    # Shoppers, reviewers and managers neither export nor pay.
    for persona in ("shopper", "evaluator", "manager"):
        assert api(world.users[persona]).post("/api/v1/payment-batches/").status_code == 403
    batch = rp.admin.post("/api/v1/payment-batches/").json()
    assert rp.shopper_api.get(f"/api/v1/payment-batches/{batch['id']}/csv/").status_code == 404
    assert rp.shopper_api.post(f"/api/v1/payment-batches/{batch['id']}/mark-paid/").status_code == 403
    assert api(world.users["evaluator"]).get("/api/v1/payables/").status_code == 403
    # Org B's admin sees none of it.
    outsider = api(world.users["outsider"])
    assert outsider.get(f"/api/v1/payables/{theirs_payable.pk}/").status_code == 404
    assert outsider.get(f"/api/v1/payment-batches/{batch['id']}/csv/").status_code == 404
    assert outsider.post(f"/api/v1/payment-batches/{batch['id']}/mark-paid/").status_code == 404
    assert rp.payable(theirs).status == P.PAYABLE


def _bulk_rows(rp, n: int):
    """n published jobs with a rating and a payable each, half of them in a batch."""
    with tenant_context(rp.org):
        batch = am.PaymentBatch.objects.create(organization=rp.org, reference="bulk")
        for i in range(n):
            job = rp.job(
                ["a-n1", "a-n2", "a-s1"][i % 3],
                shopper=rp.shopper,
                status=S.PUBLISHED,
                start=timezone.now() - dt.timedelta(days=200 + i),
            )
            am.ShopperRating.objects.create(
                organization=rp.org, shopper=rp.shopper, assignment=job, score=1 + i % 5
            )
            am.Payable.objects.create(
                organization=rp.org,
                assignment=job,
                shopper=rp.shopper,
                fee=Decimal(20),
                status=P.PAYABLE,
                approved_at=timezone.now(),
                batch=batch if i % 2 else None,
            )
        return batch


def test_lists_read_a_constant_number_of_queries(rp, django_assert_max_num_queries):
    batch = _bulk_rows(rp, 12)
    for url in ("/api/v1/payables/", "/api/v1/payment-batches/", "/api/v1/shopper-ratings/"):
        with django_assert_max_num_queries(12):
            assert rp.admin.get(url).status_code == 200
    with django_assert_max_num_queries(12):
        resp = rp.admin.get(f"/api/v1/payment-batches/{batch.pk}/csv/")
    assert resp.status_code == 200 and len(resp.content.decode().splitlines()) == 7
