# ruff: noqa: E501 - SQL and result tables read better unwrapped
"""Feedback at volume: NPS by location over 1M responses, a 1M-row CSV export, bulk response
ingest beside raw COPY, and single-response POSTs against gunicorn.

    .venv/bin/python bench/feedback.py [--responses 1000000] [--ingest-rows 10000 50000] [--repeat 3]
                                       [--post-seconds 10] [--skip-post] [--keep-db]
    .venv/bin/python bench/feedback.py --only-post [--workers 2] [--threads 4]   # (d) alone, ~1 min

Runs against a scratch database (``cem_bench_feedback`` next to the one DATABASE_URL names),
dropped, re-created and migrated at the start and dropped at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from scratch import ROOT, prepare_environment, recreate_database, setup_django, table

N_LOCATIONS = 30
N_EMPLOYEES = 300
BATCH = 10_000  # the bulk endpoint's cap per call
COMMENTS = (  # with their share among comments; a fifth of the responses comment
    "Staff were friendly and helpful, found exactly what I needed.",
    "Waited 20 minutes at checkout, only one cashier working.",
    "It was ok, nothing special.",
    "The store was dirty and messy.",
    "El personal fue amable y me ayudó.",
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--responses", type=int, default=1_000_000, help="responses for the NPS and export runs")
    p.add_argument("--ingest-rows", type=int, nargs="+", default=[10_000, 50_000])
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    p.add_argument("--post-seconds", type=int, default=10, help="duration of each single-POST run")
    p.add_argument("--skip-post", action="store_true", help="skip the gunicorn measurement")
    p.add_argument("--only-post", action="store_true", help="run (d) alone: no bulk data, (a)-(c) skipped")
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes for (d)")
    p.add_argument(
        "--threads",
        type=int,
        default=4,
        help="gunicorn gthread threads per worker, with keep-alive, for (d) (0: sync workers, a connection per request)",
    )
    p.add_argument("--db-name", default="cem_bench_feedback")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument("--export-child", type=int, help=argparse.SUPPRESS)  # internal: run one export job
    return p.parse_args()


# --- scratch organization and data -----------------------------------------------------------


class World:
    org = None
    survey = None
    version = None
    questions: dict = {}
    location_ids: list[int] = []
    location_codes: list[str] = []
    employee_ids: list[int] = []
    employee_codes: list[str] = []
    api_key = ""
    admin = None


def create_world() -> World:
    from django.contrib.auth import get_user_model

    from cem import services
    from cem.models import Channel, Employee, Location, Organization, Region, Role
    from cem.principals import Actor
    from cem.tenancy import tenant_context, unscoped
    from feedback.models import Question, Survey, SurveyVersion

    w = World()
    with unscoped():
        w.org = Organization.objects.create(name="Bench Org", slug="bench-org", time_zone="UTC")
    org = w.org
    with tenant_context(org):
        region = Region.objects.create(organization=org, name="Bench region", code="bench")
        locations = Location.objects.bulk_create(
            Location(organization=org, region=region, name=f"Store {i:02d}", code=f"loc-{i:02d}")
            for i in range(1, N_LOCATIONS + 1)
        )
        w.location_ids = [loc.pk for loc in locations]
        w.location_codes = [loc.code for loc in locations]
        Channel.objects.create(organization=org, code="store", name="Store", kind="in_store")
        employees = Employee.objects.bulk_create(
            Employee(
                organization=org,
                name=f"Employee {i:03d}",
                external_id=f"E{i:04d}",
                current_location=locations[i % N_LOCATIONS],
            )
            for i in range(N_EMPLOYEES)
        )
        w.employee_ids = [e.pk for e in employees]
        w.employee_codes = [e.external_id for e in employees]
        w.survey = Survey.objects.create(
            organization=org, name="Store visit", status="active", default_locale="en", locales=["en", "es"]
        )
        w.version = SurveyVersion.objects.create(organization=org, survey=w.survey, number=1)
        for pos, (key, qtype) in enumerate(
            (("nps", "nps"), ("csat", "csat"), ("ces", "ces"), ("comment", "text"))
        ):
            w.questions[key] = Question.objects.create(
                organization=org,
                version=w.version,
                key=key,
                type=qtype,
                position=pos,
                required=key == "nps",
                text={"en": key, "es": key},
            )
        _key, w.api_key = services.api_key_create(
            organization=org,
            actor=Actor.system(),
            name="bench",
            scopes=["*"],
            rate_limit_per_minute=10_000_000,
        )
        membership = services.membership_create(
            organization=org, actor=Actor.system(), email="bench-admin@example.com", role=Role.ORG_ADMIN
        )
        w.admin = get_user_model().objects.get(pk=membership.user_id)
    return w


def generate_responses(owner, w: World, n: int) -> tuple[int, float]:
    """n responses over 180 days with nps (all), csat (80 %), ces (60 %) and a comment (20 %),
    written set-based in SQL by the owner (the load is not what is measured). Store quality
    differs, so the grouped NPS has something to show."""
    from feedback import text_analytics

    start = time.perf_counter()
    q = w.questions
    sentiments = [text_analytics.sentiment(t) for t in COMMENTS]
    topics = [",".join(text_analytics.topics(t, text_analytics.DEFAULT_TOPICS)) for t in COMMENTS]
    owner.execute("SELECT setseed(0.42)")
    owner.execute(
        """
        INSERT INTO feedback_response (id, organization_id, survey_id, version_id, source, locale, submitted_at,
            location_id, employee_id, category, device_hash, ip_hash, created_at)
        SELECT i, %(org)s, %(survey)s, %(version)s, (ARRAY['email','sms','qr','widget'])[1 + i %% 4],
            CASE WHEN i %% 7 = 0 THEN 'es' ELSE 'en' END,
            now() - interval '180 days' * (i::float8 / %(n)s), (%(locs)s::bigint[])[1 + i %% 30],
            (%(emps)s::bigint[])[1 + i %% 300], 'stabilizing', '', '', now()
        FROM generate_series(1, %(n)s) AS i
        """,
        {
            "org": w.org.pk,
            "survey": w.survey.pk,
            "version": w.version.pk,
            "n": n,
            "locs": w.location_ids,
            "emps": w.employee_ids,
        },
    )
    owner.execute("SELECT setval(pg_get_serial_sequence('feedback_response', 'id'), %s)", [n])
    dims = (
        "survey_id, submitted_at, location_id, employee_id, category, channel_id, touchpoint_id, segment_id"
    )
    cols = (
        "organization_id, response_id, question_id, question_key, question_type, number, text, choices,"
        " sentiment, sentiment_score, topics, " + dims
    )
    # A store's mood: (location index mod 30) shifts the score; random() adds the spread.
    for key, qtype, share, expr in (
        (
            "nps",
            "nps",
            1.0,
            "least(10, greatest(0, round(8 + 2 * (random() - 0.5) * 4 + (r.id %% 30 - 15) / 8.0)))",
        ),
        (
            "csat",
            "csat",
            0.8,
            "least(5, greatest(1, round(4 + (random() - 0.5) * 4 + (r.id %% 30 - 15) / 20.0)))",
        ),
        ("ces", "ces", 0.6, "least(7, greatest(1, round(5 + (random() - 0.5) * 5)))"),
    ):
        owner.execute(
            f"INSERT INTO feedback_answer ({cols}) SELECT r.organization_id, r.id, %(q)s, %(key)s, %(type)s,"
            f" {expr}, '', '{{}}', '', NULL, '{{}}', {', '.join('r.' + d for d in dims.split(', '))}"
            " FROM feedback_response r WHERE r.organization_id = %(org)s AND (%(share)s >= 1 OR random() < %(share)s)",
            {"q": q[key].pk, "key": key, "type": qtype, "org": w.org.pk, "share": share},
        )
    owner.execute(
        f"INSERT INTO feedback_answer ({cols}) SELECT r.organization_id, r.id, %(q)s, 'comment', 'text', NULL,"
        " (%(texts)s::text[])[1 + r.id / 5 %% 5], '{}', (%(labels)s::text[])[1 + r.id / 5 %% 5],"
        " (%(scores)s::float8[])[1 + r.id / 5 %% 5], string_to_array((%(topics)s::text[])[1 + r.id / 5 %% 5], ','), "
        + ", ".join("r." + d for d in dims.split(", "))
        + " FROM feedback_response r WHERE r.organization_id = %(org)s AND r.id %% 5 = 0",
        {
            "q": q["comment"].pk,
            "org": w.org.pk,
            "texts": list(COMMENTS),
            "labels": [s[0] for s in sentiments],
            "scores": [s[1] for s in sentiments],
            "topics": topics,
        },
    )
    owner.commit()
    (answers,) = owner.execute("SELECT count(*) FROM feedback_answer").fetchone()
    owner.commit()
    owner.autocommit = True
    owner.execute("VACUUM ANALYZE feedback_response")
    owner.execute("VACUUM ANALYZE feedback_answer")
    owner.autocommit = False
    return answers, time.perf_counter() - start


# --- (a) NPS by location -----------------------------------------------------------------------

RAW_NPS_SQL = """
SELECT location_id, count(number) AS n, count(number) FILTER (WHERE number >= 9) AS promoters,
       count(number) FILTER (WHERE number <= 6) AS detractors
