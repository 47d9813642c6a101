# ruff: noqa: E501, S608 - SQL reads better unwrapped; it is built from this module's constants, values are parameters
"""The rollup rebuilt from raw data in SQL, compared with the stored one, and repaired.

``build_scratch`` fills a TEMP table (dropped at commit) with the whole ``Rollup`` of one
organization, or of some local days, computed with one ``INSERT … SELECT … GROUP BY`` per
source kind straight from the raw tables. The SQL reproduces alignment.rollups' contributions
to the last digit: the local day is ``AT TIME ZONE`` the organization's zone, scores are put on
0-100 with feedback.selectors' scales, each value and each squared value is rounded half-up to
4 places before summing (PostgreSQL's ``round(numeric, 4)`` rounds ties away from zero, as
``ROUND_HALF_UP`` does), an interaction goes to its first employee, a points award counts the
points into wallets unless reversed, located by the employee's assignment on that day.

``compare`` joins the stored rollup and the scratch table on the full key (FULL OUTER JOIN;
NULL ids compare equal through ``coalesce(id, 0)``, ids being positive) and returns what
differs. ``repair_days`` mends the days that differ in a way that keeps ``RollupSource``
true: the day's sources are derived again with the Python functions the handlers use
(``rollups.points_for``), their ``RollupSource`` rows are rewritten, and the day's ``Rollup``
rows are replaced by the sum of what its sources hold — which equals the scratch rows, as the
tests prove on random event sequences — so a later rescore still subtracts exactly what its
audit added. ``verify`` is the nightly run: build, compare, confirm, repair, check again,
record a ``RollupCheck``.

``replace`` swaps the whole rollup (and every ``RollupSource``) for the SQL rebuild: the
operator's tool after a bulk load, and how bench/dashboard.py builds 10M responses' rollup.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from alignment import rollup_derived, rollups
from alignment.models import Measure, Rollup, RollupCheck, RollupSource
from cem.services import _check_tenant
from feedback.models import QuestionType
from feedback.selectors import GAP_SCALES, GAP_TYPES
from incentives.models import Account

logger = logging.getLogger(__name__)

Kind = RollupSource.Kind
KINDS = (Kind.RESPONSE, Kind.AUDIT, Kind.INTERACTION, Kind.COMPLETION, Kind.AWARD)
SCRATCH = "alignment_rollup_scratch"
SAMPLE_SIZE = 50
KEY_COLUMNS = (
    "day",
    "location_id",
    "employee_id",
    "standard_id",
    "channel_id",
    "touchpoint_id",
    "segment_id",
    "category",
    "measure",
)
VALUE_COLUMNS = ("n", "total", "sumsq", "top", "bottom")
# The scratch GROUP BY over millions of answers sorts or hashes in memory rather than on disk.
WORK_MEM = "256MB"


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _case(column: str, mapping: dict, default: str) -> str:
    arms = " ".join(f"WHEN {_sql_str(k)} THEN {v}" for k, v in mapping.items())
    return f"CASE {column} {arms} ELSE {default} END"


_METRIC_TYPES = ", ".join(_sql_str(t) for t in rollups.METRIC_BOXES)
_GAP_TYPES = ", ".join(_sql_str(t) for t in GAP_TYPES)
_TOP = _case("a.question_type", {t: b[0] for t, b in rollups.METRIC_BOXES.items()}, "NULL")
_BOTTOM = _case("a.question_type", {t: b[1] for t, b in rollups.METRIC_BOXES.items()}, "NULL")
# A fixed scale per type; "rating" takes its question's own (feedback.selectors.gap_scale).
_LOW = _case("a.question_type", {t: s[0] for t, s in GAP_SCALES.items()}, "q.scale_min")
_HIGH = _case("a.question_type", {t: s[1] for t, s in GAP_SCALES.items()}, "q.scale_max")
assert QuestionType.RATING in GAP_TYPES and QuestionType.RATING not in GAP_SCALES


def _day(column: str) -> str:
    return f"({column} AT TIME ZONE %(tz)s)::date"


def _in_window(column: str, window: Window | None) -> str:
    # The timestamp bounds let the (organization, time) indexes narrow the scan; the exact local
    # day is then filtered on the computed day by the caller.
    return "" if window is None else f" AND {column} >= %(lo)s AND {column} < %(hi)s"


# Each contribution: kind, source_id, the key, v (the value rounded to 4 places, NULL when only
# counted), top, bottom. n = count(*), total = sum(v), sumsq = sum(round(v * v, 4)).
def _responses_sql(w: Window | None) -> str:
    return f"""
    SELECT 'response' AS kind, r.id AS source_id, {_day("r.submitted_at")} AS day, r.location_id, r.employee_id,
           NULL::bigint AS standard_id, r.channel_id, r.touchpoint_id, r.segment_id, coalesce(r.category, '') AS category,
           '{Measure.RESPONSES}'::text AS measure, NULL::numeric AS v, 0 AS top, 0 AS bottom
      FROM feedback_response r
     WHERE r.organization_id = %(org)s{_in_window("r.submitted_at", w)}
    UNION ALL
    SELECT 'response', a.response_id, {_day("a.submitted_at")}, a.location_id, a.employee_id, x.standard_id,
           a.channel_id, a.touchpoint_id, a.segment_id, coalesce(a.category, ''), x.measure, x.v, x.top, x.bottom
      FROM feedback_answer a
      JOIN feedback_question q ON q.id = a.question_id
     CROSS JOIN LATERAL (
           SELECT a.question_type::text AS measure, NULL::bigint AS standard_id, round(a.number, 4) AS v,
                  (a.number >= {_TOP})::int AS top, (a.number <= {_BOTTOM})::int AS bottom
            WHERE a.question_type IN ({_METRIC_TYPES})
           UNION ALL
           SELECT '{Measure.STD_FEEDBACK}', a.standard_id, round((a.number - s.low) * 100 / (s.high - s.low), 4), 0, 0
             FROM (SELECT {_LOW} AS low, {_HIGH} AS high) s
            WHERE a.standard_id IS NOT NULL AND s.low IS NOT NULL AND s.high IS NOT NULL AND s.high > s.low
           ) x
     WHERE a.organization_id = %(org)s AND a.number IS NOT NULL AND a.question_type IN ({_GAP_TYPES}){_in_window("a.submitted_at", w)}
    """  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters


_MONITORING = "(au.assignment_id IS NULL AND au.interaction_id IS NOT NULL)"  # rollups.is_monitoring


def _audits_sql(w: Window | None) -> str:
    return f"""
    SELECT 'audit' AS kind, au.id AS source_id, {_day("au.published_at")} AS day, au.location_id, au.employee_id,
           NULL::bigint AS standard_id, i.channel_id, i.touchpoint_id, NULL::bigint AS segment_id,
           coalesce(i.category, '') AS category,
           CASE WHEN {_MONITORING} THEN '{Measure.MONITORING}' ELSE '{Measure.AUDIT}' END AS measure,
           round(au.score, 4) AS v, 0 AS top, 0 AS bottom
      FROM audits_audit au
      LEFT JOIN cem_interaction i ON i.id = au.interaction_id
     WHERE au.organization_id = %(org)s AND au.status = 'published' AND au.published_at IS NOT NULL
       AND au.score IS NOT NULL{_in_window("au.published_at", w)}
    UNION ALL
    SELECT 'audit', au.id, {_day("au.published_at")}, s.location_id, s.employee_id, s.standard_id, i.channel_id,
           i.touchpoint_id, NULL::bigint, coalesce(i.category, ''),
           CASE WHEN {_MONITORING} THEN '{Measure.STD_MONITORING}' ELSE '{Measure.STD_AUDIT}' END,
           round(s.value, 4), 0, 0
      FROM audits_standardscore s
      JOIN audits_audit au ON au.id = s.audit_id AND au.organization_id = s.organization_id
      LEFT JOIN cem_interaction i ON i.id = au.interaction_id
     WHERE s.organization_id = %(org)s AND s.value IS NOT NULL AND au.status = 'published'
       AND au.published_at IS NOT NULL{_in_window("au.published_at", w)}
    """  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters


def _interactions_sql(w: Window | None) -> str:
    return f"""
    SELECT 'interaction' AS kind, i.id AS source_id, {_day("i.occurred_at")} AS day, i.location_id,
           (SELECT min(ie.employee_id) FROM cem_interactionemployee ie
             WHERE ie.organization_id = %(org)s AND ie.interaction_id = i.id) AS employee_id,
           NULL::bigint AS standard_id, i.channel_id, i.touchpoint_id, NULL::bigint AS segment_id,
           coalesce(i.category, '') AS category, '{Measure.INTERACTIONS}'::text AS measure, NULL::numeric AS v,
           0 AS top, 0 AS bottom
      FROM cem_interaction i
     WHERE i.organization_id = %(org)s{_in_window("i.occurred_at", w)}
    """  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters


def _completions_sql(w: Window | None) -> str:
    return f"""
    SELECT 'completion' AS kind, c.id AS source_id, {_day("c.completed_at")} AS day, c.location_id, c.employee_id,
           x.standard_id, NULL::bigint AS channel_id, NULL::bigint AS touchpoint_id, NULL::bigint AS segment_id,
           '' AS category, x.measure, NULL::numeric AS v,
           (c.on_time IS TRUE)::int AS top, (c.on_time IS FALSE)::int AS bottom
      FROM learning_completion c
     CROSS JOIN LATERAL (
           SELECT '{Measure.LESSONS}'::text AS measure, NULL::bigint AS standard_id
           UNION ALL
           SELECT '{Measure.LESSON_STD}', ls.standard_id FROM learning_lessonstandard ls
            WHERE ls.organization_id = %(org)s AND ls.lesson_id = c.lesson_id
           ) x
     WHERE c.organization_id = %(org)s AND c.employee_id IS NOT NULL{_in_window("c.completed_at", w)}
    """  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters


_AWARD_KINDS = ", ".join(_sql_str(k) for k in rollups.AWARD_KINDS)


def _awards_sql(w: Window | None) -> str:
    return f"""
    SELECT 'award' AS kind, t.id AS source_id, d.day, wp.location_id, t.employee_id, rr.standard_id,
           NULL::bigint AS channel_id, NULL::bigint AS touchpoint_id, NULL::bigint AS segment_id, '' AS category,
           '{Measure.POINTS}'::text AS measure, round(p.points, 4) AS v, 0 AS top, 0 AS bottom
      FROM incentives_ledgertransaction t
     CROSS JOIN LATERAL (SELECT {_day("t.created_at")} AS day) d
      JOIN LATERAL (
           SELECT sum(e.amount) AS points
             FROM incentives_ledgerentry e JOIN incentives_account ac ON ac.id = e.account_id
            WHERE e.organization_id = %(org)s AND e.transaction_id = t.id AND ac.kind = '{Account.Kind.WALLET}' AND e.amount > 0
           ) p ON p.points IS NOT NULL AND p.points <> 0
      LEFT JOIN incentives_rewardrule rr ON rr.id = t.rule_id
      LEFT JOIN LATERAL (
           SELECT ea.location_id FROM cem_employeeassignment ea
            WHERE ea.organization_id = %(org)s AND ea.employee_id = t.employee_id
              AND ea.start_date <= d.day AND (ea.end_date IS NULL OR ea.end_date >= d.day)
            ORDER BY ea.start_date DESC, ea.id DESC LIMIT 1
           ) wp ON true
     WHERE t.organization_id = %(org)s AND t.kind IN ({_AWARD_KINDS}) AND t.employee_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM incentives_ledgertransaction r
                        WHERE r.organization_id = %(org)s AND r.reverses_id = t.id){_in_window("t.created_at", w)}
    """  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters


CONTRIBUTIONS = {
    Kind.RESPONSE: _responses_sql,
    Kind.AUDIT: _audits_sql,
    Kind.INTERACTION: _interactions_sql,
    Kind.COMPLETION: _completions_sql,
    Kind.AWARD: _awards_sql,
}
_KEY = ", ".join(KEY_COLUMNS)
_AGGREGATES = "count(*), coalesce(sum(v), 0), coalesce(sum(round(v * v, 4)), 0), sum(top), sum(bottom)"


@dataclass(frozen=True)
class Window:
    """Some local days of one organization: the exact days, and the UTC instants around them."""

    days: tuple[dt.date, ...]

    @classmethod
    def of(cls, days) -> Window | None:
        days = tuple(sorted({d if isinstance(d, dt.date) else dt.date.fromisoformat(d) for d in days}))
        return cls(days) if days else None

    @classmethod
    def between(cls, first: dt.date, last: dt.date) -> Window | None:
        return cls.of(first + dt.timedelta(days=i) for i in range((last - first).days + 1))

    def params(self) -> dict:
        # A day either side: whatever the zone's offset or DST shift, the local days are inside.
        lo = dt.datetime.combine(self.days[0] - dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        hi = dt.datetime.combine(self.days[-1] + dt.timedelta(days=2), dt.time(), tzinfo=dt.UTC)
        return {"lo": lo, "hi": hi, "days": list(self.days)}


def _params(org_id: int, window: Window | None) -> dict:
    return {"org": org_id, "tz": rollups.org_tz(org_id).key, **(window.params() if window else {})}


def _day_filter(window: Window | None) -> str:
    return "" if window is None else "WHERE day = ANY(%(days)s)"


def build_scratch(org, window: Window | None = None) -> dict[str, float]:
    """Fill the TEMP scratch table with the rollup rebuilt from raw data; seconds per kind.

    Must run inside a transaction (the table is dropped at commit).
    """
    org_id = _check_tenant(org)
    if not connection.in_atomic_block:
        raise RuntimeError("build_scratch needs a transaction: its TEMP table lives until commit")
    params = _params(org_id, window)
    timings = {}
    with connection.cursor() as cur:
        cur.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        cur.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
        cur.execute(
            f"""CREATE TEMP TABLE {SCRATCH} (
                day date NOT NULL, location_id bigint, employee_id bigint, standard_id bigint, channel_id bigint,
                touchpoint_id bigint, segment_id bigint, category varchar(12) NOT NULL, measure varchar(16) NOT NULL,
                n bigint NOT NULL, total numeric(20, 4) NOT NULL, sumsq numeric(24, 4) NOT NULL,
                top bigint NOT NULL, bottom bigint NOT NULL
            ) ON COMMIT DROP"""
        )
        for kind, sql in CONTRIBUTIONS.items():
            t0 = time.perf_counter()
            cur.execute(
                f"INSERT INTO {SCRATCH} ({_KEY}, {', '.join(VALUE_COLUMNS)}) "
                f"SELECT {_KEY}, {_AGGREGATES} FROM ({sql(window)}) c {_day_filter(window)} GROUP BY {_KEY}",  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
                params,
            )
            timings[str(kind)] = time.perf_counter() - t0
        cur.execute(f"ANALYZE {SCRATCH}")
    return timings


def scratch_rows(org) -> dict:
    """The scratch table as ``{key: values}`` in alignment.rollups' shape (for tests and tools)."""
    _check_tenant(org)
    with connection.cursor() as cur:
        cur.execute(f"SELECT {_KEY}, {', '.join(VALUE_COLUMNS)} FROM {SCRATCH}")  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
        return {_key(r[:9]): tuple(r[9:]) for r in cur.fetchall()}


