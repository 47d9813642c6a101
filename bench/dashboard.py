# ruff: noqa: E501 - SQL and result tables read better unwrapped; SQL from this file's constants
"""Alignment dashboard at volume (issue 8): the store dashboard's data endpoints over the rollup
beside raw GROUP BYs on the responses/answers tables, the SQL rebuild of the rollup, and event →
rollup/alignment score with a real Celery worker, at 1M and at 10M responses of history.

    .venv/bin/python bench/dashboard.py [--responses 10000000] [--history 1000000] [--requests 200]
                                        [--raw-repeat 10] [--events 60] [--periods 365 90] [--keep]
    .venv/bin/python bench/dashboard.py --responses 200000 --history 100000 --requests 50   # a quick run

1. One organization (time zone Europe/Berlin) with 5 regions, ``--locations`` stores (100),
   ``--employees`` (1,000) assigned round-robin, one survey (NPS; CSAT on standard 1; four 1-5
   rating questions on standards 2-5, one asked per response), an audit form, a lesson.
2. Responses are COPYed (psycopg ``COPY … FROM STDIN``, as the owner) in steps: ``--history``
   first, then up to ``--responses``, each step spread over the same 12 months (so 10x the
   history is 10x the density: what a growing customer does). ~2.8 answers per response. Beside
   them, set-based: 2 audits per store and week with 5 standard scores, 200k interactions, 6
   lesson completions per employee. Then VACUUM ANALYZE.
3. At each step the rollup is rebuilt with the SQL rebuild (``alignment.rebuild.replace``:
   scratch table, swap, RollupSource per source) and timed, then VACUUM ANALYZE; the alignment
   scores of the last ``--scores-days`` are computed (``alignment.scores.recompute_all``).
4. ``gunicorn cem.wsgi`` (gthread, keep-alive, CEM_ENV=production behind a pretend TLS proxy,
   Redis cache) serves the store dashboard's panel endpoints
   ``/api/v1/alignment/dashboard/stores/<id>/<panel>/`` to the store's manager (session cookie):
   per panel and period after warm-up, ``--requests`` cold requests (each the first view after a
   change at the store: its rollup generation raised, so the panel cache misses and the rows are
   computed from the rollup) and ``--requests`` warm ones (repeated views: the cached rows);
   p50/p95. Beside each answer-based panel, the raw GROUP BY over feedback_answer /
   feedback_response (and the audit tables) computing the same figures, as the owner (RLS
   bypassed), ``--raw-repeat`` times; its n and values are checked against ours.
5. Event → rollup and alignment scores: a detractor response POSTed to ``/api/v1/responses/``
   (API key) for a random store; a real ``celery -A cem worker --concurrency 2`` (Redis broker,
   an empty database number on 127.0.0.1:6379) runs the ResponseReceived handlers and then the
   debounced ``alignment.scores_drain``; timed until its RollupSource row, then until no score
   key is pending and the store's day score (written with every scope and period of the keys
   in one transaction) is newer than the POST, as seen by another connection. ``--events`` one
   after the other, with the CPU the web, worker and database server processes spent per event.
   And the alignment side in-process (rolled back): the handler's transaction (``rollups.apply``
   and ``score_queue.enqueue``) and the drain (``score_queue.drain``), with queries and CPU.

Scratch database ``cem_bench_dashboard`` on the server DATABASE_URL names, dropped at the start
and (unless ``--keep``) at the end. 10M responses need ~25 GB of disk at the peak: checked first.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from scratch import ROOT, prepare_environment, recreate_database, setup_django, table

REDIS_HOST = "127.0.0.1:6379"
ZONE = "Europe/Berlin"
DAYS = 365
N_REGIONS = 5
N_STANDARDS = 5
RATING_QUESTIONS = 4  # on standards 2..5, one asked per response
BYTES_PER_RESPONSE = 3_200  # measured at 1M: responses, answers, their indexes, rollup sources, rollup
PANELS = (
    "kpis",
    "nps",
    "audit",
    "heatmap",
    "matrix",
    "comparison",
    "categories",
    "training",
    "points",
    "scores",
    "cases",
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--responses", type=int, default=10_000_000, help="responses at the last step")
    p.add_argument("--history", type=int, nargs="*", default=[1_000_000], help="earlier steps (responses)")
    p.add_argument("--locations", type=int, default=100)
    p.add_argument("--employees", type=int, default=1_000)
    p.add_argument("--interactions", type=int, default=200_000)
    p.add_argument("--requests", type=int, default=200, help="timed requests per panel and period")
    p.add_argument("--raw-repeat", type=int, default=10, help="runs of each raw GROUP BY")
    p.add_argument("--periods", nargs="+", default=["365", "90"], help="dashboard ?period= values")
    p.add_argument("--events", type=int, default=60, help="events timed per step")
    p.add_argument("--handler-runs", type=int, default=20, help="in-process handler runs per step")
    p.add_argument(
        "--scores-days", type=int, default=35, help="alignment scores computed for the last N days (0: none)"
    )
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (gthread, 4 threads)")
    p.add_argument("--no-sources", action="store_true", help="rebuild the rollup only, no RollupSource rows")
    p.add_argument("--skip-http", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--force", action="store_true", help="run even if the disk looks too small")
    p.add_argument("--db-name", default="cem_bench_dashboard")
    p.add_argument("--keep", action="store_true", help="leave the database behind")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="time again on the database a --keep run left (no load, rebuild or check; kept after)",
    )
    p.add_argument("--json", type=Path, default=Path(tempfile.gettempdir()) / "bench_dashboard.json")
    return p.parse_args()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(v: float) -> str:
    return f"{v * 1000:.1f}" if v < 0.1 else f"{v * 1000:,.0f}"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def load1() -> float:
    return os.getloadavg()[0]


_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def process_tree(*roots: int) -> list[int]:
    """The roots and every descendant (gunicorn's workers, celery's pool processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def backends(owner, db_name: str) -> list[int]:
    """The PostgreSQL server processes serving the bench database, but the owner connection's."""
    pids = [r[0] for r in owner.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [db_name]
    ).fetchall()]  # fmt: skip
    owner.commit()
    return pids