FROM feedback_answer WHERE organization_id = %s AND question_type = 'nps' AND number IS NOT NULL
GROUP BY location_id
"""


def bench_nps(owner, w: World, client, repeat: int) -> dict:
    from cem.tenancy import tenant_context
    from feedback import selectors

    best = {"raw": float("inf"), "selector": float("inf"), "http": float("inf")}
    raw_rows = selector_rows = None
    with tenant_context(w.org):
        from cem.models import Membership

        membership = Membership.objects.get(user=w.admin)
    caller = selectors.Caller.of_membership(membership)
    for _ in range(max(repeat, 5)):
        t = time.perf_counter()
        raw_rows = owner.execute(RAW_NPS_SQL, [w.org.pk]).fetchall()
        best["raw"] = min(best["raw"], time.perf_counter() - t)
        owner.commit()
        with tenant_context(w.org):
            t = time.perf_counter()
            query = selectors.parse_metric_query({"metric": "nps", "group_by": "location"}, w.org)
            selector_rows = selectors.metric_results(organization=w.org, caller=caller, query=query)
            best["selector"] = min(best["selector"], time.perf_counter() - t)
        t = time.perf_counter()
        resp = client.get("/api/v1/metrics/?metric=nps&group_by=location")
        best["http"] = min(best["http"], time.perf_counter() - t)
        assert resp.status_code == 200, resp.content[:300]
    raw_n = sum(r[1] for r in raw_rows)
    ours_n = sum(r["n"] for r in selector_rows)
    assert raw_n == ours_n, (raw_n, ours_n)
    raw_nps = {r[0]: 100 * (r[2] - r[3]) / r[1] for r in raw_rows}
    ours_nps = {r["group"]["location"]: float(r["value"]) for r in selector_rows}
    assert raw_nps.keys() == ours_nps.keys()
    # The selector rounds to two decimals; the raw figure is exact.
    assert all(abs(raw_nps[k] - ours_nps[k]) <= 0.005 + 1e-9 for k in raw_nps), (
        "selector and raw SQL disagree"
    )
    best["answers"] = raw_n
    best["groups"] = len(raw_rows)
    return best


# --- (b) export -----------------------------------------------------------------------------

RAW_EXPORT_SQL = """
COPY (
    SELECT r.id, r.submitted_at, s.name, v.number, r.source, r.locale, l.code, l.name, e.external_id, e.name,
        max(a.number) FILTER (WHERE a.question_key = 'nps'), max(a.number) FILTER (WHERE a.question_key = 'csat'),
        max(a.number) FILTER (WHERE a.question_key = 'ces'), max(a.text) FILTER (WHERE a.question_key = 'comment'),
        max(a.sentiment) FILTER (WHERE a.question_key = 'comment'),
        max(a.sentiment_score) FILTER (WHERE a.question_key = 'comment'),
        max(array_to_string(a.topics, '; ')) FILTER (WHERE a.question_key = 'comment')
    FROM feedback_response r
    JOIN feedback_survey s ON s.id = r.survey_id JOIN feedback_surveyversion v ON v.id = r.version_id
    LEFT JOIN cem_location l ON l.id = r.location_id LEFT JOIN cem_employee e ON e.id = r.employee_id
    JOIN feedback_answer a ON a.organization_id = r.organization_id AND a.response_id = r.id
    WHERE r.organization_id = {org}
    GROUP BY r.id, s.name, v.number, l.code, l.name, e.external_id, e.name
    ORDER BY r.submitted_at, r.id
) TO STDOUT WITH (FORMAT csv, HEADER)
"""


def bench_raw_export(owner, org_id: int, path: Path) -> float:
    """The least a database can do: one pivoting query COPYed straight to a file (no escaping,
    no time-zone formatting, no progress, no scope)."""
    start = time.perf_counter()
    with (
        open(path, "wb") as out,
        owner.cursor() as cur,
        cur.copy(RAW_EXPORT_SQL.format(org=int(org_id))) as copy,
    ):
        for data in copy:
            out.write(data)
    owner.commit()
    return time.perf_counter() - start


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def export_child(job_id: int) -> int:
    """Run inside a fresh process: build one export job as the Celery task would, and report."""
    setup_django()
    from cem.tenancy import tenant_context, unscoped
    from feedback.export_tasks import export_build
    from feedback.models import ExportJob

    with unscoped():
        org_id = ExportJob.objects.get(pk=job_id).organization_id
    before = _rss_kb("VmRSS")
    # Reset the kernel's peak-RSS mark (VmHWM), so the peak read afterwards is the export's own.
    Path("/proc/self/clear_refs").write_text("5")
    start = time.perf_counter()
    rows = export_build(org_id, job_id)  # TenantTask.__call__ opens the tenant context
    elapsed = time.perf_counter() - start
    with tenant_context(org_id):
        job = ExportJob.objects.get(pk=job_id)
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": elapsed,
                "rss_before_kb": before,
                "peak_rss_kb": _rss_kb("VmHWM"),
                "status": job.status,
                "rows_done": job.rows_done,
                "file": job.file_path,
            }
        )
    )
    return 0


def bench_export(w: World, media_root: Path, filters: dict | None = None) -> dict:
    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from feedback import exports

    with tenant_context(w.org), _no_on_commit():
        job = exports.export_request(
            organization=w.org,
            actor=Actor.system(),
            format="csv",
            filters=filters or {},
            scope={},
            requested_by=w.admin,
        )
    env = {**os.environ, "MEDIA_ROOT": str(media_root)}
    proc = subprocess.run(  # noqa: S603 - our own command line
        [sys.executable, __file__, "--export-child", str(job.pk)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    path = media_root / result["file"]
    result["bytes"] = path.stat().st_size
    with open(path, encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        result["header"] = next(reader)
        lines = sum(1 for _ in reader)
    assert lines == result["rows"], (lines, result["rows"])
    return result


class _no_on_commit:
    """The bench calls the task itself (in a child process); drop the on-commit send."""

    def __enter__(self):
        from django.db import connection

        self.mark = len(connection.run_on_commit)

    def __exit__(self, *exc):
        from django.db import connection

        del connection.run_on_commit[self.mark :]


# --- (c) bulk ingest ---------------------------------------------------------------------------


def ingest_rows(w: World, n: int, tag: str, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    base = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    rows = []
    for i in range(n):
        k = rng.randrange(N_EMPLOYEES)
        answers = {"nps": rng.randint(0, 10)}
        if rng.random() < 0.8:
            answers["csat"] = rng.randint(1, 5)
        if rng.random() < 0.6:
            answers["ces"] = rng.randint(1, 7)
        if rng.random() < 0.2:
            answers["comment"] = COMMENTS[rng.randrange(len(COMMENTS))]
        rows.append(
            {
                "survey": w.survey.pk,
                "external_id": f"{tag}-{i:07d}",
                "location": w.location_codes[k % N_LOCATIONS],
                "employee": w.employee_codes[k],
                "submitted_at": (base - dt.timedelta(seconds=rng.randrange(180 * 86400))).isoformat(),
                "locale": "es" if i % 7 == 0 else "en",
                "source": "api",
                "answers": answers,
            }
        )
    return rows


RESPONSE_COPY = (
    "id, organization_id, survey_id, version_id, external_id, source, locale, submitted_at, location_id,"
    " employee_id, category, device_hash, ip_hash, created_at"
)
ANSWER_COPY = (
    "organization_id, response_id, question_id, question_key, question_type, number, text, choices, sentiment,"
    " topics, survey_id, submitted_at, location_id, employee_id, category"
)


def run_copy(owner, w: World, rows: list[dict]) -> float:
    """Raw: turn the JSON rows into typed tuples (codes → ids by dict look-up, fromisoformat) and
    COPY responses and answers into scratch copies of the two tables (same columns and indexes, no
    RLS). No validation, no skip logic, no sentiment, no idempotency, no events, no audit."""
    owner.execute("TRUNCATE scratch_response, scratch_answer")
    owner.commit()
    start = time.perf_counter()
    loc = dict(zip(w.location_codes, w.location_ids, strict=True))
    emp = dict(zip(w.employee_codes, w.employee_ids, strict=True))
    qs = {k: (q.pk, q.type) for k, q in w.questions.items()}
    now = dt.datetime.now(dt.UTC)
    org, survey, version = w.org.pk, w.survey.pk, w.version.pk
    resp_t, ans_t = [], []
    for n, r in enumerate(rows, start=1):
        submitted = dt.datetime.fromisoformat(r["submitted_at"])
        loc_id, emp_id = loc[r["location"]], emp[r["employee"]]
        resp_t.append(
            (
                n,
                org,
                survey,
                version,
                r["external_id"],
                r["source"],
                r["locale"],
                submitted,
                loc_id,
                emp_id,
                "",
                "",
                "",
                now,
            )
        )
        for key, value in r["answers"].items():
            qid, qtype = qs[key]
            text = value if qtype == "text" else ""
            ans_t.append(
                (
                    org,
                    n,
                    qid,
                    key,
                    qtype,
                    None if text else value,
                    text,
                    [],
                    "",
                    [],
                    survey,
                    submitted,
                    loc_id,
                    emp_id,
                    "",
                )
            )
    with owner.cursor() as cur:
        with cur.copy(f"COPY scratch_response ({RESPONSE_COPY}) FROM STDIN") as copy:
            for t in resp_t:
                copy.write_row(t)
        with cur.copy(f"COPY scratch_answer ({ANSWER_COPY}) FROM STDIN") as copy:
            for t in ans_t:
                copy.write_row(t)
    owner.commit()
    return time.perf_counter() - start


def run_service(w: World, rows: list[dict]) -> float:
    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from feedback.response_ingest import responses_ingest

    elapsed = 0.0
    with tenant_context(w.org):
        for i in range(0, len(rows), BATCH):
            batch = rows[i : i + BATCH]
            t = time.perf_counter()
            results = responses_ingest(organization=w.org, actor=Actor.system(), rows=batch)
            elapsed += time.perf_counter() - t
            bad = [r.as_dict() for r in results if r.status != "created"]
            assert not bad, bad[:3]
    return elapsed


def run_http(client, w: World, rows: list[dict]) -> float:
    elapsed = 0.0
    bodies = [json.dumps(rows[i : i + BATCH]).encode() for i in range(0, len(rows), BATCH)]
    for body in bodies:
        t = time.perf_counter()
        resp = client.post(
            "/api/v1/responses/bulk/",
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {w.api_key}"},
        )
        elapsed += time.perf_counter() - t
        assert resp.status_code == 200, (resp.status_code, resp.content[:300])
        payload = json.loads(resp.content)
        assert payload["error"] == 0 and payload["duplicate"] == 0, {
            k: payload[k] for k in ("created", "error")
        }
    return elapsed


def truncate_ingest_side(owner) -> None:
    """Every run starts from empty fact tables (and outbox), like the raw COPY's scratch tables."""
    owner.execute("TRUNCATE feedback_answer, feedback_response, cem_outboxevent CASCADE")
    owner.commit()


