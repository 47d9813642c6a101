"""Interaction ingest throughput: raw COPY vs. the ingest service vs. the HTTP bulk endpoint.

    .venv/bin/python bench/ingest.py [--rows 10000 100000] [--repeat 3] [--keep-db] [--profile]

Runs against a scratch database (``cem_bench`` next to the one DATABASE_URL names), which is
dropped and re-created and migrated at the start and dropped at the end, so dev data is never
touched. See bench/README.md for what each column measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import time
from decimal import Decimal
from urllib.parse import urlsplit

from scratch import prepare_environment, recreate_database, setup_django, table

BATCH = 10_000  # the API's per-call cap (settings.BULK_INGEST_MAX_ROWS)
EVENT_CHUNK = 1_000  # cem.ingest emits one outbox event per this many interactions
N_LOCATIONS = 30
N_EMPLOYEES = 300
N_CUSTOMERS = 50_000
CHANNELS = [
    ("store", "Store", "in_store"),
    ("phone", "Phone", "phone"),
    ("chat", "Chat", "chat"),
    ("web", "Web", "web"),
]
TOUCHPOINTS_PER_CHANNEL = 3
CATEGORIES = ["stabilizing", "critical", "planned"]
# Far enough in the past that no generated row is "in the future", whatever the clock says.
ANCHOR = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
# Customers are created once, before any timing: the steady state of a feed whose customers are
# mostly known. Interactions, their employee links and the outbox start empty for every run.
TRUNCATE_SQL = "TRUNCATE cem_interactionemployee, cem_interaction, cem_outboxevent CASCADE"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[10_000, 100_000],
        help="row counts to measure; above 10,000 the service/HTTP paths make 10,000-row calls",
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is reported")
    p.add_argument("--db-name", default="cem_bench", help="scratch database (dropped and re-created)")
    p.add_argument("--keep-db", action="store_true", help="leave the scratch database in place at the end")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one 10k-row service call and print the top functions",
    )
    return p.parse_args()


# --- environment and scratch database ---------------------------------------------------------


# --- scratch organization ---------------------------------------------------------------------


class Refs:
    """What the generated rows point at, by code and by id."""

    def __init__(self):
        self.org = None
        self.location_ids: dict[str, int] = {}
        self.channel_ids: dict[str, int] = {}
        # (code, channel code, id, channel id, category)
        self.touchpoints: list[tuple[str, str, int, int, str]] = []
        self.employee_ids: dict[str, int] = {}
        self.api_key = ""


def create_org() -> Refs:
    from cem import services
    from cem.models import Channel, Employee, Location, Organization, Region, Touchpoint
    from cem.principals import Actor
    from cem.tenancy import tenant_context, unscoped

    refs = Refs()
    with unscoped():
        org = Organization.objects.create(name="Bench Org", slug="bench-org", time_zone="UTC")
    refs.org = org
    with tenant_context(org):
        region = Region.objects.create(organization=org, name="Bench region", code="bench")
        locations = Location.objects.bulk_create(
            Location(organization=org, region=region, name=f"Store {i:02d}", code=f"loc-{i:02d}")
            for i in range(1, N_LOCATIONS + 1)
        )
        refs.location_ids = {loc.code: loc.pk for loc in locations}
        channels = Channel.objects.bulk_create(
            Channel(organization=org, code=code, name=name, kind=kind) for code, name, kind in CHANNELS
        )
        refs.channel_ids = {c.code: c.pk for c in channels}
        touchpoints = Touchpoint.objects.bulk_create(
            Touchpoint(
                organization=org,
                channel=c,
                code=f"{c.code}-tp{j}",
                name=f"{c.name} touchpoint {j}",
                category=CATEGORIES[j % len(CATEGORIES)],
                journey_order=j,
            )
            for c in channels
            for j in range(TOUCHPOINTS_PER_CHANNEL)
        )
        refs.touchpoints = [(t.code, t.channel.code, t.pk, t.channel_id, t.category) for t in touchpoints]
        employees = Employee.objects.bulk_create(
            Employee(
                organization=org,
                name=f"Employee {i:03d}",
                external_id=f"E{i:04d}",
                current_location=locations[i % N_LOCATIONS],
            )
            for i in range(1, N_EMPLOYEES + 1)
        )
        refs.employee_ids = {e.external_id: e.pk for e in employees}
        _key, refs.api_key = services.api_key_create(
            organization=org,
            actor=Actor.system(),
            name="bench",
            scopes=["*"],
            rate_limit_per_minute=1_000_000,
        )
    return refs


# --- data -------------------------------------------------------------------------------------


def generate_rows(refs: Refs, n: int, tag: str, seed: int = 42) -> list[dict]:
    """N rows in the API's JSON shape; the same seed gives the same rows (external ids carry the tag)."""
    rng = random.Random(seed)
    loc_codes = sorted(refs.location_ids)
    emp_codes = sorted(refs.employee_ids)
    rows = []
    for i in range(n):
        tp_code, ch_code, *_ = refs.touchpoints[rng.randrange(len(refs.touchpoints))]
        occurred = ANCHOR - dt.timedelta(seconds=rng.randrange(365 * 86_400))
        rows.append(
            {
                "external_id": f"{tag}-{i:07d}",
                "occurred_at": occurred.isoformat(),
                "location": loc_codes[rng.randrange(len(loc_codes))],
                "channel": ch_code,
                "touchpoint": tp_code,
                "customer": f"C{rng.randrange(N_CUSTOMERS):06d}",
                "employees": rng.sample(emp_codes, rng.randint(1, 2)),
                "amount": round(rng.uniform(1, 500), 2),
                "attributes": {"basket": rng.randint(1, 12), "source": "pos", "promo": rng.random() < 0.2},
            }
        )
    return rows


