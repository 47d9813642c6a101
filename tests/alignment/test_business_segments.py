"""Segment rules on CRM data: validation naming the field, evaluation, one segment per customer in
precedence order, idempotent apply, and the /api/v1/segment-rules/ routes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from alignment import business
from cem import models as m
from cem.principals import Actor
from cem.tenancy import tenant_context
from tests import factories as f
from tests.alignment.business_data import SEGMENT_RULES, customer, purchase


@pytest.fixture
def crm(world):
    """Four customers with known purchase histories (amounts, days ago)."""
    t = world.a
    people = {
        "big": customer(t, "acme-big", locale="es", consent_email=True),
        "small": customer(t, "acme-small", locale="en"),
        "lapsed": customer(t, "acme-lapsed", locale="en"),
        "none": customer(t, "acme-none", locale="en", opted_out_at=timezone.now()),
    }
    purchase(t, people["big"], 400, days_ago=2)
    purchase(t, people["big"], 300, days_ago=20)
    purchase(t, people["big"], 500, days_ago=200)
    purchase(t, people["small"], 20, days_ago=1)
    purchase(t, people["small"], 30, days_ago=10)
    purchase(t, people["lapsed"], 90, days_ago=120)
    return people


def _matches(world, rule) -> set[str]:
    with tenant_context(world.a.org):
        qs = business.rule_matches(organization=world.a.org, rule=rule)
        return set(
            qs.filter(external_id__startswith="acme-")
            .exclude(external_id="acme-cust-1")
            .values_list("external_id", flat=True)
        )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ([{"field": "total_spend", "op": "gte", "value": 1000}], {"acme-big"}),
        ([{"field": "lifetime_value", "op": "lt", "value": 100}], {"acme-small", "acme-lapsed", "acme-none"}),
        ([{"field": "total_spend_30d", "op": "gt", "value": 0}], {"acme-big", "acme-small"}),
        ([{"field": "total_spend_30d", "op": "eq", "value": 700}], {"acme-big"}),
        ([{"field": "transactions_count", "op": "eq", "value": 0}], {"acme-none"}),
        ([{"field": "transactions_count_90d", "op": "gte", "value": 2}], {"acme-big", "acme-small"}),
        ([{"field": "average_purchase", "op": "lt", "value": 100}], {"acme-small", "acme-lapsed"}),
        ([{"field": "average_purchase_30d", "op": "gte", "value": 350}], {"acme-big"}),
        ([{"field": "last_purchase_amount", "op": "lt", "value": 50}], {"acme-small"}),
        ([{"field": "last_purchase_amount", "op": "ne", "value": 20}], {"acme-big", "acme-lapsed"}),
        ([{"field": "days_since_last_purchase", "op": "gt", "value": 90}], {"acme-lapsed"}),
        ([{"field": "days_since_last_purchase", "op": "lte", "value": 1}], {"acme-small"}),
        ([{"field": "days_since_last_purchase", "op": "in", "value": [2, 120]}], {"acme-big", "acme-lapsed"}),
        (
            [
                {
                    "field": "first_purchase_on",
                    "op": "lt",
                    "value": (dt.date.today() - dt.timedelta(days=100)).isoformat(),
                }
            ],
            {"acme-big", "acme-lapsed"},
        ),
        ([{"field": "locale", "op": "in", "value": ["es", "fr"]}], {"acme-big"}),
        ([{"field": "locale", "op": "ne", "value": "es"}], {"acme-small", "acme-lapsed", "acme-none"}),
        ([{"field": "consent_email", "op": "eq", "value": True}], {"acme-big"}),
        ([{"field": "opted_out", "op": "eq", "value": "true"}], {"acme-none"}),
        ([{"field": "opted_out", "op": "ne", "value": True}], {"acme-big", "acme-small", "acme-lapsed"}),
        (
            [
                {"field": "total_spend", "op": "lt", "value": 100},
                {"field": "transactions_count", "op": "gte", "value": 1},
                {"field": "locale", "op": "eq", "value": "en"},
            ],
            {"acme-small", "acme-lapsed"},
        ),
    ],
)
def test_rules_evaluate_on_crm_data(crm, world, rule, expected):
    assert _matches(world, rule) == expected


def test_rule_evaluation_is_one_query(crm, world, django_assert_num_queries):
    rule = [
        {"field": "total_spend_30d", "op": "gt", "value": 0},
        {"field": "days_since_last_purchase", "op": "lt", "value": 30},
        {"field": "average_purchase", "op": "gte", "value": 10},
    ]
    with tenant_context(world.a.org), django_assert_num_queries(1):
        assert business.rule_matches(organization=world.a.org, rule=rule).count() == 2


@pytest.mark.parametrize(
    ("rule", "key", "fragment"),
    [
        ("spend > 10", "rule", "list"),
        ([{"field": "shoe_size", "op": "eq", "value": 1}], "rule[0].field", "Unknown field 'shoe_size'"),
        ([{"field": "total_spend_0d", "op": "gt", "value": 1}], "rule[0].field", "Unknown field"),
        ([{"field": "total_spend_99999d", "op": "gt", "value": 1}], "rule[0].field", "Unknown field"),
        ([{"field": "total_spend", "op": "between", "value": 1}], "rule[0].op", "'total_spend' takes op"),
        ([{"field": "locale", "op": "gt", "value": "en"}], "rule[0].op", "'locale' takes op eq, ne, in"),
        ([{"field": "consent_sms", "op": "in", "value": [True]}], "rule[0].op", "'consent_sms'"),
        (
            [{"field": "total_spend", "op": "lt", "value": "a lot"}],
            "rule[0].value",
            "'total_spend': must be a number",
        ),
        ([{"field": "total_spend", "op": "lt", "value": True}], "rule[0].value", "must be a number"),
        ([{"field": "transactions_count", "op": "gt", "value": -1}], "rule[0].value", "whole number"),
        ([{"field": "first_purchase_on", "op": "gt", "value": "last year"}], "rule[0].value", "ISO date"),
        ([{"field": "locale", "op": "in", "value": []}], "rule[0].value", "list of 1 to 100"),
        ([{"field": "opted_out", "op": "eq", "value": "maybe"}], "rule[0].value", "true or false"),
        ([{"field": "total_spend", "op": "lt"}], "rule[0].value", "required"),
        ([{"field": "total_spend", "op": "lt", "value": 1, "weight": 2}], "rule[0]", "Unknown key"),
        ([{"field": "total_spend", "op": "lt", "value": 1}, "x"], "rule[1]", "object"),
    ],
)
def test_bad_rules_name_the_condition_and_field(rule, key, fragment):
    with pytest.raises(ValidationError) as exc:
        business.rule_validate(rule)
    assert key in exc.value.message_dict, exc.value.message_dict
    assert fragment in " ".join(exc.value.message_dict[key])


def test_rule_values_are_stored_canonically():
    assert business.rule_validate(
        [
            {"field": "total_spend", "op": "gte", "value": "100.00"},
            {"field": "average_purchase", "op": "lt", "value": 49.5},
            {"field": "locale", "op": "in", "value": "en, es"},
            {"field": "consent_email", "op": "eq", "value": "yes"},
        ]
    ) == [
        {"field": "total_spend", "op": "gte", "value": 100},
        {"field": "average_purchase", "op": "lt", "value": 49.5},
        {"field": "locale", "op": "in", "value": ["en", "es"]},
        {"field": "consent_email", "op": "eq", "value": True},
    ]


def _segment(world, name, rule):
    return f.SegmentFactory(organization=world.a.org, name=name, rule=rule)


def _members(world, segment) -> set[str]:
    with tenant_context(world.a.org):
        return set(m.Customer.objects.filter(segment=segment).values_list("external_id", flat=True))


def test_apply_gives_each_customer_the_first_matching_segment_and_is_idempotent(crm, world):
    org = world.a.org
    # Precedence = creation order: "recent" (first) wins over "small spenders" for acme-small.
    recent = _segment(world, "acme recent", [{"field": "days_since_last_purchase", "op": "lte", "value": 30}])
    small = _segment(world, "acme small spenders", [{"field": "total_spend", "op": "lt", "value": 100}])
    manual = f.SegmentFactory(organization=org, name="acme vip (by hand)", rule=[])
    with tenant_context(org):
        m.Customer.objects.filter(external_id="acme-lapsed").update(segment=manual)
        outcome = business.segment_assign(organization=org, actor=Actor.system(), segment=small)
    # acme-small matches both: the earlier segment is theirs; acme-lapsed is managed by hand.
    assert _members(world, small) == {"acme-none", "acme-cust-1"}
    assert _members(world, recent) == {"acme-small"}
    assert _members(world, manual) == {"acme-lapsed"}
    assert (outcome["members"], outcome["added"], outcome["removed"]) == (2, 2, 0)

    with tenant_context(org):
        again = business.segment_assign(organization=org, actor=Actor.system(), segment=small)
        events = m.OutboxEvent.objects.filter(event_type="CustomerSegmentsAssigned").count()
        logs = m.AuditLog.objects.filter(action="segment.assign").count()
    assert (again["added"], again["removed"], again["changed"]) == (0, 0, 0)
    assert events == 1 and logs == 2

    # acme-none buys a lot: applying the segment again takes them out.
    purchase(world.a, crm["none"], 250, days_ago=100)
    with tenant_context(org):
        out = business.segment_assign(organization=org, actor=Actor.system(), segment=small)
    assert out["removed"] == 1 and _members(world, small) == {"acme-cust-1"}


def test_apply_moves_a_leaver_to_their_next_matching_segment(crm, world):
    org = world.a.org
    spenders = _segment(world, "acme spenders", [{"field": "total_spend", "op": "gte", "value": 1000}])
    buyers = _segment(world, "acme buyers", [{"field": "transactions_count", "op": "gte", "value": 1}])
    with tenant_context(org):
        business.segment_assign(organization=org, actor=Actor.system(), segment=spenders)
        assert _members(world, spenders) == {"acme-big"}
        spenders.rule = [{"field": "total_spend", "op": "gte", "value": 5000}]
        spenders.save()
        out = business.segment_assign(organization=org, actor=Actor.system(), segment=spenders)
    assert out["removed"] == 1 and _members(world, buyers) == {"acme-big"}


def test_apply_refuses_a_segment_without_a_rule_or_with_a_bad_one(world):
    org = world.a.org
    manual = f.SegmentFactory(organization=org, name="acme manual", rule=[])
    broken = f.SegmentFactory(
        organization=org, name="acme broken", rule=[{"field": "plan", "op": "eq", "value": "x"}]
    )
    with tenant_context(org):
        with pytest.raises(ValidationError) as exc:
            business.segment_assign(organization=org, actor=Actor.system(), segment=manual)
        assert "rule" in exc.value.message_dict
        with pytest.raises(ValidationError) as exc:
            business.segment_assign(organization=org, actor=Actor.system(), segment=broken)
        assert "rule[0].field" in exc.value.message_dict


# --- API ---------------------------------------------------------------------------------------------


def test_segment_rules_api_update_validate_and_apply(crm, world, api):
    seg = f.SegmentFactory(organization=world.a.org, name="acme low spenders", rule=[])
    admin = api(world.users["admin"])
    bad = admin.patch(
        f"{SEGMENT_RULES}{seg.pk}/", {"rule": [{"field": "shoe", "op": "eq", "value": 1}]}, format="json"
    )
    assert bad.status_code == 400 and "rule[0].field" in bad.json()
    bad = admin.patch(
        f"{SEGMENT_RULES}{seg.pk}/",
        {"rule": [{"field": "total_spend", "op": "lt", "value": "x"}]},
        format="json",
    )
    assert bad.status_code == 400 and bad.json() == {
        "rule[0].value": ["Field 'total_spend': must be a number."]
    }
    ok = admin.patch(
        f"{SEGMENT_RULES}{seg.pk}/",
        {"rule": [{"field": "total_spend", "op": "lt", "value": "100"}]},
        format="json",
    )
    assert ok.status_code == 200, ok.content
    assert ok.json()["rule"] == [{"field": "total_spend", "op": "lt", "value": 100}]
    assert ok.json()["precedence"] == 1
    applied = admin.post(f"{SEGMENT_RULES}{seg.pk}/apply/", {}, format="json")
    assert applied.status_code == 200 and applied.json()["members"] == 4  # small, lapsed, none, cust-1
    listed = admin.get(SEGMENT_RULES).json()["results"]
    assert [(s["name"], s["members"]) for s in listed if s["id"] == seg.pk] == [("acme low spenders", 4)]
    # Managers read the rules but cannot change or apply them.
    manager = api(world.users["manager"])
    assert manager.get(SEGMENT_RULES).status_code == 200
    assert manager.post(f"{SEGMENT_RULES}{seg.pk}/apply/", {}, format="json").status_code == 403
    assert manager.patch(f"{SEGMENT_RULES}{seg.pk}/", {"rule": []}, format="json").status_code == 403
    # Org B cannot see or apply org A's segment.
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{SEGMENT_RULES}{seg.pk}/").status_code == 404
    assert outsider.post(f"{SEGMENT_RULES}{seg.pk}/apply/", {}, format="json").status_code == 404


def test_segment_rules_list_query_count(world, api, django_assert_max_num_queries):
    for i in range(12):
        f.SegmentFactory(organization=world.a.org, name=f"acme seg {i}")
    client = api(world.users["admin"])
    client.get(SEGMENT_RULES)  # the session's first request sets it up
    with django_assert_max_num_queries(10):
        resp = client.get(SEGMENT_RULES)
    assert resp.status_code == 200 and resp.json()["count"] == 12
