# ruff: noqa: E501 - SQL and result tables read better unwrapped
"""Mystery-shopping audits: approval → store dashboard latency with a real Celery worker, and
shoppers' submit throughput.

    .venv/bin/python bench/audits.py [--approvals 200] [--submits 200] [--threads 1 8] [--keep-db]

Runs against a scratch database (``cem_bench_audits`` next to the one DATABASE_URL names),
dropped, re-created and migrated at the start and dropped at the end. Unlike the other benches
the outbox kicks go to Redis (a free database number on 127.0.0.1:6379) and a real
``celery -A cem worker --concurrency 2`` subprocess delivers them. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from scratch import ROOT, prepare_environment, recreate_database, setup_django, table

N_LOCATIONS = 20
N_SHOPPERS = 8
REDIS_HOST = "127.0.0.1:6379"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--approvals", type=int, default=200, help="jobs approved in (a)")
    p.add_argument("--submits", type=int, default=200, help="submits per thread count in (b)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 8])
    p.add_argument("--skip-gunicorn", action="store_true", help="only the in-process submits in (b)")
    p.add_argument("--db-name", default="cem_bench_audits")
    p.add_argument("--keep-db", action="store_true")
    return p.parse_args()


def free_redis_db() -> int:
    """A Redis database number with no keys (from 15 down), so the bench never touches others' data."""
    import redis

    used = set(redis.Redis.from_url(f"redis://{REDIS_HOST}/0").info("keyspace"))
    candidates = [n for n in range(15, 3, -1) if f"db{n}" not in used]
    if not candidates:
        raise RuntimeError("no empty Redis database between 4 and 15")
    return random.choice(candidates[:4])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


# --- scratch organization ---------------------------------------------------------------------


class World:
    org = None
    program = None
    scenario = None
    locations: list = []
    managers: dict = {}  # location id → user
    reviewer = None
    shoppers: list = []  # (Shopper, user)


def create_world() -> World:
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from audits import models as am
    from cem import services
    from cem.models import Location, Organization, Region, Role
    from cem.principals import Actor
    from cem.tenancy import tenant_context, unscoped

    users = get_user_model().objects
    w = World()
    with unscoped():
        w.org = Organization.objects.create(name="Bench Org", slug="bench-org", time_zone="UTC")
    org = w.org
    with tenant_context(org):
        region = Region.objects.create(organization=org, name="Bench region", code="bench")
        w.locations = list(
            Location.objects.bulk_create(
                Location(organization=org, region=region, name=f"Store {i:02d}", code=f"loc-{i:02d}")
                for i in range(1, N_LOCATIONS + 1)
            )
        )
        for loc in w.locations:
            mem = services.membership_create(
                organization=org,
                actor=Actor.system(),
                email=f"manager-{loc.code}@example.com",
                role=Role.STORE_MANAGER,
                location=loc,
            )
            w.managers[loc.pk] = users.get(pk=mem.user_id)
        mem = services.membership_create(
            organization=org, actor=Actor.system(), email="reviewer@example.com", role=Role.ORG_ADMIN
        )
        w.reviewer = users.get(pk=mem.user_id)
        # The form: yes/no, a timed item with a target, a free-text note (no photo item, so a
        # submit needs no upload).
        form = am.AuditForm.objects.create(organization=org, name="Store visit", kind="mystery_shop")
        version = am.AuditFormVersion.objects.create(organization=org, form=form, number=1)
        section = am.FormSection.objects.create(
            organization=org, version=version, key="visit", title={"en": "Visit"}
        )
        common = {"organization": org, "version": version, "section": section}
        am.FormItem.objects.create(
            **common, key="greeted", position=1, type="yes_no", text={"en": "Greeted?"}
        )
        am.FormItem.objects.create(
            **common, key="wait", position=2, type="time", text={"en": "Seconds waited"},
            target_max=Decimal(60), plausible_max=Decimal(1800),
        )  # fmt: skip
        am.FormItem.objects.create(
            **common, key="notes", position=3, type="text", required=False, text={"en": "Notes"}
        )
        w.program = am.Program.objects.create(
            organization=org, name="Store visits", kind="mystery_shop", form=form, max_open_jobs=10_000
        )
        w.scenario = am.Scenario.objects.create(
            organization=org, program=w.program, title="Buy a coffee", instructions="Buy a coffee."
        )
        w.shoppers = []
        for i in range(N_SHOPPERS):
            mem = services.membership_create(
                organization=org, actor=Actor.system(), email=f"shopper-{i}@example.com", role=Role.SHOPPER
            )
            user = users.get(pk=mem.user_id)
            shopper = am.Shopper.objects.create(
                organization=org, name=f"Shopper {i}", email=user.email, user=user,
                status=am.Shopper.Status.APPROVED, consent_at=timezone.now(),
            )  # fmt: skip
            am.Certification.objects.create(
                organization=org, shopper=shopper, program=w.program, passed_at=timezone.now(),
                expires_at=timezone.now() + dt.timedelta(days=365), score=Decimal(90),
            )  # fmt: skip
            w.shoppers.append((shopper, user))
    return w


