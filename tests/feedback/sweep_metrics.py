"""Sweep rows for the metrics and answers routes: one response with answers in org A."""

from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback.services import Dimensions, response_record
from tests.feedback.conftest import make_survey


def populate(world):
    org = world.a.org
    survey, _, _ = make_survey(org, name="acme metrics sweep")
    with tenant_context(org):
        response_record(
            organization=org,
            actor=Actor.system(),
            survey=survey,
            values={"nps": 9, "csat": 4, "comment": "acme comment: rude cashier"},
            source="api",
            dimensions=Dimensions.from_interaction(world.a.interactions["a-n1"]),
        )