def bench_ingest(owner, w: World, client, sizes: list[int], repeat: int) -> list[tuple]:
    for name in ("response", "answer"):
        owner.execute(
            f"CREATE TABLE scratch_{name} (LIKE feedback_{name} INCLUDING DEFAULTS INCLUDING IDENTITY"
            " INCLUDING CONSTRAINTS INCLUDING INDEXES)"
        )
    owner.commit()
    out = []
    for n in sizes:
        best = dict.fromkeys(("copy", "service", "http"), float("inf"))
        for rep in range(repeat):
            rows = ingest_rows(w, n, f"s{n}-{rep}", seed=rep)
            times = {"copy": run_copy(owner, w, rows)}
            truncate_ingest_side(owner)
            times["service"] = run_service(w, rows)
            truncate_ingest_side(owner)
            rows = ingest_rows(w, n, f"h{n}-{rep}", seed=rep)
            times["http"] = run_http(client, w, rows)
            truncate_ingest_side(owner)
            for k, v in times.items():
                best[k] = min(best[k], v)
            print(
                f"  ingest rows={n:>6} run {rep + 1}: "
                + "  ".join(f"{k} {n / v:>8,.0f}/s" for k, v in times.items()),
                flush=True,
            )
        out.append((n, best))
    return out


# --- (d) single POST against gunicorn ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(
    port: int, bench_url: str, log: Path, workers: int = 4, threads: int = 0
) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "CEM_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": "bench-only-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_BROKER_URL": "memory://localhost/",
        "CACHE_KEY_PREFIX": "cem-bench-feedback",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "cem.wsgi",
            "-w",
            str(workers),
            "-b",
            f"127.0.0.1:{port}",
        ]
        + (["-k", "gthread", "--threads", str(threads), "--keep-alive", "5"] if threads else []),
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"gunicorn did not start; see {log}")


