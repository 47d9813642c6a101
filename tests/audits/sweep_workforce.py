"""Org A rows behind the shopper and job routes (``/api/v1/shoppers/``, ``/api/v1/assignments/``).

Also the builders the workforce tests share: a minimal form, programme and scenario, a shopper.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from audits import models as am
from cem.tenancy import tenant_context


def make_program(org, *, name="acme shop programme", **program_fields):
    """A one-version form (yes/no, time with a plausible max, text, photo) and its programme."""
    with tenant_context(org):
        form = am.AuditForm.objects.create(organization=org, name=f"{name} form", kind="mystery_shop")
        version = am.AuditFormVersion.objects.create(organization=org, form=form, number=1)
        section = am.FormSection.objects.create(
            organization=org, version=version, key="visit", title={"en": "Visit"}
        )
        common = {"organization": org, "version": version, "section": section}
        am.FormItem.objects.create(
            **common, key="greeted", position=1, type="yes_no", text={"en": "Greeted?"}
        )
        am.FormItem.objects.create(
            **common,
            key="wait",
            position=2,
            type="time",
            text={"en": "Seconds waited"},
            target_max=Decimal(60),
            plausible_max=Decimal(1800),
        )
        am.FormItem.objects.create(
            **common, key="notes", position=3, type="text", required=False, text={"en": "Notes"}
        )
        am.FormItem.objects.create(**common, key="receipt", position=4, type="photo", text={"en": "Receipt"})
        program = am.Program.objects.create(
            organization=org, name=name, kind="mystery_shop", form=form, **program_fields
        )
        scenario = am.Scenario.objects.create(
            organization=org, program=program, title=f"{name} scenario", instructions="Buy a coffee."
        )
    return program, scenario


def make_shopper(org, *, email, user=None, status=am.Shopper.Status.APPROVED, certify_program=None, **fields):
    with tenant_context(org):
        shopper = am.Shopper.objects.create(
            organization=org,
            name=fields.pop("name", email.split("@")[0]),
            email=email,
            user=user,
            status=status,
            consent_at=timezone.now(),
            **fields,
        )
        if certify_program is not None:
            am.Certification.objects.create(
                organization=org,
                shopper=shopper,
                program=certify_program,
                passed_at=timezone.now(),
                expires_at=timezone.now() + dt.timedelta(days=365),
                score=Decimal(90),
            )
    return shopper


def make_job(org, program, scenario, location, *, start=None, hours=48, **fields):
    start = start or timezone.now() - dt.timedelta(hours=1)
    with tenant_context(org):
        return am.Assignment.objects.create(
            organization=org,
            program=program,
            scenario=scenario,
            location=location,
            window_start=start,
            window_end=start + dt.timedelta(hours=hours),
            fee=Decimal("25.00"),
            reimbursement_cap=Decimal("10.00"),
            **fields,
        )


def populate(world) -> None:
    org = world.a.org
    program, scenario = make_program(org, name="acme sweep programme")
    shopper = make_shopper(org, email="acme-shopper@acme.test", name="acme shopper", certify_program=program)
    make_job(org, program, scenario, world.a.locations["a-n1"], status_reason="acme open job")
    make_job(
        org,
        program,
        scenario,
        world.a.locations["a-n2"],
        shopper=shopper,
        status=am.Assignment.Status.ASSIGNED,
        assigned_at=timezone.now(),
        status_reason="acme taken job",
    )
    done = make_job(
        org,
        program,
        scenario,
        world.a.locations["a-s1"],
        shopper=shopper,
        status=am.Assignment.Status.PUBLISHED,
        assigned_at=timezone.now(),
        submitted_at=timezone.now(),
        status_reason="acme paid job",
    )
    with tenant_context(org):
        am.ShopperRating.objects.create(
            organization=org, shopper=shopper, assignment=done, score=4, comment="acme"
        )
        batch = am.PaymentBatch.objects.create(
            organization=org, reference="acme-batch", item_count=1, total=Decimal("25.00")
        )
        am.Payable.objects.create(
            organization=org,
            assignment=done,
            shopper=shopper,
            fee=Decimal("25.00"),
            currency="EUR",
            status=am.Payable.Status.PAYABLE,
            approved_at=timezone.now(),
            batch=batch,
        )
