"""Demo points for ``seed_demo`` (Northwind): rules, funded budgets, a catalogue with gift-card
code pools, six months of awards derived from the seeded feedback, audits, lessons, quizzes and
cases, and redemptions in every state — then the bonus periods (incentives/bonus_demo.py).

The awards are the ones the rules' handlers would have made had the history arrived as events:
the same sources (a promoter naming an employee, a mystery-shopping visit at or above 90 for
every employee of the store, a lesson completed, a quiz passed at the first try, a case resolved
within its SLA), the same event ids (``rewards.source_uuid``) and ledger keys, so a redelivered
event later is a no-op. About 50,000 award transactions at ``--scale 1``.

Written set-based like the rest of the seed (a ``ledger.post`` per award would take minutes):
the whole history is replayed in Python in time order — balances, ``balance_after``, FIFO lots,
holds, settlements and refunds — and then COPY-ed into the ledger tables with ids drawn from their
sequences in that order, so ``manage.py ledger_check`` (stored balances = sums of entries =
latest ``balance_after``; lots = spendable points) holds when the seed commits. The database's
own guards still run: every transaction balances at commit, no balance is negative.
"""

from __future__ import annotations

import datetime as dt
import heapq
import random
import time
import zoneinfo
from collections import defaultdict

from dateutil.relativedelta import relativedelta
from django.db import connection
from django.utils import timezone

from cem.models import Employee, Membership, Role
from cem.principals import Actor
from cem.services import audit_log_write
from incentives import catalog, ledger, rewards
from incentives.models import (
    Account,
    CatalogItem,
    GiftCardCode,
    IncentiveSettings,
    LedgerTransaction,
    Redemption,
    RewardRule,
)

T, R, K = RewardRule.Trigger, RewardRule.Recipients, LedgerTransaction.Kind
AK = Account.Kind
HISTORY_DAYS = 182

# (name, trigger, recipients, points, min score, budget, cap points per person per month)
RULES = (
    ("Promoter names you", T.PROMOTER_RESPONSE, R.NAMED_EMPLOYEE, 10, None, "Customer feedback awards", 200),
    ("Excellent mystery shop", T.AUDIT_SCORE, R.LOCATION_EMPLOYEES, 100, 90, "Mystery shopping awards", None),
    ("Lesson completed", T.LESSON_COMPLETED, R.LEARNER, 5, None, "Learning awards", None),
    ("Quiz passed first try", T.QUIZ_PASSED_FIRST_TRY, R.LEARNER, 10, None, "Learning awards", None),
    (
        "Case resolved within SLA",
        T.CASE_RESOLVED_IN_SLA,
        R.LOCATION_MANAGERS,
        20,
        None,
        "Customer feedback awards",
        None,
    ),
)
GC, MERCH, OFF, CHARITY = (
    CatalogItem.Kind.GIFT_CARD,
    CatalogItem.Kind.MERCHANDISE,
    CatalogItem.Kind.TIME_OFF,
    CatalogItem.Kind.CHARITY,
)
# (name, kind, cost, stock, per-person limit, auto-approve, codes left in the pool today)
CATALOG = (
    ("Coffee shop gift card $5", GC, 250, None, None, True, 400),
    ("Coffee shop gift card $10", GC, 500, None, None, True, 300),
    ("Cinema e-voucher", GC, 600, None, 4, True, 0),  # the pool ran dry a month ago: failed redemptions
    ("Bookshop gift card $15", GC, 750, None, None, True, 150),
    ("Grocery gift card $25", GC, 1200, None, None, True, 150),
    ("Online marketplace gift card $25", GC, 1250, None, None, True, 200),
    ("Restaurant gift card $50", GC, 2400, None, None, True, 60),
    ("Streaming subscription, 3 months", GC, 1500, None, 2, True, 80),
    ("Fuel card $30", GC, 1500, None, None, False, 60),
    ("Northwind water bottle", MERCH, 300, 400, 2, False, 0),
    ("Northwind hoodie", MERCH, 900, 150, 1, False, 0),
    ("Wireless earbuds", MERCH, 2500, 40, 1, False, 0),
    ("Backpack", MERCH, 1400, 60, 1, False, 0),
    ("Umbrella", MERCH, 400, 200, 2, False, 0),
    ("Extra hour off", OFF, 800, None, 6, False, 0),
    ("Half day off", OFF, 2000, None, 3, False, 0),
    ("A day off on your birthday", OFF, 3000, None, 1, False, 0),
    ("Donate $10 to the food bank", CHARITY, 500, None, None, True, 0),
    ("Plant 5 trees", CHARITY, 400, None, None, True, 0),
    ("Donate $25 to children's hospital", CHARITY, 1200, None, None, True, 0),
)
DECLINE_REASONS = (
    "Out of your size in the warehouse: choose another item.",
    "The week you asked for is already fully booked; please pick other dates.",
    "Requested twice by mistake; the other request was approved.",
)


