"""Alignment demo data for ``manage.py seed_demo``, and the rollup and scores the dashboards read.

``seed_alignment(org, ...)`` runs last for Northwind Retail, inside its ``tenant_context``, after
the feedback, audits, learning and incentives demo data it builds on:

* **Business metrics**: six complete months per store (sales, transactions, average purchase,
  retention rate, complaints, returns, sales target), as a monthly import from the finance
  system would deliver them. Traffic and season come from the seed; how customers feel about
  the store comes from its own NPS that month (read from the seeded answers), so retention,
  complaints and returns follow the experience and the driver analysis has something real to
  find — and the misaligned stores, whose audits look fine, lose customers.
* **CRM transactions** (~15,000 at ``--scale 1``) for the demo customers, consistent with the
  three customer segments' rules (``lifetime_value`` = the total spend in the CRM: New customers
  under $100, Regulars $100-$999, VIP $1,000 or more), so applying the segment rules moves
  nobody. Most purchases fall on days the customer answered a survey, at that store, and a
  purchase is larger the better that visit went: "customers whose purchase was under $100 rated
  us lower" holds in the data. About two thirds of purchases are under $100.
* **Journey maps** for the three segments, over the touchpoints the surveys cover, each step
  naming the customer expectation it must meet (one step, the loyalty sign-up, has no survey
  yet: the map shows it as a gap in the measurement).

**Misaligned stores.** ``MISALIGNED_STORES`` score high with the mystery shoppers and low with
customers on the same standards: feedback/demo.py and audits/demo.py give them these store
effects (``MISALIGNED_FEEDBACK_EFFECT``, ``MISALIGNED_AUDIT_EFFECT``), so the impression x
execution matrix puts their standards in the "blind spot" quadrant and the ranking shows them
near the top on audits and near the bottom on NPS. S001 is the store manager persona's store
and in the regional manager persona's region; S013 and S024 are in the other two regions. At a
small ``--scale`` only the stores that exist are used.

``finish_alignment(org, ...)`` runs at the end of each organization's seed: the rollup is built
from the raw tables in SQL (``alignment.rebuild.replace``), with every source's ``RollupSource``
so later events on seeded rows (a dispute's rescore, an erasure) apply exactly their
difference, and the seed's own events still pending in the outbox (the interactions') add
nothing; the alignment scores of the latest periods are computed
(``alignment.scores.recompute_all``) and the rest of the history is queued for the worker, so
the dashboards have data as soon as the seed commits. The tables the rebuild reads are
ANALYZEd first (``fresh_statistics``): without statistics on the rows the seed has just
written, the rebuild's joins ran for minutes.

Like the other demo modules this loads *history*: metrics and transactions go in with
``bulk_create`` and no per-row event (no BusinessMetricsImported / CustomerTransactionsImported),
one audit-log row summarising them; the journey maps go through ``alignment.journeys``.
Everything comes from the seed; dates are relative to the day of the run.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
import zoneinfo
from collections import Counter, defaultdict
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.db import connection, transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncMonth
from django.utils import timezone
from psycopg import sql

from alignment import rebuild, scores
from alignment.journeys import journey_create
from alignment.models import BusinessMetric, CustomerTransaction, PeriodKind, Rollup, RollupSource
from alignment.score_tasks import scores_recompute
from cem.models import Customer, CustomerExpectation, Location, Segment, Touchpoint
from cem.principals import Actor
from cem.services import audit_log_write
from feedback.models import Answer, QuestionType

# Store codes whose audits are strong and whose customers are not (module docstring).
MISALIGNED_STORES = ("S001", "S013", "S024")
# Latent store effects (the other stores' are drawn around 0 with sd ~0.2-0.35; the clearly good
# and bad stores are at about ±0.7 for feedback and ±1.1 for audits).
MISALIGNED_FEEDBACK_EFFECT = -0.9
MISALIGNED_AUDIT_EFFECT = 1.2

HISTORY_DAYS = 182
BUSINESS_MONTHS = 6
SOURCE = "demo"
Kind = BusinessMetric.Kind

# A store's month at the chain's average: transactions, average purchase ($), retention rate (%),
# complaints and returns per transaction.
BASE_TRANSACTIONS = 7800
BASE_BASKET = 46.5
BASE_RETENTION = 61.0
COMPLAINT_RATE = 0.0022
RETURN_RATE = 0.055
SEASON = {11: 1.15, 12: 1.45, 1: 0.85, 2: 0.9}

# Segment name → (purchases min, max, median amount $, total spend at least, total spend under):
# the bounds are the seeded segments' lifetime_value rules (seed_demo NW_SEGMENTS).
SEGMENT_SPEND = {
    "New customers": (1, 2, 38.0, None, Decimal(100)),
    "Regulars": (3, 10, 62.0, Decimal(100), Decimal(1000)),
    "VIP": (8, 24, 115.0, Decimal(1000), None),
}
OTHER_SPEND = (2, 6, 55.0, None, None)
# How much a visit's NPS answer moves the purchase made that day (log-scale per NPS point).
AMOUNT_PER_NPS_POINT = 0.12

# (segment, journey name, description, [(touchpoint code, expectation name, note)])
JOURNEYS = (
    (
        "New customers",
        "New customers: first visit",
        "A first-time shopper from the door to the first return: the visit that decides whether "
        "they come back.",
        (
            (
                "store-greeting",
                "A friendly, personal welcome",
                "Greeted within 10 seconds with an offer of help.",
            ),
            (
                "store-product-advice",
                "Staff who know the products",
                "Advice that fits the need: two suitable options, compared honestly.",
            ),
            ("store-checkout", "A fast, easy checkout", "Paid and out in under three minutes."),
            (
                "app-loyalty-signup",
                "Recognition as a loyal customer",
                "Offered the loyalty programme at the till or in the app (not surveyed yet).",
            ),
            ("store-returns-desk", "Hassle-free returns", "A return without an argument or a receipt hunt."),
        ),
    ),
    (
        "Regulars",
        "Regulars: order online, collect in store",
        "Regular customers who buy online and pick up in the store: the hand-over between web, "
        "phone and store is where promises are kept or broken.",
        (
            ("web-checkout", "A fast, easy checkout", "Checkout in a few clicks, payment first time."),
            ("phone-order-status", "Being kept informed", "One call answers where the order is."),
            (
                "store-click-collect",
                "Follow-through on promises",
                "The order is ready when the message says so.",
            ),
            ("store-greeting", "Acknowledged promptly", "Recognised and served without queueing twice."),
            ("store-returns-desk", "Hassle-free returns", "Returning an online order in store is easy."),
        ),
    ),
    (
        "VIP",
        "VIP: personal shopping",
        "Our best customers book time with a stylist, buy, have it delivered, and expect any problem "
        "to be owned and fixed.",
        (
            (
                "phone-delivery-booking",
                "Being kept informed",
                "The appointment and delivery are booked in one call.",
            ),
            ("store-greeting", "Recognition as a loyal customer", "Welcomed by name, the shortlist ready."),
            ("store-product-advice", "Honest advice", "Told what suits them, and what does not."),
            ("store-checkout", "A fast, easy checkout", "No waiting at the till."),
            (
                "phone-complaint-call",
                "Problems fixed first time",
                "Anything wrong is owned and fixed on the first call.",
            ),
        ),
    ),
)


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


def _money(value: float) -> Decimal:
    return Decimal(f"{value:.2f}")


class AlignmentSeeder:
    def __init__(self, org, *, seed: int, scale: float, actor: Actor | None = None, step=None):
        self.org = org
        self.scale = scale
        self.actor = actor or Actor.system()
        # Its own stream, so adding this module left the other demo data unchanged.
        self.rng = random.Random(f"alignment:{seed}:{org.slug}")
        self.step = step or (lambda label, started: None)
        self.tz = zoneinfo.ZoneInfo(org.time_zone or "UTC")
        self.today = timezone.now().astimezone(self.tz).date()
        self.counts: dict[str, int] = {}

    # --- business metrics ------------------------------------------------------------------------

    def months(self) -> list[dt.date]:
        """The first days of the last BUSINESS_MONTHS complete months, oldest first."""
        this_month = self.today.replace(day=1)
        return [this_month - relativedelta(months=k) for k in range(BUSINESS_MONTHS, 0, -1)]

    def monthly_nps(self, since: dt.date) -> dict[tuple[int, dt.date], tuple[int, float]]:
        """(location, month) → (answers, NPS) from the seeded NPS answers: one grouped query."""
        start = dt.datetime.combine(since, dt.time.min, tzinfo=self.tz)
        rows = (
            Answer.objects.filter(
                question_type=QuestionType.NPS,
                number__isnull=False,
                location_id__isnull=False,
                submitted_at__gte=start,
            )
            .annotate(month=TruncMonth("submitted_at", tzinfo=self.tz))
            .order_by()
            .values("location_id", "month")
            .annotate(
                n=Count("id"),
                promoters=Count("id", filter=Q(number__gte=9)),
                detractors=Count("id", filter=Q(number__lte=6)),
            )
        )
        out = {}
        for r in rows:
            month = r["month"].astimezone(self.tz).date()
            out[r["location_id"], month] = (r["n"], 100.0 * (r["promoters"] - r["detractors"]) / r["n"])
        return out

    def business_metrics(self, stores: list[Location]) -> int:
        rng = self.rng
        months = self.months()
        nps = self.monthly_nps(months[0])
        # A store's NPS for a month resting on few answers (a small --scale, the first month the
        # history only just reaches) is its six-month NPS instead.
        overall: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
        for (loc, _month), (n, value) in nps.items():
            overall[loc][0] += n
            overall[loc][1] += n * value
        store_nps = {loc: total / n for loc, (n, total) in overall.items() if n}
        chain_nps = sum(total for n, total in overall.values()) / max(1, sum(n for n, _ in overall.values()))
        traffic = {s.pk: rng.lognormvariate(0, 0.3) for s in stores}
        rows = []
        for k, month in enumerate(months):
            season = SEASON.get(month.month, 1.0) * (1 + 0.01 * k)  # a slowly growing chain
            for store in stores:
                n, month_nps = nps.get((store.pk, month), (0, None))
                if n < 30:
                    month_nps = store_nps.get(store.pk, chain_nps)
                lift = month_nps - chain_nps  # NPS points above (below) the chain this month
                plan = BASE_TRANSACTIONS * traffic[store.pk] * season
                transactions = round(plan * (1 + 0.002 * lift) * rng.gauss(1, 0.03))
                basket = (
                    BASE_BASKET * (1 + 0.003 * lift) * rng.gauss(1, 0.02) * (1.08 if month.month == 12 else 1)
                )
                retention = min(85.0, max(35.0, BASE_RETENTION + 0.25 * lift + rng.gauss(0, 1.0)))
                complaints = round(
                    transactions * COMPLAINT_RATE * math.exp(-0.015 * lift) * rng.gauss(1, 0.1)
                )
                returns = round(transactions * RETURN_RATE * math.exp(-0.006 * lift) * rng.gauss(1, 0.05))
                figures = {
                    Kind.TRANSACTIONS: transactions,
                    Kind.AVERAGE_PURCHASE: _money(basket),
                    Kind.SALES: _money(transactions * basket),
                    Kind.SALES_TARGET: Decimal(round(plan * BASE_BASKET * 1.03, -2)),
                    Kind.RETENTION_RATE: _money(retention),
                    Kind.COMPLAINTS: max(0, complaints),
                    Kind.RETURNS: max(0, returns),
                }
                rows += [
                    BusinessMetric(
                        organization_id=self.org.pk,
                        location=store,
                        period=PeriodKind.MONTH,
                        period_start=month,
                        kind=kind,
                        value=Decimal(value),
                        source=SOURCE,
                    )
                    for kind, value in figures.items()
                ]
        BusinessMetric.objects.bulk_create(rows, batch_size=2000)
        return len(rows)

    # --- CRM transactions ------------------------------------------------------------------------

    def visits(self) -> dict[int, list[tuple[dt.date, int | None, int]]]:
        """customer → [(local day, location or None online, NPS)] of their answered surveys."""
        out = defaultdict(list)
        rows = (
            Answer.objects.filter(
                question_type=QuestionType.NPS, number__isnull=False, response__customer_id__isnull=False
            )
            .order_by("response__customer_id", "submitted_at", "response_id")
            .values_list("response__customer_id", "submitted_at", "location_id", "number")
        )
        for customer, at, location, number in rows.iterator(chunk_size=5000):
            out[customer].append((at.astimezone(self.tz).date(), location, int(number)))
        return out

    def transactions(self, stores: list[Location]) -> int:
        rng = self.rng
        visits = self.visits()
        store_ids = [s.pk for s in stores]
        days = [self.today - dt.timedelta(days=d) for d in range(HISTORY_DAYS, 0, -1)]
        planned = []  # (day, customer id, location id, amount)
        for customer_id, segment in Customer.objects.order_by("pk").values_list("pk", "segment__name"):
            low, high, median, at_least, under = SEGMENT_SPEND.get(segment, OTHER_SPEND)
            count = rng.randint(low, high)
            seen = list(visits.get(customer_id, ()))
            rng.shuffle(seen)
            usual = Counter(loc for _, loc, _ in seen if loc).most_common(1)
            home = usual[0][0] if usual else (rng.choice(store_ids) if store_ids else None)
            purchases = []
            for j in range(count):
                if j < len(seen):
                    day, location, nps = seen[j]
                    lift = AMOUNT_PER_NPS_POINT * (nps - 7.5)
                else:  # a purchase with no survey: another day, usually at their store
                    day, location, lift = rng.choice(days), home if rng.random() < 0.85 else None, 0.0
                purchases.append([day, location, median * math.exp(lift) * rng.lognormvariate(0, 0.45)])
            total = sum(p[2] for p in purchases)
            # Keep the total inside the segment's lifetime_value rule, so its rule holds.
            if at_least is not None and total < float(at_least):
                factor = rng.uniform(1.05, 1.8) * float(at_least) / total
            elif under is not None and total >= float(under) * 0.97:
                factor = rng.uniform(0.55, 0.95) * float(under) / total
            else:
                factor = 1.0
            for day, location, amount in purchases:
                planned.append((day, customer_id, location, max(Decimal("1.00"), _money(amount * factor))))
        planned.sort(key=lambda p: (p[0], p[1]))
        rows = [
            CustomerTransaction(
                organization_id=self.org.pk,
                external_id=f"{self.org.slug[:2].upper()}-T{n:07d}",
                customer_id=customer_id,
                location_id=location,
                occurred_on=day,
                amount=amount,
            )
            for n, (day, customer_id, location, amount) in enumerate(planned, start=1)
        ]
        CustomerTransaction.objects.bulk_create(rows, batch_size=5000)
        return len(rows)

    # --- journey maps ----------------------------------------------------------------------------

    def journeys(self) -> int:
        """Through the journeys service (three maps: the validations and audit-log rows are cheap)."""
        segments = {s.name: s for s in Segment.objects.all()}
        touchpoints = {t.code: t for t in Touchpoint.objects.all()}
        expectations = {e.name: e for e in CustomerExpectation.objects.all()}
        made = 0
        for segment, name, description, steps in JOURNEYS:
            if segment not in segments:
                continue
            journey_create(
                organization=self.org,
                actor=self.actor,
                data={
                    "name": name,
                    "segment": segments[segment],
                    "description": description,
                    "steps": [
                        {"touchpoint": touchpoints[code], "expectation": expectations.get(exp), "note": note}
                        for code, exp, note in steps
                        if code in touchpoints
                    ],
                },
            )
            made += 1
        return made

    # --- run -------------------------------------------------------------------------------------

    def run(self) -> dict:
        t0 = time.monotonic()
        stores = list(Location.objects.filter(kind=Location.Kind.STORE).order_by("code"))
        if not stores:
            return {}  # not the retail organization
        self.counts["business metrics"] = self.business_metrics(stores)
        self.step(f"{self.org.slug}: {self.counts['business metrics']} business metrics", t0)
        self.counts["crm transactions"] = self.transactions(stores)
        self.step(f"{self.org.slug}: {self.counts['crm transactions']} CRM transactions", t0)
        self.counts["journey maps"] = self.journeys()
        self.counts["misaligned stores"] = sorted(misaligned_store_codes(s.code for s in stores))
        audit_log_write(
            organization=self.org,
            actor=self.actor,
            action="seed_demo.alignment",
            object_type="cem.Organization",
            object_id=self.org.pk,
            changes={"scale": self.scale, **self.counts},
        )
        self.step(f"{self.org.slug}: {self.counts['journey maps']} journey maps", t0)
        return self.counts


def seed_alignment(org, *, seed: int, scale: float, actor: Actor | None = None, step=None) -> dict:
    """Load the organization's alignment demo data (inside its tenant_context); returns counts."""
    return AlignmentSeeder(org, seed=seed, scale=scale, actor=actor, step=step).run()


