"""Experience x CRM: "customers whose purchase was under 100 rated Greeting 2.0/5 vs 4.3/5 for the
rest", on constructed data — selector, API and scope."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alignment.customer_selectors import ComparisonQueryError, customer_comparison, parse_comparison_query
from cem import models as m
from cem.tenancy import tenant_context
from feedback.selectors import Caller
from tests import factories as f
from tests.alignment.business_data import COMPARISONS, Survey, customer, purchase


@pytest.fixture
def greeting(world):
    """Greeting (a 1-5 rating): three customers buying under 100 rated it 2, three buying more rated
    it 4, 4 and 5; plus answers that belong to neither side or fall outside the period."""
    t = world.a
    standard = f.StandardFactory(organization=t.org, code="acme-greet", title="Greeting")
    survey = Survey(t, standard)
    small = [customer(t, f"acme-small-{i}") for i in range(3)]
    big = [customer(t, f"acme-big-{i}") for i in range(3)]
    for i, c in enumerate(small):
        purchase(t, c, 40 + 10 * i, days_ago=5)
        survey.answer(c, 2)
    for c, rating, amount in zip(big, (4, 4, 5), (150, 300, 100), strict=True):
        purchase(t, c, amount, days_ago=5)
        survey.answer(c, rating)
    # Two purchases of 60: average 60 (under 100), total 120 (not under 100).
    split = customer(t, "acme-split")
    purchase(t, split, 60, days_ago=4)
    purchase(t, split, 60, days_ago=6)
    survey.answer(split, 3, store="a-s1")
    # Neither side: an anonymous answer, a customer with no purchase in the period.
    survey.answer(None, 1)
    lapsed = customer(t, "acme-lapsed")
    purchase(t, lapsed, 10, days_ago=400)
    survey.answer(lapsed, 1)
    # Outside the period: not counted at all.
    survey.answer(small[0], 5, when=timezone.now() - dt.timedelta(days=200))
    return standard, survey, small, big


def _compare(world, params, role=m.Role.ORG_ADMIN, membership=None):
    with tenant_context(world.a.org):
        query = parse_comparison_query(params, world.a.org)
        return customer_comparison(
            organization=world.a.org, caller=Caller(role=role, membership=membership), query=query
        )


def _row(result, standard):
    (row,) = [r for r in result["standards"] if r["standard"] == standard.pk]
    return row


def test_under_100_customers_rated_greeting_2_vs_4_3_for_the_rest(
    greeting, world, django_assert_max_num_queries
):
    standard, *_ = greeting
    with django_assert_max_num_queries(3):
        result = _compare(world, {"amount_lt": "100"})
    row = _row(result, standard)
    # Average purchase under 100: the three small buyers (2, 2, 2) and acme-split (3).
    assert (row["group"]["n"], row["group"]["native_mean"]) == (4, 2.25)
    # 100 or more: 4, 4, 5 → 4.33.
    assert (row["rest"]["n"], row["rest"]["native_mean"], row["rest"]["text"]) == (3, 4.33, "4.3/5")
    assert row["unmatched"] == {"n": 2}
    assert row["text"] == (
        "Customers whose average purchase was under 100: Greeting 2.2/5 (n=4) vs 4.3/5 (n=3) for the rest"
    )
    # On 0-100: (2.25 - 1) / 4 = 31.25 vs (4.33 - 1) / 4 = 83.33 → -52.1, with a Welch interval.
    assert row["group"]["mean"] == 31.2 and row["rest"]["mean"] == 83.3
    assert row["difference"]["points"] == -52.1
    assert row["difference"]["low"] < -52.1 < row["difference"]["high"] < 0
    assert row["enough_data"] is False  # 4 and 3 answers, under the minimum sample of 30


def test_the_basis_changes_who_is_under_the_threshold(greeting, world):
    standard, *_ = greeting
    row = _row(_compare(world, {"amount_lt": "100", "basis": "total"}), standard)
    # acme-split spent 120 in total: now with the rest.
    assert (row["group"]["n"], row["group"]["text"]) == (3, "2.0/5")
    assert (row["rest"]["n"], row["rest"]["native_mean"]) == (4, 4.0)
    assert row["text"].startswith(
        "Customers whose total spend was under 100: Greeting 2.0/5 (n=3) vs 4.0/5 (n=4)"
    )
    row = _row(_compare(world, {"amount_lt": "50", "basis": "max"}), standard)
    assert (row["group"]["n"], row["rest"]["n"]) == (1, 6)  # only the 40 buyer's largest purchase is under 50


def test_a_period_without_the_purchases_leaves_everyone_unmatched(greeting, world):
    standard, *_ = greeting
    long_ago = (timezone.now().date() - dt.timedelta(days=300)).isoformat()
    recent = (timezone.now().date() - dt.timedelta(days=100)).isoformat()
    row = _row(_compare(world, {"from": long_ago, "to": recent}), standard)
    assert (row["group"]["n"], row["rest"]["n"], row["unmatched"]["n"]) == (0, 0, 1)
    assert row["group"]["text"] == "no answers" and row["difference"]["points"] is None


def test_segment_split(greeting, world):
    standard, _survey, small, _big = greeting
    segment = f.SegmentFactory(organization=world.a.org, name="acme thrifty", rule=[])
    with tenant_context(world.a.org):
        m.Customer.objects.filter(pk__in=[c.pk for c in small]).update(segment=segment)
    row = _row(_compare(world, {"split": "segment", "segment": str(segment.pk)}), standard)
    assert (row["group"]["n"], row["group"]["text"]) == (3, "2.0/5")
    assert row["rest"]["n"] == 5 and row["unmatched"]["n"] == 1  # the anonymous answer
    assert row["text"].startswith("Customers in acme thrifty: Greeting 2.0/5 (n=3) vs")


def test_mixed_scales_fall_back_to_points(greeting, world):
    standard, _survey, small, _big = greeting
    nps = Survey(world.a, standard, name="acme nps survey", qtype="nps")
    nps.answer(small[0], 10)
    row = _row(_compare(world, {}), standard)
    # 2, 2, 2 and 3 on 1-5 (25, 25, 25, 50) and 10 on 0-10 (100): 45 on 0-100, no common scale.
    assert row["group"]["text"] == "45/100" and "native_mean" not in row["group"]


def test_a_store_manager_compares_only_their_store(greeting, world):
    standard, *_ = greeting
    with tenant_context(world.a.org):
        manager = m.Membership.objects.get(user=world.users["manager"])
    row = _row(_compare(world, {}, role=m.Role.STORE_MANAGER, membership=manager), standard)
    assert row["group"]["n"] == 3  # acme-split answered at a-s1


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"amount_lt": "abc"}, "amount_lt"),
        ({"amount_lt": "-5"}, "amount_lt"),
        ({"basis": "median"}, "basis"),
        ({"split": "age"}, "split"),
        ({"split": "segment"}, "segment"),
        ({"split": "segment", "segment": "999999"}, "segment"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
        ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
        ({"to": "tomorrow"}, "to"),
        ({"standard": "1,x"}, "standard"),
    ],
)
def test_bad_parameters_name_the_parameter(world, params, param):
    with tenant_context(world.a.org), pytest.raises(ComparisonQueryError) as exc:
        parse_comparison_query(params, world.a.org)
    assert exc.value.param == param


def test_api_list_and_one_standard(greeting, world, api):
    standard, *_ = greeting
    client = api(key=world.a.api_key)
    body = client.get(COMPARISONS, {"amount_lt": "100"}).json()
    assert body["group_label"] == "Customers whose average purchase was under 100"
    assert [r["title"] for r in body["standards"]] == ["Greeting"]
    one = client.get(f"{COMPARISONS}{standard.pk}/", {"amount_lt": "100", "basis": "total"})
    assert one.status_code == 200 and one.json()["standards"][0]["group"]["n"] == 3
    bad = client.get(COMPARISONS, {"amount_lt": "lots"})
    assert bad.status_code == 400 and "amount_lt" in bad.json()
    # Managers read their scope; org B gets nothing of A.
    manager = api(world.users["manager"]).get(COMPARISONS).json()
    assert manager["standards"][0]["group"]["n"] == 3
    outsider = api(world.users["outsider"])
    assert outsider.get(f"{COMPARISONS}{standard.pk}/").status_code == 404
    assert outsider.get(COMPARISONS).json()["standards"] == []
    assert api(world.users["employee"]).get(COMPARISONS).status_code == 403
