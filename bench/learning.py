# ruff: noqa: E501 - SQL and result tables read better unwrapped
"""Learning: gap-revealing audit → assignment latency with a real Celery worker, and the gap-trigger
handler's cost with 10x more history.

    .venv/bin/python bench/learning.py [--publishes 100] [--history 30000] [--repeat 30] [--keep-db]

(a) A poor audit is published for an employee through ``audit_publish`` (the service the pages
    and API call); the outbox kick goes to Redis (a free database number on 127.0.0.1:6379) and a
    real ``celery -A cem worker --concurrency 2`` subprocess runs learning's AuditPublished
    handler, which finds the gap and writes the assignment. We time publish-commit → the
    assignment row visible to another connection. Each employee already has two poor audits, so
    the new one is the third data point the rule needs.
(b) The handler's work for one new event (``gaps.evaluate_touched`` for the touched standard and
    employee, rolled back after each run so every run sees the same data), its time and query
    count, with H published scores on the standard and with 10xH, added either *older* (years
    before the rule's window: the organization's past) or *wider* (inside the same year, 9x as
    many other employees: a bigger organization). Each size is its own standard in the same
    database, measured in turn round after round, so the shared machine's load hits all alike.
    Beside it, the raw SQL of the handler's one aggregate, run as the owner.

Runs against a scratch database (``cem_bench_learning`` next to the one DATABASE_URL names),
dropped, re-created and migrated at the start and dropped at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from scratch import ROOT, prepare_environment, recreate_database, setup_django, table

REDIS_HOST = "127.0.0.1:6379"
N_LOCATIONS = 10
PER_LOCATION = 12


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--publishes", type=int, default=100, help="poor audits published in (a)")
    p.add_argument("--history", type=int, default=30_000, help="H: published standard scores at 1x in (b)")
    p.add_argument("--repeat", type=int, default=30, help="handler runs per history size in (b)")
    p.add_argument("--db-name", default="cem_bench_learning")
    p.add_argument("--only-history", action="store_true", help="skip (a): no worker, no Redis")
    p.add_argument("--keep-db", action="store_true")
    return p.parse_args()


def free_redis_db() -> int:
    import redis

    used = set(redis.Redis.from_url(f"redis://{REDIS_HOST}/0").info("keyspace"))
    candidates = [n for n in range(15, 3, -1) if f"db{n}" not in used]
    if not candidates:
        raise RuntimeError("no empty Redis database between 4 and 15")
    return random.choice(candidates[:4])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def ms(v: float) -> str:
    return f"{v * 1000:.1f}" if v < 0.1 else f"{v * 1000:,.0f}"


def start_worker(bench_url: str, broker: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": bench_url,
        "CELERY_BROKER_URL": broker,
        "REDIS_URL": broker,
        "PYTHONPATH": str(ROOT),  # this tree's code, whichever checkout the venv was installed from
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DEBUG": "false",
    }
    return subprocess.Popen(  # noqa: S603 - our own command line
        [str(Path(sys.executable).with_name("celery")), "-A", "cem", "worker", "-l", "warning",
         "--concurrency", "2", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def stop_worker(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


# --- scratch organization ---------------------------------------------------------------------


class World:
    org = None
    standard = None
    version = None
    item = None
    rule = None
    lesson = None
    employees: list = []


def create_world() -> World:
    from audits import models as am
    from cem.models import Employee, Location, Organization, Region, SkillCategory, Standard
    from cem.tenancy import tenant_context, unscoped
    from learning import models as lm

    w = World()
    with unscoped():
        w.org = Organization.objects.create(name="Bench Learning", slug="bench-learning", time_zone="UTC")
    org = w.org
    with tenant_context(org):
        region = Region.objects.create(organization=org, name="Bench region", code="bench")
        locations = Location.objects.bulk_create(
            Location(organization=org, region=region, name=f"Store {i:02d}", code=f"loc-{i:02d}")
            for i in range(N_LOCATIONS)
        )
        w.employees = list(
            Employee.objects.bulk_create(
                Employee(organization=org, name=f"Employee {loc.code}-{n}", external_id=f"E-{loc.code}-{n}",
                         current_location=loc)
                for loc in locations
                for n in range(PER_LOCATION)
            )
        )  # fmt: skip
        skill = SkillCategory.objects.create(organization=org, name="Greeting")
        w.standard = Standard.objects.create(
            organization=org, code="greet", title="Greet within 10 seconds", skill_category=skill
        )
        form = am.AuditForm.objects.create(organization=org, name="Store visit", kind="mystery_shop")
        w.version = am.AuditFormVersion.objects.create(organization=org, form=form, number=1)
        section = am.FormSection.objects.create(
            organization=org, version=w.version, key="visit", title={"en": "Visit"}
        )
        w.item = am.FormItem.objects.create(
            organization=org, version=w.version, section=section, key="greeted", position=1,
            type="yes_no", text={"en": "Greeted within 10 seconds?"}, standard=w.standard,
        )  # fmt: skip
        w.lesson = lm.Lesson.objects.create(
            organization=org, title="The 10-second welcome", status="published"
        )
        v = lm.LessonVersion.objects.create(
            organization=org,
            lesson=w.lesson,
            number=1,
            title=w.lesson.title,
            body="Greet.",
            body_html="<p>Greet.</p>",
        )
        w.lesson.current_version = v
        w.lesson.save(update_fields=["current_version"])
        lm.LearningSettings.objects.create(organization=org, max_open_assignments=1000)
        w.rule = lm.GapRule.objects.create(
            organization=org, name="Slow greeting", standard=w.standard, subject="employee", target="employee",
            source="audits", threshold=Decimal(60), window_days=30, min_points=3, lesson=w.lesson,
            holdout_share=Decimal(0),
        )  # fmt: skip
    return w


def insert_history(
    owner,
    w: World,
    *,
    n: int,
    employee_ids: list[int],
    days_from: float,
    days_to: float,
    location_of: dict[int, int],
    value_sql: str = "(random() * 100)::numeric(5,2)",
    standard_id: int | None = None,
    vacuum_after: bool = True,
) -> None:
    """n published audits with one standard score each, on the bench standard, spread over the
    employees and over [now - days_from, now - days_to], as the owner (set-based)."""
    owner.execute(
        f"""
        WITH src AS (
            SELECT g, (%(emps)s::bigint[])[1 + (g %% cardinality(%(emps)s::bigint[]))] AS emp,
                   now() - make_interval(secs => (%(d1)s + random() * (%(d0)s - %(d1)s)) * 86400) AS at,
                   {value_sql} AS value
              FROM generate_series(1, %(n)s) g
        ), audits AS (
            INSERT INTO audits_audit (organization_id, version_id, status, location_id, employee_id, score,
                                      critical_failed, section_scores, published_at, created_at, updated_at)
            SELECT %(org)s, %(version)s, 'published', (%(locs)s::jsonb ->> emp::text)::bigint, emp, value,
                   false, '{{}}'::jsonb, at, at, at
              FROM src
            RETURNING id, employee_id, location_id, score, published_at
        )
        INSERT INTO audits_standardscore (organization_id, audit_id, standard_id, location_id, employee_id,
                                          earned, possible, value, published_at)
        SELECT %(org)s, id, %(std)s, location_id, employee_id, score / 100, 1, score, published_at FROM audits
        """,
        {
            "emps": employee_ids, "d0": days_from, "d1": days_to, "n": n, "org": w.org.pk,
            "version": w.version.pk, "std": standard_id or w.standard.pk,
            "locs": __import__("json").dumps({str(k): v for k, v in location_of.items()}),
        },
    )  # fmt: skip
    owner.commit()
    if vacuum_after:
        vacuum(owner)


def vacuum(owner) -> None:
    """Statistics and the visibility map as autovacuum would have them (deleted rows gone)."""
    owner.autocommit = True
    try:
        owner.execute("VACUUM ANALYZE audits_audit")
        owner.execute("VACUUM ANALYZE audits_standardscore")
    finally:
        owner.autocommit = False


def extra_employees(w: World, n: int) -> list:
    from cem.models import Employee
    from cem.tenancy import tenant_context

    with tenant_context(w.org):
        locs = list({e.current_location_id for e in w.employees})
        start = Employee.objects.count()
        return list(
            Employee.objects.bulk_create(
                Employee(organization=w.org, name=f"Other {i}", external_id=f"X-{start + i}",
                         current_location_id=locs[i % len(locs)])
                for i in range(n)
            )
        )  # fmt: skip


# --- (a) poor audit published → assignment ---------------------------------------------------


def bench_publish(owner, w: World, n: int) -> dict:
    from audits import audit_services
    from audits import models as am
    from cem.principals import Actor
    from cem.tenancy import tenant_context

    people = w.employees[:n]
    # Two poor audits in the last ten days for each: the new one is the third point the rule needs.
    insert_history(
        owner, w, n=2 * len(people), employee_ids=[e.pk for e in people], days_from=10, days_to=1,
        location_of={e.pk: e.current_location_id for e in people}, value_sql="0::numeric(5,2)",
    )  # fmt: skip
    with tenant_context(w.org):
        drafts = am.Audit.objects.bulk_create(
            am.Audit(organization=w.org, version=w.version, status="submitted", location_id=e.current_location_id,
                     employee=e, visited_at=dt.datetime.now(dt.UTC))
            for e in people
        )  # fmt: skip
        am.AuditAnswer.objects.bulk_create(
            am.AuditAnswer(organization=w.org, audit=a, item=w.item, value="no") for a in drafts
        )
    latencies, publish_only = [], []
    for audit, employee in zip(drafts, people, strict=True):
        t0 = time.perf_counter()
        with tenant_context(w.org):
            audit_services.audit_publish(organization=w.org, actor=Actor.system(), audit=audit)
        publish_only.append(time.perf_counter() - t0)
        while True:
            row = owner.execute(
                "SELECT 1 FROM learning_assignment WHERE organization_id = %s AND employee_id = %s AND lesson_id = %s",
                [w.org.pk, employee.pk, w.lesson.pk],
            ).fetchone()
            owner.commit()
            if row:
                break
            if time.perf_counter() - t0 > 30:
                raise RuntimeError(f"no assignment for employee {employee.pk} after 30 s")
            time.sleep(0.005)
        latencies.append(time.perf_counter() - t0)
    return {"n": len(latencies), "assigned": latencies, "publish": publish_only}


def bench_raw_publish(owner, w: World, n: int) -> list[float]:
    """Raw Postgres beside (a): what must happen at least, in one transaction as the owner: mark
    an audit published, the handler's aggregate for the employee, insert the assignment."""
    rows = owner.execute(
        "SELECT id, employee_id FROM audits_audit WHERE organization_id = %s AND employee_id IS NOT NULL LIMIT %s",
        [w.org.pk, n],
    ).fetchall()
    owner.commit()
    out = []
    for audit_id, emp in rows:
        t = time.perf_counter()
        owner.execute(
            "UPDATE audits_audit SET status = 'published', published_at = now() WHERE id = %s", [audit_id]
        )
        owner.execute(
            "SELECT count(*), avg(value) FROM audits_standardscore WHERE organization_id = %s AND standard_id = %s"
            " AND employee_id = %s AND published_at >= now() - interval '30 days' AND value IS NOT NULL",
            [w.org.pk, w.standard.pk, emp],
        ).fetchone()
        owner.execute(
            "INSERT INTO learning_assignment (organization_id, lesson_id, employee_id, source, status, reason,"
            " assigned_at, due_at, progress, completed_lesson_ids, role, withdrawn_note)"
            " VALUES (%s, %s, %s, 'manual', 'completed', 'bench', now(), now() + interval '7 days', 100, '[]', '', '')",
            [w.org.pk, w.lesson.pk, emp],
        )
        owner.commit()
        out.append(time.perf_counter() - t)
    return out