def make_jobs(w: World, n: int, rng: random.Random) -> list[tuple[int, int, int]]:
    """n in-progress jobs spread over the shoppers and stores, each with a complete draft saved
    through the draft service (as the autosave would). Returns (job id, shopper index, location id)."""
    from django.utils import timezone

    from audits import jobs
    from audits import models as am
    from cem.principals import Actor
    from cem.tenancy import tenant_context

    start = timezone.now() - dt.timedelta(hours=2)
    out = []
    with tenant_context(w.org):
        rows = []
        for i in range(n):
            s = i % N_SHOPPERS
            loc = w.locations[rng.randrange(N_LOCATIONS)]
            rows.append(
                am.Assignment(
                    organization=w.org, program=w.program, scenario=w.scenario, location=loc,
                    window_start=start, window_end=start + dt.timedelta(hours=48), fee=Decimal("25.00"),
                    reimbursement_cap=Decimal("10.00"), shopper=w.shoppers[s][0],
                    status=am.Assignment.Status.IN_PROGRESS, assigned_at=start,
                )
            )  # fmt: skip
        for i, job in enumerate(am.Assignment.objects.bulk_create(rows)):
            s = i % N_SHOPPERS
            jobs.assignment_draft_save(
                organization=w.org,
                actor=Actor.system(),
                shopper=w.shoppers[s][0],
                assignment=job,
                answers=[
                    {"item": "greeted", "value": rng.choice(["yes", "yes", "yes", "no"]), "comment": "seen"},
                    {"item": "wait", "value": str(rng.randrange(5, 120)), "comment": "timed"},
                    {"item": "notes", "text": "Till 4"},
                ],
                visited_at=start + dt.timedelta(minutes=30),
            )
            out.append((job.pk, s, job.location_id))
    return out


def client_for(user):
    from django.test import Client

    c = Client()
    c.force_login(user)
    return c


# --- (b) submit throughput ---------------------------------------------------------------------