def cpu_of(pids) -> dict[int, float]:
    return {pid: proc_cpu(pid) for pid in pids}


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds between two snapshots (a process there only at the end started meanwhile)."""
    return sum(max(0.0, cpu - before.get(pid, 0.0)) for pid, cpu in after.items())


def check_disk(args) -> None:
    need = args.responses * BYTES_PER_RESPONSE
    free = shutil.disk_usage("/").free
    print(subprocess.run(["df", "-h", "/"], capture_output=True, text=True, check=False).stdout.strip())  # noqa: S607
    print(f"estimated peak need {need / 1e9:.1f} GB, free {free / 1e9:.1f} GB", flush=True)
    if free < need * 1.2 and not args.force:
        raise SystemExit("not enough free disk for this many responses (--force to try anyway)")


# --- the organization ---------------------------------------------------------------------------


class World:
    org = None
    survey = None
    version = None
    questions: dict = {}
    standards: list = []
    location_ids: list[int] = []
    location_codes: list[str] = []
    location_region: dict[int, int] = {}
    employee_ids: list[int] = []
    employee_codes: list[str] = []
    employee_location: dict[int, int] = {}
    channel = None
    touchpoint = None
    form_version = None
    lesson = None
    store = None  # the store whose dashboard is timed
    manager = None
    admin = None
    api_key = ""
    end: dt.datetime = None


def create_world(args) -> World:
    from django.contrib.auth import get_user_model

    from audits import models as am
    from cem import services
    from cem.models import (
        Channel,
        Employee,
        EmployeeAssignment,
        InteractionCategory,
        Location,
        Organization,
        Region,
        Role,
        SkillCategory,
        Standard,
        Touchpoint,
    )
    from cem.principals import Actor
    from cem.tenancy import tenant_context, unscoped
    from feedback.models import Question, Survey, SurveyVersion
    from learning import models as lm

    w = World()
    w.end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with unscoped():
        w.org = Organization.objects.create(name="Bench Dashboard", slug="bench-dashboard", time_zone=ZONE)
    org = w.org
    with tenant_context(org):
        regions = Region.objects.bulk_create(
            Region(organization=org, name=f"Region {i}", code=f"r{i}") for i in range(N_REGIONS)
        )
        locations = Location.objects.bulk_create(
            Location(organization=org, region=regions[i % N_REGIONS], name=f"Store {i:03d}", code=f"s{i:03d}")
            for i in range(args.locations)
        )
        w.location_ids = [loc.pk for loc in locations]
        w.location_codes = [loc.code for loc in locations]
        w.location_region = {loc.pk: loc.region_id for loc in locations}
        employees = Employee.objects.bulk_create(
            Employee(organization=org, name=f"Employee {i:04d}", external_id=f"E{i:05d}",
                     current_location=locations[i % args.locations])
            for i in range(args.employees)
        )  # fmt: skip
        EmployeeAssignment.objects.bulk_create(
            EmployeeAssignment(organization=org, employee=e, location_id=e.current_location_id,
                               start_date=(w.end - dt.timedelta(days=DAYS + 30)).date())
            for e in employees
        )  # fmt: skip
        w.employee_ids = [e.pk for e in employees]
        w.employee_codes = [e.external_id for e in employees]
        w.employee_location = {e.pk: e.current_location_id for e in employees}
        w.channel = Channel.objects.create(organization=org, code="store", name="Store", kind="in_store")
        w.touchpoint = Touchpoint.objects.create(
            organization=org, channel=w.channel, code="checkout", name="Checkout",
            category=InteractionCategory.CRITICAL,
        )  # fmt: skip
        skill = SkillCategory.objects.create(organization=org, name="Service")
        w.standards = list(
            Standard.objects.bulk_create(
                Standard(
                    organization=org, code=f"std-{i + 1}", title=f"Standard {i + 1}", skill_category=skill
                )
                for i in range(N_STANDARDS)
            )
        )
        w.survey = Survey.objects.create(
            organization=org, name="Store visit", status="active", default_locale="en", locales=["en"]
        )
        w.version = SurveyVersion.objects.create(organization=org, survey=w.survey, number=1)
        specs = [("nps", "nps", None, {}), ("csat", "csat", w.standards[0], {})]
        specs += [
            (f"rating{k}", "rating", w.standards[k + 1], {"scale_min": 1, "scale_max": 5})
            for k in range(RATING_QUESTIONS)
        ]
        for pos, (key, qtype, std, extra) in enumerate(specs):
            w.questions[key] = Question.objects.create(
                organization=org, version=w.version, key=key, type=qtype, position=pos, required=False,
                text={"en": key}, standard=std, **extra,
            )  # fmt: skip
        form = am.AuditForm.objects.create(organization=org, name="Store visit", kind="mystery_shop")
        w.form_version = am.AuditFormVersion.objects.create(organization=org, form=form, number=1)
        w.lesson = lm.Lesson.objects.create(organization=org, title="The welcome", status="published")
        lesson_version = lm.LessonVersion.objects.create(
            organization=org,
            lesson=w.lesson,
            number=1,
            title=w.lesson.title,
            body="Greet.",
            body_html="<p>Greet.</p>",
        )
        w.lesson.current_version = lesson_version
        w.lesson.save(update_fields=["current_version"])
        for std in w.standards[:2]:
            lm.LessonStandard.objects.create(organization=org, lesson=w.lesson, standard=std)
        w.store = locations[0]
        _key, w.api_key = services.api_key_create(
            organization=org,
            actor=Actor.system(),
            name="bench",
            scopes=["*"],
            rate_limit_per_minute=10_000_000,
        )
        manager = services.membership_create(
            organization=org, actor=Actor.system(), email="bench-manager@example.com",
            role=Role.STORE_MANAGER, location=w.store,
        )  # fmt: skip
        w.manager = get_user_model().objects.get(pk=manager.user_id)
    return w


# --- raw data -----------------------------------------------------------------------------------

RESPONSE_COLUMNS = (
    "id, organization_id, survey_id, version_id, source, locale, submitted_at, location_id, employee_id,"
    " channel_id, touchpoint_id, category, device_hash, ip_hash, created_at"
)
ANSWER_COLUMNS = (
    "organization_id, response_id, question_id, question_key, question_type, standard_id, number, text, choices,"
    " sentiment, topics, survey_id, submitted_at, location_id, channel_id, touchpoint_id, employee_id, category"
)
CHUNK = 200_000


def _moods(w: World) -> dict[int, float]:
    """Each store's mood shifts its scores; a few (every 17th) are clearly worse with customers."""
    rng = random.Random(7)
    return {loc: (-2.5 if i % 17 == 5 else rng.uniform(-0.8, 0.8)) for i, loc in enumerate(w.location_ids)}