def copy_tuples(refs: Refs, org_id: int, rows: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """The rows resolved to what we store: interaction tuples (with ids) and their employee links."""
    tp = {code: (pk, category) for code, _ch, pk, _chid, category in refs.touchpoints}
    now = dt.datetime.now(dt.UTC)
    out, links = [], []
    for n, r in enumerate(rows, start=1):
        tp_id, category = tp[r["touchpoint"]]
        links.extend((org_id, n, refs.employee_ids[e]) for e in r["employees"])
        out.append(
            (
                n,
                org_id,
                r["external_id"],
                int(r["customer"][1:]) + 1,
                refs.location_ids[r["location"]],
                refs.channel_ids[r["channel"]],
                tp_id,
                category,
                dt.datetime.fromisoformat(r["occurred_at"]),
                Decimal(str(r["amount"])),
                json.dumps(r["attributes"], separators=(",", ":")),
                now,
            )
        )
    return out, links


# --- the three measurements -------------------------------------------------------------------

COPY_COLUMNS = (
    "id, organization_id, external_id, customer_id, location_id, channel_id, touchpoint_id, category,"
    " occurred_at, amount, attributes, created_at"
)


def truncate(owner) -> None:
    owner.execute(TRUNCATE_SQL)
    owner.commit()


def run_copy(owner, refs: Refs, org_id: int, rows: list[dict]) -> float:
    """The raw figure: the least any loader must do with the same JSON rows. Turn them into typed
    tuples (codes to ids by dict look-up, timestamps, decimals, jsonb text; no validation, no
    idempotency, no tenancy) and COPY interactions and their employee links into scratch copies
    of the two tables (same columns and indexes; no foreign keys, no RLS), one COPY each."""
    owner.execute("TRUNCATE scratch_interaction, scratch_interactionemployee")
    owner.commit()
    start = time.perf_counter()
    tuples, links = copy_tuples(refs, org_id, rows)
    with owner.cursor() as cur:
        with cur.copy(f"COPY scratch_interaction ({COPY_COLUMNS}) FROM STDIN") as copy:
            for t in tuples:
                copy.write_row(t)
        with cur.copy(
            "COPY scratch_interactionemployee (organization_id, interaction_id, employee_id) FROM STDIN"
        ) as copy:
            for t in links:
                copy.write_row(t)
    owner.commit()
    elapsed = time.perf_counter() - start
    (count,) = owner.execute("SELECT count(*) FROM scratch_interaction").fetchone()
    assert count == len(tuples), (count, len(tuples))
    return elapsed


def run_copy_real(owner, org_id: int, tuples: list[tuple], links: list[tuple]) -> float:
    """Diagnostic: the same COPY into cem_interaction itself, as the owner (RLS bypassed).

    Same indexes as the scratch table, plus the five foreign keys, which Django declares
    DEFERRABLE INITIALLY DEFERRED, so their checks run at COMMIT (inside the timing).
    """
    truncate(owner)
    start = time.perf_counter()
    with owner.cursor() as cur:
        with cur.copy(f"COPY cem_interaction ({COPY_COLUMNS}) FROM STDIN") as copy:
            for t in tuples:
                copy.write_row(t)
        with cur.copy(
            "COPY cem_interactionemployee (organization_id, interaction_id, employee_id) FROM STDIN"
        ) as copy:
            for t in links:
                copy.write_row(t)
    owner.commit()
    elapsed = time.perf_counter() - start
    assert count_interactions(owner, org_id) == len(tuples)
    return elapsed


def kicks_queued() -> int:
    """Outbox kicks that reached the in-memory broker (proof they went somewhere, and fast)."""
    from kombu.transport import memory

    return sum(q.qsize() for q in memory.Channel.queues.values())


def run_service(org, batches: list[list[dict]]) -> float:
    from cem.ingest import interactions_ingest
    from cem.principals import Actor
    from cem.tenancy import tenant_context

    elapsed = 0.0
    with tenant_context(org):
        for batch in batches:
            start = time.perf_counter()
            results = interactions_ingest(organization=org, actor=Actor.system(), rows=batch)
            elapsed += time.perf_counter() - start
            bad = [r for r in results if r.status != "created"]
            assert not bad, bad[:3]
    return elapsed


def run_http(client, api_key: str, bodies: list[bytes], sizes: list[int]) -> float:
    elapsed = 0.0
    for body, size in zip(bodies, sizes, strict=True):
        start = time.perf_counter()
        response = client.post(
            "/api/v1/interactions/bulk/",
            data=body,
            content_type="application/json",
            headers={"Authorization": f"Bearer {api_key}"},
        )
        elapsed += time.perf_counter() - start
        assert response.status_code == 200, (response.status_code, response.content[:500])
        payload = json.loads(response.content)
        assert payload["created"] == size and payload["error"] == 0, {
            k: payload[k] for k in ("created", "duplicate", "error")
        }
    return elapsed


def count_interactions(owner, org_id: int) -> int:
    sql = "SELECT count(*) FROM cem_interaction WHERE organization_id = %s"
    return owner.execute(sql, [org_id]).fetchone()[0]


def profile_service(refs: Refs, owner) -> None:
    import cProfile
    import pstats

    from cem.ingest import interactions_ingest
    from cem.principals import Actor
    from cem.tenancy import tenant_context

    truncate(owner)
    rows = generate_rows(refs, BATCH, "profile")
    profiler = cProfile.Profile()
    with tenant_context(refs.org):
        profiler.enable()
        interactions_ingest(organization=refs.org, actor=Actor.system(), rows=rows)
        profiler.disable()
    print("\ncProfile of one 10k-row interactions_ingest call (top 25 by cumulative time):")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    print("(top 15 by own time):")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    bench_url, admin_url = prepare_environment(args.db_name)
    where = urlsplit(bench_url)
    print(f"scratch database {args.db_name!r} on {where.hostname}:{where.port or 5432}")
    recreate_database(admin_url, args.db_name)

    setup_django()
    import psycopg
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client

    try:
        t0 = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"migrated in {time.perf_counter() - t0:.1f}s")
        refs = create_org()
        org_id = refs.org.pk
        owner = psycopg.connect(bench_url)
        for name in ("interaction", "interactionemployee"):
            owner.execute(
                f"CREATE TABLE scratch_{name} (LIKE cem_{name} INCLUDING DEFAULTS"
                " INCLUDING IDENTITY INCLUDING CONSTRAINTS INCLUDING INDEXES)"
            )
        owner.execute(  # the customer pool, once (see TRUNCATE_SQL)
            "INSERT INTO cem_customer (id, organization_id, external_id, email, phone, locale, consent_email,"
            " consent_sms, created_at) SELECT i + 1, %s, 'C' || lpad(i::text, 6, '0'), '', '', '',"
            " false, false, now() FROM generate_series(0, %s - 1) AS i",
            [org_id, N_CUSTOMERS],
        )
        owner.execute("SELECT setval(pg_get_serial_sequence('cem_customer', 'id'), %s)", [N_CUSTOMERS])
        owner.commit()
        client = Client()

        results = []
        expected_kicks = 0
        for n in args.rows:
            best = dict.fromkeys(("copy", "copy_fk", "service", "http"), float("inf"))
            for rep in range(args.repeat):
                # Fresh external ids per run and emptied tables, so ON CONFLICT never short-circuits
                # and every run starts from the same state.
                rows = generate_rows(refs, n, f"r{n}-{rep}")
                batches = [rows[i : i + BATCH] for i in range(0, n, BATCH)]
                tuples, links = copy_tuples(refs, org_id, rows)
                bodies = [json.dumps(b).encode() for b in batches]
                sizes = [len(b) for b in batches]
                expected_kicks += 2 * sum(-(-size // EVENT_CHUNK) for size in sizes)  # service + HTTP

                times = {
                    "copy": run_copy(owner, refs, org_id, rows),
                    "copy_fk": run_copy_real(owner, org_id, tuples, links),
                }
                truncate(owner)
                times["service"] = run_service(refs.org, batches)
                assert count_interactions(owner, org_id) == n
                truncate(owner)
                times["http"] = run_http(client, refs.api_key, bodies, sizes)
                assert count_interactions(owner, org_id) == n

                for name, t in times.items():
                    best[name] = min(best[name], t)
                print(
                    f"  rows={n:>7} run {rep + 1}: "
                    + "  ".join(f"{name} {n / t:>8,.0f}/s" for name, t in times.items()),
                    flush=True,
                )
            results.append((n, best))
        print(f"outbox kicks queued on the in-memory broker: {kicks_queued()} (expected {expected_kicks})")

        if args.profile:
            profile_service(refs, owner)
        owner.close()
    finally:
        connections.close_all()
        if not args.keep_db:
            recreate_database(admin_url, args.db_name, drop_only=True)

    print(
        f"\nbest of {args.repeat}; interactions per second; service and HTTP calls carry "
        f"{BATCH:,} rows each\n"
    )
    table(
        ["rows", "raw COPY rows/s", "ours-service rows/s", "% of COPY", "ours-http rows/s", "% of COPY"],
        [
            [
                f"{n:,}",
                _rate(n, b["copy"]),
                _rate(n, b["service"]),
                _pct(b["copy"], b["service"]),
                _rate(n, b["http"]),
                _pct(b["copy"], b["http"]),
            ]
            for n, b in results
        ],
    )
    print("\ndiagnostic: pre-built tuples COPYed into cem_interaction + cem_interactionemployee themselves\n")
    table(
        ["rows", "COPY → cem_interaction rows/s", "% of raw COPY", "ours-service % of it"],
        [
            [
                f"{n:,}",
                _rate(n, b["copy_fk"]),
                _pct(b["copy"], b["copy_fk"]),
                _pct(b["copy_fk"], b["service"]),
            ]
            for n, b in results
        ],
    )
    return 0


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}"


def _pct(reference: float, seconds: float) -> str:
    return f"{100 * reference / seconds:.0f} %"


if __name__ == "__main__":
    sys.exit(main())
