"""Reads behind the alignment score pages and API: missing pieces in words, a score's explanation
(its scope's name, the sibling links of the same scope and period, the names behind the
correlation pairs), each a bounded number of queries."""

from __future__ import annotations

from alignment import score_periods as periods
from alignment.models import AlignmentScore, Link, ScopeKind

# Missing pieces that are lists of reference rows are stored once per kind, as ids (the names
# are looked up when shown): {"kind", "ids" (at most MISSING_IDS), "count", "label"}.
GROUPED = {
    "message_without_standard": ("message", "brand message(s) carried by no active standard"),
    "standard_without_question": ("standard", "standard(s) asked by no question of an active survey"),
    "standard_without_item": ("standard", "standard(s) scored by no audit or monitoring form item"),
    "standard_without_expectation": ("standard", "standard(s) serving no customer expectation"),
    "standard_without_feedback": ("standard", "standard(s) with no customer answers here in this period"),
    "expectation_without_standard": ("expectation", "customer expectation(s) with no service standard"),
    "standard_without_lesson": ("standard", "standard(s) with no published lesson"),
    "critical_without_rule": ("standard", "Critical standard(s) covered by no active reward rule"),
}
MISSING_IDS = 50

_SENTENCES = {
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
    "link_without_value": "{label}: no value in this period, left out of the overall score.",
}


class _Blank(dict):
    def __missing__(self, key):
        return "?"


def reference_labels(entries=None) -> dict[str, dict[int, str]]:
    """Names of the reference rows grouped missing pieces point at: those in ``entries``, or all
    of the organization's (one query per kind of row, however many scores)."""
    from cem.models import BrandMessage, CustomerExpectation, Standard

    wanted: dict[str, set] = {"standard": set(), "expectation": set(), "message": set()}
    if entries is not None:
        for entry in entries:
            group = GROUPED.get(entry.get("kind"))
            if group:
                wanted[group[0]].update(entry.get("ids") or [])
    out: dict[str, dict[int, str]] = {}
    for key, model, fields in (
        ("standard", Standard, ("code", "title")),
        ("expectation", CustomerExpectation, ("name",)),
        ("message", BrandMessage, ("title",)),
    ):
        if entries is not None and not wanted[key]:
            out[key] = {}
            continue
        qs = model.objects.all() if entries is None else model.objects.filter(pk__in=sorted(wanted[key]))
        out[key] = {row[0]: " ".join(str(v) for v in row[1:]) for row in qs.values_list("pk", *fields)}
    return out


def describe(entry: dict, labels: dict | None = None) -> str:
    """One missing piece in a sentence (names of grouped rows from ``labels``)."""
    group = GROUPED.get(entry.get("kind"))
    if group:
        model, what = group
        names = [(labels or {}).get(model, {}).get(pk, f"#{pk}") for pk in entry.get("ids") or []]
        more = int(entry.get("count", len(names))) - len(names)
        tail = f" and {more} more" if more > 0 else ""
        return f"{entry.get('count', len(names))} {what}: {', '.join(names)}{tail}."
    if entry.get("more"):
        return f"… and {entry['more']} more of the same kind."
    template = _SENTENCES.get(entry.get("kind"), "{label}")
    return template.format_map(_Blank(entry))


def missing_text(entries, labels: dict | None = None) -> list[dict]:
    entries = list(entries or [])
    if labels is None:
        labels = reference_labels(entries)
    return [{**entry, "text": describe(entry, labels)} for entry in entries]


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


def named_inputs(score: AlignmentScore) -> dict:
    """The score's inputs with each per-standard row's names (stored as ids): one query at most."""
    from cem.models import Standard

    inputs = dict(score.inputs or {})
    rows = inputs.get("standards")
    if not isinstance(rows, list) or not rows:
        return inputs
    names = {
        pk: (f"{code} {title}", message or "")
        for pk, code, title, message in Standard.objects.filter(
            pk__in=[r["standard"] for r in rows]
        ).values_list("pk", "code", "title", "brand_message__title")
    }
    inputs["standards"] = [
        {
            **r,
            "label": names.get(r["standard"], (f"#{r['standard']}", ""))[0],
            "message": names.get(r["standard"], ("", ""))[1],
        }
        for r in rows
    ]
    return inputs