def _key(row) -> tuple:
    return (row[0].isoformat(), *row[1:9])


_NONZERO = "(n <> 0 OR total <> 0 OR sumsq <> 0 OR top <> 0 OR bottom <> 0)"
_JOIN_ON = " AND ".join(
    f"s.{c} = b.{c}" if c in ("day", "category", "measure") else f"coalesce(s.{c}, 0) = coalesce(b.{c}, 0)"
    for c in KEY_COLUMNS
)
_DIFFERS = " OR ".join(f"s.{c} IS DISTINCT FROM b.{c}" for c in VALUE_COLUMNS)


@dataclass
class Comparison:
    rows_compared: int = 0
    count: int = 0  # keys that differ
    days: set = field(default_factory=set)  # local days with a difference
    # {key: (stored values or None, rebuilt values or None)}, the first DIFF_LIMIT by key
    differences: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return len(self.differences) == self.count

    def sample(self, size: int = SAMPLE_SIZE) -> list[dict]:
        def values(v):
            return (
                None
                if v is None
                else {
                    c: str(x) if isinstance(x, Decimal) else x for c, x in zip(VALUE_COLUMNS, v, strict=True)
                }
            )

        return [
            {"key": dict(zip(KEY_COLUMNS, key, strict=True)), "stored": values(s), "rebuilt": values(b)}
            for key, (s, b) in list(self.differences.items())[:size]
        ]


