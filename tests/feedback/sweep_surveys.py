"""Org A rows behind the survey builder and responses routes, for the cross-tenant sweep."""

from cem.principals import Actor
from cem.tenancy import tenant_context
from feedback.services import Dimensions, response_record
from tests.feedback.conftest import make_survey


def populate(world):
    org = world.a.org
    survey, version, _ = make_survey(org, name="Sweep builder acme", touchpoint=world.a.touchpoint)
    interaction = world.a.interactions["a-n1"]
    with tenant_context(org):
        response_record(
            organization=org,
            actor=Actor.system(),
            survey=survey,
            version=version,
            values={"nps": 9, "comment": "acme sweep comment"},
            source="api",
            dimensions=Dimensions.from_interaction(interaction),
            interaction=interaction,
            external_id="acme-sweep-response",
        )