def post_body(w: World) -> bytes:
    return json.dumps(
        {
            "survey": w.survey.pk,
            "location": w.location_codes[0],
            "employee": w.employee_codes[0],
            "source": "api",
            "answers": {"nps": 9, "csat": 5, "comment": "Quick checkout, friendly staff."},
        }
    ).encode()


def headers(w: World) -> dict:
    # Behind a TLS-terminating proxy, as in production (SECURE_SSL_REDIRECT is on).
    return {
        "Authorization": f"Bearer {w.api_key}",
        "Content-Type": "application/json",
        "X-Forwarded-Proto": "https",
        "Host": "127.0.0.1",
    }


def post_with_wrk(
    port: int, w: World, clients: int, seconds: int, keep_alive: bool = False
) -> tuple[float, int, int]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    # gunicorn's sync workers close every connection; say so, or wrk stalls waiting on keep-alive.
    hdrs = "".join(
        f'wrk.headers["{k}"] = "{v}"\n'
        for k, v in {**headers(w), **({} if keep_alive else {"Connection": "close"})}.items()
        if k != "Host"
    )
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{post_body(w).decode()}]]\n" + hdrs + "local codes = {}\n"
        "function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end\n"
    )
    out = subprocess.run(  # noqa: S603 - our own arguments
        [shutil.which("wrk") or "wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}/api/v1/responses/"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    script.unlink()
    total = int(out.split(" requests in ")[0].split()[-1])
    non2xx = int(out.split("Non-2xx or 3xx responses:")[1].split()[0]) if "Non-2xx" in out else 0
    rate = float(out.split("Requests/sec:")[1].split()[0])
    return rate, total, non2xx


def post_with_threads(
    port: int, w: World, clients: int, seconds: int, keep_alive: bool = False
) -> tuple[float, int, int]:
    import http.client

    body, hdrs = post_body(w), headers(w)
    stop = time.perf_counter() + seconds
    counts = {"ok": 0, "bad": 0}
    lock = threading.Lock()

    def worker():
        ok = bad = 0
        while time.perf_counter() < stop:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/api/v1/responses/", body=body, headers=hdrs)
            status = conn.getresponse().status
            conn.close()
            ok, bad = (ok + 1, bad) if status == 201 else (ok, bad + 1)
        with lock:
            counts["ok"] += ok
            counts["bad"] += bad

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    return counts["ok"] / elapsed, counts["ok"] + counts["bad"], counts["bad"]


def _cpu_seconds(pids) -> float:
    """user + system CPU of these processes so far (0 for any that has gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def raw_post_statements(w: World, bench_url: str) -> list[str]:
    """The SQL one real POST ran, with its values inlined: what raw PostgreSQL replays in (d)."""
    import psycopg
    from django.db import connection
    from django.test import Client

    captured: list[tuple] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        r = Client().post("/api/v1/responses/", post_body(w), content_type="application/json", headers=headers(w))
    assert r.status_code == 201, r.content
    with psycopg.connect(bench_url) as conn, psycopg.ClientCursor(conn) as cur:
        return [cur.mogrify(sql, params) for sql, params in captured]


def bench_raw_post(bench_url: str, statements: list[str], clients: int, seconds: int) -> float:
    """Responses/s when pgbench sends the POST's statements itself: no HTTP, no Python, no RLS
    (the owner), parsed and planned per statement as a client without prepared statements would."""
    script = Path(tempfile.mkstemp(suffix=".sql")[1])
    script.write_text("".join(" ".join(s.split()) + ";\n" for s in statements))
    try:
        out = subprocess.run(  # noqa: S603 - our own command line
            [shutil.which("pgbench") or "pgbench", "-n", "-M", "simple", "-c", str(clients), "-j", str(min(clients, 2)),
             "-T", str(seconds), "-f", str(script), bench_url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        script.unlink()
    tps = [line for line in out.splitlines() if line.startswith("tps")]
    return float(tps[0].split("=")[1].split()[0])


def bench_post(
    owner, w: World, bench_url: str, seconds: int, workers: int = 4, threads: int = 0
) -> list[tuple]:
    """Throughput, and the CPU each request cost gunicorn, PostgreSQL and the client: on a shared
    machine the rate moves with everyone else's load, the CPU per request much less."""
    port = free_port()
    log = Path(tempfile.gettempdir()) / "bench_feedback_gunicorn.log"
    proc = start_gunicorn(port, bench_url, log, workers, threads)
    tool = os.environ.get("BENCH_POST_TOOL") or ("wrk" if shutil.which("wrk") else "threads")
    post = post_with_wrk if tool == "wrk" else post_with_threads

    def run(clients, secs):
        return post(port, w, clients, secs, keep_alive=bool(threads))

    results = []
    try:
        # Workers still booting, or loading what the first request loads (connections, the
        # sentiment lexicon), would land in the first measured run, CPU included: wait until they
        # are all up and idle, then warm up until the rate stops rising.
        deadline = time.time() + 90
        while time.time() < deadline:
            children = _children(proc.pid)
            before = _cpu_seconds(children)
            time.sleep(1)
            if len(children) >= workers and _cpu_seconds(children) - before < 0.05:
                break
        previous = 0.0
        for _ in range(8):
            rate = run(8, 2)[0]
            if previous and rate < previous * 1.15:
                break
            previous = rate
        db_name = urlsplit(bench_url).path.lstrip("/")
        for clients in (1, 8):
            (before,) = owner.execute(
                "SELECT count(*) FROM feedback_response WHERE organization_id = %s", [w.org.pk]
            ).fetchone()
            backends = [pid for (pid,) in owner.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [db_name]
            ).fetchall()]  # fmt: skip
            owner.commit()
            web = [proc.pid, *_children(proc.pid)]
            cpu_web, cpu_db = _cpu_seconds(web), _cpu_seconds(backends)
            cpu_client = resource.getrusage(resource.RUSAGE_CHILDREN)
            rate, total, bad = run(clients, seconds)
            after_client = resource.getrusage(resource.RUSAGE_CHILDREN)
            # Connections opened during the run count whole.
            new_backends = [pid for (pid,) in owner.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> ALL(%s) AND pid <> pg_backend_pid()",
                [db_name, [*backends, 0]],
            ).fetchall()]  # fmt: skip
            owner.commit()
            cpu_web = _cpu_seconds(web) - cpu_web
            cpu_db = _cpu_seconds(backends) - cpu_db + _cpu_seconds(new_backends)
            # Children's usage counts once they are reaped: wrk's, and gunicorn's own is not in it.
            cpu_client = (after_client.ru_utime + after_client.ru_stime) - (
                cpu_client.ru_utime + cpu_client.ru_stime
            )
            if tool != "wrk":
                cpu_client = float("nan")  # the client threads run in this process
            (after,) = owner.execute(
                "SELECT count(*) FROM feedback_response WHERE organization_id = %s", [w.org.pk]
            ).fetchone()
            owner.commit()
            cpu = {
                k: 1000 * v / max(total, 1)
                for k, v in (("web", cpu_web), ("db", cpu_db), ("client", cpu_client))
            }
            print(
                f"  POST clients={clients}: {rate:,.0f}/s ({total} requests, {bad} not 201, stored {after - before}); "
                f"CPU ms/request: gunicorn {cpu['web']:.2f}, postgres {cpu['db']:.2f}, client {cpu['client']:.2f}; "
                f"load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            results.append((clients, rate, total, bad, after - before, tool, cpu))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if shutil.which("pgbench"):
        statements = raw_post_statements(w, bench_url)
        for i, clients in enumerate((1, 8)):
            rate = bench_raw_post(bench_url, statements, clients, seconds)
            print(f"  raw pgbench clients={clients}: {rate:,.0f}/s; load {os.getloadavg()[0]:.2f}", flush=True)
            results[i] = (*results[i], rate)
    return results


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    if args.export_child:
        prepare_environment(args.db_name)
        return export_child(args.export_child)
    bench_url, admin_url = prepare_environment(args.db_name)
    where = urlsplit(bench_url)
    print(f"scratch database {args.db_name!r} on {where.hostname}:{where.port or 5432}")
    recreate_database(admin_url, args.db_name)

    setup_django()
    import psycopg
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    media_root = Path(tempfile.mkdtemp(prefix="bench_feedback_media_"))
    report: dict = {}
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"migrated in {time.perf_counter() - t0:.1f}s", flush=True)
        w = create_world()
        owner = psycopg.connect(bench_url)
        client = Client()
        client.force_login(w.admin)
        if args.only_post:
            report["post"] = bench_post(owner, w, bench_url, args.post_seconds, args.workers, args.threads)
            owner.close()
            return _finish(report, args)
        # Ingest first, into empty fact tables, as bench/ingest.py does (the scratch tables the raw
        # COPY fills start empty too); the 1M responses come after.
        try:
            import feedback.response_ingest  # noqa: F401
        except ImportError:
            report["ingest"] = None
        else:
            report["ingest"] = bench_ingest(owner, w, client, args.ingest_rows, args.repeat)
        answers, took = generate_responses(owner, w, args.responses)
        print(f"generated {args.responses:,} responses / {answers:,} answers in {took:.1f}s", flush=True)
        report["generated"] = (args.responses, answers, took)

        report["nps"] = bench_nps(owner, w, client, args.repeat)
        print(f"  nps: {report['nps']}", flush=True)

        raw_path = media_root / "raw.csv"
        report["raw_export"] = bench_raw_export(owner, w.org.pk, raw_path)
        report["raw_export_bytes"] = raw_path.stat().st_size
        raw_path.unlink()
        print(f"  raw export: {report['raw_export']:.1f}s", flush=True)
        # A tenth of the rows (the last 18 of 180 days) first: the peak must not grow with the rows.
        since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=18)).date().isoformat()
        report["export_small"] = bench_export(w, media_root, {"date_from": since})
        report["export"] = bench_export(w, media_root)
        print(f"  export: { {k: v for k, v in report['export'].items() if k != 'header'} }", flush=True)

        if not args.skip_post:
            report["post"] = bench_post(owner, w, bench_url, args.post_seconds, args.workers, args.threads)
        owner.close()
    finally:
        connections.close_all()
        shutil.rmtree(media_root, ignore_errors=True)
        if not args.keep_db:
            recreate_database(admin_url, args.db_name, drop_only=True)
    return _finish(report, args)


