# ruff: noqa: E501 - SQL and result tables read better unwrapped
"""Incentives: redemptions under contention, award throughput from a burst of events, and
event → points visible latency with a real Celery worker and Redis.

    .venv/bin/python bench/incentives.py [--redeems 600] [--threads 8] [--wallets 4] [--events 10000] [--latency 100]

(a) ``--threads`` threads redeem (``incentives.redemptions.redeem``, the portal's and the API's
    service) against ``--wallets`` wallets and one item with a limited stock: successes and clean
    refusals per second; beside it, raw SQL doing the same hold (lock the two accounts, one
    transaction row, two entries, two balance UPDATEs) under the same contention.
(b) A burst of ``--events`` ``LessonCompleted`` events through the real handler
    (``incentives.handlers.rewards_after_lesson`` → rules → ``ledger.award``), one transaction per
    event as the worker runs it; beside it, raw INSERTs of the same number of balanced award
    transactions (2 entries each) with the two balance UPDATEs.
(c) ``--latency`` events emitted one after the other, delivered by a real
    ``celery -A cem worker --concurrency 2`` through Redis; the time from the emitting commit
    to the employee's wallet balance showing the points.

Scratch database ``cem_bench_incentives`` (dropped at the end unless --keep-db). See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from scratch import ROOT, prepare_environment, recreate_database, setup_django, table

# bench/audits.py's worker helpers, loaded under another name: "audits" is also a Django app.
_spec = importlib.util.spec_from_file_location("bench_audits", Path(__file__).with_name("audits.py"))
_bench_audits = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench_audits)
REDIS_HOST, free_redis_db, pct, start_worker = (
    _bench_audits.REDIS_HOST,
    _bench_audits.free_redis_db,
    _bench_audits.pct,
    _bench_audits.start_worker,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redeems", type=int, default=600, help="redemption attempts in (a)")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--wallets", type=int, default=4)
    p.add_argument("--events", type=int, default=10_000, help="events in the burst (b)")
    p.add_argument("--latency", type=int, default=100, help="events timed one by one in (c)")
    p.add_argument("--only-latency", action="store_true", help="skip (a) and (b): run (c) alone")
    p.add_argument("--db-name", default="cem_bench_incentives")
    p.add_argument("--keep-db", action="store_true")
    return p.parse_args()


class World:
    org = None
    employees: list = []
    budget = None
    rule = None
    item = None


def create_world(n_employees: int = 50) -> World:
    import datetime as dt

    from cem.models import Employee, Location, Organization, Region
    from cem.tenancy import tenant_context, unscoped
    from incentives import ledger
    from incentives.models import CatalogItem, RewardRule

    w = World()
    with unscoped():
        w.org = Organization.objects.create(name="Bench Org", slug="bench-org", time_zone="UTC")
    org = w.org
    with tenant_context(org):
        region = Region.objects.create(organization=org, name="Bench region", code="bench")
        locs = [
            Location.objects.create(organization=org, region=region, name=f"Store {i}", code=f"s{i}")
            for i in range(5)
        ]
        w.employees = [
            Employee.objects.create(
                organization=org,
                external_id=f"E{i:04d}",
                name=f"Employee {i}",
                current_location=locs[i % 5],
                role="associate",
            )
            for i in range(n_employees)
        ]
        w.budget = ledger.budget_create(org=org, name="Learning awards")
        ledger.budget_fund(org=org, budget=w.budget, points=10_000_000, note="bench")
        w.rule = RewardRule.objects.create(
            organization=org, name="Lesson completed", trigger=RewardRule.Trigger.LESSON_COMPLETED,
            recipients=RewardRule.Recipients.LEARNER, points=5, budget=w.budget,
            effective_from=dt.date(2024, 1, 1),
        )  # fmt: skip
        w.item = CatalogItem.objects.create(
            organization=org, name="Coffee card", kind=CatalogItem.Kind.MERCHANDISE, cost=10,
            stock=10_000, auto_approve=True,
        )  # fmt: skip
        for e in w.employees:
            ledger.wallet_for(org=org, employee=e)
    return w


# --- (a) redemptions under contention ---------------------------------------------------------


def bench_redeem(w: World, attempts: int, threads: int, n_wallets: int) -> dict:
    from django.db import connection

    from cem.principals import Actor
    from cem.tenancy import tenant_context
    from incentives import ledger, redemptions

    wallets = w.employees[:n_wallets]
    # Each wallet covers half of the attempts made against it: the rest are refused (409).
    per_wallet = attempts // n_wallets
    with tenant_context(w.org):
        for e in wallets:
            ledger.adjust(
                org=w.org,
                account=ledger.wallet_for(org=w.org, employee=e),
                points=per_wallet // 2 * 10,
                note="bench",
            )
    ok, refused, lat = [0], [0], []
    lock = threading.Lock()

    def work(t: int) -> None:
        with tenant_context(w.org):
            for n in range(t, attempts, threads):
                emp = wallets[n % n_wallets]
                s = time.perf_counter()
                try:
                    redemptions.redeem(
                        org=w.org, actor=Actor.system(), employee=emp, item=w.item, key=f"b{n}"
                    )
                    good = True
                except redemptions.RedemptionRefused:
                    good = False
                with lock:
                    lat.append(time.perf_counter() - s)
                    (ok if good else refused)[0] += 1
        connection.close()

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"n": attempts, "ok": ok[0], "refused": refused[0], "rate": attempts / elapsed,
            "ok_rate": ok[0] / elapsed, "p50": pct(lat, 0.5), "p95": pct(lat, 0.95)}  # fmt: skip


def raw_hold(conn, org_id: int, wallet: int, clearing: int, cost: int) -> bool:
    """One hold in raw SQL: lock both accounts in id order, refuse when short, 1 tx + 2 entries, the lots, 2 UPDATEs."""
    with conn.transaction():
        rows = dict(conn.execute("SELECT id, balance FROM incentives_account WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                                 [[wallet, clearing]]).fetchall())  # fmt: skip
        if rows[wallet] < cost:
            return False
        (tx,) = conn.execute(
            "INSERT INTO incentives_ledgertransaction (organization_id, kind, note, created_at) VALUES (%s, 'hold', 'raw', now()) RETURNING id",
            [org_id],
        ).fetchone()
        conn.execute(
            "INSERT INTO incentives_ledgerentry (organization_id, transaction_id, account_id, amount, balance_after, created_at)"
            " VALUES (%s, %s, %s, %s, %s, now()), (%s, %s, %s, %s, %s, now())",
            [
                org_id,
                tx,
                wallet,
                -cost,
                rows[wallet] - cost,
                org_id,
                tx,
                clearing,
                cost,
                rows[clearing] + cost,
            ],
        )
        # Spend the wallet's lots oldest first (the wallet row's lock serialises this), so the
        # raw hold leaves a ledger that ledger_check still reconciles.
        conn.execute(
            "UPDATE incentives_pointslot l SET remaining = l.remaining - LEAST(l.remaining, %s - o.before)"
            "  FROM (SELECT id, SUM(remaining) OVER (ORDER BY created_at, id) - remaining AS before"
            "          FROM incentives_pointslot WHERE wallet_id = %s AND remaining > 0) o"
            " WHERE l.id = o.id AND o.before < %s",
            [cost, wallet, cost],
        )
        conn.execute("UPDATE incentives_account SET balance = balance - %s WHERE id = %s", [cost, wallet])
        conn.execute("UPDATE incentives_account SET balance = balance + %s WHERE id = %s", [cost, clearing])
    return True


def bench_raw_redeem(url: str, w: World, attempts: int, threads: int, n_wallets: int) -> dict:
    import psycopg

    from cem.tenancy import tenant_context
    from incentives import ledger
    from incentives.models import Account

    wallets = w.employees[n_wallets : 2 * n_wallets]
    per_wallet = attempts // n_wallets
    with tenant_context(w.org):
        ids = []
        for e in wallets:
            acc = ledger.wallet_for(org=w.org, employee=e)
            ledger.adjust(org=w.org, account=acc, points=per_wallet // 2 * 10, note="bench raw")
            ids.append(acc.pk)
        clearing = ledger.system_account(org=w.org, kind=Account.Kind.CLEARING).pk
    ok, lat = [0], []
    lock = threading.Lock()

    def work(t: int) -> None:
        with psycopg.connect(url) as conn:
            conn.execute("SET app.system = 'on'")
            conn.commit()
            for n in range(t, attempts, threads):
                s = time.perf_counter()
                good = raw_hold(conn, w.org.pk, ids[n % n_wallets], clearing, 10)
                with lock:
                    lat.append(time.perf_counter() - s)
                    ok[0] += good

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    return {"n": attempts, "ok": ok[0], "refused": attempts - ok[0], "rate": attempts / elapsed,
            "ok_rate": ok[0] / elapsed, "p50": pct(lat, 0.5), "p95": pct(lat, 0.95)}  # fmt: skip


# --- (b) a burst of events through the handler ---------------------------------------------


class Event:
    """What the handler reads of an outbox event (the worker passes the row)."""

    def __init__(self, org_id: int, payload: dict):
        from django.utils import timezone

        self.organization_id, self.payload, self.created_at = org_id, payload, timezone.now()


def bench_burst(w: World, n: int) -> dict:
    from django.db import transaction

    from cem.tenancy import tenant_context
    from incentives.handlers import rewards_after_lesson
    from incentives.models import LedgerTransaction

    events = [
        Event(
            w.org.pk,
            {
                "employee_id": e.pk,
                "completion_id": i,
                "location_id": e.current_location_id,
                "lesson_id": None,
            },
        )
        for i in range(n)
        for e in [w.employees[i % len(w.employees)]]
    ]
    with tenant_context(w.org):
        before = LedgerTransaction.objects.filter(kind="award").count()
        t0 = time.perf_counter()
        for ev in events:
            with transaction.atomic():
                rewards_after_lesson(ev)
        elapsed = time.perf_counter() - t0
        awarded = LedgerTransaction.objects.filter(kind="award").count() - before
    return {"n": n, "awarded": awarded, "rate": n / elapsed, "elapsed": elapsed}


def bench_raw_awards(url: str, w: World, n: int) -> dict:
    import psycopg

    from cem.tenancy import tenant_context
    from incentives import ledger

    with tenant_context(w.org):
        wallets = [ledger.wallet_for(org=w.org, employee=e).pk for e in w.employees]
    budget = w.budget.pk
    with psycopg.connect(url) as conn:
        conn.execute("SET app.system = 'on'")
        conn.commit()
        t0 = time.perf_counter()
        for i in range(n):
            wallet = wallets[i % len(wallets)]
            with conn.transaction():
                rows = dict(conn.execute("SELECT id, balance FROM incentives_account WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                                         [[budget, wallet]]).fetchall())  # fmt: skip
                (tx,) = conn.execute(
                    "INSERT INTO incentives_ledgertransaction (organization_id, kind, key, note, created_at)"
                    " VALUES (%s, 'award', %s, 'raw', now()) RETURNING id",
                    [w.org.pk, f"raw:{i}"],
                ).fetchone()
                conn.execute(
                    "INSERT INTO incentives_ledgerentry (organization_id, transaction_id, account_id, amount, balance_after, created_at)"
                    " VALUES (%s, %s, %s, -5, %s, now()), (%s, %s, %s, 5, %s, now())",
                    [w.org.pk, tx, budget, rows[budget] - 5, w.org.pk, tx, wallet, rows[wallet] + 5],
                )
                # The wallet's lot (what redemptions spend first-in first-out, and what expiry
                # reads): without it the raw award would leave the ledger failing ledger_check.
                conn.execute(
                    "INSERT INTO incentives_pointslot (organization_id, wallet_id, transaction_id, amount, remaining, created_at)"
                    " VALUES (%s, %s, %s, 5, 5, now())",
                    [w.org.pk, wallet, tx],
                )
                conn.execute("UPDATE incentives_account SET balance = balance - 5 WHERE id = %s", [budget])
                conn.execute("UPDATE incentives_account SET balance = balance + 5 WHERE id = %s", [wallet])
        elapsed = time.perf_counter() - t0
    return {"n": n, "rate": n / elapsed, "elapsed": elapsed}


# --- (c) event → points visible -------------------------------------------------------------


def bench_latency(owner, w: World, n: int, timeout: float = 30) -> dict:
    from django.db import transaction

    from cem.events import emit
    from cem.tenancy import tenant_context
    from incentives import ledger

    emp = w.employees[-1]
    with tenant_context(w.org):
        wallet = ledger.wallet_for(org=w.org, employee=emp).pk
    out = []
    for i in range(n):
        (before,) = owner.execute("SELECT balance FROM incentives_account WHERE id = %s", [wallet]).fetchone()
        owner.commit()
        with tenant_context(w.org), transaction.atomic():
            emit(organization=w.org, event_type="LessonCompleted",
                 payload={"employee_id": emp.pk, "completion_id": f"lat-{i}-{uuid.uuid4().hex[:6]}",
                          "location_id": emp.current_location_id, "lesson_id": None})  # fmt: skip
        t0 = time.perf_counter()
        while True:
            (bal,) = owner.execute(
                "SELECT balance FROM incentives_account WHERE id = %s", [wallet]
            ).fetchone()
            owner.commit()
            if bal > before:
                break
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"points not visible after {timeout:.0f} s")
            time.sleep(0.005)
        out.append(time.perf_counter() - t0)
    return {"n": n, "p50": pct(out, 0.5), "p95": pct(out, 0.95), "max": max(out)}


def main() -> int:
    args = parse_args()
    bench_url, admin_url = prepare_environment(args.db_name)
    redis_db = free_redis_db()
    broker = f"redis://{REDIS_HOST}/{redis_db}"
    os.environ["CELERY_BROKER_URL"] = broker
    os.environ["REDIS_URL"] = broker  # the worker's cache too: it clears the outbox doorbell
    recreate_database(admin_url, args.db_name)
    setup_django(shared_cache=broker)
    import psycopg
    import redis
    from django.core.management import call_command
    from django.db import connections

    load = os.getloadavg()
    report: dict = {"redis_db": redis_db, "load": load}
    worker = None
    log = Path(tempfile.gettempdir()) / "bench_incentives_worker.log"
    try:
        call_command("migrate", verbosity=0)
        w = create_world()
        owner = psycopg.connect(bench_url)
        owner.execute("SET app.system = 'on'")
        owner.commit()
        if not args.only_latency:
            report["redeem"] = bench_redeem(w, args.redeems, args.threads, args.wallets)
            print(f"  redeem: {report['redeem']}", flush=True)
            report["raw_redeem"] = bench_raw_redeem(bench_url, w, args.redeems, args.threads, args.wallets)
            print(f"  raw redeem: {report['raw_redeem']}", flush=True)
            report["burst"] = bench_burst(w, args.events)
            print(f"  burst: {report['burst']}", flush=True)
            report["raw_awards"] = bench_raw_awards(bench_url, w, args.events)
            print(f"  raw awards: {report['raw_awards']}", flush=True)
        worker = start_worker(bench_url, broker, log)
        time.sleep(3)
        # Warm-up: the worker has imported and connected. On a loaded machine its start-up alone
        # took more than 30 s, so the first event may wait longer than the timed ones.
        bench_latency(owner, w, 3, timeout=180)
        report["latency"] = bench_latency(owner, w, args.latency)
        print(f"  latency: {report['latency']}", flush=True)
        out = subprocess.run(
            [sys.executable, "manage.py", "ledger_check"], cwd=ROOT, capture_output=True, text=True,
            env={**os.environ, "DATABASE_URL": bench_url},
        )  # fmt: skip
        report["ledger_check"] = out.returncode
        if out.returncode:
            print(out.stdout + out.stderr, flush=True)
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
        redis.Redis.from_url(broker).flushdb()
        if not args.keep_db:
            recreate_database(admin_url, args.db_name, drop_only=True)
    print_report(report, args)
    return 0


def print_report(r: dict, args) -> None:
    print(
        f"\nload average at start {r['load'][0]:.2f} {r['load'][1]:.2f} {r['load'][2]:.2f}; ledger_check exit {r.get('ledger_check')}\n"
    )
    if "redeem" in r:
        print_throughput(r, args)
    c = r["latency"]
    print(
        f"\n(c) event committed → wallet balance shows the points, {c['n']} events one by one (celery worker --concurrency 2, Redis)\n"
    )
    table(
        ["p50 ms", "p95 ms", "max ms", "target"],
        [[f"{c['p50'] * 1000:.0f}", f"{c['p95'] * 1000:.0f}", f"{c['max'] * 1000:.0f}", "p95 < 2,000"]],
    )


def print_throughput(r: dict, args) -> None:
    a, ra = r["redeem"], r["raw_redeem"]
    print(
        f"(a) {a['n']} redemptions, {args.threads} threads against {args.wallets} wallets (each covers half its attempts)\n"
    )
    rows = [
        ["raw SQL hold (lock 2 accounts, 1 tx + 2 entries + lots + 2 UPDATEs)", f"{ra['rate']:,.0f}", f"{ra['ok']}/{ra['refused']}", f"{ra['p50'] * 1000:.1f}", f"{ra['p95'] * 1000:.1f}"],
        ["ours: redemptions.redeem (item lock, hold, code/settle, events, audit log)", f"{a['rate']:,.0f}", f"{a['ok']}/{a['refused']}", f"{a['p50'] * 1000:.1f}", f"{a['p95'] * 1000:.1f}"],
    ]  # fmt: skip
    table(["what", "attempts/s", "ok/refused", "p50 ms", "p95 ms"], rows)
    b, rb = r["burst"], r["raw_awards"]
    print(f"\n(b) a burst of {b['n']:,} LessonCompleted events, one transaction each, 1 thread\n")
    rows = [
        ["raw SQL: balanced award (lock, 1 tx + 2 entries + lot + 2 UPDATEs)", f"{rb['rate']:,.0f}", f"{rb['elapsed']:.1f}"],
        ["ours: rewards_after_lesson → rules → ledger.award (+ PointsAwarded)", f"{b['rate']:,.0f}", f"{b['elapsed']:.1f}"],
    ]  # fmt: skip
    table(["what", "events/s", "seconds"], rows)


if __name__ == "__main__":
    sys.exit(main())
