"""Load: the whole product under a realistic mix, against gunicorn with real Celery workers.

    .venv/bin/python bench/load.py                    # step the users, then 5 min at the best level
    .venv/bin/python bench/load.py --users 10 20 --step-seconds 60 --duration 0     # a short trial
    .venv/bin/python bench/load.py --final-users 30 --duration 300                  # one level only
    .venv/bin/python bench/load.py --web 2 --worker-queues alerts rollups default,bulk --final-users 30
    .venv/bin/python bench/load.py --reseed                          # rebuild the seeded template first

What runs (all on this machine, as separate processes):

- **PostgreSQL**: ``cem_bench_load``, a copy (``CREATE DATABASE … TEMPLATE``) of
  ``cem_bench_load_seed``, which holds ``manage.py seed_demo`` (the demo data: 2 organizations,
  ~200k responses, ~1M rollup rows) plus the bench's fixtures. The template is built once (~6
  min) and kept for later runs (``--reseed`` rebuilds it, ``--drop-seed`` removes it); the copy is
  migrated (new migrations apply) and dropped at the end unless ``--keep``.
- **Redis**: its own ``redis-server`` on a free port (broker, cache, rate limits), stopped at the end.
- **Web**: ``--web`` gunicorn instances (each ``-w --gunicorn-workers -k gthread --threads``),
  ``CEM_ENV=production`` behind a pretend TLS proxy (``X-Forwarded-Proto: https``,
  ``NUM_PROXIES=1`` and an ``X-Forwarded-For`` per simulated person), each on its own port, as
  separate machines behind a load balancer would be; the simulated people are spread over them.
- **Workers**: one ``celery worker`` per ``--worker-queues`` entry (default one worker, every
  queue, ``--concurrency 2``) and one ``celery beat``.
- **Code**: by default a ``git archive`` of HEAD in a temporary folder (the shared working tree
  may hold someone's half-written module), so the figures belong to a commit (printed).

The people (bench/load_locustfile.py, locust headless; weights of users): customers answering a
store's QR-code survey (40: the page, then every page's answers), an integrator's feed (20:
single responses, and interaction batches of 50), store/regional managers and executives with
the store dashboard open (10: the page, the NPS panel polled, API panels), employees in the
rewards portal (5: balance and catalogue, redeeming). Each person paces itself to about one
request (or survey step) a second, so the offered load is about the number of users in req/s.

What it reports: the raw baselines measured in the same run (``pgbench`` select-only and
simple-update on a scratch database, ``redis-benchmark`` against the bench's Redis); then for
each step of users (``--users``, ``--step-seconds`` each): throughput, p50/p95/p99 and errors;
the highest level with 0 errors and p95 < 500 ms (stopping at the first that fails); then
``--duration`` seconds at that level (or ``--final-users``) with the RSS of the web and worker
processes sampled every 15 s (start, middle, end, growth), the CPU seconds of web, workers and
the load client, the event backlog (outbox rows not yet completed) at the end and how long the
workers took to drain it. ``--json`` writes everything for bench/run_all.
"""

# A bench runs fixed command lines of its own (gunicorn, celery, pgbench, redis-benchmark, git)
# and opens only its own http://127.0.0.1 URLs.
# ruff: noqa: S603, S607, S310

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scratch import DEFAULT_DB_URL, with_db  # noqa: E402