def _finish(report: dict, args) -> int:
    if args.only_post:
        print_post(report, args)
    else:
        print_report(report, args)
    return 0


def print_report(r: dict, args) -> None:
    n, answers, took = r["generated"]
    print(f"\n{n:,} responses, {answers:,} answers (generated set-based in {took:.0f} s)\n")
    nps = r["nps"]
    print(
        f"(a) NPS grouped by location: {nps['answers']:,} NPS answers, {nps['groups']} groups, best of {max(args.repeat, 5)}\n"
    )
    table(
        ["what", "seconds", "target"],
        [
            ["raw SQL (owner, RLS bypassed)", f"{nps['raw']:.3f}", ""],
            ["ours: feedback.selectors.metric_results", f"{nps['selector']:.3f}", "< 0.2 s"],
            ["ours: GET /api/v1/metrics/?metric=nps&group_by=location", f"{nps['http']:.3f}", "< 0.2 s"],
        ],
    )
    e, s = r["export"], r["export_small"]
    print(f"\n(b) export of {e['rows']:,} responses to CSV ({len(e['header'])} columns)\n")
    table(
        ["what", "seconds", "rows/s", "file MB", "peak RSS MB"],
        [
            ["raw: one pivoting query, COPY … TO STDOUT", f"{r['raw_export']:.1f}", f"{e['rows'] / r['raw_export']:,.0f}",
             f"{r['raw_export_bytes'] / 1e6:.0f}", "—"],
            ["ours: feedback.export_build task (child process)", f"{e['seconds']:.1f}", f"{e['rows'] / e['seconds']:,.0f}",
             f"{e['bytes'] / 1e6:.0f}", f"{e['peak_rss_kb'] / 1024:.0f} (RSS before: {e['rss_before_kb'] / 1024:.0f})"],
            [f"ours, {s['rows']:,} rows (a tenth)", f"{s['seconds']:.1f}", f"{s['rows'] / s['seconds']:,.0f}",
             f"{s['bytes'] / 1e6:.0f}", f"{s['peak_rss_kb'] / 1024:.0f} (RSS before: {s['rss_before_kb'] / 1024:.0f})"],
        ],
    )  # fmt: skip
    print(f"\n(c) bulk response ingest (responses/s, best of {args.repeat}; calls of 10,000 rows)\n")
    if r.get("ingest") is None:
        print("pending: feedback.response_ingest not importable")
    else:
        table(
            ["rows", "raw COPY", "ours-service", "% of COPY", "ours-http", "% of COPY"],
            [
                [f"{n:,}", f"{n / b['copy']:,.0f}", f"{n / b['service']:,.0f}", f"{100 * b['copy'] / b['service']:.0f} %",
                 f"{n / b['http']:,.0f}", f"{100 * b['copy'] / b['http']:.0f} %"]
                for n, b in r["ingest"]
            ],
        )  # fmt: skip
    print_post(r, args)


def print_post(r: dict, args) -> None:
    if r.get("post"):
        # The machine may be shared: the load next to the figures says how far to trust them.
        print("\nload average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
        tool = r["post"][0][5]
        kind = f"gthread, {args.threads} threads" if args.threads else "sync"
        print(
            f"\n(d) POST /api/v1/responses/ against gunicorn -w {args.workers} ({kind}; {tool}, "
            f"{args.post_seconds} s per run)\n"
        )
        table(
            ["clients", "responses/s", "raw pgbench/s", "requests", "not 201", "stored", "CPU ms/request: gunicorn", "postgres", "client"],
            [
                [str(c), f"{rate:,.0f}", f"{raw[0]:,.0f}" if raw else "—", str(total), str(bad), str(stored),
                 f"{cpu['web']:.2f}", f"{cpu['db']:.2f}", f"{cpu['client']:.2f}"]
                for c, rate, total, bad, stored, _, cpu, *raw in r["post"]
            ],
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