# --- (b) handler cost vs history ----------------------------------------------------------------


def handler_once(w: World, standard_id: int, employee) -> tuple[float, int, list, str]:
    """``gaps.evaluate_touched`` for one new poor audit of ``employee`` on one standard (the
    AuditPublished handler's work), rolled back; (seconds, queries, outcomes, the scores SQL)."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from cem.tenancy import tenant_context
    from learning import gaps

    class Rollback(Exception):
        pass

    touched = [(standard_id, employee.current_location_id, employee.pk)]
    try:
        with tenant_context(w.org), transaction.atomic(), CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            found = gaps.evaluate_touched(touched=touched, sources=gaps.AUDIT_SOURCES)
            elapsed = time.perf_counter() - t0
            raise Rollback
    except Rollback:
        pass
    sql = next((q["sql"] for q in ctx.captured_queries if "audits_standardscore" in q["sql"]), "")
    return elapsed, len(ctx.captured_queries), [t.outcome for t in found], sql


RAW_AGGREGATE = (
    "SELECT count(*), avg(value) FROM audits_standardscore WHERE organization_id = %s AND standard_id = %s"
    " AND employee_id = %s AND published_at >= now() - interval '30 days' AND value IS NOT NULL"
)


def raw_once(owner, w: World, standard_id: int, employee) -> float:
    """The handler's one aggregate on the standard scores, as raw SQL (the owner, no ORM, no RLS)."""
    t = time.perf_counter()
    owner.execute(RAW_AGGREGATE, [w.org.pk, standard_id, employee.pk]).fetchone()
    owner.commit()
    return time.perf_counter() - t


