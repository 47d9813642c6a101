"""Set-up for the privacy tests: a customer and an employee with data in every app, and a scan of
the whole database for a string (proof that something is really gone, or was never stored)."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from alignment import rebuild, rollups
from alignment.models import CustomerTransaction, RollupSource
from cem import models as m
from cem import privacy
from cem.models.privacy import ConsentSource
from cem.principals import Actor
from cem.tenancy import tenant_context, unscoped
from feedback import models as fm
from feedback.services import Dimensions, response_record
from incentives import ledger
from incentives.models import RewardRule
from tests.feedback.conftest import make_survey

NOW = timezone.now().replace(microsecond=0)
CUSTOMER_EMAIL = "rosalind.vexley@example.com"
CUSTOMER_PHONE = "+15550199321"
CUSTOMER_NAME = "Rosalind Vexley"
EMPLOYEE_NAME = "Jordan Quimby"
EMPLOYEE_EMAIL = "jordan.quimby@acme.test"

_TEXT_TYPES = ("text", "character varying", "json", "jsonb", "inet", "ARRAY", "USER-DEFINED", "bytea")


def db_columns_containing(needle: str) -> list[str]:
    """Every "table.column" of the database whose value contains ``needle`` (case-insensitive);
    bytes (stored API responses) are read as text."""
    hits = []
    with unscoped(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type = ANY(%s) ORDER BY 1, 2",
            [list(_TEXT_TYPES)],
        )
        columns = cursor.fetchall()
        for table, column, data_type in columns:
            value = f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f'"{column}"::text'
            cursor.execute(
                f'SELECT EXISTS (SELECT 1 FROM "{table}" WHERE {value} ILIKE %s)',
                [f"%{needle}%"],
            )
            if cursor.fetchone()[0]:
                hits.append(f"{table}.{column}")
    return hits


def ledger_check() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("ledger_check", stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, err.getvalue() + str(exc)
    except SystemExit as exc:
        return int(exc.code or 0), err.getvalue() + out.getvalue()
    return 0, out.getvalue()


def rollups_equal_rebuild(org) -> bool:
    """The incrementally kept rollup equals a rebuild from raw data, in Python and in SQL."""
    with tenant_context(org):
        python_diff = rollups.compare(org)
        sql, _timings = rebuild.check(org)
    return python_diff == {} and sql.count == 0


def zip_contents(data: bytes) -> dict[str, object]:
    import json

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: json.loads(archive.read(name)) for name in archive.namelist()}


@dataclass
class PrivacyWorld:
    world: object
    org: m.Organization
    customer: m.Customer
    employee: m.Employee
    survey: fm.Survey
    response_ids: list[int] = field(default_factory=list)
    other_response_id: int = 0
    case: fm.Case | None = None
    rule: RewardRule | None = None

    @property
    def admin(self):
        return self.world.users["admin"]

    def count(self, model, **filters) -> int:
        with tenant_context(self.org):
            return model.objects.filter(**filters).count()


def _respond(org, survey, questions, *, customer=None, employee, location, nps, comment, touchpoint, channel):
    dims = Dimensions(
        location_id=location.pk,
        channel_id=channel.pk,
        touchpoint_id=touchpoint.pk,
        employee_id=employee.pk,
        customer_id=customer.pk if customer else None,
        category=touchpoint.category,
    )
    values = {"nps": nps, "csat": 5, "comment": comment}
    return response_record(
        organization=org,
        actor=Actor.system(),
        survey=survey,
        values=values,
        source="api",
        dimensions=dims,
        questions=list(questions.values()),
    ).pk


def build(world, capture) -> PrivacyWorld:
    """Org A: a customer with responses, comments naming them and the employee, a case with notes,
    an invitation, CRM purchases and consent; the employee has a login, awards and a recognition."""
    t = world.a
    org = t.org
    location = t.locations["a-n1"]
    employee = t.employees["a-n1"]
    survey, version, questions = make_survey(org, name="Privacy visit", standard=t.standard)
    with tenant_context(org):
        m.Employee.objects.filter(pk=employee.pk).update(name=EMPLOYEE_NAME, email=EMPLOYEE_EMAIL)
        employee.refresh_from_db()
        customer = privacy.customer_create(
            organization=org,
            actor=Actor.system(),
            data={
                "external_id": "acme-cust-rv",
                "email": CUSTOMER_EMAIL,
                "phone": CUSTOMER_PHONE,
                "consent_email": True,
                "consent_sms": True,
            },
            source=ConsentSource.IMPORT,
            detail="loyalty sign-up form",
        )
        budget = ledger.budget_create(org=org, name="privacy budget")
        ledger.budget_fund(org=org, budget=budget, points=1000, note="seed")
        rule = RewardRule.objects.create(
            organization=org,
            name="promoters",
            trigger=RewardRule.Trigger.PROMOTER_RESPONSE,
            recipients=RewardRule.Recipients.NAMED_EMPLOYEE,
            points=10,
            budget=budget,
            effective_from=(NOW - dt.timedelta(days=2)).date(),
        )
    common = {
        "employee": employee,
        "location": location,
        "touchpoint": t.touchpoint,
        "channel": t.channel,
    }
    with capture(execute=True), tenant_context(org):
        ids = [
            _respond(
                org,
                survey,
                questions,
                customer=customer,
                nps=10,
                comment=f"I'm {CUSTOMER_NAME}, write to {CUSTOMER_EMAIL}. {EMPLOYEE_NAME} was great!",
                **common,
            ),
            _respond(
                org, survey, questions, customer=customer, nps=3, comment="Jordan ignored me.", **common
            ),
        ]
        other = _respond(
            org, survey, questions, nps=9, comment="Ask for Jordan, he will help; Quimby rocks", **common
        )
    with tenant_context(org):
        case = fm.Case.objects.create(
            organization=org,
            response_id=ids[1],
            title="Detractor",
            location=location,
            employee=employee,
            sla_due_at=NOW + dt.timedelta(days=1),
            customer_contact={"email": CUSTOMER_EMAIL, "phone": CUSTOMER_PHONE},
        )
        fm.CaseNote.objects.create(
            organization=org,
            case=case,
            text=f"Called {CUSTOMER_NAME} on {CUSTOMER_PHONE}; Jordan apologised.",
        )
        fm.Invitation.objects.create(
            organization=org,
            survey=survey,
            version=version,
            customer=customer,
            location=location,
            employee=employee,
            delivery_channel="email",
            token_hash=f"privacy-{customer.pk}",
            send_at=NOW + dt.timedelta(hours=1),
            expires_at=NOW + dt.timedelta(days=7),
        )
        CustomerTransaction.objects.create(
            organization=org,
            external_id="acme-tx-rv-1",
            customer=customer,
            location=location,
            occurred_on=NOW.date(),
            amount="42.50",
        )
        m.Interaction.objects.filter(pk=t.interactions["a-n1"].pk).update(
            customer=customer, attributes={"note": f"card holder {CUSTOMER_NAME}", "basket": 3}
        )
        # The world's interactions were made by factories, not ingested: count them in the rollup as
        # their InteractionRecorded handler would, so it starts equal to a rebuild.
        rollups.apply(org.pk, RollupSource.Kind.INTERACTION, [i.pk for i in t.interactions.values()])
    return PrivacyWorld(
        world=world,
        org=org,
        customer=customer,
        employee=employee,
        survey=survey,
        response_ids=ids,
        other_response_id=other,
        case=case,
        rule=rule,
    )