DIFF = "alignment_rollup_diff"
DIFF_LIMIT = 100_000


def compare(org, window: Window | None = None) -> Comparison:
    """Stored rollup vs the scratch table (built for the same window), key by key.

    Stored rows whose values are all zero (what a reversal leaves behind) count as absent, as in
    alignment.rollups.stored. The differing keys go to a TEMP table first, so a rollup that
    differs everywhere (never built) is counted in SQL and only DIFF_LIMIT keys come back.
    """
    org_id = _check_tenant(org)
    params = {"org": org_id, **(window.params() if window else {})}
    days = "" if window is None else " AND day = ANY(%(days)s)"
    keys = ", ".join(f"coalesce(s.{c}, b.{c}) AS {c}" for c in KEY_COLUMNS)
    stored_vals = ", ".join(f"s.{c} AS s_{c}" for c in VALUE_COLUMNS)
    built_vals = ", ".join(f"b.{c} AS b_{c}" for c in VALUE_COLUMNS)
    with connection.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {DIFF}")
        cur.execute(
            f"""
            CREATE TEMP TABLE {DIFF} ON COMMIT DROP AS
            WITH s AS (
                SELECT {_KEY}, {", ".join(VALUE_COLUMNS)} FROM alignment_rollup
                 WHERE organization_id = %(org)s AND {_NONZERO}{days}
            )
            SELECT {keys}, s.day IS NOT NULL AS has_stored, b.day IS NOT NULL AS has_built, {stored_vals}, {built_vals}
              FROM s FULL OUTER JOIN {SCRATCH} b ON {_JOIN_ON}
             WHERE {_DIFFERS}
            """,  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
            params,
        )
        cur.execute(
            f"SELECT (SELECT count(*) FROM {SCRATCH}) + count(*) FILTER (WHERE NOT has_built), count(*),"
            f" coalesce(array_agg(DISTINCT day), '{{}}') FROM {DIFF}"  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
        )
        compared, count, diff_days = cur.fetchone()
        out = Comparison(rows_compared=compared, count=count, days=set(diff_days))
        if count:
            cur.execute(f"SELECT * FROM {DIFF} ORDER BY {_KEY} LIMIT %s", [DIFF_LIMIT])  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
            for row in cur.fetchall():
                stored = tuple(row[11:16]) if row[9] else None
                built = tuple(row[16:21]) if row[10] else None
                out.differences[_key(row[:9])] = (stored, built)
    return out