SEED_DB = "cem_bench_load_seed"
RUN_DB = "cem_bench_load"
PGBENCH_DB = "cem_bench_load_pgbench"
PASSWORD = "demo-pass-123"  # noqa: S105 - seed_demo's demo password
P95_TARGET_MS = 500
VENV_BIN = Path(sys.executable).parent


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, nargs="+", default=[10, 20, 30, 40, 60, 80], help="step levels")
    p.add_argument("--step-seconds", type=int, default=60)
    p.add_argument("--final-users", type=int, help="skip the search; run --duration at this level")
    p.add_argument("--duration", type=int, default=300, help="the long run's seconds (0: none)")
    p.add_argument(
        "--drain-seconds", type=int, default=300, help="wait at most this long for the backlog after"
    )
    p.add_argument("--pace", type=float, default=1.0, help="seconds between one person's requests")
    p.add_argument("--web", type=int, default=1, help="gunicorn instances (separate ports)")
    p.add_argument("--gunicorn-workers", type=int, default=2, help="processes per gunicorn instance")
    p.add_argument("--threads", type=int, default=4)
    p.add_argument(
        "--worker-queues",
        nargs="+",
        default=["all"],
        help="one celery worker per entry: 'all' (no -Q) or comma-separated queues",
    )
    p.add_argument("--worker-concurrency", type=int, default=2)
    p.add_argument(
        "--read-replica",
        action="store_true",
        help="READ_REPLICA=true: dashboards read through the replica alias (a second connection)",
    )
    p.add_argument("--reseed", action="store_true", help="rebuild the seeded template database")
    p.add_argument("--drop-seed", action="store_true", help="drop the template at the end")
    p.add_argument("--keep", action="store_true", help="leave the run database behind")
    p.add_argument(
        "--tree",
        choices=["head", "working"],
        default="head",
        help="run the committed HEAD (default) or the working tree",
    )
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--setup-fixtures", type=Path, help=argparse.SUPPRESS)  # internal: runs inside Django
    return p.parse_args()


# --- helpers -----------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{dt.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def load_average() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def psql(url: str, sql: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        rows = cursor.fetchall() if sql.lstrip().upper().startswith("SELECT") else []
        if not rows:
            return ""
        return "\n".join("|".join(str(c) for c in r) for r in rows)