def secondary_indexes(owner, tables) -> list[tuple[str, str]]:
    """(name, definition) of the tables' indexes that back no constraint."""
    rows = owner.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
            WHERE i.tablename = ANY(%s) AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""",
        [list(tables)],
    ).fetchall()
    owner.commit()
    return rows


def bulk_load(owner, w: World, count: int) -> tuple[int, float, float]:
    """The usual bulk load: the secondary indexes of the two tables dropped, the rows COPYed, the
    indexes built again (sorted, in one pass each). The load is not what this bench measures; on
    this server (128 MB shared_buffers, 1 GB max_wal_size, shared) maintaining them row by row
    ran at ~3,000 responses/s. Returns (answers, COPY seconds, index seconds)."""
    indexes = secondary_indexes(owner, ("feedback_response", "feedback_answer"))
    for name, _ in indexes:
        owner.execute(f'DROP INDEX "{name}"')
    owner.commit()
    try:
        answers, took = copy_responses(owner, w, count)
    finally:
        t0 = time.perf_counter()
        owner.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            owner.execute(definition)
            owner.commit()
    return answers, took, time.perf_counter() - t0


def copy_responses(owner, w: World, count: int) -> tuple[int, float]:
    """COPY ``count`` more responses (and their answers) over the 12 months before ``w.end``."""
    t0 = time.perf_counter()
    # After the previous step's events (POSTed through the API) the ids go on from the highest.
    (first_id,) = owner.execute("SELECT coalesce(max(id), 0) + 1 FROM feedback_response").fetchone()
    last_id = first_id + count - 1
    moods = _moods(w)
    q = w.questions
    org, survey, version = w.org.pk, w.survey.pk, w.version.pk
    chan, tp = w.channel.pk, w.touchpoint.pk
    cat = "critical"
    span = DAYS * 86400
    answers = 0
    for start in range(first_id, last_id + 1, CHUNK):
        stop = min(last_id, start + CHUNK - 1)
        rng = random.Random(start)
        resp, ans = [], []
        for rid in range(start, stop + 1):
            emp = w.employee_ids[rng.randrange(len(w.employee_ids))]
            loc = w.employee_location[emp]
            at = w.end - dt.timedelta(seconds=span * rng.random())
            mood = moods[loc]
            resp.append((rid, org, survey, version, "api", "en", at, loc, emp, chan, tp, cat, "", "", at))
            common = (survey, at, loc, chan, tp, emp, cat)
            nps = min(10, max(0, round(rng.gauss(7.6 + mood, 2.2))))
            ans.append((org, rid, q["nps"].pk, "nps", "nps", None, nps, "", "{}", "", "{}", *common))
            if rng.random() < 0.8:
                csat = min(5, max(1, round(rng.gauss(4.0 + mood / 2, 0.9))))
                ans.append(
                    (
                        org,
                        rid,
                        q["csat"].pk,
                        "csat",
                        "csat",
                        w.standards[0].pk,
                        csat,
                        "",
                        "{}",
                        "",
                        "{}",
                        *common,
                    )
                )
            k = rid % RATING_QUESTIONS
            rating = min(5, max(1, round(rng.gauss(3.7 + 0.2 * k + mood / 2, 1.0))))
            qk = q[f"rating{k}"]
            ans.append(
                (org, rid, qk.pk, qk.key, "rating", qk.standard_id, rating, "", "{}", "", "{}", *common)
            )
        with owner.cursor() as cur:
            with cur.copy(f"COPY feedback_response ({RESPONSE_COLUMNS}) FROM STDIN") as copy:
                for row in resp:
                    copy.write_row(row)
            with cur.copy(f"COPY feedback_answer ({ANSWER_COLUMNS}) FROM STDIN") as copy:
                for row in ans:
                    copy.write_row(row)
        owner.commit()
        answers += len(ans)
        done = stop - first_id + 1
        if done % 1_000_000 < CHUNK or stop == last_id:
            rate = done / (time.perf_counter() - t0)
            print(f"    COPY: {done:,} responses ({rate:,.0f}/s, load {load()})", flush=True)
    owner.execute("SELECT setval(pg_get_serial_sequence('feedback_response', 'id'), %s)", [last_id])
    owner.commit()
    return answers, time.perf_counter() - t0


def insert_others(owner, w: World, args) -> dict:
    """Audits (2 per store and week, 5 standard scores), interactions, lesson completions (set-based)."""
    t0 = time.perf_counter()
    moods = _moods(w)
    params = {
        "org": w.org.pk, "version": w.form_version.pk, "locs": w.location_ids, "end": w.end, "days": DAYS,
        "stds": [s.pk for s in w.standards], "emps": w.employee_ids, "nloc": len(w.location_ids),
        # Store 5 of every 17 is good at audits but poor with customers: the matrix's blind spot.
        "audit_mood": [3.0 if i % 17 == 5 else moods[loc] for i, loc in enumerate(w.location_ids)],
        "chan": w.channel.pk, "tp": w.touchpoint.pk, "lesson": w.lesson.pk,
        "lesson_version": w.lesson.current_version_id, "n_int": args.interactions,
    }  # fmt: skip
    owner.execute("SELECT setseed(0.5)")
    owner.execute(
        """
        WITH src AS (
            SELECT l.i, l.loc, w.k, %(end)s::timestamptz - make_interval(secs => random() * %(days)s * 86400) AS at,
                   least(100, greatest(0, 72 + 6 * (%(audit_mood)s::float8[])[l.i] + 15 * (random() - 0.5)))::numeric(5,2) AS score
              FROM unnest(%(locs)s::bigint[]) WITH ORDINALITY AS l(loc, i), generate_series(1, 104) AS w(k)
        ), audits AS (
            INSERT INTO audits_audit (organization_id, version_id, status, location_id, score, critical_failed,
                                      section_scores, published_at, created_at, updated_at)
            SELECT %(org)s, %(version)s, 'published', loc, score, false, '{}'::jsonb, at, at, at FROM src
            RETURNING id, location_id, score, published_at
        )
        INSERT INTO audits_standardscore (organization_id, audit_id, standard_id, location_id, earned, possible, value, published_at)
        SELECT %(org)s, a.id, s.std, a.location_id, v.value / 100, 1, v.value, a.published_at
          FROM audits a CROSS JOIN unnest(%(stds)s::bigint[]) AS s(std)
         CROSS JOIN LATERAL (SELECT least(100, greatest(0, a.score + 20 * (random() - 0.5)))::numeric(5,2) AS value) v
        """,
        params,
    )
    owner.execute(
        """
        WITH src AS (
            SELECT g, (%(emps)s::bigint[])[1 + (g %% cardinality(%(emps)s::bigint[]))] AS emp,
                   %(end)s::timestamptz - make_interval(secs => random() * %(days)s * 86400) AS at
              FROM generate_series(1, %(n_int)s) g
        ), ins AS (
            INSERT INTO cem_interaction (organization_id, external_id, location_id, channel_id, touchpoint_id,
                                         category, occurred_at, attributes, created_at)
            SELECT %(org)s, 'i-' || g, (%(locs)s::bigint[])[1 + ((g %% cardinality(%(emps)s::bigint[])) %% %(nloc)s)],
                   %(chan)s, %(tp)s, 'critical', at, '{}'::jsonb, at
              FROM src
            RETURNING id, external_id
        )
        INSERT INTO cem_interactionemployee (organization_id, interaction_id, employee_id)
        SELECT %(org)s, ins.id, src.emp FROM ins JOIN src ON 'i-' || src.g = ins.external_id
        """,
        params,
    )
    owner.execute(
        """
        INSERT INTO learning_completion (organization_id, lesson_id, version_id, employee_id, location_id, completed_at, on_time)
        SELECT %(org)s, %(lesson)s, %(lesson_version)s, e.emp, (%(locs)s::bigint[])[1 + ((e.i - 1) %% %(nloc)s)],
               %(end)s::timestamptz - make_interval(secs => random() * %(days)s * 86400),
               CASE WHEN random() < 0.15 THEN NULL ELSE random() < 0.8 END
          FROM unnest(%(emps)s::bigint[]) WITH ORDINALITY AS e(emp, i), generate_series(1, 6)
        """,
        params,
    )
    owner.commit()
    counts = {}
    for name, tbl in (
        ("audits", "audits_audit"),
        ("interactions", "cem_interaction"),
        ("completions", "learning_completion"),
    ):
        counts[name] = owner.execute(
            f"SELECT count(*) FROM {tbl} WHERE organization_id = %s", [w.org.pk]
        ).fetchone()[0]
    owner.commit()
    counts["seconds"] = time.perf_counter() - t0
    return counts


def vacuum(owner, tables) -> float:
    t0 = time.perf_counter()
    owner.autocommit = True
    try:
        for tbl in tables:
            owner.execute(f"VACUUM ANALYZE {tbl}")
    finally:
        owner.autocommit = False
    return time.perf_counter() - t0


RAW_TABLES = (
    "feedback_response", "feedback_answer", "audits_audit", "audits_standardscore", "cem_interaction",
    "cem_interactionemployee", "learning_completion",
)  # fmt: skip


def build_rollup(owner, w: World, args) -> dict:
    from alignment import rebuild
    from cem.tenancy import tenant_context

    t0 = time.perf_counter()
    with tenant_context(w.org):
        timings = rebuild.replace(w.org, sources=not args.no_sources)
    timings["total"] = time.perf_counter() - t0
    timings["vacuum"] = vacuum(
        owner,
        (
            "alignment_rollup",
            "alignment_rollupsource",
            "alignment_periodrollup",
            "alignment_rollupgeneration",
        ),
    )
    sizes = owner.execute(
        "SELECT pg_total_relation_size('alignment_rollup'), pg_total_relation_size('alignment_rollupsource'),"
        " pg_total_relation_size('feedback_answer') + pg_total_relation_size('feedback_response'),"
        " pg_total_relation_size('alignment_periodrollup')"
    ).fetchone()
    owner.commit()
    timings["rollup_bytes"], timings["sources_bytes"], timings["raw_bytes"], timings["periods_bytes"] = sizes
    return timings


def nightly_check(owner, w: World) -> dict:
    """The nightly job (alignment.rebuild.verify) on this history, with one rollup row of the
    bench store corrupted first: the full SQL rebuild into scratch, the compare, the confirming
    pass, the repair of that day, the check again."""
    from alignment import rebuild
    from cem.tenancy import tenant_context

    owner.execute(
        "UPDATE alignment_rollup SET n = n + 1 WHERE id = (SELECT id FROM alignment_rollup"
        " WHERE organization_id = %s AND location_id = %s AND measure = 'nps' ORDER BY day DESC LIMIT 1)",
        [w.org.pk, w.store.pk],
    )
    owner.commit()
    t0 = time.perf_counter()
    with tenant_context(w.org):
        check = rebuild.verify(w.org)
    return {
        "seconds": time.perf_counter() - t0,
        "steps": check.seconds,
        "rows_compared": check.rows_compared,
        "differences": check.differences,
        "repaired": check.repaired,
    }


def compute_scores(w: World, days: int) -> dict:
    from alignment import scores
    from cem.tenancy import tenant_context

    if not days:
        return {"rows": 0, "seconds": 0.0}
    t0 = time.perf_counter()
    since = (w.end - dt.timedelta(days=days)).date()
    with tenant_context(w.org):
        rows = scores.recompute_all(w.org, since=since)
    return {"rows": rows, "seconds": time.perf_counter() - t0, "since": since.isoformat()}


# --- processes ----------------------------------------------------------------------------------


def free_redis_db() -> int:
    import redis

    used = set(redis.Redis.from_url(f"redis://{REDIS_HOST}/0").info("keyspace"))
    candidates = [n for n in range(15, 3, -1) if f"db{n}" not in used]
    if not candidates:
        raise RuntimeError("no empty Redis database between 4 and 15")
    return random.choice(candidates[:4])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(bench_url: str, broker: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": bench_url,
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "CACHE_KEY_PREFIX": "cem-bench-dashboard",
        "PYTHONPATH": str(ROOT),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
    }


def start_worker(bench_url: str, broker: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own command line
        [str(Path(sys.executable).with_name("celery")), "-A", "cem", "worker", "-l", "warning",
         "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=_env(bench_url, broker), stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_gunicorn(port: int, bench_url: str, broker: str, log: Path, workers: int) -> subprocess.Popen:
    env = {
        **_env(bench_url, broker),
        "CEM_ENV": "production",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT_PER_MINUTE": "100000000",  # one user's thousands of timed GETs are not abuse here
    }
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [str(Path(sys.executable).with_name("gunicorn")), "cem.wsgi", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "-k", "gthread", "--threads", "4", "--keep-alive", "30", "--timeout", "300"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"gunicorn did not start; see {log}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Http:
    """One keep-alive connection to gunicorn, as a browser behind a TLS-terminating proxy."""

    def __init__(self, port: int, headers: dict):
        self.port, self.headers = port, {"X-Forwarded-Proto": "https", "Host": "127.0.0.1", **headers}
        self.conn = None

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def session_cookie(user) -> str:
    from django.test import Client

    c = Client()
    c.force_login(user)
    return f"sessionid={c.cookies['sessionid'].value}"


# --- the dashboard over HTTP, and raw SQL beside it ----------------------------------------------


def panel_path(w: World, panel: str, period: str) -> str:
    return f"/api/v1/alignment/dashboard/stores/{w.store.pk}/{panel}/?{urlencode({'period': period})}"


class ReplayVersions:
    """The store's and the organization's replay versions in gunicorn's Redis (cem.fast_reads),
    raised as the commit of an event at the store raises them (alignment.rollup_derived)."""

    def __init__(self, broker: str, w: World):
        import redis

        from alignment.rollup_derived import location_version, organization_version

        # gunicorn's cache.make_key("fr:v:…"): its CACHE_KEY_PREFIX, version 1.
        prefix = "cem-bench-dashboard:1:fr:v:"
        self.redis = redis.Redis.from_url(broker)
        self.names = [
            prefix + location_version(w.org.pk, w.store.pk),
            prefix + organization_version(w.org.pk),
        ]

    def raise_(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for name in self.names:
            pipe.incr(name)
        pipe.execute()


def changed(owner, w: World, versions: ReplayVersions) -> None:
    """What an event at the store does: its rollup generation goes up in the event's transaction
    (the panel cache misses: alignment.panel_cache), then its replay versions (no replay)."""
    owner.execute(
        "UPDATE alignment_rollupgeneration SET generation = generation + 1 WHERE organization_id = %s AND location_id = %s",
        [w.org.pk, w.store.pk],
    )
    owner.commit()
    versions.raise_()


KINDS = ("cold", "django", "warm")


def time_panels(
    client: Http,
    owner,
    w: World,
    period: str,
    n: int,
    server: list[int],
    db_name: str,
    versions: ReplayVersions,
) -> dict:
    """Per panel, after a warm-up (20 rounds of every panel, then 20 requests of this one), ``n``
    views of each kind:

    - cold: each the first view after a change at the store (computed from the rollup);
    - django: the replay versions raised before each, the generation not: Django answers from
      its panel cache (what a repeated view cost before cem.fast_reads, and what any view costs
      when Redis lost the kept response);
    - warm: repeated views of an unchanged store (replayed in front of Django);

    and the CPU each request cost the web server (``server``: gunicorn's process tree) and its
    database processes (the web server keeps its connections), which load does not change."""
    out = {}
    # Warm-up, as a server that has been up a while: the web processes' lazy imports, each server
    # thread's database and Redis connections, the first plans. Timed only after it.
    for _ in range(20):
        for panel in PANELS:
            status, body = client.request("GET", panel_path(w, panel, period))
            if status != 200:
                raise RuntimeError(f"GET {panel_path(w, panel, period)}: {status} {body[:300]!r}")
    for panel in PANELS:
        path = panel_path(w, panel, period)
        for _ in range(20):
            client.request("GET", path)
        result = {}
        for kind in KINDS:
            times, loads = [], []
            db_pids = backends(owner, db_name)
            cpu_before = cpu_of([*process_tree(*server), *db_pids])
            for i in range(n):
                if kind == "cold":
                    changed(owner, w, versions)
                elif kind == "django":
                    versions.raise_()
                t = time.perf_counter()
                status, body = client.request("GET", path)
                times.append(time.perf_counter() - t)
                assert status == 200, (path, status)
                if i % 50 == 0:
                    loads.append(load1())
            cpu = cpu_spent(cpu_before, cpu_of([*process_tree(*server), *db_pids])) / n
            result[kind] = {"times": times, "load": max(loads), "rows": json.loads(body)["rows"], "cpu": cpu}
        if not result["cold"]["rows"] == result["django"]["rows"] == result["warm"]["rows"]:
            raise RuntimeError(f"{panel}: the cached or replayed rows differ from the computed ones")
        out[panel] = {
            **{kind: result[kind]["times"] for kind in KINDS},
            **{f"{kind}_cpu": result[kind]["cpu"] for kind in KINDS},
            "load": max(result[kind]["load"] for kind in KINDS),
            "rows": result["warm"]["rows"],
        }
        print(
            f"    {panel} (period {period}): "
            + ", ".join(f"{kind} p50 {ms(pct(result[kind]['times'], 0.5))} / p95 {ms(pct(result[kind]['times'], 0.95))} ms"
                        for kind in KINDS)
            + "; CPU per request " + " / ".join(f"{kind} {ms(result[kind]['cpu'])}" for kind in KINDS)
            + f" ms (load {out[panel]['load']:.1f})",
            flush=True,
        )  # fmt: skip
    return out


def _bounds(w: World, period: str) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    """The filter's local days and the UTC instants around them (as the dashboards compute them)."""
    import zoneinfo

    from alignment.filters import DashboardFilters
    from cem.tenancy import tenant_context

    with tenant_context(w.org):
        f = DashboardFilters.from_params({"period": period}, w.org)
    tz = zoneinfo.ZoneInfo(ZONE)
    lo = dt.datetime.combine(f.start, dt.time(), tzinfo=tz)
    hi = dt.datetime.combine(f.end + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return f.start, f.end, lo, hi


_LOCAL = f"(a.submitted_at AT TIME ZONE '{ZONE}')"
_METRICS = """count(*) AS n, sum(a.number) AS total,
    count(*) FILTER (WHERE (a.question_type = 'nps' AND a.number >= 9) OR (a.question_type = 'csat' AND a.number >= 4)
                      OR (a.question_type = 'ces' AND a.number >= 5) OR (a.question_type = 'fcr' AND a.number >= 1)) AS top,
    count(*) FILTER (WHERE (a.question_type = 'nps' AND a.number <= 6) OR (a.question_type = 'csat' AND a.number <= 2)
                      OR (a.question_type = 'ces' AND a.number <= 3) OR (a.question_type = 'fcr' AND a.number <= 0)) AS bottom"""
_ANSWERS = "a.organization_id = %(org)s AND a.number IS NOT NULL AND a.submitted_at >= %(lo)s AND a.submitted_at < %(hi)s"
_POINTS = """(a.number - CASE a.question_type WHEN 'nps' THEN 0 WHEN 'csat' THEN 1 WHEN 'ces' THEN 1 WHEN 'fcr' THEN 0 ELSE q.scale_min END) * 100
             / (CASE a.question_type WHEN 'nps' THEN 10 WHEN 'csat' THEN 5 WHEN 'ces' THEN 7 WHEN 'fcr' THEN 1 ELSE q.scale_max END
                - CASE a.question_type WHEN 'nps' THEN 0 WHEN 'csat' THEN 1 WHEN 'ces' THEN 1 WHEN 'fcr' THEN 0 ELSE q.scale_min END)"""
_AUDITS = "au.organization_id = %(org)s AND au.status = 'published' AND au.published_at >= %(lo)s AND au.published_at < %(hi)s"
_AUDIT_LOCAL = f"(au.published_at AT TIME ZONE '{ZONE}')"

# The same figures as each panel, from the raw tables (as the owner: no RLS, no ORM).
RAW_SQL = {
    "kpis": f"""
        SELECT a.question_type, {_METRICS} FROM feedback_answer a
         WHERE {_ANSWERS} AND a.location_id = %(loc)s AND a.question_type IN ('nps', 'csat', 'ces', 'fcr')
         GROUP BY a.question_type
        UNION ALL
        SELECT 'responses', count(*), 0, 0, 0 FROM feedback_response r
         WHERE r.organization_id = %(org)s AND r.location_id = %(loc)s AND r.submitted_at >= %(lo)s AND r.submitted_at < %(hi)s
        UNION ALL
        SELECT 'audit', count(au.score), sum(au.score), 0, 0 FROM audits_audit au WHERE {_AUDITS} AND au.location_id = %(loc)s
        UNION ALL
        SELECT 'interactions', count(*), 0, 0, 0 FROM cem_interaction i
         WHERE i.organization_id = %(org)s AND i.location_id = %(loc)s AND i.occurred_at >= %(lo)s AND i.occurred_at < %(hi)s
        UNION ALL
        SELECT 'lessons', count(*), 0, count(*) FILTER (WHERE c.on_time), count(*) FILTER (WHERE NOT c.on_time)
          FROM learning_completion c
         WHERE c.organization_id = %(org)s AND c.location_id = %(loc)s AND c.employee_id IS NOT NULL
           AND c.completed_at >= %(lo)s AND c.completed_at < %(hi)s
        """,
    "nps": f"""
        SELECT date_trunc('week', {_LOCAL})::date AS week, a.question_type, {_METRICS} FROM feedback_answer a
         WHERE {_ANSWERS} AND a.location_id = %(loc)s AND a.question_type IN ('nps', 'csat', 'ces', 'fcr')
         GROUP BY 1, 2
        """,
    "audit": f"""
        SELECT date_trunc('week', {_AUDIT_LOCAL})::date, 'audit', count(au.score), sum(au.score), 0, 0
          FROM audits_audit au WHERE {_AUDITS} AND au.location_id = %(loc)s AND au.score IS NOT NULL GROUP BY 1
        """,
    "heatmap": f"""
        SELECT a.standard_id, date_trunc('week', {_LOCAL})::date, 'feedback', count(*), sum(round({_POINTS}, 4))
          FROM feedback_answer a JOIN feedback_question q ON q.id = a.question_id
         WHERE {_ANSWERS} AND a.location_id = %(loc)s AND a.standard_id IS NOT NULL GROUP BY 1, 2
        UNION ALL
        SELECT s.standard_id, date_trunc('week', {_AUDIT_LOCAL})::date, 'audit', count(*), sum(s.value)
          FROM audits_standardscore s JOIN audits_audit au ON au.id = s.audit_id
         WHERE {_AUDITS} AND au.location_id = %(loc)s AND s.location_id = %(loc)s AND s.value IS NOT NULL GROUP BY 1, 2
        """,
    "matrix": f"""
        SELECT a.standard_id, 'impression', count(*), sum(round({_POINTS}, 4))
          FROM feedback_answer a JOIN feedback_question q ON q.id = a.question_id
         WHERE {_ANSWERS} AND a.location_id = %(loc)s AND a.standard_id IS NOT NULL GROUP BY 1
        UNION ALL
        SELECT s.standard_id, 'execution', count(*), sum(s.value)
          FROM audits_standardscore s JOIN audits_audit au ON au.id = s.audit_id
         WHERE {_AUDITS} AND au.location_id = %(loc)s AND s.location_id = %(loc)s AND s.value IS NOT NULL GROUP BY 1
        """,
    "comparison": f"""
        SELECT a.question_type, CASE WHEN a.location_id = %(loc)s THEN 'store' WHEN l.region_id = %(region)s THEN 'region' ELSE 'other' END,
               {_METRICS}
          FROM feedback_answer a LEFT JOIN cem_location l ON l.id = a.location_id
         WHERE {_ANSWERS} AND a.question_type IN ('nps', 'csat', 'ces', 'fcr') GROUP BY 1, 2
        """,
}


def run_raw(owner, w: World, period: str, repeat: int) -> dict:
    _first, _last, lo, hi = _bounds(w, period)
    params = {"org": w.org.pk, "loc": w.store.pk, "region": w.store.region_id, "lo": lo, "hi": hi}
    backend = owner.execute("SELECT pg_backend_pid()").fetchone()[0]
    owner.commit()
    out = {}
    for panel, sql in RAW_SQL.items():
        times, cpus, rows = [], [], None
        for _ in range(repeat):
            c, t = proc_cpu(backend), time.perf_counter()
            rows = owner.execute(sql, params).fetchall()
            times.append(time.perf_counter() - t)
            cpus.append(proc_cpu(backend) - c)  # the database's work: this process only waits
            owner.commit()
        out[panel] = {"times": times, "cpu": sum(cpus) / repeat, "rows": rows, "load": load1()}
        print(
            f"    raw {panel} (period {period}): p50 {ms(pct(times, 0.5))} ms, p95 {ms(pct(times, 0.95))} ms",
            flush=True,
        )
    return out


def _figure(measure: str, n, total, top, bottom) -> float | None:
    if not n:
        return None
    if measure == "nps":
        return 100 * (top - bottom) / n
    if measure in ("csat", "fcr"):
        return 100 * top / n
    return float(Decimal(total) / n)


def check_same(ours: dict, raw: dict) -> list[str]:
    """The raw GROUP BYs and the endpoints must show the same n and (to rounding) the same values."""
    problems = []

    def close(a, b, what):
        if a is None or b is None:
            if a is not b:
                problems.append(f"{what}: ours {a}, raw {b}")
        elif abs(float(a) - float(b)) > 0.01:
            problems.append(f"{what}: ours {a}, raw {b}")

    def same_n(a, b, what):
        if int(a or 0) != int(b or 0):
            problems.append(f"{what}: n ours {a}, raw {b}")

    kpis = {r["measure"]: r for r in ours["kpis"]["rows"]}
    for measure, n, total, top, bottom in raw["kpis"]["rows"]:
        same_n(kpis[measure]["n"], n, f"kpis {measure}")
        if measure not in ("responses", "interactions", "lessons"):
            close(kpis[measure]["value"], _figure(measure, n, total, top, bottom), f"kpis {measure}")
    trend = {(r["period"], r["metric"]): r for r in ours["nps"]["rows"]}
    raw_trend = {
        (str(week), m): (n, total, top, bottom) for week, m, n, total, top, bottom in raw["nps"]["rows"]
    }
    if trend.keys() != raw_trend.keys():
        problems.append(f"nps trend periods differ: {sorted(trend.keys() ^ raw_trend.keys())[:5]}")
    for key in trend.keys() & raw_trend.keys():
        same_n(trend[key]["n"], raw_trend[key][0], f"nps {key}")
        close(trend[key]["value"], _figure(key[1], *raw_trend[key]), f"nps {key}")
    audit = {r["period"]: r for r in ours["audit"]["rows"] if r["metric"] == "audit"}
    for week, _m, n, _total, _t, _b in raw["audit"]["rows"]:
        same_n(audit.get(str(week), {}).get("n"), n, f"audit {week}")
    heat = {(r["standard_id"], r["week"], r["source"]): r for r in ours["heatmap"]["rows"]}
    for std, week, source, n, total in raw["heatmap"]["rows"]:
        r = heat.get((std, str(week), source), {})
        same_n(r.get("n"), n, f"heatmap {std} {week} {source}")
        close(r.get("value"), float(Decimal(total) / n), f"heatmap {std} {week} {source}")
    matrix = {r["standard_id"]: r for r in ours["matrix"]["rows"]}
    for std, side, n, total in raw["matrix"]["rows"]:
        r = matrix.get(std, {})
        same_n(r.get(f"{side}_n"), n, f"matrix {std} {side}")
        close(r.get(side), float(Decimal(total) / n), f"matrix {std} {side}")
    sums: dict = {}
    for measure, where, n, total, top, bottom in raw["comparison"]["rows"]:
        for scope in {
            "store": ("location", "region", "company"),
            "region": ("region", "company"),
            "other": ("company",),
        }[where]:
            acc = sums.setdefault((measure, scope), [0, Decimal(0), 0, 0])
            for i, v in enumerate((n, total, top, bottom)):
                acc[i] += v
    comp = {r["measure"]: r for r in ours["comparison"]["rows"]}
    for (measure, scope), (n, total, top, bottom) in sums.items():
        same_n(comp[measure][f"{scope}_n"], n, f"comparison {measure} {scope}")
        close(comp[measure][scope], _figure(measure, n, total, top, bottom), f"comparison {measure} {scope}")
    return problems


def bench_dashboard(client: Http, owner, w: World, args, server: list[int], versions: ReplayVersions) -> dict:
    out = {}
    for period in args.periods:
        ours = time_panels(client, owner, w, period, args.requests, server, args.db_name, versions)
        raw = run_raw(owner, w, period, args.raw_repeat)
        problems = check_same(ours, raw)
        if problems:
            print("    !! raw and ours disagree: " + "; ".join(problems[:10]), flush=True)
        out[period] = {
            "ours": {
                p: {
                    **{k: v[k] for k in (*KINDS, *(f"{kind}_cpu" for kind in KINDS), "load")},
                    "n_rows": len(v["rows"]),
                }
                for p, v in ours.items()
            },
            "raw": {p: {"times": v["times"], "cpu": v["cpu"], "load": v["load"]} for p, v in raw.items()},
            "problems": problems,
        }
    return out


# --- event → rollup and alignment score -----------------------------------------------------------


def bench_events(client: Http, owner, w: World, n: int, *, procs: list[int]) -> dict:
    """A detractor response POSTed for a random store; timed until (a) its rollup rows and (b) the
    alignment scores of what it touched are visible to another connection: the worker ran
    alignment.rollup_response (the rollup and the queued keys commit together), then the
    debounced alignment.scores_drain took the keys (none left) and committed the store's day score
    (with every other scope and period of the keys, in the same transaction). Events one after the
    other. The CPU the web and worker processes spent per event (the database's is not counted
    here: Celery closes a task's connection after it, so its server process is gone before it
    can be read; bench_handler measures the alignment side's with its database process)."""
    import zoneinfo

    rng = random.Random(n)
    out = {"post": [], "rollup": [], "score": [], "missed_score": 0, "loads": []}
    today = dt.datetime.now(zoneinfo.ZoneInfo(ZONE)).date()
    app_before = None
    for i in range(n + 2):  # two warm-up events
        if i == 2:
            app_before = cpu_of(process_tree(*procs))
        k = rng.randrange(len(w.employee_ids))
        loc = w.employee_location[w.employee_ids[k]]
        body = json.dumps({
            "survey": w.survey.pk, "location": w.location_codes[w.location_ids.index(loc)],
            "employee": w.employee_codes[k], "source": "api",
            "answers": {"nps": rng.randint(0, 6), "csat": rng.randint(1, 2), f"rating{i % RATING_QUESTIONS}": 1},
        }).encode()  # fmt: skip
        wall = dt.datetime.now(dt.UTC)
        t0 = time.perf_counter()
        status, resp = client.request("POST", "/api/v1/responses/", body)
        posted = time.perf_counter() - t0
        if status != 201:
            raise RuntimeError(f"POST /api/v1/responses/: {status} {resp[:300]!r}")
        rid = json.loads(resp)["id"]
        rollup_at = score_at = None
        limit = 60 if i < 2 else 30
        while rollup_at is None or score_at is None:
            if rollup_at is None and owner.execute(
                "SELECT 1 FROM alignment_rollupsource WHERE organization_id = %s AND kind = 'response'"
                " AND source_id = %s AND rows <> '[]'::jsonb", [w.org.pk, rid]
            ).fetchone():  # fmt: skip
                rollup_at = time.perf_counter() - t0
            if (
                rollup_at is not None
                and score_at is None
                and owner.execute(
                    "SELECT 1 FROM alignment_alignmentscore s WHERE s.organization_id = %s AND s.scope = 'location'"
                    " AND s.scope_id = %s AND s.period = 'day' AND s.period_start = %s AND s.computed_at >= %s"
                    " AND NOT EXISTS (SELECT 1 FROM alignment_pendingscore p WHERE p.organization_id = s.organization_id)"
                    " LIMIT 1",
                    [w.org.pk, loc, today, wall],
                ).fetchone()
            ):
                score_at = time.perf_counter() - t0
            owner.commit()
            elapsed = time.perf_counter() - t0
            if elapsed > limit:
                if rollup_at is None:
                    raise RuntimeError(f"response {rid}: no rollup after {limit} s")
                out["missed_score"] += 1
                break
            time.sleep(0.003)
        if i >= 2:
            out["post"].append(posted)
            out["rollup"].append(rollup_at)
            if score_at is not None:
                out["score"].append(score_at)
            out["loads"].append(load1())
    out["cpu_app"] = cpu_spent(app_before, cpu_of(process_tree(*procs))) / n
    return out


def bench_handler(w: World, runs: int) -> dict:
    """The alignment side of one new response, in-process, rolled back: the handler's transaction
    (rollups.apply and queueing the touched keys, score_queue.enqueue) and the drain that follows
    it (score_queue.drain: the scores of those keys), each timed, with their queries and CPU —
    this process's and its PostgreSQL server process's, so load on the machine does not count."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from alignment import rollups, score_queue
    from cem.tenancy import tenant_context
    from feedback.models import Answer, Response

    class Rollback(Exception):
        pass

    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        backend = cur.fetchone()[0]

    def cpu() -> float:
        return time.process_time() + proc_cpu(backend)

    rng = random.Random(runs)
    out = {"apply": [], "drain": [], "apply_cpu": [], "drain_cpu": [], "apply_queries": 0, "drain_queries": 0,
           "loads": []}  # fmt: skip
    for i in range(runs + 3):
        k = rng.randrange(len(w.employee_ids))
        emp = w.employee_ids[k]
        loc = w.employee_location[emp]
        try:
            with tenant_context(w.org), transaction.atomic():
                now = dt.datetime.now(dt.UTC)
                r = Response.objects.create(
                    organization=w.org, survey=w.survey, version=w.version, source="api", submitted_at=now,
                    location_id=loc, employee_id=emp, channel=w.channel, touchpoint=w.touchpoint, category="critical",
                )  # fmt: skip
                Answer.objects.bulk_create(
                    Answer(organization=w.org, response=r, question=q, question_key=q.key, question_type=q.type,
                           standard=q.standard, number=v, survey=w.survey, submitted_at=now, location_id=loc,
                           employee_id=emp, channel=w.channel, touchpoint=w.touchpoint, category="critical")
                    for q, v in ((w.questions["nps"], 3), (w.questions["csat"], 2), (w.questions["rating0"], 1))
                )  # fmt: skip
                with CaptureQueriesContext(connection) as q1:
                    c, t = cpu(), time.perf_counter()
                    score_queue.enqueue(w.org, rollups.apply(w.org, "response", [r.pk]))
                    applied, applied_cpu = time.perf_counter() - t, cpu() - c
                with CaptureQueriesContext(connection) as q2:
                    c, t = cpu(), time.perf_counter()
                    score_queue.drain(w.org)
                    drained, drained_cpu = time.perf_counter() - t, cpu() - c
                raise Rollback
        except Rollback:
            pass
        if i >= 3:
            out["apply"].append(applied)
            out["drain"].append(drained)
            out["apply_cpu"].append(applied_cpu)
            out["drain_cpu"].append(drained_cpu)
            out["loads"].append(load1())
            out["apply_queries"] = max(out["apply_queries"], len(q1.captured_queries))
            out["drain_queries"] = max(out["drain_queries"], len(q2.captured_queries))
    return out


# --- main ---------------------------------------------------------------------------------------


def load_world() -> World:
    """The World of a database a run with ``--keep`` left behind (``--reuse``): its rows, and a new
    API key (only a key's hash is stored)."""
    from django.contrib.auth import get_user_model

    from audits import models as am
    from cem import services
    from cem.models import Channel, Employee, Location, Organization, Standard, Touchpoint
    from cem.principals import Actor
    from cem.tenancy import tenant_context, unscoped
    from feedback.models import Question, Survey, SurveyVersion
    from learning import models as lm

    w = World()
    w.end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with unscoped():
        w.org = Organization.objects.get(slug="bench-dashboard")
    with tenant_context(w.org):
        locations = list(Location.objects.order_by("pk"))
        w.location_ids = [loc.pk for loc in locations]
        w.location_codes = [loc.code for loc in locations]
        w.location_region = {loc.pk: loc.region_id for loc in locations}
        employees = list(Employee.objects.order_by("pk"))
        w.employee_ids = [e.pk for e in employees]
        w.employee_codes = [e.external_id for e in employees]
        w.employee_location = {e.pk: e.current_location_id for e in employees}
        w.channel = Channel.objects.get(code="store")
        w.touchpoint = Touchpoint.objects.get(code="checkout")
        w.standards = list(Standard.objects.order_by("pk"))
        w.survey = Survey.objects.get(name="Store visit")
        w.version = SurveyVersion.objects.get(survey=w.survey, number=1)
        w.questions = {q.key: q for q in Question.objects.filter(version=w.version)}
        w.form_version = am.AuditFormVersion.objects.order_by("pk").first()
        w.lesson = lm.Lesson.objects.order_by("pk").first()
        w.store = locations[0]
        _key, w.api_key = services.api_key_create(
            organization=w.org, actor=Actor.system(), name=f"bench {w.end:%H%M%S}", scopes=["*"],
            rate_limit_per_minute=10_000_000,
        )  # fmt: skip
        w.manager = get_user_model().objects.get(email="bench-manager@example.com")
    return w


def prepare_step(owner, w: World, args, size: int, loaded: int, step: dict) -> None:
    """Load the responses up to ``size``, rebuild the rollup, run the nightly check, compute the scores."""
    answers, took, indexing = bulk_load(owner, w, size - loaded)
    step["copy"] = {"responses": size - loaded, "answers": answers, "seconds": took, "indexes": indexing}
    step["vacuum_raw"] = vacuum(owner, RAW_TABLES)
    print(
        f"  COPY: {answers:,} answers in {took:.0f} s; indexes {indexing:.0f} s;"
        f" VACUUM ANALYZE {step['vacuum_raw']:.0f} s",
        flush=True,
    )
    step["rebuild"] = build_rollup(owner, w, args)
    r = step["rebuild"]
    print(f"  SQL rebuild: {r['rollup_rows']:,} rollup rows, {r.get('source_rows', 0):,} sources in {r['total']:.0f} s "
          f"(scratch {r['scratch']:.0f} s, swap {r['swap']:.0f} s, periods {r.get('periods', 0):.0f} s, "
          f"sources {r.get('sources', 0):.0f} s)", flush=True)  # fmt: skip
    step["nightly"] = nightly_check(owner, w)
    print(f"  nightly check: {step['nightly']}", flush=True)
    step["scores"] = compute_scores(w, args.scores_days)
    # As autovacuum would, some time after a full recompute wrote the scores in bulk.
    step["scores"]["vacuum"] = vacuum(owner, ("alignment_alignmentscore",))
    print(f"  alignment scores: {step['scores']}", flush=True)


def main() -> int:
    args = parse_args()
    steps = sorted({*[h for h in args.history if h < args.responses], args.responses})
    if not args.reuse:
        check_disk(args)
    bench_url, admin_url = prepare_environment(args.db_name)
    os.environ["SECRET_KEY"] = "bench-only-" + "d" * 50  # the bench's sessions, checked by gunicorn
    redis_db = free_redis_db()
    broker = f"redis://{REDIS_HOST}/{redis_db}"
    os.environ["CELERY_BROKER_URL"] = broker
    where = urlsplit(bench_url)
    print(
        f"scratch database {args.db_name!r} on {where.hostname}:{where.port or 5432}; broker {broker}; load {load()}"
    )
    if not args.reuse:
        recreate_database(admin_url, args.db_name)

    setup_django()
    import psycopg
    import redis
    from django.core.management import call_command
    from django.db import connections

    report: dict = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "steps": [],
    }
    gunicorn = worker = None
    tmp = Path(tempfile.gettempdir())
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"migrated in {time.perf_counter() - t0:.1f}s", flush=True)
        owner = psycopg.connect(bench_url)
        owner.execute("SET synchronous_commit = off")  # the loads' commits need not wait for the disk
        owner.commit()
        if args.reuse:
            w = load_world()
            count = owner.execute("SELECT count(*) FROM feedback_response").fetchone()[0]
            owner.commit()
            steps = [count]
        else:
            w = create_world(args)
            report["others"] = insert_others(owner, w, args)
            print(f"audits, interactions, completions: {report['others']}", flush=True)
        loaded = 0
        for size in steps:
            step: dict = {"responses": size, "load_before": load(), "reused": args.reuse}
            print(f"\n== {size:,} responses ==", flush=True)
            stop(gunicorn)
            stop(worker)
            gunicorn = worker = None
            if not args.reuse:
                prepare_step(owner, w, args, size, loaded, step)
                loaded = size
            step["handler"] = bench_handler(w, args.handler_runs)
            h = step["handler"]
            print(
                f"  in-process: handler (apply + queue) p50 {ms(pct(h['apply'], 0.5))} ms, drain (scores) p50"
                f" {ms(pct(h['drain'], 0.5))} ms, CPU {ms(pct(h['drain_cpu'], 0.5))} ms (load {load()})",
                flush=True,
            )
            if not (args.skip_http and args.skip_latency):
                port = free_port()
                gunicorn = start_gunicorn(
                    port, bench_url, broker, tmp / "bench_dashboard_gunicorn.log", args.workers
                )
                worker = start_worker(bench_url, broker, tmp / "bench_dashboard_worker.log")
                connections.close_all()
                if not args.skip_http:
                    client = Http(port, {"Cookie": session_cookie(w.manager)})
                    step["dashboard"] = bench_dashboard(
                        client, owner, w, args, [gunicorn.pid], ReplayVersions(broker, w)
                    )
                if not args.skip_latency:
                    client = Http(
                        port, {"Authorization": f"Bearer {w.api_key}", "Content-Type": "application/json"}
                    )
                    step["events"] = bench_events(
                        client, owner, w, args.events, procs=[gunicorn.pid, worker.pid]
                    )
                    e = step["events"]
                    print(
                        f"  event → rollup p50 {ms(pct(e['rollup'], 0.5))} ms, p95 {ms(pct(e['rollup'], 0.95))} ms;"
                        f" → scores p50 {ms(pct(e['score'], 0.5)) if e['score'] else '—'} ms,"
                        f" p95 {ms(pct(e['score'], 0.95)) if e['score'] else '—'} ms ({e['missed_score']} missed);"
                        f" web + worker CPU per event {ms(e['cpu_app'])} ms (load {load()})",
                        flush=True,
                    )
            step["load_after"] = load()
            report["steps"].append(step)
            args.json.write_text(json.dumps(report, default=str))
        owner.close()
    finally:
        stop(gunicorn)
        stop(worker)
        connections.close_all()
        redis.Redis.from_url(broker).flushdb()  # it was empty when chosen: only our queue is there
        if not (args.keep or args.reuse):
            recreate_database(admin_url, args.db_name, drop_only=True)
    report["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="minutes")
    args.json.write_text(json.dumps(report, default=str))
    print_report(report, args)
    print(f"\n(raw figures in {args.json})")
    return 0


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")  # fmt: skip
    mem = int(
        next(
            line.split()[1]
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    )
    return f"{os.cpu_count()} vCPU {cpu}, {mem / 1024 / 1024:.0f} GB RAM"


def print_report(r: dict, args) -> None:
    print(f"\nMachine: {r['machine']}; run {r['started']} – {r['finished']} UTC")
    steps = r["steps"]
    built = [s for s in steps if "rebuild" in s]
    print("\nRollup built by the SQL rebuild (alignment.rebuild.replace):\n")
    table(
        ["responses", "answers (all)", "COPY s", "rebuild s", "scratch s", "swap s", "PeriodRollup s", "RollupSource s",
         "rollup rows", "rollup MB", "PeriodRollup MB", "sources MB", "raw MB", "load"],
        [[f"{s['responses']:,}", f"{s['copy']['answers']:,}", f"{s['copy']['seconds']:.0f}", f"{s['rebuild']['total']:.0f}",
          f"{s['rebuild']['scratch']:.0f}", f"{s['rebuild']['swap']:.0f}", f"{s['rebuild'].get('periods', 0):.0f}",
          f"{s['rebuild'].get('sources', 0):.0f}", f"{s['rebuild']['rollup_rows']:,}",
          f"{s['rebuild']['rollup_bytes'] / 1e6:,.0f}", f"{s['rebuild'].get('periods_bytes', 0) / 1e6:,.0f}",
          f"{s['rebuild']['sources_bytes'] / 1e6:,.0f}", f"{s['rebuild']['raw_bytes'] / 1e6:,.0f}", s["load_after"]]
         for s in built],
    )  # fmt: skip
    print("\nThe nightly check (alignment.rebuild.verify) with one rollup row corrupted:\n")
    table(
        ["responses", "rows compared", "differences", "repaired", "total s", "rebuild + compare s", "confirm s",
         "repair s", "check again s", "scores s"],
        [[f"{s['responses']:,}", f"{s['nightly']['rows_compared']:,}", str(s["nightly"]["differences"]),
          str(s["nightly"]["repaired"]), f"{s['nightly']['seconds']:.0f}",
          *(f"{s['nightly']['steps'].get(k, 0):.1f}" for k in ("check", "confirm", "repair", "recheck", "scores"))]
         for s in built],
    )  # fmt: skip
    for s in steps:
        if "dashboard" not in s:
            continue
        for period, d in s["dashboard"].items():
            print(f"\nStore dashboard endpoints, {s['responses']:,} responses, ?period={period} "
                  f"({args.requests} cold, Django-cached and warm requests each over HTTP; raw: {args.raw_repeat} runs "
                  "as the owner; load = the highest 1-min load average seen):\n")  # fmt: skip
            rows = []
            for panel in PANELS:
                o = d["ours"][panel]
                raw = d["raw"].get(panel, {}).get("times")
                raw_cpu = d["raw"].get(panel, {}).get("cpu")

                def ratio(times, raw=raw):
                    return (
                        f"{pct(raw, 0.5) / pct(times, 0.5):,.0f}× / {pct(raw, 0.95) / pct(times, 0.95):,.0f}×"
                    )

                django = o.get("django", o["warm"])  # a report from before the replays had no such kind
                django_cpu = o.get("django_cpu", o["warm_cpu"])
                rows.append([
                    panel, f"{ms(pct(o['cold'], 0.5))} / {ms(pct(o['cold'], 0.95))}",
                    f"{ms(pct(django, 0.5))} / {ms(pct(django, 0.95))}",
                    f"{ms(pct(o['warm'], 0.5))} / {ms(pct(o['warm'], 0.95))}",
                    f"{ms(pct(raw, 0.5))} / {ms(pct(raw, 0.95))}" if raw else "—",
                    ratio(o["cold"]) if raw else "—", ratio(django) if raw else "—", ratio(o["warm"]) if raw else "—",
                    f"{ms(o['cold_cpu'])} / {ms(django_cpu)} / {ms(o['warm_cpu'])}", ms(raw_cpu) if raw else "—",
                    f"{raw_cpu / o['warm_cpu']:,.0f}×" if raw else "—",
                    f"{o['load']:.1f}",
                ])  # fmt: skip
            table(
                ["panel", "cold p50 / p95 ms", "Django-cached p50 / p95 ms", "warm (replayed) p50 / p95 ms",
                 "raw GROUP BY p50 / p95 ms", "raw ÷ cold (p50 / p95)", "raw ÷ Django-cached (p50 / p95)",
                 "raw ÷ warm (p50 / p95)", "CPU per request cold / Django-cached / warm ms (web + db)",
                 "raw CPU ms (db)", "raw CPU ÷ warm CPU", "load"],
                rows,
            )  # fmt: skip
            if d["problems"]:
                print(f"\n!! {len(d['problems'])} disagreements between raw and ours: {d['problems'][:5]}")
            else:
                print("\nEvery raw figure (n and value) equals the endpoint's.")
    rows = []
    for s in steps:
        h = s["handler"]
        row = [
            f"{s['responses']:,}",
            f"{ms(pct(h['apply'], 0.5))} ({h['apply_queries']} q); CPU {ms(pct(h['apply_cpu'], 0.5))}",
            f"{ms(pct(h['drain'], 0.5))} / {ms(pct(h['drain'], 0.95))} ({h['drain_queries']} q)",
            f"{ms(pct(h['drain_cpu'], 0.5))} / {ms(pct(h['drain_cpu'], 0.95))}",
            f"{max(h['loads']):.1f}",
        ]
        if "events" in s:
            e = s["events"]
            sc = e["score"]
            row += [ms(pct(e["post"], 0.5)), f"{ms(pct(e['rollup'], 0.5))} / {ms(pct(e['rollup'], 0.95))}",
                    f"{ms(pct(sc, 0.5))} / {ms(pct(sc, 0.95))}" if sc else "—",
                    f"{len(sc)} of {len(e['rollup'])}", ms(e["cpu_app"]),
                    f"{min(e['loads']):.1f}–{max(e['loads']):.1f}"]  # fmt: skip
        else:
            row += ["—"] * 6
        rows.append(row)
    print(
        "\nEvent → rollup and alignment scores (a real worker through Redis), and the alignment side in-process:\n"
    )
    table(
        ["responses", "handler txn p50 ms (app + db CPU)", "drain p50 / p95 ms", "drain CPU p50 / p95 ms (app + db)",
         "load", "POST p50 ms", "→ rollup p50 / p95 ms", "→ scores p50 / p95 ms", "scored",
         "web + worker CPU per event ms", "load"],
        rows,
    )  # fmt: skip
    if len(steps) > 1 and all("events" in s for s in (steps[0], steps[-1])):
        a, b = steps[0]["events"]["score"], steps[-1]["events"]["score"]
        ha, hb = steps[0]["handler"], steps[-1]["handler"]

        def change(x, y) -> str:
            return f"{(y / x - 1) * 100:+.0f} %"

        if a and b:
            print(
                f"\n{steps[-1]['responses']:,} vs {steps[0]['responses']:,}: event → scores p50 "
                f"{change(pct(a, 0.5), pct(b, 0.5))}, p95 {change(pct(a, 0.95), pct(b, 0.95))}; drain p50 "
                f"{change(pct(ha['drain'], 0.5), pct(hb['drain'], 0.5))}, drain CPU p50 "
                f"{change(pct(ha['drain_cpu'], 0.5), pct(hb['drain_cpu'], 0.5))}; web + worker CPU per event "
                f"{change(steps[0]['events']['cpu_app'], steps[-1]['events']['cpu_app'])} (target: flat within 20 %)"
            )


if __name__ == "__main__":
    sys.exit(main())