def check(org, window: Window | None = None) -> tuple[Comparison, dict]:
    """Build the scratch table and compare, in one transaction; (comparison, seconds per step)."""
    with transaction.atomic():
        timings = build_scratch(org, window)
        t0 = time.perf_counter()
        result = compare(org, window)
        timings["compare"] = time.perf_counter() - t0
    return result, timings


# --- repair ------------------------------------------------------------------------------------


def raw_source_ids(org, kind: str, window: Window) -> set[int]:
    org_id = _check_tenant(org)
    sql = CONTRIBUTIONS[kind](window)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT DISTINCT source_id FROM ({sql}) c WHERE day = ANY(%(days)s)",  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
            _params(org_id, window),
        )
        return {r[0] for r in cur.fetchall()}


def stored_source_ids(org, window: Window) -> dict[str, set[int]]:
    """Sources whose stored RollupSource rows touch the window's days (each row's first item is its day)."""
    org_id = _check_tenant(org)
    out = defaultdict(set)
    with connection.cursor() as cur:
        cur.execute(
            """SELECT kind, source_id FROM alignment_rollupsource
                WHERE organization_id = %s
                  AND EXISTS (SELECT 1 FROM jsonb_array_elements(rows) e WHERE e ->> 0 = ANY(%s))""",
            [org_id, [d.isoformat() for d in window.days]],
        )
        for kind, sid in cur.fetchall():
            out[kind].add(sid)
    return out


