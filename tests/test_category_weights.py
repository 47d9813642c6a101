"""cem.category_weights: one answer to "how much does each interaction category weigh" for every app."""

from __future__ import annotations

import pytest

from alignment.models import default_category_weights
from cem import category_weights as cw
from cem.principals import Actor
from cem.tenancy import tenant_context


def test_defaults_are_the_ones_alignment_stores_for_a_new_organization():
    assert default_category_weights() == cw.DEFAULT_WEIGHTS


@pytest.mark.parametrize(
    ("weights", "raised"),
    [
        ({"stabilizing": 1, "critical": 2, "planned": 1}, {"critical"}),
        ({"stabilizing": 1, "critical": 2, "planned": 1.5}, {"critical"}),
        ({"stabilizing": 1, "critical": 3, "planned": 3}, {"critical", "planned"}),
        ({"stabilizing": 2, "critical": 2, "planned": 2}, set()),
        ({"stabilizing": 4, "critical": 2, "planned": 1}, {"stabilizing"}),
    ],
)
def test_the_heaviest_category_raises_priority_unless_all_weigh_the_same(weights, raised):
    assert {c for c in weights if cw.raises_priority(weights, c)} == raised
    assert not cw.raises_priority(weights, "") and not cw.raises_priority({}, "critical")


def test_stored_settings_are_read_through_cem_and_defaults_fill_the_gaps(world, django_assert_num_queries):
    from alignment.score_settings import settings_update

    org = world.a.org
    with tenant_context(org):
        with django_assert_num_queries(1):
            assert cw.category_weights(org.pk) == cw.DEFAULT_WEIGHTS  # nothing stored yet
        settings_update(
            organization=org,
            actor=Actor(user_id=world.users["admin"].pk),
            data={"category_weights": {"critical": 5, "stabilizing": 1, "planned": 0.5}},
        )
        with django_assert_num_queries(1):
            assert cw.category_weights(org.pk) == {"critical": 5.0, "stabilizing": 1.0, "planned": 0.5}
    with tenant_context(world.b.org):
        assert cw.category_weights(world.b.org.pk) == cw.DEFAULT_WEIGHTS