def count_scores(owner, w: World, standard_id: int) -> int:
    (n,) = owner.execute(
        "SELECT count(*) FROM audits_standardscore WHERE organization_id = %s AND standard_id = %s",
        [w.org.pk, standard_id],
    ).fetchone()
    owner.commit()
    return n


def bench_history(owner, w: World, h: int, repeat: int) -> list[dict]:
    """(b): one standard per history size in the same database (the handler reads by
    organization and standard first), measured in turn, round after round, so a change in the
    shared machine's load hits all three alike. 1x: H scores in the last year; 10x older: H in
    the last year plus 9xH 1-10 years back for the same people; 10x wider: H plus 9xH in the same
    year for 9x as many other employees."""
    from cem.models import Standard
    from cem.tenancy import tenant_context
    from learning import models as lm

    base = w.employees[:]
    locs = {e.pk: e.current_location_id for e in base}
    target = base[-1]  # not one of (a)'s employees: no open assignment, no cooldown
    others = extra_employees(w, 9 * len(base))
    other_locs = {e.pk: e.current_location_id for e in others}
    variants = []
    with tenant_context(w.org):
        for code, label in (
            ("h1", "1x (H in the last year)"),
            ("h10-older", "10x: + 9xH older (1-10 years ago)"),
            ("h10-wider", "10x: + 9xH in the same year, 9x the employees"),
        ):
            std = Standard.objects.create(
                organization=w.org, code=code, title=label, skill_category=w.standard.skill_category
            )
            lm.GapRule.objects.create(
                organization=w.org,
                name=f"Gap {code}",
                standard=std,
                subject="employee",
                target="employee",
                source="audits",
                threshold=Decimal(60),
                window_days=30,
                min_points=3,
                lesson=w.lesson,
                holdout_share=Decimal(0),
            )
            variants.append({"code": code, "label": label, "std": std.pk})
    for v in variants:
        # The target's own recent poor scores: the handler finds a gap and goes on to the assignment.
        insert_history(
            owner,
            w,
            n=4,
            employee_ids=[target.pk],
            days_from=20,
            days_to=1,
            location_of=locs,
            value_sql="10::numeric(5,2)",
            standard_id=v["std"],
            vacuum_after=False,
        )
        insert_history(
            owner,
            w,
            n=h,
            employee_ids=[e.pk for e in base],
            days_from=365,
            days_to=0,
            location_of=locs,
            standard_id=v["std"],
            vacuum_after=False,
        )
    insert_history(
        owner,
        w,
        n=9 * h,
        employee_ids=[e.pk for e in base],
        days_from=3650,
        days_to=366,
        location_of=locs,
        standard_id=variants[1]["std"],
        vacuum_after=False,
    )
    insert_history(
        owner,
        w,
        n=9 * h,
        employee_ids=[e.pk for e in others],
        days_from=365,
        days_to=0,
        location_of=other_locs,
        standard_id=variants[2]["std"],
        vacuum_after=False,
    )
    vacuum(owner)
    for v in variants:
        v.update(rows=count_scores(owner, w, v["std"]), times=[], queries=[], raw=[])
    for n in range(repeat + 3):  # three warm-up rounds
        for v in variants:
            elapsed, queries, outcome, sql = handler_once(w, v["std"], target)
            raw = raw_once(owner, w, v["std"], target)
            if n >= 3:
                v["times"].append(elapsed)
                v["queries"].append(queries)
                v["raw"].append(raw)
            v["outcome"], v["aggregate_sql"] = outcome, sql
    out = []
    for v in variants:
        plan = owner.execute(
            "EXPLAIN (ANALYZE, BUFFERS) " + RAW_AGGREGATE, [w.org.pk, v["std"], target.pk]
        ).fetchall()
        owner.commit()
        out.append(
            {
                "label": v["label"],
                "rows": v["rows"],
                "p50": statistics.median(v["times"]),
                "p95": pct(v["times"], 0.95),
                "queries": max(v["queries"]),
                "outcome": v["outcome"],
                "aggregate_sql": v["aggregate_sql"],
                "raw": {
                    "p50": statistics.median(v["raw"]),
                    "p95": pct(v["raw"], 0.95),
                    "plan": [r[0] for r in plan],
                },
            }
        )
        print(
            f"  {v['label']}: {v['rows']} scores: {out[-1]['p50'] * 1000:.1f} ms, {out[-1]['queries']} queries",
            flush=True,
        )
    return out


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    bench_url, admin_url = prepare_environment(args.db_name)
    redis_db = free_redis_db() if not args.only_history else None
    broker = f"redis://{REDIS_HOST}/{redis_db}" if not args.only_history else "memory://localhost/"
    os.environ["CELERY_BROKER_URL"] = broker  # real kicks through Redis, for the worker
    where = urlsplit(bench_url)
    print(f"scratch database {args.db_name!r} on {where.hostname}:{where.port or 5432}; broker {broker}")
    recreate_database(admin_url, args.db_name)

    setup_django(shared_cache=None if args.only_history else broker)
    import psycopg
    import redis
    from django.core.management import call_command
    from django.db import connections

    report: dict = {"redis_db": redis_db, "load": os.getloadavg()}
    worker = None
    log = Path(tempfile.gettempdir()) / "bench_learning_worker.log"
    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"migrated in {time.perf_counter() - t0:.1f}s", flush=True)
        w = create_world()
        owner = psycopg.connect(bench_url)
        if not args.only_history:
            worker = start_worker(bench_url, broker, log)
            print(f"celery worker pid {worker.pid} (log {log})", flush=True)
            time.sleep(5)  # the worker's start-up, so the first publish does not wait for it
            report["publish"] = bench_publish(owner, w, min(args.publishes, len(w.employees) - 1))
            a = report["publish"]["assigned"]
            print(
                f"  publish→assignment p50 {pct(a, 0.5) * 1000:.0f} ms, p95 {pct(a, 0.95) * 1000:.0f} ms",
                flush=True,
            )
            stop_worker(worker)
            worker = None
            report["raw_publish"] = bench_raw_publish(owner, w, len(report["publish"]["assigned"]))
        report["history"] = bench_history(owner, w, args.history, args.repeat)
        report["load_after"] = os.getloadavg()
        owner.close()
    finally:
        if worker is not None:
            stop_worker(worker)
        connections.close_all()
        if redis_db is not None:
            redis.Redis.from_url(broker).flushdb()  # it was empty when chosen: only our queue is there
        if not args.keep_db:
            recreate_database(admin_url, args.db_name, drop_only=True)
    print_report(report, args)
    return 0