def _split(rows: dict, days: set[str]) -> tuple[dict, dict]:
    inside, outside = {}, {}
    for key, vals in rows.items():
        (inside if key[0] in days else outside)[key] = vals
    return inside, outside


@transaction.atomic
def repair_days(org, days) -> dict:
    """Make the rollup of these local days equal to its raw data, and every source's RollupSource true.

    1. The days' sources: those whose raw data lands on them and those whose stored rows do.
    2. Claimed as the handlers claim them (insert the RollupSource row, then lock it, in kind
       and id order), derived again with ``rollups.points_for``, their rows rewritten. Parts of
       a source outside these days change the rollup by the difference, as a handler would.
    3. With writes to the rollup held off (EXCLUSIVE: readers go on), the days' rows are
       replaced by the sum of what their sources now hold. A handler that committed meanwhile
       is in that sum; one still waiting adds its difference after.

    Returns ``{"sources": n, "rows": n, "touched": {(day, location, employee)}}``.
    """
    org_id = _check_tenant(org)
    window = Window.of(days)
    if window is None:
        return {"sources": 0, "rows": 0, "touched": set()}
    day_keys = {d.isoformat() for d in window.days}
    stored_ids = stored_source_ids(org_id, window)
    inside: dict = {}
    outside_delta: dict = {}
    claimed: dict[str, set[int]] = {}
    now = timezone.now()
    for kind in KINDS:
        ids = sorted(raw_source_ids(org_id, kind, window) | stored_ids.get(kind, set()))
        claimed[kind] = set(ids)
        if not ids:
            continue
        RollupSource.objects.bulk_create(
            [RollupSource(organization_id=org_id, kind=kind, source_id=sid, rows=[]) for sid in ids],
            ignore_conflicts=True,
            batch_size=2000,
        )
        held = {
            s.source_id: s
            for s in RollupSource.objects.select_for_update()
            .filter(organization_id=org_id, kind=kind, source_id__in=ids)
            .order_by("source_id")
        }
        derived = rollups.points_for(org_id, kind, ids)
        changed = []
        for sid in ids:
            new, old = derived.get(sid, {}), rollups._from_json(held[sid].rows)
            new_in, new_out = _split(new, day_keys)
            _old_in, old_out = _split(old, day_keys)
            rollups.merge(inside, new_in)
            rollups.merge(outside_delta, rollups.diff(new_out, old_out))
            if new != old:
                held[sid].rows, held[sid].updated_at = rollups._to_json(new), now
                changed.append(held[sid])
        RollupSource.objects.bulk_update(changed, ["rows", "updated_at"], batch_size=2000)
    with connection.cursor() as cur:
        cur.execute("LOCK TABLE alignment_rollup IN EXCLUSIVE MODE")
    # Sources that reached these days after the look-up above, by handlers that have committed.
    for kind in KINDS:
        late = sorted(raw_source_ids(org_id, kind, window) - claimed[kind])
        for source in RollupSource.objects.filter(organization_id=org_id, kind=kind, source_id__in=late):
            rollups.merge(inside, _split(rollups._from_json(source.rows), day_keys)[0])
    before = rollups.stored(org_id, day__in=window.days)
    Rollup.objects.filter(organization_id=org_id, day__in=window.days).delete()
    rollup_derived.replay_versions_changed(org_id)  # the delete may empty a store apply_points never sees
    inside = {k: v for k, v in inside.items() if any(v)}
    rollups.apply_points(org_id, inside)
    rollups.apply_points(org_id, outside_delta)
    changed_keys = rollups.diff(inside, before).keys() | outside_delta.keys()
    return {
        "sources": sum(len(ids) for ids in claimed.values()),
        "rows": len(inside),
        "touched": {key[:3] for key in changed_keys},
    }