def bench_submit(w: World, job_list: list[tuple[int, int, int]], threads: int) -> dict:
    """Each thread submits the jobs of its shoppers (8 shoppers, one logged-in Client each), as
    fast as it can; each thread has its own DB connection."""
    from django.db import connection

    per_thread: dict[int, list[tuple[int, int]]] = {}
    for pk, s, _loc in job_list:
        per_thread.setdefault(s % threads, []).append((pk, s))
    clients = {s: client_for(w.shoppers[s][1]) for s in range(N_SHOPPERS)}
    for s, c in clients.items():  # warm-up: a GET per client (session, imports, connection)
        assert c.get("/api/v1/assignments/board/").status_code == 200, s
    latencies: list[float] = []
    errors: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        mine = []
        barrier.wait()
        try:
            for pk, s in per_thread[t]:
                c = clients[s]
                t0 = time.perf_counter()
                resp = c.post(f"/api/v1/assignments/{pk}/submit/")
                mine.append(time.perf_counter() - t0)
                if resp.status_code != 200 or resp.json()["status"] != "submitted":
                    errors.append((pk, resp.status_code, resp.content[:200]))
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    ths = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in ths:
        th.join()
    elapsed = time.perf_counter() - t0
    assert not errors, errors[:3]
    return {
        "threads": threads,
        "n": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": pct(latencies, 0.5),
        "p95": pct(latencies, 0.95),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(port: int, bench_url: str, broker: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "CEM_ENV": "production",
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [str(Path(sys.executable).with_name("gunicorn")), "cem.wsgi", "-w", "4", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"gunicorn did not start; see {log}")


def session_headers(user) -> dict:
    """A logged-in session (stored in the database, shared with gunicorn) and a CSRF pair, sent
    as a browser behind a TLS-terminating proxy would."""
    from django.middleware.csrf import _get_new_csrf_string

    c = client_for(user)
    token = _get_new_csrf_string()
    return {
        "Cookie": f"sessionid={c.cookies['sessionid'].value}; csrftoken={token}",
        "X-CSRFToken": token,
        "X-Forwarded-Proto": "https",
        "Origin": "https://127.0.0.1",
        "Referer": "https://127.0.0.1/",
        "Host": "127.0.0.1",
        "Content-Length": "0",
    }


def bench_submit_http(port: int, w: World, job_list: list[tuple[int, int, int]], threads: int) -> dict:
    """The same submits against gunicorn -w 4, one keep-alive-less HTTP/1.1 request each."""
    import http.client

    per_thread: dict[int, list[tuple[int, int]]] = {}
    for pk, s, _loc in job_list:
        per_thread.setdefault(s % threads, []).append((pk, s))
    hdrs = {s: session_headers(w.shoppers[s][1]) for s in range(N_SHOPPERS)}

    # Warm-up: 32 GETs from 8 threads, so every gunicorn worker has imported and connected.
    def warm(s: int) -> None:
        for _ in range(4):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/api/v1/assignments/board/", headers=hdrs[s])
            assert conn.getresponse().status == 200
            conn.close()

    warmers = [threading.Thread(target=warm, args=(s,)) for s in range(N_SHOPPERS)]
    for th in warmers:
        th.start()
    for th in warmers:
        th.join()
    latencies: list[float] = []
    errors: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        mine = []
        barrier.wait()
        for pk, s in per_thread[t]:
            t0 = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", f"/api/v1/assignments/{pk}/submit/", body=b"", headers=hdrs[s])
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200 or b'"submitted"' not in body:
                errors.append((pk, resp.status, body[:200]))
        with lock:
            latencies.extend(mine)

    ths = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in ths:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in ths:
        th.join()
    elapsed = time.perf_counter() - t0
    assert not errors, errors[:3]
    return {
        "threads": threads,
        "n": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": pct(latencies, 0.5),
        "p95": pct(latencies, 0.95),
    }


RAW_SUBMIT = [
    "UPDATE audits_assignment SET status = 'submitted', submitted_at = now(), revision_due_at = NULL WHERE id = %(job)s AND status = 'in_progress'",
    "UPDATE audits_audit SET status = 'submitted', updated_at = now() WHERE assignment_id = %(job)s",
    # Marked completed at once (and named apart) so the worker and its wait below ignore it.
    "INSERT INTO cem_outboxevent (organization_id, event_type, aggregate_type, aggregate_id, payload, created_at, completed_at, dispatch_count, last_error)"
    " VALUES (%(org)s, 'BenchRawSubmitted', 'Assignment', %(job)s::text, '{}'::jsonb, now(), now(), 0, '')",
]


def bench_raw_submit(owner, org_id: int, job_list: list[tuple[int, int, int]]) -> dict:
    """The least a submit must write: the job's and the audit's status and one outbox row, one
    transaction per job, as the owner (no validation, no scoring check, no RLS, no HTTP)."""
    latencies = []
    t0 = time.perf_counter()
    for pk, _s, _loc in job_list:
        t = time.perf_counter()
        for stmt in RAW_SUBMIT:
            owner.execute(stmt, {"job": pk, "org": org_id})
        owner.commit()
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    return {
        "n": len(latencies),
        "rate": len(latencies) / elapsed,
        "p50": pct(latencies, 0.5),
        "p95": pct(latencies, 0.95),
    }


# --- (a) approval → store dashboard ------------------------------------------------------------


def start_worker(bench_url: str, broker: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
    }
    return subprocess.Popen(  # noqa: S603 - our own command line
        [str(Path(sys.executable).with_name("celery")), "-A", "cem", "worker", "-l", "warning",
         "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_worker_ready(owner, w: World, timeout: float = 60) -> float:
    """Wait until the worker completes the outbox events already queued (from the submits)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        (left,) = owner.execute(
            "SELECT count(*) FROM cem_outboxevent WHERE organization_id = %s AND completed_at IS NULL",
            [w.org.pk],
        ).fetchone()
        owner.commit()
        if left == 0:
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise RuntimeError(f"worker left {left} events undelivered after {timeout}s")


def bench_approve(owner, w: World, job_list: list[tuple[int, int, int]]) -> dict:
    """Approve each job as the reviewer, then poll the store manager's results page filtered to
    the job's location until the audit's row (with its score) is on it."""
    from audits.models import Audit
    from cem.tenancy import tenant_context

    reviewer = client_for(w.reviewer)
    managers = {loc: client_for(u) for loc, u in w.managers.items()}
    with tenant_context(w.org):
        audit_of = dict(
            Audit.objects.filter(assignment_id__in=[j[0] for j in job_list]).values_list(
                "assignment_id", "pk"
            )
        )
    # warm-up: one dashboard view per manager
    for loc, c in managers.items():
        assert c.get(f"/audits/results/?location={loc}").status_code == 200
    visible, approve_only, polls, sent_at = [], [], [], {}
    for pk, _s, loc in job_list:
        marker = f'href="/audits/results/{audit_of[pk]}/"'
        wall, t0 = time.time(), time.perf_counter()
        resp = reviewer.post(f"/api/v1/assignments/{pk}/approve/")
        approve_only.append(time.perf_counter() - t0)
        assert resp.status_code == 200 and resp.json()["status"] == "published", resp.content[:300]
        sent_at[audit_of[pk]] = wall
        n = 0
        while True:
            n += 1
            page = managers[loc].get(f"/audits/results/?location={loc}")
            assert page.status_code == 200
            if marker in page.content.decode():
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"audit {audit_of[pk]} not on the dashboard after 30 s")
            time.sleep(0.01)
        visible.append(time.perf_counter() - t0)
        polls.append(n)
    # The AuditPublished events: when did the worker mark them completed (all handlers ran)?
    deadline = time.time() + 60
    while True:
        rows = owner.execute(
            "SELECT (payload->>'audit_id')::bigint, extract(epoch FROM completed_at), extract(epoch FROM created_at)"
            " FROM cem_outboxevent WHERE organization_id = %s AND event_type = 'AuditPublished'",
            [w.org.pk],
        ).fetchall()
        owner.commit()
        done = [r for r in rows if r[1] is not None]
        if len(done) >= len(job_list) or time.time() > deadline:
            break
        time.sleep(0.2)
    delivered = [float(done_at) - sent_at[aid] for aid, done_at, _c in done if aid in sent_at]
    return {
        "n": len(job_list),
        "visible": visible,
        "approve": approve_only,
        "polls": polls,
        "delivered": delivered,
        "undelivered": len(job_list) - len(delivered),
    }


def bench_raw_publish(owner, w: World, job_list: list[tuple[int, int, int]]) -> list[float]:
    """Raw Postgres beside (a): publish (set the audit's score, status and published_at and the
    job's status, commit) and read the store's newest published audits back, as the owner."""
    out = []
    for pk, _s, loc in job_list:
        t = time.perf_counter()
        owner.execute(
            "UPDATE audits_audit SET status = 'published', score = 80, published_at = now(), updated_at = now()"
            " WHERE assignment_id = %s",
            [pk],
        )
        owner.execute("UPDATE audits_assignment SET status = 'published' WHERE id = %s", [pk])
        owner.commit()
        rows = owner.execute(
            "SELECT a.id, a.score FROM audits_audit a WHERE a.organization_id = %s AND a.location_id = %s"
            " AND a.published_at IS NOT NULL ORDER BY a.published_at DESC, a.id DESC LIMIT 50",
            [w.org.pk, loc],
        ).fetchall()
        owner.commit()
        assert rows
        out.append(time.perf_counter() - t)
    return out


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    bench_url, admin_url = prepare_environment(args.db_name)
    # One key for the bench process (which logs the sessions in) and gunicorn (which checks them).
    os.environ["SECRET_KEY"] = "bench-only-" + "k" * 50
    redis_db = free_redis_db()
    broker = f"redis://{REDIS_HOST}/{redis_db}"
    os.environ["CELERY_BROKER_URL"] = broker  # real kicks through Redis, for the worker
    where = urlsplit(bench_url)
    print(f"scratch database {args.db_name!r} on {where.hostname}:{where.port or 5432}; broker {broker}")
    recreate_database(admin_url, args.db_name)

    setup_django(shared_cache=broker)
    import psycopg
    import redis
    from django.core.management import call_command
    from django.db import connections

    report: dict = {"redis_db": redis_db}
    worker = None
    log = Path(tempfile.gettempdir()) / "bench_audits_worker.log"
    rng = random.Random(42)
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"migrated in {time.perf_counter() - t0:.1f}s", flush=True)
        w = create_world()
        owner = psycopg.connect(bench_url)
        # The worker runs throughout: the submits' AssignmentSubmitted kicks go to it too.
        worker = start_worker(bench_url, broker, log)
        print(f"celery worker pid {worker.pid} (log {log})", flush=True)

        runs = len(args.threads) * (1 if args.skip_gunicorn else 2)
        total = args.submits * runs
        t0 = time.perf_counter()
        job_list = make_jobs(w, total + args.submits, rng)
        print(f"{len(job_list)} jobs with drafts in {time.perf_counter() - t0:.1f}s", flush=True)
        raw_jobs, job_list = job_list[: args.submits], job_list[args.submits :]

        report["raw_submit"] = bench_raw_submit(owner, w.org.pk, raw_jobs)
        print(f"  raw submit: {report['raw_submit']}", flush=True)
        report["submit"] = []
        submitted, i = [], 0
        for threads in args.threads:
            chunk = job_list[i : i + args.submits]
            i += args.submits
            r = bench_submit(w, chunk, threads)
            report["submit"].append(r)
            submitted += chunk
            print(f"  submit threads={threads}: {r}", flush=True)
        report["submit_http"] = []
        if not args.skip_gunicorn:
            port = free_port()
            gunicorn = start_gunicorn(
                port, bench_url, broker, Path(tempfile.gettempdir()) / "bench_audits_gunicorn.log"
            )
            print(f"gunicorn pid {gunicorn.pid} on port {port}", flush=True)
            try:
                for threads in args.threads:
                    chunk = job_list[i : i + args.submits]
                    i += args.submits
                    r = bench_submit_http(port, w, chunk, threads)
                    report["submit_http"].append(r)
                    submitted += chunk
                    print(f"  submit (gunicorn) threads={threads}: {r}", flush=True)
            finally:
                gunicorn.terminate()
                gunicorn.wait(timeout=30)

        report["worker_catchup"] = wait_worker_ready(owner, w)
        print(f"  worker delivered the submit events {report['worker_catchup']:.1f}s later", flush=True)
        approve = submitted[: args.approvals]
        report["approve"] = bench_approve(owner, w, approve)
        a = report["approve"]
        print(
            f"  approve→visible p50 {pct(a['visible'], 0.5) * 1000:.0f} ms, p95 {pct(a['visible'], 0.95) * 1000:.0f} ms;"
            f" delivered p50 {pct(a['delivered'], 0.5) * 1000:.0f} ms"
            if a["delivered"]
            else "  no events delivered",
            flush=True,
        )
        report["raw_publish"] = bench_raw_publish(owner, w, raw_jobs[: args.approvals])
        owner.close()
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        connections.close_all()
        redis.Redis.from_url(broker).flushdb()  # it was empty when chosen: only our queue is there
        if not args.keep_db:
            recreate_database(admin_url, args.db_name, drop_only=True)
    print_report(report, args)
    return 0


def ms(v: float) -> str:
    return f"{v * 1000:.1f}" if v < 0.01 else f"{v * 1000:,.0f}"


def print_report(r: dict, args) -> None:
    a = r["approve"]
    print(
        f"\n(a) approve → score on the store dashboard, {a['n']} jobs, one after the other "
        f"(celery worker --concurrency 2, broker Redis db {r['redis_db']})\n"
    )
    rows = [
        ["raw SQL: publish UPDATEs + commit + the store's newest-50 SELECT (owner)", ms(pct(r["raw_publish"], 0.5)),
         ms(pct(r["raw_publish"], 0.95)), ms(max(r["raw_publish"])), ""],
        ["ours: POST …/approve/ (reviewer) alone", ms(pct(a["approve"], 0.5)), ms(pct(a["approve"], 0.95)),
         ms(max(a["approve"])), ""],
        ["ours: approve sent → row and score on GET /audits/results/?location= (store manager)",
         ms(pct(a["visible"], 0.5)), ms(pct(a["visible"], 0.95)), ms(max(a["visible"])), "p95 < 2,000"],
    ]  # fmt: skip
    if a["delivered"]:
        d = a["delivered"]
        rows.append(["ours: approve sent → AuditPublished completed by the worker", ms(pct(d, 0.5)),
                     ms(pct(d, 0.95)), ms(max(d)), ""])  # fmt: skip
    table(["what", "p50 ms", "p95 ms", "max ms", "target"], rows)
    print(
        f"\nDashboard polls per approval: max {max(a['polls'])} (1 = visible on the first GET after the approve returned);"
        f" AuditPublished events not completed within 60 s: {a['undelivered']}"
    )
    print("\n(b) POST /api/v1/assignments/{id}/submit/ by shoppers (8 shoppers, drafts pre-saved)\n")
    raw = r["raw_submit"]
    rows = [["raw SQL: 2 UPDATEs + outbox INSERT + commit (owner), 1 connection", f"{raw['n']}", f"{raw['rate']:,.0f}",
             f"{raw['p50'] * 1000:.1f}", f"{raw['p95'] * 1000:.1f}"]]  # fmt: skip
    for s in r["submit"]:
        rows.append(
            [f"ours: in-process Client, {s['threads']} thread(s)", f"{s['n']}", f"{s['rate']:,.0f}",
             f"{s['p50'] * 1000:.1f}", f"{s['p95'] * 1000:.1f}"]
        )  # fmt: skip
    for s in r.get("submit_http", []):
        rows.append(
            [f"ours: gunicorn -w 4, {s['threads']} client thread(s)", f"{s['n']}", f"{s['rate']:,.0f}",
             f"{s['p50'] * 1000:.1f}", f"{s['p95'] * 1000:.1f}"]
        )  # fmt: skip
    table(["what", "submits", "per second", "p50 ms", "p95 ms"], rows)


if __name__ == "__main__":
    sys.exit(main())