def _insert(cur, table: str, columns: dict[str, str], rows: list[tuple]) -> None:
    """One INSERT … SELECT FROM unnest(arrays) per table (COPY is refused under row-level security)."""
    if not rows:
        return
    arrays = [list(col) for col in zip(*rows, strict=True)]
    casts = ", ".join(f"%s::{kind}[]" for kind in columns.values())
    cur.execute(f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({casts})", arrays)  # noqa: S608  # nosec B608


def _ids(cur, table: str, n: int) -> list[int]:
    if n == 0:
        return []
    cur.execute(
        "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s) ORDER BY 1", [table, n]
    )
    return [r[0] for r in cur.fetchall()]


class Replay:
    """Every movement in time order, with balances and lots, before anything is written."""

    def __init__(self, org_id: int, expire_months: int | None):
        self.org_id, self.expire = org_id, expire_months
        self.balance: dict[int, int] = defaultdict(int)
        self.lots: dict[int, list[list]] = defaultdict(list)  # wallet → [[tx index, amount, remaining, base]]
        self.txs: list[dict] = []
        self.entries: list[tuple] = []  # (tx index, account, amount, balance_after, at)

    def post(self, *, kind, legs, at, **fields) -> int:
        i = len(self.txs)
        self.txs.append({"kind": kind, "created_at": at, **fields})
        for account, amount in sorted(legs, key=lambda leg: leg[0].pk):
            old = self.balance[account.pk]
            new = self.balance[account.pk] = old + amount
            assert new >= 0 or account.kind in (AK.ISSUANCE, AK.WRITE_OFF), account.name
            self.entries.append((i, account.pk, amount, new, at))
            if account.kind == AK.WALLET:
                if amount > 0:
                    self.lots[account.pk].append([i, amount, amount, fields.get("lot_base") or at])
                else:
                    todo = -amount
                    for lot in self.lots[account.pk]:
                        take = min(lot[2], todo)
                        lot[2] -= take
                        todo -= take
                        if todo == 0:
                            break
        self.txs[i].pop("lot_base", None)
        return i


def seed_incentives(org, *, seed: int, scale: float, actor: Actor, step=None, now: dt.datetime | None = None):
    """Call inside ``tenant_context(org)`` after the feedback, audits and learning demo data."""
    from audits.models import Audit
    from feedback.models import Answer, Case
    from learning.models import Completion, QuizAttempt

    t0 = time.monotonic()
    rng = random.Random(f"incentives:{seed}")
    tz = zoneinfo.ZoneInfo(org.time_zone)
    # The start of the day, like the feedback and learning demos: two seeds of a day agree.
    now = now or dt.datetime.combine(timezone.now().astimezone(tz).date(), dt.time.min, tzinfo=tz)
    start = now - dt.timedelta(days=HISTORY_DAYS + 1)
    org_id = org.pk

    settings = ledger.incentive_settings(org=org)
    IncentiveSettings.objects.filter(pk=settings.pk).update(leaderboard_enabled=True)
    system = {kind: ledger.system_account(org=org, kind=kind) for kind in Account.SYSTEM_KINDS}
    budgets = {}
    for *_, budget_name, _cap in RULES:
        if budget_name not in budgets:
            budgets[budget_name] = ledger.budget_create(org=org, name=budget_name)
    rules = {}
    for name, trigger, recipients, points, min_score, budget_name, cap in RULES:
        rules[trigger] = RewardRule.objects.create(
            organization_id=org_id,
            name=name,
            trigger=trigger,
            recipients=recipients,
            points=points,
            min_score=min_score,
            budget=budgets[budget_name],
            cap_points=cap,
            cap_period=RewardRule.CapPeriod.MONTH,
            effective_from=(start - dt.timedelta(days=30)).date(),
        )

    employees = {e.pk: e for e in Employee.objects.order_by("pk")}
    by_location: dict[int, list[Employee]] = defaultdict(list)
    for e in employees.values():
        if e.active and e.current_location_id:
            by_location[e.current_location_id].append(e)

    # --- the sources, as the handlers read them ------------------------------------------------
    awards = []  # (at, trigger, source kind, source pk, employee, label)
    for rid, emp, number, at in (
        Answer.objects.filter(
            question_type="nps", number__gte=9, employee__isnull=False, submitted_at__gte=start
        )
        .order_by("submitted_at", "pk")
        .values_list("response_id", "employee_id", "number", "submitted_at")
    ):
        label = f"a customer gave {format(number.normalize(), 'f')}/10 and named you"
        awards.append((at, T.PROMOTER_RESPONSE, "response", rid, emp, label))
    for pk, loc, score, at in (
        Audit.objects.filter(
            status="published", assignment__isnull=False, score__gte=90, published_at__gte=start
        )
        .order_by("published_at", "pk")
        .values_list("pk", "location_id", "score", "published_at")
    ):
        for e in by_location.get(loc, []):
            awards.append((at, T.AUDIT_SCORE, "audit", pk, e.pk, f"audit #{pk} scored {score}"))
    for pk, emp, at in (
        Completion.objects.filter(employee__isnull=False, completed_at__gte=start, completed_at__lt=now)
        .order_by("completed_at", "pk")
        .values_list("pk", "employee_id", "completed_at")
    ):
        awards.append((at, T.LESSON_COMPLETED, "lesson_completion", pk, emp, "lesson completed"))
    for pk, emp, at in (
        QuizAttempt.objects.filter(
            employee__isnull=False, number=1, passed=True, submitted_at__gte=start, submitted_at__lt=now
        )
        .order_by("submitted_at", "pk")
        .values_list("pk", "employee_id", "submitted_at")
    ):
        awards.append((at, T.QUIZ_PASSED_FIRST_TRY, "quiz_attempt", pk, emp, "quiz passed at the first try"))
    managers = {
        loc: [e for e in people if e.role in rewards.MANAGER_ROLES] for loc, people in by_location.items()
    }
    for pk, loc, at, due in (
        Case.objects.filter(resolved_at__isnull=False, resolved_at__gte=start, resolved_at__lt=now)
        .order_by("resolved_at", "pk")
        .values_list("pk", "location_id", "resolved_at", "sla_due_at")
    ):
        if at <= due:
            for e in managers.get(loc, []):
                awards.append(
                    (at, T.CASE_RESOLVED_IN_SLA, "case", pk, e.pk, f"case #{pk} resolved within its SLA")
                )
    awards = [a for a in awards if a[4] in employees and employees[a[4]].active]
    if step:
        step(f"incentives: {len(awards)} awards read from the sources", t0)

    # --- catalogue and wallets -------------------------------------------------------------------
    items = []
    for name, kind, cost, stock, limit, auto, _codes in CATALOG:
        items.append(
            catalog.item_create(
                org=org,
                actor=actor,
                data={
                    "name": name,
                    "kind": kind,
                    "cost": cost,
                    "stock": stock,
                    "per_person_limit": limit,
                    "auto_approve": auto,
                    "description": f"{name}. Redeem in the portal; gift-card codes are shown at once.",
                },
            )
        )
    spare = {item.pk: spec[6] for item, spec in zip(items, CATALOG, strict=True)}
    cinema = next(item for item in items if item.name == "Cinema e-voucher")
    dry_since = now - dt.timedelta(days=30)
    pools: dict[int, list[str]] = defaultdict(list)

    def code_for(item, at) -> str | None:
        """A code from the item's pool: codes were loaded as needed, except the cinema's lately."""
        if item.pk == cinema.pk and at >= dry_since:
            return None
        code = f"{item.name[:4].upper().replace(' ', '')}-{rng.getrandbits(40):010X}"
        pools[item.pk].append(code)
        return code

    wallets = {
        a.employee_id: a
        for a in Account.objects.bulk_create(
            [
                Account(
                    organization_id=org_id,
                    kind=AK.WALLET,
                    employee_id=e.pk,
                    name=f"Wallet: employee #{e.pk}",
                )
                for e in employees.values()
            ]
        )
    }

    # --- replay ------------------------------------------------------------------------------
    replay = Replay(org_id, settings.points_expire_months)
    for budget in budgets.values():
        # Funded for the half year plus a margin, at its start (what the admin did then).
        need = sum(rules[tr].points for _, tr, *_ in awards if rules[tr].budget_id == budget.pk)
        replay.post(
            kind=K.FUND,
            legs=[(system[AK.ISSUANCE], -(need + need // 4 + 1000)), (budget, need + need // 4 + 1000)],
            at=start,
            note=f"Budget {budget.name} funded",
        )

    events = []  # heap of (at, seq, what, data)
    seq = 0
    for a in awards:
        events.append((a[0], seq, "award", a))
        seq += 1
    # Redemption attempts: each employee tries every ~3 weeks, more often as the wallet grows.
    for emp in employees:
        at = start + dt.timedelta(days=rng.uniform(20, 40))
        while at < now:
            events.append((at, seq, "try", emp))
            seq += 1
            at += dt.timedelta(days=rng.uniform(10, 35))
    # Every state on the demo even at a small --scale: the persona (or the richest wallet then)
    # tries the dry cinema pool (failed) and asks for time off two days ago (pending).
    persona = (
        Membership.objects.filter(role=Role.EMPLOYEE, employee__isnull=False)
        .order_by("pk")
        .values_list("employee_id", flat=True)
        .first()
    )
    # The persona keeps enough for the cheapest gift card handed out at once, so whoever signs in
    # as them can redeem on the day (their random tries would otherwise spend it, depending on the
    # date the seed runs).
    keep = {persona: min((it.cost for it in items if it.kind == GC and it.auto_approve), default=0)}
    for days, name in ((15, "Cinema e-voucher"), (2, "Extra hour off")):
        events.append((now - dt.timedelta(days=days), seq, "force", (persona, name)))
        seq += 1
    heapq.heapify(events)

    stock = {item.pk: item.stock for item in items}
    taken: dict[tuple, int] = defaultdict(int)
    given: dict[tuple, int] = defaultdict(int)
    redemptions = []  # dicts
    admin = (
        Membership.objects.filter(role=Role.ORG_ADMIN)
        .order_by("pk")
        .values_list("user_id", flat=True)
        .first()
    )
    clearing, redeemed = system[AK.CLEARING], system[AK.REDEEMED]
    while events:
        at, _, what, data = heapq.heappop(events)
        if what == "award":
            _, trigger, kind, pk, emp, label = data
            rule = rules[trigger]
            if rule.cap_points is not None:
                # The rule's monthly cap, as the handler applies it (beyond it: "cap reached").
                month = (rule.pk, emp, at.astimezone(tz).strftime("%Y-%m"))
                if given[month] + rule.points > rule.cap_points:
                    continue
                given[month] += rule.points
            event_id = rewards.source_uuid(org_id, kind, pk)
            replay.post(
                kind=K.AWARD,
                legs=[(rule.budget, -rule.points), (wallets[emp], rule.points)],
                at=at,
                key=ledger.award_key(rule, event_id, emp),
                rule_id=rule.pk,
                event_id=event_id,
                employee_id=emp,
                note=f"{rule.name}: {label}",
            )
        elif what in ("try", "force"):
            if what == "force":
                emp, name = data
                item = next(it for it in items if it.name == name)
                if emp is None or replay.balance[wallets[emp].pk] - keep[emp] < item.cost:
                    emp = max(employees, key=lambda pk: (replay.balance[wallets[pk].pk], -pk))
                    if replay.balance[wallets[emp].pk] < item.cost:
                        continue
                data = emp
            else:
                balance = replay.balance[wallets[data].pk] - keep.get(data, 0)
                affordable = [
                    it
                    for it in items
                    if it.cost <= balance
                    and (stock[it.pk] is None or stock[it.pk] > 0)
                    and (it.per_person_limit is None or taken[data, it.pk] < it.per_person_limit)
                ]
                if not affordable or rng.random() < 0.3:
                    continue
                item = rng.choice(affordable)
            wallet = wallets[data]
            hold = replay.post(
                kind=K.HOLD,
                legs=[(wallet, -item.cost), (clearing, item.cost)],
                at=at,
                employee_id=data,
                note=f"Redeemed: {item.name}",
            )
            r = {"item": item, "employee": data, "hold": hold, "at": at, "status": Redemption.Status.PENDING}
            redemptions.append(r)
            taken[data, item.pk] += 1
            if stock[item.pk] is not None:
                stock[item.pk] -= 1
            if item.auto_approve:
                code = code_for(item, at) if item.kind == GC else None
                if item.kind == GC and code is None:
                    note = f"No {item.name} codes were left; your {item.cost} points were refunded."
                    heapq.heappush(events, (at + dt.timedelta(seconds=1), seq, "refund", (r, note, None)))
                else:
                    heapq.heappush(events, (at + dt.timedelta(seconds=1), seq, "settle", (r, None)))
                    if code:
                        r["code"] = code
            elif now - at > dt.timedelta(days=6):
                later = at + dt.timedelta(hours=rng.uniform(4, 72))
                if rng.random() < 0.85:
                    heapq.heappush(events, (later, seq, "settle", (r, admin)))
                    if item.kind == GC:
                        r["code"] = code_for(item, dry_since - dt.timedelta(days=1))
                else:
                    heapq.heappush(events, (later, seq, "refund", (r, rng.choice(DECLINE_REASONS), admin)))
            seq += 1
        elif what == "settle":
            r, by = data
            r["settlement"] = replay.post(
                kind=K.SETTLE,
                legs=[(clearing, -r["item"].cost), (redeemed, r["item"].cost)],
                at=at,
                key=f"settle:{{hold:{r['hold']}}}",
                employee_id=r["employee"],
                note=f"Redeemed: {r['item'].name}",
            )
            r.update(status=Redemption.Status.FULFILLED, decided_at=at, decided_by=by)
        else:  # refund: declined by an approver, or an auto-approved gift card without codes
            r, note, by = data
            r["refund"] = replay.post(
                kind=K.REFUND,
                legs=[(clearing, -r["item"].cost), (wallets[r["employee"]], r["item"].cost)],
                at=at,
                key=f"refund:{{hold:{r['hold']}}}",
                employee_id=r["employee"],
                note=note,
                lot_base=r["at"],
            )
            failed = by is None
            r.update(
                status=Redemption.Status.FAILED if failed else Redemption.Status.DECLINED,
                decided_at=at,
                decided_by=by,
                note=note,
            )
            taken[r["employee"], r["item"].pk] -= 1
            if stock[r["item"].pk] is not None:
                stock[r["item"].pk] += 1
    if step:
        step(f"incentives: replayed {len(replay.txs)} movements", t0)

    # --- write ---------------------------------------------------------------------------------
    with connection.cursor() as django_cur:
        cur = django_cur.cursor
        tx_ids = _ids(cur, LedgerTransaction._meta.db_table, len(replay.txs))
        # Keys naming a hold carry its id, known only now.
        for tx in replay.txs:
            key = tx.get("key")
            if key and "{hold:" in key:
                hold_index = int(key.split("{hold:")[1].rstrip("}"))
                tx["key"] = key.split("{")[0] + str(tx_ids[hold_index])
        _insert(
            cur,
            "incentives_ledgertransaction",
            {
                "id": "bigint",
                "organization_id": "bigint",
                "kind": "text",
                "key": "text",
                "rule_id": "bigint",
                "event_id": "uuid",
                "employee_id": "bigint",
                "note": "text",
                "created_at": "timestamptz",
            },
            [
                (
                    tx_ids[i],
                    org_id,
                    tx["kind"],
                    tx.get("key"),
                    tx.get("rule_id"),
                    tx.get("event_id"),
                    tx.get("employee_id"),
                    tx.get("note", "")[:400],
                    tx["created_at"],
                )
                for i, tx in enumerate(replay.txs)
            ],
        )
        entry_ids = _ids(cur, "incentives_ledgerentry", len(replay.entries))
        _insert(
            cur,
            "incentives_ledgerentry",
            {
                "id": "bigint",
                "organization_id": "bigint",
                "transaction_id": "bigint",
                "account_id": "bigint",
                "amount": "bigint",
                "balance_after": "bigint",
                "created_at": "timestamptz",
            },
            [
                (entry_ids[n], org_id, tx_ids[i], account, amount, after, at)
                for n, (i, account, amount, after, at) in enumerate(replay.entries)
            ],
        )
        lots = [
            (wallet, i, amount, remaining, base)
            for wallet, wallet_lots in replay.lots.items()
            for i, amount, remaining, base in wallet_lots
        ]
        lots.sort(key=lambda lot: lot[1])
        lot_ids = _ids(cur, "incentives_pointslot", len(lots))
        months = replay.expire
        _insert(
            cur,
            "incentives_pointslot",
            {
                "id": "bigint",
                "organization_id": "bigint",
                "wallet_id": "bigint",
                "transaction_id": "bigint",
                "amount": "bigint",
                "remaining": "bigint",
                "expires_at": "timestamptz",
                "created_at": "timestamptz",
            },
            [
                (
                    lot_ids[n],
                    org_id,
                    wallet,
                    tx_ids[i],
                    amount,
                    remaining,
                    None if months is None else base + relativedelta(months=months),
                    replay.txs[i]["created_at"],
                )
                for n, (wallet, i, amount, remaining, base) in enumerate(lots)
            ],
        )
        balances = [(pk, b) for pk, b in replay.balance.items()]
        cur.execute(
            "UPDATE incentives_account a SET balance = v.b"
            "  FROM unnest(%s::bigint[], %s::bigint[]) AS v(id, b)"
            " WHERE a.id = v.id AND a.organization_id = %s",
            [[pk for pk, _ in balances], [b for _, b in balances], org_id],
        )

    made = Redemption.objects.bulk_create(
        [
            Redemption(
                organization_id=org_id,
                item=r["item"],
                employee_id=r["employee"],
                points=r["item"].cost,
                status=r["status"],
                hold_id=tx_ids[r["hold"]],
                settlement_id=tx_ids[r["settlement"]] if "settlement" in r else None,
                refund_id=tx_ids[r["refund"]] if "refund" in r else None,
                decided_by_id=r.get("decided_by"),
                decided_at=r.get("decided_at"),
                note=r.get("note", ""),
                created_at=r["at"],
            )
            for r in redemptions
        ]
    )
    used = {r["code"]: m.pk for r, m in zip(redemptions, made, strict=True) if "code" in r}
    for item in items:
        if item.kind == GC:
            for _ in range(spare[item.pk]):
                code_for(item, dry_since - dt.timedelta(days=1))
    GiftCardCode.objects.bulk_create(
        [
            GiftCardCode(organization_id=org_id, item_id=pk, code=code, redemption_id=used.get(code))
            for pk, codes in pools.items()
            for code in codes
        ]
    )
    for item in items:
        if item.stock is not None and stock[item.pk] != item.stock:
            CatalogItem.objects.filter(pk=item.pk).update(stock=stock[item.pk])
    by_status = defaultdict(int)
    for r in redemptions:
        by_status[r["status"]] += 1
    counts = {
        "reward rules": len(rules),
        "catalogue items": len(items),
        "gift-card codes": sum(len(c) for c in pools.values()),
        "award transactions": sum(1 for tx in replay.txs if tx["kind"] == K.AWARD),
        "ledger transactions": len(replay.txs),
        **{f"redemptions {status}": n for status, n in sorted(by_status.items())},
    }
    audit_log_write(
        organization=org,
        actor=actor,
        action="seed_demo.incentives",
        instance=settings,
        changes=counts,
    )
    if step:
        step(f"incentives: {len(replay.txs)} transactions, {len(redemptions)} redemptions written", t0)
    return counts