# --- the nightly check ---------------------------------------------------------------------------


def _recompute_scores(org_id: int, touched: set) -> None:
    """Alignment scores of what a repair changed, when the scoring module offers it."""
    if not touched:
        return
    from alignment import scores

    recompute = getattr(scores, "recompute_touched", None)
    if recompute is None:
        return
    try:
        recompute(org_id, touched)
    except Exception:  # the repair stands; the scores catch up with the next event or the next run
        logger.exception("alignment: recomputing scores after a rollup repair failed (org %s)", org_id)


def _log_differences(org_id: int, result: Comparison) -> None:
    per_day = defaultdict(lambda: defaultdict(int))
    for key, (stored, built) in result.differences.items():
        what = "missing" if stored is None else "extra" if built is None else "different"
        per_day[key[0]][what] += 1
    logger.warning(
        "alignment rollup check: organization %s: %d of %d rows differ from the rebuild, on %d day(s) from %s to %s",
        org_id, result.count, result.rows_compared, len(result.days), min(result.days), max(result.days),
    )  # fmt: skip
    for day, counts in sorted(per_day.items())[:31]:
        logger.warning(
            "alignment rollup check: organization %s, %s: %s",
            org_id, day, ", ".join(f"{n} {what}" for what, n in sorted(counts.items())),
        )  # fmt: skip