def database_exists(admin_url: str, name: str) -> bool:
    return bool(psql(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"))


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Services:
    """The processes this run started, each stopped by its own pid at the end."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str], env: dict, cwd: Path) -> subprocess.Popen:
        out = (self.workdir / f"{name}.log").open("w")
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            req = urllib.request.Request(url, headers={"X-Forwarded-Proto": "https"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


# --- the seeded template and the fixtures ------------------------------------------------------


def snapshot_tree(workdir: Path, which: str) -> tuple[Path, str]:
    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    # bench/run_all runs this from an exported tree (no .git) and names the commit in BENCH_COMMIT.
    commit = found.stdout.strip() if found.returncode == 0 else os.environ.get("BENCH_COMMIT", "unknown")
    if which == "working":
        return ROOT, commit + " + working tree"
    tree = workdir / "tree"
    tree.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree, commit


def app_env(tree: Path, db_url: str, redis_url: str, **extra) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "DJANGO_SETTINGS_MODULE": "cem.settings",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "CEM_ENV": "production",
        "DEBUG": "false",
        "SECRET_KEY": "bench-load-only-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "NUM_PROXIES": "1",
        "LOG_LEVEL": "WARNING",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
    }
    env.pop("TEST_DATABASE_NAME", None)
    env.update(extra)
    return env


def manage(tree: Path, env: dict, *args: str, log_to: Path) -> None:
    with log_to.open("a") as out:
        subprocess.run(
            [sys.executable, str(tree / "manage.py"), *args],
            cwd=tree,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )


def build_template(admin_url: str, base_url: str, tree: Path, workdir: Path) -> float:
    """migrate + seed_demo into the template database (no broker: the seed's kicks are dropped
    and its events wait in the outbox, drained before any measurement)."""
    import psycopg

    drop_database(admin_url, SEED_DB)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{SEED_DB}"')
    env = app_env(
        tree,
        with_db(base_url, SEED_DB),
        "redis://127.0.0.1:1/0",
        CEM_ENV="dev",
        CELERY_BROKER_URL="memory://localhost/",
    )
    started = time.perf_counter()
    manage(tree, env, "migrate", "-v", "0", log_to=workdir / "seed.log")
    manage(
        tree, env, "seed_demo", "--logins-file", str(workdir / "demo_logins.txt"), log_to=workdir / "seed.log"
    )
    return time.perf_counter() - started


def setup_fixtures(out: Path) -> None:
    """Inside Django, on the run database: what the simulated people need (see the locustfile)."""
    import django

    django.setup()
    from django.utils import timezone

    from cem import services
    from cem.models import Customer, Employee, Location, Membership, Organization, Touchpoint
    from cem.principals import Actor
    from cem.tenancy import tenant_context, unscoped
    from feedback.models import AnonymousLink, Survey
    from incentives import catalog, ledger
    from incentives.models import CatalogItem

    with unscoped():
        org = Organization.objects.get(slug="northwind")
    system = Actor.system()
    with tenant_context(org):
        _key, api_key = services.api_key_create(
            organization=org, actor=system, name="load bench", scopes=["*"], rate_limit_per_minute=1_000_000
        )
        stores = list(Location.objects.filter(active=True).order_by("code").values("id", "code", "region_id"))
        survey = Survey.objects.get(name="Store visit")
        links = list(
            AnonymousLink.objects.filter(active=True, survey__status="active").values_list("token", flat=True)
        )
        touchpoint = Touchpoint.objects.select_related("channel").order_by("pk").first()
        customers = list(Customer.objects.order_by("pk").values_list("external_id", flat=True)[:500])
        managers = []
        for membership in Membership.objects.filter(
            user__username__in=["manager@northwind.demo", "regional@northwind.demo", "exec@northwind.demo"]
        ).select_related("user"):
            if membership.location_id:
                scope = [membership.location_id]
            elif membership.region_id:
                scope = [s["id"] for s in stores if s["region_id"] == membership.region_id]
            else:
                scope = [s["id"] for s in stores]
            managers.append({"email": membership.user.username, "stores": scope})
        taken = set(Membership.objects.exclude(employee=None).values_list("employee_id", flat=True))
        employees = []
        for n, employee in enumerate(Employee.objects.exclude(pk__in=taken).order_by("pk")[:40]):
            email = f"load-employee-{n}@northwind.demo"
            services.membership_create(
                organization=org,
                actor=system,
                email=email,
                role="employee",
                password=PASSWORD,
                employee=employee,
            )
            ledger.adjust(
                org=org,
                account=ledger.wallet_for(org=org, employee=employee),
                points=1_000_000,
                note="load bench: points to redeem",
                actor=system,
            )
            employees.append(email)
        items = []
        for n in range(8):
            item = catalog.item_create(
                org=org,
                actor=system,
                data={
                    "name": f"Load bench voucher {n}",
                    "description": "",
                    "kind": CatalogItem.Kind.MERCHANDISE,
                    "cost": 1,
                    "stock": None,
                    "per_person_limit": None,
                    "auto_approve": True,
                    "visible_roles": [],
                    "active": True,
                },
            )
            items.append(item.pk)
    out.write_text(
        json.dumps(
            {
                "password": PASSWORD,
                "api_key": api_key,
                "api_survey": survey.pk,
                "stores": [{"id": s["id"], "code": s["code"]} for s in stores],
                "anonymous_links": links,
                "channel": touchpoint.channel.code,
                "touchpoint": touchpoint.code,
                "customers": customers,
                "now": (timezone.now() - dt.timedelta(minutes=1)).isoformat(),
                "interactions_per_batch": 50,
                "managers": managers,
                "employees": employees,
                "catalog_items": items,
            }
        )
    )


# --- baselines ---------------------------------------------------------------------------------


def baselines(admin_url: str, base_url: str, redis_port: int, workdir: Path) -> dict:
    """Raw PostgreSQL and Redis on this machine, now: what any app here could at most do."""
    import psycopg

    drop_database(admin_url, PGBENCH_DB)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{PGBENCH_DB}"')
    url = with_db(base_url, PGBENCH_DB)
    out: dict = {"load_average": load_average()}
    try:
        subprocess.run(["pgbench", "-i", "-q", "-s", "10", url], check=True, capture_output=True)
        for name, flags in (("select-only", ["-S"]), ("simple-update", ["-N"])):
            res = subprocess.run(
                ["pgbench", *flags, "-c", "8", "-j", "2", "-T", "15", url],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            tps = next(line for line in res.splitlines() if line.startswith("tps"))
            lat = next(line for line in res.splitlines() if line.startswith("latency average"))
            out[f"pgbench {name}"] = {
                "tps": float(tps.split("=")[1].split()[0]),
                "latency_ms": float(lat.split("=")[1].split()[0]),
                "clients": 8,
                "seconds": 15,
            }
    finally:
        drop_database(admin_url, PGBENCH_DB)
    res = subprocess.run(
        [
            "redis-benchmark",
            "-p",
            str(redis_port),
            "-q",
            "--csv",
            "-n",
            "100000",
            "-c",
            "8",
            "-t",
            "set,get,incr,lpush,rpop",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = list(csv.reader(res.strip().splitlines()))
    header = rows[0]
    for row in rows[1:]:
        rec = dict(zip(header, row, strict=False))
        out[f"redis-benchmark {rec['test']}"] = {
            "rps": float(rec["rps"]),
            "p50_ms": float(rec.get("p50_latency_ms", "nan")),
            "clients": 8,
        }
    subprocess.run(["redis-cli", "-p", str(redis_port), "FLUSHALL"], check=True, capture_output=True)
    return out


# --- one locust run ----------------------------------------------------------------------------


def tree_pids(proc: subprocess.Popen) -> list[int]:
    import psutil

    try:
        parent = psutil.Process(proc.pid)
        return [parent.pid] + [c.pid for c in parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_mb(pids: list[int]) -> float:
    import psutil

    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total / 2**20


def cpu_seconds(pids: list[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


def queue_lengths(redis_port: int | None) -> dict:
    """Messages waiting in each Celery queue (Redis lists named after the queues)."""
    if redis_port is None:
        return {}
    import redis

    client = redis.Redis(port=redis_port)
    return {f"queue_{q}": client.llen(q) for q in ("alerts", "rollups", "bulk", "default")}


def backlog(db_url: str) -> int:
    return int(psql(db_url, "SELECT count(*) FROM cem_outboxevent WHERE completed_at IS NULL") or 0)


def run_locust(
    users: int,
    seconds: int,
    args,
    env: dict,
    workdir: Path,
    services: Services,
    db_url: str,
    label: str,
    sample_every: float = 15,
) -> dict:
    prefix = workdir / f"locust_{label}"
    cpu_file = workdir / f"client_cpu_{label}.json"
    spawn = max(1, users // 5)
    ramp = users / spawn
    argv = [
        str(VENV_BIN / "locust"),
        "-f",
        str(ROOT / "bench" / "load_locustfile.py"),
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn),
        "-t",
        f"{int(seconds + ramp)}s",
        "--reset-stats",
        "--csv",
        str(prefix),
        "--only-summary",
        "--host",
        "http://127.0.0.1",
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
    ]
    genv = {**env, "LOAD_PACE": str(args.pace), "LOAD_CLIENT_CPU": str(cpu_file)}
    groups = {
        "web": [p for n, p in services.procs.items() if n.startswith("web")],
        "worker": [p for n, p in services.procs.items() if n.startswith("worker")],
        "beat": [p for n, p in services.procs.items() if n == "beat"],
    }
    cpu0 = {k: cpu_seconds([pid for p in v for pid in tree_pids(p)]) for k, v in groups.items()}
    backlog0 = backlog(db_url)
    samples = []
    with (workdir / f"locust_{label}.log").open("w") as out:
        started = time.time()
        proc = subprocess.Popen(argv, env=genv, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(1)
            elapsed = time.time() - started
            if elapsed >= ramp + 2 + len(samples) * sample_every:
                samples.append(
                    {
                        "t": round(elapsed),
                        "load_average": load_average(),
                        **queue_lengths(getattr(services, "redis_port", None)),
                        **{
                            f"{k}_rss_mb": round(rss_mb([pid for p in v for pid in tree_pids(p)]), 1)
                            for k, v in groups.items()
                        },
                    }
                )
        wall = time.time() - started
    if services.dead():
        raise RuntimeError(f"{services.dead()} died during the run; see {workdir}")
    cpu1 = {k: cpu_seconds([pid for p in v for pid in tree_pids(p)]) for k, v in groups.items()}
    stats = list(csv.DictReader((prefix.parent / f"{prefix.name}_stats.csv").open()))
    failures = list(csv.DictReader((prefix.parent / f"{prefix.name}_failures.csv").open()))
    # An exception inside a simulated person's task (a page it could not read) is an error too.
    exceptions = list(csv.DictReader((prefix.parent / f"{prefix.name}_exceptions.csv").open()))
    agg = next(r for r in stats if r["Name"] == "Aggregated")

    def num(row, key):
        try:
            return float(row[key])
        except (KeyError, ValueError):
            return None

    result = {
        "users": users,
        "seconds": seconds,
        "wall_seconds": round(wall, 1),
        "requests": int(agg["Request Count"]),
        "failures": int(agg["Failure Count"]) + sum(int(e["Count"]) for e in exceptions),
        "rps": round(num(agg, "Requests/s"), 1),
        "p50_ms": num(agg, "50%"),
        "p95_ms": num(agg, "95%"),
        "p99_ms": num(agg, "99%"),
        "max_ms": num(agg, "Max Response Time"),
        "by_name": [
            {
                "name": r["Name"],
                "method": r["Type"],
                "requests": int(r["Request Count"]),
                "failures": int(r["Failure Count"]),
                "rps": round(num(r, "Requests/s"), 2),
                "p50_ms": num(r, "50%"),
                "p95_ms": num(r, "95%"),
                "p99_ms": num(r, "99%"),
            }
            for r in stats
            if r["Name"] != "Aggregated"
        ],
        "failure_kinds": [
            {"name": f["Name"], "error": f["Error"][:200], "count": int(f["Occurrences"])} for f in failures
        ]
        + [{"name": "exception", "error": e["Message"][:200], "count": int(e["Count"])} for e in exceptions],
        "samples": samples,
        "cpu_seconds": {k: round(cpu1[k] - cpu0[k], 1) for k in groups},
        "backlog_start": backlog0,
        "backlog_end": backlog(db_url),
    }
    with contextlib.suppress(FileNotFoundError, ValueError):
        client = json.loads(cpu_file.read_text())
        result["cpu_seconds"]["client"] = round(client["user"] + client["system"], 1)
    result["passed"] = (
        result["failures"] == 0 and result["p95_ms"] is not None and result["p95_ms"] < P95_TARGET_MS
    )
    return result


def drain(db_url: str, timeout: float) -> tuple[int, float]:
    started = time.time()
    left = backlog(db_url)
    while left and time.time() - started < timeout:
        time.sleep(2)
        left = backlog(db_url)
    return left, round(time.time() - started, 1)


# --- report ------------------------------------------------------------------------------------


def fmt(v, digits=0) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def report(res: dict) -> str:
    lines = [f"Load bench — {res['date']} — commit {res['commit']} — {res['machine']}", ""]
    lines.append(f"Topology: {res['topology']}")
    lines.append("")
    if res.get("baseline"):
        lines += [
            "Raw baselines, same run (load average at the time: " + res["baseline"]["load_average"] + "):",
            "",
        ]
        lines += ["| what | rate | latency |", "|---|---|---|"]
        for k, v in res["baseline"].items():
            if k == "load_average":
                continue
            if "tps" in v:
                lines.append(f"| {k} (8 clients, 15 s) | {fmt(v['tps'])} tx/s | avg {v['latency_ms']} ms |")
            else:
                lines.append(f"| {k} (8 clients) | {fmt(v['rps'])} ops/s | p50 {v['p50_ms']} ms |")
        lines.append("")
    if res.get("steps"):
        lines += ["Steps (each after its ramp-up):", ""]
        lines += [
            "| users | req/s | p50 ms | p95 ms | p99 ms | errors | load avg (end) | pass |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for s in res["steps"]:
            la = s["samples"][-1]["load_average"] if s["samples"] else "—"
            lines.append(
                f"| {s['users']} | {s['rps']} | {fmt(s['p50_ms'])} | {fmt(s['p95_ms'])} | {fmt(s['p99_ms'])} "
                f"| {s['failures']} / {s['requests']} | {la} | {'yes' if s['passed'] else 'no'} |"
            )
        lines.append("")
    final = res.get("final")
    if final:
        lines += [
            f"Long run: {final['users']} users for {final['seconds']} s — {final['requests']:,} requests, "
            f"{final['rps']} req/s, p50 {fmt(final['p50_ms'])} / p95 {fmt(final['p95_ms'])} / "
            f"p99 {fmt(final['p99_ms'])} ms, {final['failures']} errors "
            f"({'meets' if final['passed'] else 'misses'} 0 errors and p95 < {P95_TARGET_MS} ms)",
            "",
        ]
        lines += ["| request | req/s | p50 ms | p95 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
        for r in final["by_name"]:
            lines.append(
                f"| {r['method']} {r['name']} | {r['rps']} | {fmt(r['p50_ms'])} | {fmt(r['p95_ms'])} "
                f"| {fmt(r['p99_ms'])} | {r['failures']} |"
            )
        for f in final["failure_kinds"]:
            lines.append(f"- error: {f['count']} × {f['name']}: {f['error']}")
        lines.append("")
        s = final["samples"]
        if s:
            mid = s[len(s) // 2]
            lines += [
                f"| RSS MB | start (t={s[0]['t']}s) | middle (t={mid['t']}s) "
                f"| end (t={s[-1]['t']}s) | growth |",
                "|---|---|---|---|---|",
            ]
            for k in ("web", "worker", "beat"):
                a, b, c = s[0][f"{k}_rss_mb"], mid[f"{k}_rss_mb"], s[-1][f"{k}_rss_mb"]
                growth = f"{(c - a) / a * 100:+.1f} %" if a else "—"
                lines.append(f"| {k} | {a} | {b} | {c} | {growth} |")
            lines.append("")
            lines.append(
                "Load average during the run: " + ", ".join(x["load_average"].split(" / ")[0] for x in s)
            )
            waiting = [
                "/".join(str(x.get(f"queue_{q}", "?")) for q in ("alerts", "rollups", "bulk", "default"))
                for x in s
            ]
            lines.append(
                "Celery queue lengths (alerts/rollups/bulk/default) at each sample: " + ", ".join(waiting)
            )
        cpu = final["cpu_seconds"]
        lines.append(
            "CPU seconds used during the run: "
            + ", ".join(f"{k} {v}" for k, v in cpu.items())
            + f" (wall {final['wall_seconds']} s; 2 cores = {2 * final['wall_seconds']:.0f} CPU s)"
        )
        lines.append(
            f"Event backlog (outbox rows not completed): {final['backlog_start']} at the start, "
            f"{final['backlog_end']} at the end; drained to {final.get('drain_left')} in "
            f"{final.get('drain_seconds')} s after the load stopped."
        )
    return "\n".join(lines)


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    if args.setup_fixtures:
        # The code under test is the tree on PYTHONPATH, not the checkout this script sits in.
        sys.path[:] = [p for p in sys.path if p != str(ROOT)]
        sys.path.insert(0, os.environ["PYTHONPATH"])
        setup_fixtures(args.setup_fixtures)
        return 0
    base_url = os.environ.get("DATABASE_URL", DEFAULT_DB_URL)
    admin_url = with_db(base_url, "postgres")
    run_url = with_db(base_url, RUN_DB)
    workdir = Path(tempfile.mkdtemp(prefix="cem_bench_load_"))
    services = Services(workdir)
    import platform

    import psutil

    res: dict = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, load average at start {load_average()}",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    log(f"work folder {workdir}; {res['machine']}")
    try:
        tree, res["commit"] = snapshot_tree(workdir, args.tree)
        log(f"code: {res['commit']} ({tree})")
        if args.reseed or not database_exists(admin_url, SEED_DB):
            log(f"building {SEED_DB}: migrate + seed_demo (several minutes)")
            res["seed_seconds"] = round(build_template(admin_url, base_url, tree, workdir), 1)
            log(f"seeded in {res['seed_seconds']} s")
        drop_database(admin_url, RUN_DB)
        psql(admin_url, f'CREATE DATABASE "{RUN_DB}" TEMPLATE "{SEED_DB}"')
        redis_port = free_port()
        services.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            dict(os.environ),
            workdir,
        )
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        services.redis_port = redis_port
        env = app_env(tree, run_url, redis_url, READ_REPLICA="true" if args.read_replica else "false")
        manage(tree, env, "migrate", "-v", "0", log_to=workdir / "migrate.log")
        manage(tree, env, "collectstatic", "--noinput", "-v", "0", log_to=workdir / "migrate.log")
        fixtures = workdir / "fixtures.json"
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "load.py"), "--setup-fixtures", str(fixtures)],
            env={**env, "CELERY_BROKER_URL": "memory://localhost/"},
            cwd=tree,
            check=True,
        )
        if not args.skip_baseline:
            log("baselines: pgbench (select-only, simple-update) and redis-benchmark")
            res["baseline"] = baselines(admin_url, base_url, redis_port, workdir)
        hosts = []
        for n in range(args.web):
            port = free_port()
            services.start(
                f"web{n}",
                [
                    str(VENV_BIN / "gunicorn"),
                    "cem.wsgi",
                    "-b",
                    f"127.0.0.1:{port}",
                    "-w",
                    str(args.gunicorn_workers),
                    "-k",
                    "gthread",
                    "--threads",
                    str(args.threads),
                    "--keep-alive",
                    "5",
                ],
                env,
                tree,
            )
            hosts.append(f"http://127.0.0.1:{port}")
        for n, queues in enumerate(args.worker_queues):
            argv = [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cem",
                "worker",
                "-l",
                "warning",
                "--concurrency",
                str(args.worker_concurrency),
                "-n",
                f"load{n}@%h",
            ]
            if queues != "all":
                argv += ["-Q", queues]
            services.start(f"worker{n}", argv, env, tree)
        services.start(
            "beat",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "cem",
                "beat",
                "-l",
                "warning",
                "--pidfile",
                str(workdir / "beat.pid"),
                "-s",
                str(workdir / "beat-schedule"),
            ],
            env,
            tree,
        )
        for host in hosts:
            wait_http(host + "/healthz")
        fx = json.loads(fixtures.read_text())
        fx["hosts"] = hosts
        fixtures.write_text(json.dumps(fx))
        queues = "; ".join(q if q != "all" else "every queue" for q in args.worker_queues)
        res["topology"] = (
            f"{args.web} gunicorn instance(s) × {args.gunicorn_workers} process(es) × {args.threads} "
            f"threads (gthread); {len(args.worker_queues)} celery worker(s) [{queues}] × concurrency "
            f"{args.worker_concurrency}; 1 beat; PostgreSQL and Redis on the same host; pace {args.pace} s"
            + ("; dashboards through the replica alias (READ_REPLICA=true)" if args.read_replica else "")
        )
        log(f"waiting for the seed's events to drain (backlog {backlog(run_url)})")
        left, took = drain(run_url, 300)
        log(f"backlog {left} after {took} s")
        genv = {**os.environ, "LOAD_FIXTURES": str(fixtures)}
        log("warm-up: 10 users for 20 s")
        run_locust(10, 20, args, genv, workdir, services, run_url, "warmup")
        chosen = args.final_users
        if chosen is None:
            res["steps"] = []
            for users in args.users:
                log(f"step: {users} users for {args.step_seconds} s (load average {load_average()})")
                step = run_locust(
                    users, args.step_seconds, args, genv, workdir, services, run_url, f"step{users}"
                )
                res["steps"].append(step)
                log(
                    f"  {step['rps']} req/s, p50 {step['p50_ms']} p95 {step['p95_ms']} "
                    f"p99 {step['p99_ms']} ms, {step['failures']} errors of {step['requests']}"
                )
                if not step["passed"]:
                    break
                chosen = users
            if chosen is None:
                log("no step met the target")
        if chosen and args.duration:
            left, took = drain(run_url, 120)
            log(f"long run: {chosen} users for {args.duration} s (backlog {left})")
            final = run_locust(chosen, args.duration, args, genv, workdir, services, run_url, "final")
            final["drain_left"], final["drain_seconds"] = drain(run_url, args.drain_seconds)
            res["final"] = final
            log(
                f"  {final['rps']} req/s, p50 {final['p50_ms']} p95 {final['p95_ms']} "
                f"p99 {final['p99_ms']} ms, {final['failures']} errors of {final['requests']}"
            )
        res["load_average_end"] = load_average()
    finally:
        services.stop_all()
        if not args.keep:
            drop_database(admin_url, RUN_DB)
        if args.drop_seed:
            drop_database(admin_url, SEED_DB)
        if args.tree == "head":
            shutil.rmtree(workdir / "tree", ignore_errors=True)
    text = report(res)
    res["markdown"] = text
    print(text)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=str))
    log(f"logs in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