def misaligned_store_codes(codes) -> set[str]:
    """Which of these store codes the demo makes misaligned."""
    return set(MISALIGNED_STORES) & set(codes)


# While it runs, the seed computes the alignment scores of the periods holding yesterday (the
# last day of history) of each kind — the day, its week, month and quarter: the latest period
# with data, which the dashboards open on. The whole history follows in the background once the
# seed has committed (alignment.scores_recompute), as recomputing every period of six months
# would add minutes to the seed.
SCORES_SINCE_DAYS = 1


def _source_tables() -> list[str]:
    from audits.models import Audit, StandardScore
    from cem.models import EmployeeAssignment, Interaction, InteractionEmployee
    from feedback.models import Question, Response
    from incentives.models import Account, LedgerEntry, LedgerTransaction, RewardRule
    from learning.models import Completion, LessonStandard

    models = (
        Response,
        Answer,
        Question,
        Audit,
        StandardScore,
        Interaction,
        InteractionEmployee,
        Completion,
        LessonStandard,
        LedgerTransaction,
        LedgerEntry,
        Account,
        RewardRule,
        EmployeeAssignment,
        Customer,
        CustomerTransaction,
        BusinessMetric,
    )
    return [m._meta.db_table for m in models]


def fresh_statistics(tables) -> None:
    """ANALYZE these tables inside the seed's transaction.

    Everything the seed wrote is uncommitted, so autovacuum has never seen it: the planner
    believes the tables are empty (or hold whatever an earlier, reset demo left) and joins
    hundreds of thousands of rows with nested loops — the rollup rebuild then takes minutes
    instead of seconds. ANALYZE counts the transaction's own rows. It needs the tables' owner:
    like the demo reset's purge (cem.db.purge), the block runs as the session's login role and
    puts the application role back; both are LOCAL to the seed's transaction.
    """
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SELECT current_user, session_user, current_setting('default_statistics_target')")
        previous, owner, target = cur.fetchone()
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(owner)))
        # Row counts and rough distributions are what the plans need; a small sample is quick.
        # Autovacuum analyzes again with the full target once the seed has committed.
        cur.execute("SET LOCAL default_statistics_target = 10")
        for table in tables:
            cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
        cur.execute("SELECT set_config('default_statistics_target', %s, true)", [target])
        cur.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(previous)))


def finish_alignment(org, *, step=None) -> dict:
    """Build the organization's rollup from its raw data and compute its latest alignment scores."""
    step = step or (lambda label, started: None)
    t0 = time.monotonic()
    fresh_statistics(_source_tables())
    step(f"{org.slug}: statistics of the loaded tables", t0)
    timings = rebuild.replace(org)
    spent = ", ".join(f"{k} {timings[k]:.1f} s" for k in ("scratch", "swap", "sources"))
    out = {"rollup rows": int(timings["rollup_rows"])}
    step(f"{org.slug}: rollup of {out['rollup rows']} rows in SQL ({spent})", t0)
    fresh_statistics([Rollup._meta.db_table, RollupSource._meta.db_table])
    tz = zoneinfo.ZoneInfo(org.time_zone or "UTC")
    since = timezone.now().astimezone(tz).date() - dt.timedelta(days=SCORES_SINCE_DAYS)
    out["alignment scores"] = scores.recompute_all(org, since=since)
    step(f"{org.slug}: {out['alignment scores']} alignment scores (latest periods)", t0)
    org_id = org.pk
    transaction.on_commit(lambda: scores_recompute.delay(org_id))
    return out
