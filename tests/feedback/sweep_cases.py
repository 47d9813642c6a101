"""Org A rows for the sweep: an alert rule, a case and a case note (API routes and case pages)."""

from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback import cases
from feedback.models import AlertRule
from feedback.services import Dimensions, response_record
from tests.feedback.conftest import make_survey


def populate(world) -> None:
    org = world.a.org
    survey, _, _ = make_survey(org, name="acme cases sweep")
    with tenant_context(org):
        AlertRule.objects.create(
            organization=org,
            name="acme detractors",
            condition={"question_type": "nps", "op": "lte", "value": 6},
        )
        response = response_record(
            organization=org,
            actor=Actor.system(),
            survey=survey,
            values={"nps": 1, "comment": "acme: the cashier was rude"},
            source="api",
            dimensions=Dimensions.from_interaction(world.a.interactions["a-n1"]),
        )
        # The test transaction never commits, so the ResponseReceived handler is called directly.
        [case] = cases.cases_open_for_responses(organization=org, response_ids=[response.pk])
        cases.case_add_note(
            organization=org,
            actor=Actor(user_id=world.users["manager"].pk),
            case=case,
            text="acme: called back",
        )