def print_report(r: dict, args) -> None:
    print(f"load average before {r['load'][0]:.1f}, after {r['load_after'][0]:.1f} on {os.cpu_count()} cores")
    if "publish" in r:
        print_publish(r)
    print_history(r, args)


def print_publish(r: dict) -> None:
    p = r["publish"]
    print(
        f"\n(a) poor audit published → gap-triggered assignment exists, {p['n']} employees one after the other "
        f"(celery worker --concurrency 2, broker Redis db {r['redis_db']}); load average before "
        f"{r['load'][0]:.1f}, after {r['load_after'][0]:.1f} on {os.cpu_count()} cores\n"
    )
    raw = r["raw_publish"]
    table(
        ["what", "p50 ms", "p95 ms", "max ms", "target"],
        [
            ["raw SQL: publish UPDATE + the aggregate + assignment INSERT, one commit (owner)", ms(pct(raw, 0.5)),
             ms(pct(raw, 0.95)), ms(max(raw)), ""],
            ["ours: audit_publish alone (score, StandardScore rows, outbox)", ms(pct(p["publish"], 0.5)),
             ms(pct(p["publish"], 0.95)), ms(max(p["publish"])), ""],
            ["ours: publish → assignment row visible (worker ran the AuditPublished handler)",
             ms(pct(p["assigned"], 0.5)), ms(pct(p["assigned"], 0.95)), ms(max(p["assigned"])), "p95 < 2,000"],
        ],
    )  # fmt: skip


def print_history(r: dict, args) -> None:
    hist = r["history"]
    base = hist[0]
    print(
        f"\n(b) the gap-trigger handler for one new poor audit ({args.repeat} runs each, rolled back), by history size\n"
    )
    rows = []
    for h in hist:
        change = (h["p50"] / base["p50"] - 1) * 100
        rows.append([
            h["label"], f"{h['rows']:,}", ms(h["p50"]), ms(h["p95"]), str(h["queries"]),
            f"{change:+.0f} %" if h is not base else "—", ms(h["raw"]["p50"]), ", ".join(h["outcome"]),
        ])  # fmt: skip
    table(
        [
            "history",
            "scores on the standard",
            "handler p50 ms",
            "p95 ms",
            "queries",
            "p50 vs 1×",
            "raw aggregate p50 ms",
            "outcome",
        ],
        rows,
    )
    print("\nThe handler's aggregate on the standard scores (ORM):\n")
    print("    " + base["aggregate_sql"])
    for h in hist:
        print(f"\nEXPLAIN ANALYZE of the raw aggregate, {h['label']}:\n")
        for line in h["raw"]["plan"]:
            print("    " + line)


if __name__ == "__main__":
    sys.exit(main())