def verify(org, *, repair: bool = True, window: Window | None = None) -> RollupCheck:
    """Rebuild into scratch, compare, and (``repair``) mend the days that differ; one RollupCheck.

    A difference must show in two passes to count: a source whose event is still on its way
    (raw data committed, handler not yet run) differs in the first and has usually been applied
    by the second, which reads only the days the first found. What persists is repaired (what
    its handler does later is then a no-op), the days are checked once more, and the alignment
    scores of what changed are recomputed.
    """
    org_id = _check_tenant(org)
    started = timezone.now()
    seconds = {}
    t0 = time.perf_counter()
    result, _timings = check(org_id, window)
    seconds["check"] = time.perf_counter() - t0
    if result.count:
        t0 = time.perf_counter()
        confirmed, _ = check(org_id, Window.of(result.days))
        seconds["confirm"] = time.perf_counter() - t0
        if result.complete and confirmed.complete:
            kept = {k: v for k, v in confirmed.differences.items() if k in result.differences}
            confirmed = Comparison(
                rows_compared=result.rows_compared,
                count=len(kept),
                days={dt.date.fromisoformat(k[0]) for k in kept},
                differences=kept,
            )
        else:
            confirmed.rows_compared = result.rows_compared
        result = confirmed
    record = RollupCheck(
        organization_id=org_id,
        started_at=started,
        rows_compared=result.rows_compared,
        differences=result.count,
        sample=result.sample(),
    )
    if result.count:
        _log_differences(org_id, result)
        if repair:
            t0 = time.perf_counter()
            outcome = repair_days(org_id, result.days)
            seconds["repair"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            after, _ = check(org_id, Window.of(result.days))
            seconds["recheck"] = time.perf_counter() - t0
            record.repaired = after.count == 0
            if after.count:
                logger.error(
                    "alignment rollup repair: organization %s still differs on %d row(s) after the repair",
                    org_id, after.count,
                )  # fmt: skip
            t0 = time.perf_counter()
            _recompute_scores(org_id, outcome["touched"])
            seconds["scores"] = time.perf_counter() - t0
    record.finished_at = timezone.now()
    record.save()
    record.seconds = seconds  # for the caller (the bench, the command); not stored
    return record


# --- full replacement ---------------------------------------------------------------------------


def _source_rows_sql(window: Window | None) -> str:
    parts = [
        f"SELECT kind, source_id, {_KEY}, {_AGGREGATES} FROM ({sql(window)}) c {_day_filter(window)} GROUP BY kind, source_id, {_KEY}"  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
        for sql in CONTRIBUTIONS.values()
    ]
    return " UNION ALL ".join(f"({p})" for p in parts)


@transaction.atomic
def replace(org, *, sources: bool = True) -> dict:
    """The stored rollup (and each source's RollupSource) becomes the SQL rebuild; seconds per step.

    Writes to both tables wait until it commits (readers go on reading the old rows), so no
    handler's increment falls between the rebuild and the swap. ``sources=False`` leaves
    RollupSource as it is: only for a database whose sources never had one (a bulk load), as
    their events would otherwise be counted twice.
    """
    org_id = _check_tenant(org)
    timings = {}
    with connection.cursor() as cur:
        cur.execute("LOCK TABLE alignment_rollupsource, alignment_rollup IN EXCLUSIVE MODE")
        t0 = time.perf_counter()
        timings.update(build_scratch(org_id))
        timings["scratch"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with rollup_derived.by_caller(cur):
            cur.execute("DELETE FROM alignment_rollup WHERE organization_id = %s", [org_id])
            cur.execute(
                f"INSERT INTO alignment_rollup (organization_id, {_KEY}, {', '.join(VALUE_COLUMNS)}, updated_at) "
                # In the unique key's order: its index is then filled left to right (half the time).
                f"SELECT %s, {_KEY}, {', '.join(VALUE_COLUMNS)}, now() FROM {SCRATCH} ORDER BY {_KEY}",  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
                [org_id],
            )
            timings["rollup_rows"] = cur.rowcount
            timings["swap"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            rollup_derived.refresh(cur, org_id)
            timings["periods"] = time.perf_counter() - t0
        if sources:
            t0 = time.perf_counter()
            cur.execute("DELETE FROM alignment_rollupsource WHERE organization_id = %s", [org_id])
            items = ", ".join(
                f"{c}::text" if c in ("day", "total", "sumsq") else c for c in (*KEY_COLUMNS, *VALUE_COLUMNS)
            )
            cur.execute(
                f"""INSERT INTO alignment_rollupsource (organization_id, kind, source_id, rows, updated_at)
                    SELECT %(org)s, kind, source_id, jsonb_agg(jsonb_build_array({items})), now()
                      FROM ({_source_rows_sql(None)}) g ({", ".join(("kind", "source_id", *KEY_COLUMNS, *VALUE_COLUMNS))})
                     GROUP BY kind, source_id ORDER BY kind, source_id""",  # nosec B608 # SQL built from this module's constants and the models' column names; values are bound parameters
                _params(org_id, None),
            )
            timings["source_rows"] = cur.rowcount
            timings["sources"] = time.perf_counter() - t0
    return timings
