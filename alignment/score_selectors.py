"""Reads behind the alignment score pages and API: missing pieces in words, a score's explanation
(its scope's name, the sibling links of the same scope and period, the names behind the
correlation pairs), each a bounded number of queries."""

from __future__ import annotations

from alignment import score_periods as periods
from alignment.models import AlignmentScore, Link, ScopeKind

_SENTENCES = {
    "message_without_standard": "Brand message “{label}” is carried by no active service standard.",
    "standard_without_question": "Standard {label} is asked by no question of an active survey.",
    "standard_without_item": "Standard {label} is scored by no audit or monitoring form item.",
    "standard_without_expectation": "Standard {label} serves no customer expectation "
    "(importance taken as 3).",
    "standard_without_feedback": "Standard {label} has no customer answers here in this period.",
    "expectation_without_standard": "Customer expectation “{label}” has no service standard.",
    "standard_without_lesson": "Standard {label} has no published lesson.",
    "gap_not_followed": "{count} gap(s) led to no training: {label}",
    "late_completions": "{count} lesson completion(s) on a standard were late.",
    "no_training": "No lesson on a standard was completed here in the previous period, so there is "
    "nothing to compare before and after.",
    "execution_too_thin": "Standard {label}: too few audit, monitoring or survey points before "
    "({before_n}) or after ({after_n}) the training to compare (2 each side needed).",
    "ineffective_lesson": "Lesson “{label}” on {standard} shows no improvement beyond noise (learning "
    "app's effectiveness measure).",
    "too_few_members": "Only {members} {label}(s) with execution data (at least {needed} needed for a "
    "correlation).",
    "no_spread": "Execution or points do not vary across the {members} {label}s, so there is no correlation.",
    "critical_without_rule": "Critical standard {label} is covered by no active reward rule in this period.",
    "link_without_value": "{label}: no value in this period, left out of the overall score.",
}


class _Blank(dict):
    def __missing__(self, key):
        return "?"


def describe(entry: dict) -> str:
    """One missing piece in a sentence."""
    if entry.get("more"):
        return f"… and {entry['more']} more of the same kind."
    template = _SENTENCES.get(entry.get("kind"), "{label}")
    return template.format_map(_Blank(entry))


def missing_text(entries) -> list[dict]:
    return [{**entry, "text": describe(entry)} for entry in entries or []]


def rankable(score: AlignmentScore) -> bool:
    return bool((score.inputs or {}).get("rankable"))


def scope_name(score: AlignmentScore) -> str:
    from cem.models import Employee, Location, Organization, Region, Team

    models = {
        ScopeKind.REGION: Region,
        ScopeKind.LOCATION: Location,
        ScopeKind.TEAM: Team,
        ScopeKind.EMPLOYEE: Employee,
    }
    if score.scope == ScopeKind.ORGANIZATION:
        found = Organization.objects.filter(pk=score.organization_id).values_list("name", flat=True).first()
    else:
        found = models[score.scope].objects.filter(pk=score.scope_id).values_list("name", flat=True).first()
    return found or f"{ScopeKind(score.scope).label} #{score.scope_id}"


def siblings(score: AlignmentScore, scoped) -> list[AlignmentScore]:
    """The six scores of the same scope and period (one query), in link order."""
    order = {link: i for i, link in enumerate(Link.values)}
    rows = scoped(
        AlignmentScore.objects.filter(
            scope=score.scope, scope_id=score.scope_id, period=score.period, period_start=score.period_start
        )
    )
    return sorted(rows, key=lambda r: order.get(r.link, 99))


def pair_names(score: AlignmentScore, scoped) -> dict[int, str]:
    """Names of the members in an execution ↔ incentives score's pairs, as far as the viewer sees them."""
    from cem.models import Employee, Location, Standard

    inputs = score.inputs or {}
    ids = [pair[0] for pair in inputs.get("pairs", [])]
    if not ids:
        return {}
    model = {"employee": Employee, "location": Location, "standard": Standard}.get(inputs.get("members"))
    if model is None:
        return {}
    field = "title" if model is Standard else "name"
    return dict(scoped(model.objects.filter(pk__in=ids)).values_list("pk", field))


def period_label(score: AlignmentScore) -> str:
    return periods.label(score.period, score.period_start)


def tiling_kind(first, last) -> str:
    """The coarsest period kind whose periods cover [first, last] exactly (a quarter, a month…)."""
    import datetime as dt

    after = last + dt.timedelta(days=1)
    for kind in reversed(periods.KINDS):
        if periods.start_of(kind, first) == first and periods.start_of(kind, after) == after:
            return kind
    return periods.KINDS[0]


def bonus_kpi_figures(*, first_day, last_day, through, scopes: dict[str, set]) -> dict[str, dict]:
    """The overall alignment score of each scope over a bonus period, for incentives.bonus.

    The period [first_day, last_day] is read as the coarsest calendar periods that tile it (a
    quarter-long bonus period is one quarter's score), those begun by ``through``; a scope's value
    is the n-weighted mean of their overall scores and n their sum (so the KPI's minimum sample
    applies to data points). ``scopes``: {"location" | "region" | "team": ids}. One query.
    Returns {dim: {id: (value as Decimal, n)}}; a scope with no scores is absent.
    """
    from decimal import ROUND_HALF_UP, Decimal

    from django.db.models import Q

    kind = tiling_kind(first_day, last_day)
    wanted = Q()
    for dim, ids in scopes.items():
        if ids:
            wanted |= Q(scope=dim, scope_id__in=sorted(ids))
    if not wanted:
        return {}
    rows = (
        AlignmentScore.objects.filter(
            wanted,
            link=Link.OVERALL,
            period=kind,
            period_start__gte=first_day,
            period_start__lte=min(last_day, through),
            value__isnull=False,
        )
        .order_by()
        .values_list("scope", "scope_id", "value", "n")
    )
    sums: dict[tuple, list] = {}
    for scope, pk, value, n in rows:
        acc = sums.setdefault((scope, pk), [Decimal(0), 0, Decimal(0), 0])
        acc[0] += value * n
        acc[1] += n
        acc[2] += value
        acc[3] += 1
    out: dict[str, dict] = {}
    for (scope, pk), (weighted, n, plain, count) in sums.items():
        value = weighted / n if n else plain / count
        out.setdefault(scope, {})[pk] = (value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), n)
    return out
