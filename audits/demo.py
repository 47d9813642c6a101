"""Audits demo data for ``manage.py seed_demo``: mystery shopping at Northwind, monitoring at Contoso.

``seed_audits(org, ...)`` adds to an organization seed_demo has just loaded (inside its
``tenant_context``):

* **Northwind Retail**: an in-store mystery-shopping programme and a cross-channel one (phone call,
  then store visit), each with a form (sections, one per leg for the cross-channel one, ~10 items of
  mixed types linked to the standards, one critical item) and scenarios; 40 shoppers (applied,
  approved and certified, approved with an expired certification, rejected, suspended), one of
  them ``shopper@northwind.demo`` with jobs open on the board, assigned and returned; ~3,000
  published audits over six months whose scores differ by store (a few clearly better or worse;
  the misaligned stores of alignment/demo.py among the best) and by standard (some weaker), with
  StandardScore rows; a few disputes (open, accepted with a
  ScoreChange, rejected).
* **Contoso Care**: a monitoring programme with a form, weekly samples (drawn as ``sample_draw`` does) for the
  last four weeks, ~400 published evaluations across agents and one closed calibration session
  scored by three evaluators.

Like feedback/demo.py, this loads *history*: audits, answers and standard scores go in with
``bulk_create`` (scores computed with the pure ``audits.scoring`` rules, exactly as
``audit_score_compute`` would) and no ``AuditPublished`` / ``EvaluationPublished`` event is
emitted per audit. Forms, programmes, scenarios, samples and the calibration session go through
their services. Everything comes from the seed; dates are relative to the day of the run.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
import zoneinfo
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Avg, OuterRef, Subquery
from django.db.models.functions import Round
from django.utils import timezone

from alignment.demo import MISALIGNED_AUDIT_EFFECT, MISALIGNED_STORES
from audits import form_services, monitoring
from audits.audit_services import _points, scoring_item
from audits.models import (
    Assignment,
    Audit,
    AuditAnswer,
    AuditForm,
    Certification,
    Dispute,
    FormItem,
    MonitoringSample,
    Payable,
    PaymentBatch,
    Program,
    ProgramKind,
    SampleItem,
    ScoreChange,
    Shopper,
    ShopperRating,
    StandardScore,
)
from audits.sampling import Candidate, sample
from audits.scoring import score_audit
from cem import services
from cem.models import Employee, Interaction, Location, Standard
from cem.principals import Actor

HISTORY_DAYS = 182
CHUNK = 5000


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


def _t(en: str, es: str) -> dict:
    return {"en": en, "es": es}


YES_NO_CHOICES = [
    {"value": "asked", "label": {"en": "Asked and listened"}, "points": "1"},
    {"value": "partly", "label": {"en": "Asked, did not follow up"}, "points": "0.5"},
    {"value": "no", "label": {"en": "Did not ask"}, "points": "0"},
]

# (key, section, type, text, standard code, extra) ; extra: weight, critical, targets, choices...
STORE_SECTIONS = (
    ("arrival", _t("Arrival", "Llegada"), "in_store"),
    ("advice", _t("Advice", "Asesoramiento"), "in_store"),
    ("checkout", _t("Checkout", "Caja"), "in_store"),
)
STORE_ITEMS = (
    (
        "greeted-seconds",
        "arrival",
        "time",
        "Seconds until you were acknowledged",
        "greet-within-10-seconds",
        {"target_max": "10", "plausible_max": "1800", "weight": "2"},
    ),
    ("eye-contact", "arrival", "yes_no", "Eye contact and a smile", "greet-eye-contact-smile", {}),
    ("open-offer", "arrival", "yes_no", "Opened with an offer of help", "greet-open-offer", {}),
    (
        "needs-asked",
        "advice",
        "choice",
        "Asked about your needs",
        "nd-open-questions",
        {"choices": YES_NO_CHOICES, "pass_fraction": "0.5", "weight": "2"},
    ),
    ("compare", "advice", "yes_no_na", "Compared two suitable options", "pk-compare-options", {}),
    ("walked", "advice", "yes_no", "Walked you to the product", "pk-walk-to-product", {}),
    (
        "knowledge",
        "advice",
        "scale",
        "Product knowledge (1-5)",
        "pk-features-benefits",
        {"weight": "2", "pass_fraction": "0.5"},
    ),
    ("add-on", "checkout", "yes_no", "Suggested a complementary item", "cl-complementary-item", {}),
    (
        "returns-told",
        "checkout",
        "yes_no",
        "Explained the returns period",
        "cl-returns-period",
        {"critical": True, "weight": "2"},
    ),
    ("thanked", "checkout", "yes_no", "Thanked you and invited you back", "cl-thank-and-invite", {}),
    ("notes", "checkout", "text", "Anything else we should know?", None, {}),
    # Unscored, and draws nothing from the random stream: the history's answers stay the same.
    ("receipt", "checkout", "photo", "Photo of your receipt", None, {}),
)
CROSS_SECTIONS = (
    ("call", _t("Phone call", "Llamada"), "phone"),
    ("visit", _t("Store visit", "Visita"), "in_store"),
)
CROSS_ITEMS = (
    (
        "rings",
        "call",
        "numeric",
        "Rings before the phone was answered",
        "greet-phone-three-rings",
        {"target_max": "3"},
    ),
    ("call-need", "call", "yes_no", "Asked what you were looking for", "nd-open-questions", {}),
    ("stock-checked", "call", "yes_no", "Checked stock for you", "pk-stock-check", {"weight": "2"}),
    ("held", "call", "yes_no_na", "Offered to hold the item", "ch-own-the-problem", {}),
    ("call-note", "call", "text", "Who did you speak to?", None, {}),
    (
        "item-ready",
        "visit",
        "yes_no",
        "The item was ready as promised",
        "fu-callback-on-time",
        {"critical": True, "weight": "2"},
    ),
    ("recognised", "visit", "yes_no", "Staff knew about your call", "greet-returning-customer", {}),
    (
        "visit-greet",
        "visit",
        "time",
        "Seconds until acknowledged",
        "greet-within-10-seconds",
        {"target_max": "10", "plausible_max": "1800"},
    ),
    (
        "visit-knowledge",
        "visit",
        "scale",
        "Product knowledge (1-5)",
        "pk-features-benefits",
        {"pass_fraction": "0.5"},
    ),
    ("visit-thanked", "visit", "yes_no", "Thanked you and invited you back", "cl-thank-and-invite", {}),
)
# Contoso: standards scored on calls and chats.
CC_SECTIONS = (
    ("opening", _t("Opening", "Apertura"), ""),
    ("resolution", _t("Resolution", "Resolución"), ""),
    ("closing", _t("Closing", "Cierre"), ""),
)
CC_ITEMS = (
    ("greeting", "opening", "yes_no", "Scripted greeting with name", "cc-greet-script", {}),
    (
        "verified",
        "opening",
        "yes_no",
        "Verified identity once, correctly",
        "cc-verify-once",
        {"critical": True, "weight": "2"},
    ),
    (
        "reason",
        "opening",
        "choice",
        "Found the reason for contact",
        "cc-reason-for-contact",
        {"choices": YES_NO_CHOICES, "pass_fraction": "0.5"},
    ),
    (
        "explained",
        "resolution",
        "scale",
        "Explained clearly (1-5)",
        "cc-explain-bill",
        {"weight": "2", "pass_fraction": "0.5"},
    ),
    ("owned", "resolution", "yes_no", "Owned the case", "cc-own-the-case", {"weight": "2"}),
    ("self-service", "resolution", "yes_no_na", "Offered a self-service tip", "cc-self-service-tip", {}),
    (
        "hold-seconds",
        "resolution",
        "time",
        "Longest hold (seconds)",
        "cc-fix-check",
        {"target_max": "60", "plausible_max": "3600"},
    ),
    ("summary", "closing", "yes_no", "Summarised the actions", "cc-summarise-actions", {}),
    ("reference", "closing", "yes_no", "Gave a reference number", "cc-reference-number", {}),
    ("anything-else", "closing", "yes_no", "Asked if there was anything else", "cc-anything-else", {}),
    ("coaching", "closing", "text", "Coaching note", None, {}),
)
# Standards the demo makes clearly weaker (negative) or stronger than the rest.
STANDARD_BIAS = {
    "cl-complementary-item": -1.1,
    "pk-compare-options": -0.7,
    "greet-phone-three-rings": -0.8,
    "cl-returns-period": 0.9,
    "greet-eye-contact-smile": 0.8,
    "cc-self-service-tip": -0.9,
    "cc-reference-number": -0.6,
    "cc-verify-once": 1.4,
}
SHOPPER_STATES = (  # (state, share of 40)
    ("applied", 5),
    ("certified", 23),
    ("expired", 4),
    ("rejected", 4),
    ("suspended", 3),
)
FIRST = ("Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivan", "Jo", "Kemi", "Leo", "Mia", "Nico")
LAST = ("Moss", "Park", "Quinn", "Reyes", "Stone", "Tate", "Uddin", "Vega", "Wolfe", "Young", "Zhou")
NOTES = (
    "Busy store, but the team coped well.",
    "Staff member was friendly and knew the range.",
    "Had to look for help for a while.",
    "Very tidy store; music a bit loud.",
    "",
)


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class AuditSeeder:
    def __init__(self, org, *, seed: int, scale: float, actor: Actor | None, step=None):
        self.org, self.scale, self.seed = org, scale, seed
        self.rng = random.Random(f"audits:{seed}:{org.slug}")
        self.actor = actor or Actor.system()
        self._step = step
        self.tz = zoneinfo.ZoneInfo(org.time_zone)
        self.now = timezone.now()
        self.counts: dict[str, int] = {}
        self.standards = dict(Standard.objects.values_list("code", "id"))
        self.bias = {self.standards[c]: b for c, b in STANDARD_BIAS.items() if c in self.standards}

    def step(self, label: str, started: float) -> None:
        if self._step:
            self._step(label, started)

    # --- forms and programmes -------------------------------------------------------------------

    def form(self, name: str, kind: str, sections, items) -> tuple[AuditForm, list[FormItem]]:
        form = form_services.form_create(
            organization=self.org,
            actor=self.actor,
            data={"name": name, "kind": kind, "critical_policy": "cap", "critical_cap": Decimal(50)},
        )
        section_data = [{"key": k, "title": t, "channel_kind": c} for k, t, c in sections]
        item_data = []
        for key, section, itype, text, std, extra in items:
            row = {"key": key, "section": section, "type": itype, "text": {"en": text}, **extra}
            if std:
                row["standard"] = self.standards[std]
            if itype in ("text", "photo"):
                row["required"] = False
                row["weight"] = "0"
            item_data.append(row)
        version, _ = form_services.form_structure_save(
            organization=self.org, actor=self.actor, form=form, sections=section_data, items=item_data
        )
        rows = list(FormItem.objects.filter(version=version).select_related("section"))
        rows.sort(key=lambda i: (i.section.position, i.position, i.id))
        return form, rows

    def program(self, name: str, kind: str, form: AuditForm, **extra) -> Program:
        return services.record_create(
            organization=self.org,
            actor=self.actor,
            model=Program,
            data={"name": name, "kind": kind, "form": form, **extra},
        )

    # --- answers --------------------------------------------------------------------------------

    def answer(self, item: FormItem, quality: float) -> tuple[str, str]:
        """A plausible raw answer for one item given the visit's quality (and the standard's bias)."""
        rng = self.rng
        q = quality + self.bias.get(item.standard_id, 0.0)
        t = item.type
        if t in ("yes_no", "yes_no_na"):
            if t == "yes_no_na" and rng.random() < 0.12:
                return "n/a", ""
            return ("yes" if rng.random() < _sig(1.3 + 1.2 * q) else "no"), ""
        if t == "scale":
            return str(min(5, max(1, round(3.7 + 0.9 * q + rng.gauss(0, 0.7))))), ""
        if t == "time":
            target = float(item.target_max or 10)
            return str(max(1, round(target * 0.6 * math.exp(-0.5 * q + rng.gauss(0, 0.6))))), ""
        if t == "numeric":
            return str(max(1, round(2.4 * math.exp(-0.4 * q + rng.gauss(0, 0.4))))), ""
        if t == "choice":
            p = _sig(1.0 + 1.2 * q)
            r = rng.random()
            return ("asked" if r < p else "partly" if r < p + (1 - p) * 0.6 else "no"), ""
        if t == "text":
            return "", NOTES[rng.randrange(len(NOTES))]
        return "", ""

    def fill(self, items, scoring, quality: float, form: AuditForm, overrides=None):
        answers, texts = {}, {}
        for item in items:
            value, text = self.answer(item, quality)
            answers[item.key], texts[item.key] = value, text
        answers.update(overrides or {})
        result = score_audit(
            scoring,
            {k: (v if v != "" else None) for k, v in answers.items()},
            critical_policy=form.critical_policy,
            critical_cap=Decimal(form.critical_cap),
        )
        return answers, texts, result

    def audit_rows(self, audit: Audit, items, answers, texts, result, published_at):
        audit.score, audit.raw_score = result.total, result.raw_total
        audit.critical_failed = result.critical_failed
        audit.section_scores = {
            key: {
                "score": None if s.value is None else str(s.value),
                "earned": _points(s.earned),
                "possible": _points(s.possible),
            }
            for key, s in result.sections.items()
        }
        failed = set(result.failed_items)
        answer_rows = [
            AuditAnswer(
                organization_id=self.org.pk,
                item=item,
                value=answers[item.key],
                text=texts[item.key],
                comment="Observed on the visit." if item.key in failed else "",
            )
            for item in items
            if answers[item.key] != "" or texts[item.key]
        ]
        std_rows = [
            StandardScore(
                organization_id=self.org.pk,
                standard_id=sid,
                location_id=audit.location_id,
                employee_id=audit.employee_id,
                earned=s.earned,
                possible=s.possible,
                value=s.value,
                published_at=published_at,
            )
            for sid, s in sorted(result.standards.items())
        ]
        return answer_rows, std_rows

    def write(self, audits: list[Audit], children: list[tuple[list, list]]) -> None:
        """bulk_create audits, then their answers and standard scores (ids from RETURNING)."""
        Audit.objects.bulk_create(audits, batch_size=CHUNK)
        answers, scores = [], []
        for audit, (answer_rows, std_rows) in zip(audits, children, strict=True):
            for row in answer_rows:
                row.audit_id = audit.pk
            for row in std_rows:
                row.audit_id = audit.pk
            answers += answer_rows
            scores += std_rows
        AuditAnswer.objects.bulk_create(answers, batch_size=CHUNK)
        StandardScore.objects.bulk_create(scores, batch_size=CHUNK)
        self.counts["audit answers"] = self.counts.get("audit answers", 0) + len(answers)
        self.counts["standard scores"] = self.counts.get("standard scores", 0) + len(scores)

    def backdate(self) -> None:
        """created_at is auto_now_add: set it to when the visit or call happened."""
        with connection.cursor() as cur:
            cur.execute(
                "UPDATE audits_audit SET created_at = visited_at, updated_at = COALESCE(published_at, "
                "visited_at) WHERE organization_id = %s AND visited_at IS NOT NULL",
                [self.org.pk],
            )
            cur.execute(
                "UPDATE audits_assignment SET created_at = LEAST(window_start, created_at) "
                "WHERE organization_id = %s",
                [self.org.pk],
            )

    def when(self, days_back: float) -> dt.datetime:
        """A local daytime moment ``days_back`` days ago."""
        day = (self.now - dt.timedelta(days=days_back)).astimezone(self.tz).date()
        hour = self.rng.randint(9, 19)
        return dt.datetime.combine(day, dt.time(hour, self.rng.randrange(60)), tzinfo=self.tz)

    # --- Northwind --------------------------------------------------------------------------------

    def shoppers(self, programs: list[Program]) -> tuple[list[Shopper], Shopper | None]:
        rng = self.rng
        n = scaled(40, self.scale)
        total = sum(s for _, s in SHOPPER_STATES) + 1
        states = ["certified"]  # the first row is the demo persona's, when the persona exists
        for state, share in SHOPPER_STATES:
            states += [state] * max(1, round(n * share / total))
        user = get_user_model().objects.filter(username="shopper@northwind.demo").first()
        locations = list(Location.objects.order_by("code").values_list("address", "latitude", "longitude"))
        rows = []
        for i, state in enumerate(states):
            persona = i == 0 and user is not None  # the first certified row is the persona
            name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
            address, lat, lon = locations[i % len(locations)] if locations else ("", None, None)
            status = {
                "applied": Shopper.Status.APPLIED,
                "rejected": Shopper.Status.REJECTED,
                "suspended": Shopper.Status.SUSPENDED,
            }.get(state, Shopper.Status.APPROVED)
            rows.append(
                Shopper(
                    organization_id=self.org.pk,
                    user=user if persona else None,
                    name="Sam Shopper" if persona else name,
                    email="shopper@northwind.demo" if persona else f"shopper{i + 1:03d}@shoppers.example",
                    phone=f"+1555{rng.randrange(10**6, 10**7)}",
                    home_area=address.split(",")[-2].strip() if address and "," in address else "",
                    latitude=lat,
                    longitude=lon,
                    radius_km=rng.choice((15, 25, 40)),
                    languages=["en", "es"] if rng.random() < 0.3 else ["en"],
                    consent_at=self.now - dt.timedelta(days=rng.randint(200, 700)),
                    status=status,
                    decision_reason={
                        "rejected": "Works for a competitor.",
                        "suspended": "Two late reports in a row.",
                    }.get(state, ""),
                )
            )
            rows[-1].demo_state = state
        made = Shopper.objects.bulk_create(rows)
        certs = []
        for s, row in zip(made, rows, strict=True):
            if row.demo_state not in ("certified", "expired", "suspended"):
                continue
            ago = rng.randint(400, 520) if row.demo_state == "expired" else rng.randint(190, 300)
            passed = self.now - dt.timedelta(days=ago)
            for program in programs:
                certs.append(
                    Certification(
                        organization_id=self.org.pk,
                        shopper=s,
                        program=program,
                        passed_at=passed,
                        expires_at=passed + dt.timedelta(days=program.certification_valid_days),
                        score=Decimal(rng.randint(80, 100)),
                    )
                )
        Certification.objects.bulk_create(certs)
        self.counts["shoppers"] = len(made)
        self.counts["certifications"] = len(certs)
        return [s for s, r in zip(made, rows, strict=True) if r.demo_state in ("certified", "expired")], (
            made[0] if user is not None else None
        )

    def northwind(self) -> None:
        rng, t0 = self.rng, time.monotonic()
        store_form, store_items = self.form(
            "Store visit audit", ProgramKind.MYSTERY_SHOP, STORE_SECTIONS, STORE_ITEMS
        )
        cross_form, cross_items = self.form(
            "Call-and-collect audit", ProgramKind.MYSTERY_SHOP, CROSS_SECTIONS, CROSS_ITEMS
        )
        store_prog = self.program(
            "In-store mystery shopping", ProgramKind.MYSTERY_SHOP, store_form, lockout_days=60
        )
        cross_prog = self.program("Phone to store", ProgramKind.MYSTERY_SHOP, cross_form, lockout_days=90)
        scen = form_services.scenario_create
        store_scenarios = [
            scen(
                organization=self.org,
                actor=self.actor,
                data={"program": store_prog, "title": title, "instructions": text},
            )
            for title, text in (
                ("Gift for a friend", "Ask for help choosing a gift under $50; buy the cheapest option."),
                ("Return an item", "Return the receipt item and ask about the returns period."),
                ("Big-ticket browse", "Compare two coats; do not buy."),
            )
        ]
        cross_scenarios = [
            scen(
                organization=self.org,
                actor=self.actor,
                data={
                    "program": cross_prog,
                    "title": "Reserve by phone, collect in store",
                    "instructions": "Call the store, ask them to hold an item, collect it within two days.",
                },
                legs=[
                    {"channel_kind": "phone", "section_key": "call", "instructions": "Call and reserve."},
                    {"channel_kind": "in_store", "section_key": "visit", "instructions": "Collect it."},
                ],
            )
        ]
        self.counts["programs"] = 2
        self.counts["scenarios"] = len(store_scenarios) + len(cross_scenarios)
        shoppers, persona = self.shoppers([store_prog, cross_prog])
        self.step(f"{self.org.slug}: audit forms, programmes, shoppers", t0)

        stores = list(Location.objects.order_by("code").values_list("id", "code"))
        staff: dict[int, list[int]] = {}
        for emp_id, loc_id in (
            Employee.objects.filter(current_location__isnull=False)
            .order_by("id")
            .values_list("id", "current_location_id")
        ):
            staff.setdefault(loc_id, []).append(emp_id)
        effects = [rng.gauss(0, 0.35) for _ in stores]
        if len(stores) >= 6:  # a few stores clearly stand out
            effects[1], effects[7 % len(stores)] = 1.1, 0.9
            effects[4], effects[len(stores) - 3] = -1.1, -0.9
        # The misaligned stores shine in audits while their customers are unhappy (feedback/demo.py).
        for k, (_, code) in enumerate(stores):
            if code in MISALIGNED_STORES:
                effects[k] = MISALIGNED_AUDIT_EFFECT
        shopper_q = {s.pk: rng.gauss(0, 0.2) for s in shoppers}
        users = get_user_model().objects.filter(
            username__in=["evaluator@northwind.demo", "manager@northwind.demo"]
        )
        users = {u.username: u.pk for u in users}
        reviewer = users.get("evaluator@northwind.demo")
        forms = {
            store_prog.pk: (store_form, store_items, [scoring_item(i, i.section.key) for i in store_items]),
            cross_prog.pk: (cross_form, cross_items, [scoring_item(i, i.section.key) for i in cross_items]),
        }
        version_of = {store_prog.pk: store_items[0].version_id, cross_prog.pk: cross_items[0].version_id}

        n = scaled(3000, self.scale)
        plan = []
        for _ in range(n):
            program, scenarios = (
                (cross_prog, cross_scenarios) if rng.random() < 0.25 else (store_prog, store_scenarios)
            )
            si = rng.randrange(len(stores))
            days_back = rng.uniform(3, HISTORY_DAYS)
            plan.append((program, scenarios[rng.randrange(len(scenarios))], si, days_back))
        plan.sort(key=lambda p: -p[3])
        # Disputes: a handful of recent audits at the first store (the demo store manager's).
        recent_first = [k for k, p in enumerate(plan) if p[2] == 0 and p[3] < 45]
        dispute_of = {}
        for k, kind in zip(
            recent_first[-6:], ("open", "accepted", "rejected", "open", "accepted", "rejected"), strict=False
        ):
            dispute_of[k] = kind

        assignments, audits, children, disputes, marks = [], [], [], [], []
        for k, (program, scenario, si, days_back) in enumerate(plan):
            form, items, scoring = forms[program.pk]
            loc_id = stores[si][0]
            shopper = shoppers[rng.randrange(len(shoppers))] if shoppers else None
            visited = self.when(days_back)
            published = visited + dt.timedelta(days=rng.randint(1, 3), hours=rng.randint(0, 6))
            trend = 0.35 * (1 - days_back / HISTORY_DAYS)
            quality = effects[si] + trend + shopper_q.get(shopper.pk if shopper else 0, 0) + rng.gauss(0, 0.8)
            answers, texts, result = self.fill(items, scoring, quality, form)
            dispute = None
            kind = dispute_of.get(k)
            if kind:
                failed = [
                    i for i in items if i.key in result.failed_items and i.type in ("yes_no", "yes_no_na")
                ]
                if not failed:  # make one to argue about
                    target = next(i for i in items if i.type == "yes_no")
                    answers[target.key] = "no"
                    result = self.fill(items, scoring, quality, form, overrides=answers)[2]
                    failed = [target]
                dispute = (kind, failed[0], result.total)
                if kind == "accepted":
                    answers[failed[0].key] = "yes"
                    result = score_audit(
                        scoring,
                        {key: (v if v != "" else None) for key, v in answers.items()},
                        critical_policy=form.critical_policy,
                        critical_cap=Decimal(form.critical_cap),
                    )
            employees = staff.get(loc_id) or [None]
            assignments.append(
                Assignment(
                    organization_id=self.org.pk,
                    program=program,
                    scenario=scenario,
                    location_id=loc_id,
                    shopper=shopper,
                    status=Assignment.Status.PUBLISHED,
                    window_start=visited - dt.timedelta(days=5),
                    window_end=visited + dt.timedelta(days=2),
                    fee=Decimal("25.00") if program is store_prog else Decimal("40.00"),
                    reimbursement_cap=Decimal("50.00"),
                    reimbursement=Decimal(rng.randint(0, 50)),
                    assigned_at=visited - dt.timedelta(days=rng.randint(6, 14)),
                    submitted_at=visited + dt.timedelta(hours=rng.randint(1, 20)),
                    reviewer_id=reviewer,
                )
            )
            marks.append((quality, published, days_back))
            audit = Audit(
                organization_id=self.org.pk,
                version_id=version_of[program.pk],
                evaluator_id=shopper.user_id if shopper else None,
                location_id=loc_id,
                employee_id=employees[rng.randrange(len(employees))],
                status=Audit.Status.PUBLISHED,
                visited_at=visited,
                published_at=published,
            )
            audits.append(audit)
            children.append(self.audit_rows(audit, items, answers, texts, result, published))
            if dispute:
                disputes.append((audit, dispute))
        Assignment.objects.bulk_create(assignments, batch_size=CHUNK)
        for audit, assignment in zip(audits, assignments, strict=True):
            audit.assignment_id = assignment.pk
        self.write(audits, children)
        self.counts["audits"] = len(audits)
        self.ratings_and_payments(assignments, marks, reviewer)
        self.disputes(disputes, users.get("manager@northwind.demo"), reviewer)
        if persona is not None:
            self.persona_jobs(persona, store_prog, store_scenarios[0], stores, store_items)
        self.backdate()
        self.step(f"{self.org.slug}: {len(audits)} mystery-shop audits", t0)

    def ratings_and_payments(self, assignments, marks, reviewer) -> None:
        """Reviewers rated about a third of the visits (Shopper.rating is the average); visits
        approved more than three weeks ago were paid in monthly batches, the rest await export."""
        rng, org_id = self.rng, self.org.pk
        ratings, payables, batches = [], [], {}
        for job, (quality, published, days_back) in zip(assignments, marks, strict=True):
            if job.shopper_id is None:
                continue
            if rng.random() < 0.35:
                score = max(1, min(5, round(3.6 + 0.8 * quality + rng.gauss(0, 0.5))))
                ratings.append(
                    ShopperRating(
                        organization_id=org_id,
                        shopper_id=job.shopper_id,
                        assignment_id=job.pk,
                        score=score,
                        rated_by_id=reviewer,
                    )
                )
            batch = None
            if days_back > 21:
                month = published.astimezone(self.tz).strftime("%Y%m")
                batch = batches.get(month)
                if batch is None:
                    batch = batches[month] = PaymentBatch(
                        organization_id=org_id, reference=f"PAY-{month}", paid_at=published
                    )
                batch.item_count += 1
                batch.total += job.fee + job.reimbursement
                batch.paid_at = max(batch.paid_at, min(self.now, published + dt.timedelta(days=5)))
            payables.append(
                Payable(
                    organization_id=org_id,
                    assignment_id=job.pk,
                    shopper_id=job.shopper_id,
                    fee=job.fee,
                    reimbursement=job.reimbursement,
                    currency="USD",
                    status=Payable.Status.PAID if batch else Payable.Status.PAYABLE,
                    approved_at=published,
                    batch=batch,
                    paid_at=batch.paid_at if batch else None,
                )
            )
        PaymentBatch.objects.bulk_create(list(batches.values()))
        Payable.objects.bulk_create(payables, batch_size=CHUNK)
        ShopperRating.objects.bulk_create(ratings, batch_size=CHUNK)
        average = (
            ShopperRating.objects.filter(shopper=OuterRef("pk"))
            .values("shopper")
            .annotate(avg=Avg("score"))
            .values("avg")
        )
        Shopper.objects.update(rating=Round(Subquery(average), 2))
        self.counts["shopper ratings"] = len(ratings)
        self.counts["payables"] = len(payables)
        self.counts["payment batches"] = len(batches)

    def disputes(self, found, raised_by, resolver) -> None:
        rows, changes = [], []
        for audit, (kind, item, old_score) in found:
            status = {"open": Dispute.Status.OPEN, "accepted": Dispute.Status.ACCEPTED}.get(
                kind, Dispute.Status.REJECTED
            )
            resolved = kind != "open"
            rows.append(
                Dispute(
                    organization_id=self.org.pk,
                    audit=audit,
                    item=item,
                    raised_by_id=raised_by,
                    reason="Our CCTV shows the team member did this.",
                    proposed_value="yes",
                    status=status,
                    resolution={
                        "accepted": "Footage confirms it; rescored.",
                        "rejected": "The report is clear.",
                    }.get(kind, ""),
                    resolved_by_id=resolver if resolved else None,
                    resolved_at=audit.published_at + dt.timedelta(days=2) if resolved else None,
                )
            )
            if kind == "accepted":
                changes.append(
                    ScoreChange(
                        organization_id=self.org.pk,
                        audit=audit,
                        old_score=old_score,
                        new_score=audit.score,
                        reason=f"Dispute accepted ({item.key}): our CCTV shows the team member did this.",
                        changed_by_id=resolver,
                    )
                )
        Dispute.objects.bulk_create(rows)
        ScoreChange.objects.bulk_create(changes)
        self.counts["disputes"] = len(rows)
        self.counts["score changes"] = len(changes)

    def persona_jobs(self, persona: Shopper, program, scenario, stores, items) -> None:
        """The demo shopper's board: an open job, an assigned one and one returned for revision."""
        now = self.now
        loc = [s[0] for s in stores]
        common = {
            "organization_id": self.org.pk,
            "program": program,
            "scenario": scenario,
            "fee": Decimal("25"),
        }
        open_job = Assignment(
            **common,
            location_id=loc[-1],
            window_start=now + dt.timedelta(days=1),
            window_end=now + dt.timedelta(days=8),
            reimbursement_cap=Decimal("50"),
        )
        assigned = Assignment(
            **common,
            location_id=loc[len(loc) // 2],
            shopper=persona,
            status=Assignment.Status.ASSIGNED,
            window_start=now - dt.timedelta(days=1),
            window_end=now + dt.timedelta(days=5),
            assigned_at=now - dt.timedelta(days=2),
        )
        returned = Assignment(
            **common,
            location_id=loc[0],
            shopper=persona,
            status=Assignment.Status.RETURNED,
            window_start=now - dt.timedelta(days=6),
            window_end=now - dt.timedelta(days=1),
            assigned_at=now - dt.timedelta(days=8),
            submitted_at=now - dt.timedelta(days=2),
            revision_due_at=now + dt.timedelta(hours=20),
            status_reason="Please add the name of the team member at checkout.",
        )
        Assignment.objects.bulk_create([open_job, assigned, returned])
        draft = Audit.objects.create(
            organization_id=self.org.pk,
            version_id=items[0].version_id,
            assignment=returned,
            evaluator_id=persona.user_id,
            location_id=loc[0],
            status=Audit.Status.DRAFT,
            visited_at=now - dt.timedelta(days=3),
        )
        AuditAnswer.objects.bulk_create(
            AuditAnswer(organization_id=self.org.pk, audit=draft, item=i, value="yes")
            for i in items
            if i.type == "yes_no"
        )
        self.counts["assignments"] = Assignment.objects.count()

    # --- Contoso ----------------------------------------------------------------------------------

    def contoso(self) -> None:
        rng, t0 = self.rng, time.monotonic()
        form, items = self.form("Call and chat quality", ProgramKind.MONITORING, CC_SECTIONS, CC_ITEMS)
        program = self.program("Contact centre quality", ProgramKind.MONITORING, form, sample_per_agent=2)
        scoring = [scoring_item(i, i.section.key) for i in items]
        self.counts["programs"] = 1
        # Weekly samples for the last four weeks (Monday to Monday, the org's time zone).
        today = self.now.astimezone(self.tz).date()
        monday = today - dt.timedelta(days=today.weekday())
        samples, offset = [], 0
        for w in range(4, 0, -1):
            start = dt.datetime.combine(monday - dt.timedelta(weeks=w), dt.time.min, tzinfo=self.tz)
            sample = self.draw(program, start, start + dt.timedelta(weeks=1), offset)
            offset += SampleItem.objects.filter(sample=sample).count()
            samples.append(sample)
        self.counts["samples"] = len(samples)
        sampled = list(
            SampleItem.objects.filter(sample__in=samples)
            .select_related("sample")
            .order_by("sample__period_start", "pk")
        )
        self.counts["sample items"] = len(sampled)
        occurred = dict(
            Interaction.objects.filter(pk__in=[s.interaction_id for s in sampled]).values_list(
                "pk", "occurred_at"
            )
        )
        agent_loc = dict(Employee.objects.values_list("pk", "current_location_id"))
        agent_q = {a: rng.gauss(0, 0.5) for a in sorted(agent_loc)}
        evaluators = monitoring.org_evaluators()
        to_do = sampled[: scaled(400, self.scale)]
        audits, children = [], []
        for item in to_do:
            when = occurred[item.interaction_id]
            published = min(when + dt.timedelta(days=rng.randint(1, 4)), self.now - dt.timedelta(hours=1))
            answers, texts, result = self.fill(
                items, scoring, agent_q[item.agent_id] + rng.gauss(0, 0.8), form
            )
            audit = Audit(
                organization_id=self.org.pk,
                version_id=items[0].version_id,
                interaction_id=item.interaction_id,
                evaluator_id=item.evaluator_id,
                location_id=agent_loc.get(item.agent_id),
                employee_id=item.agent_id,
                status=Audit.Status.PUBLISHED,
                visited_at=when,
                published_at=published,
                acknowledged_at=published + dt.timedelta(hours=rng.randint(2, 48))
                if rng.random() < 0.6
                else None,
            )
            if audit.acknowledged_at and audit.acknowledged_at > self.now:
                audit.acknowledged_at = None
            audits.append(audit)
            children.append(self.audit_rows(audit, items, answers, texts, result, published))
        self.write(audits, children)
        for item, audit in zip(to_do, audits, strict=True):
            item.audit_id = audit.pk
        SampleItem.objects.bulk_update(to_do, ["audit"], batch_size=CHUNK)
        self.counts["evaluations"] = len(audits)
        self.backdate()
        self.step(f"{self.org.slug}: {len(audits)} evaluations", t0)
        self.calibration(program, items, evaluators)
        self.step(f"{self.org.slug}: calibration", t0)

    def draw(self, program, start, end, offset: int) -> MonitoringSample:
        """``sample_draw``, set-based and reproducible across reloads.

        The service seeds its generator with the programme's and agents' database ids, which a
        ``--reset`` changes; here the same ``audits.sampling.sample`` runs over stable ranks
        (agents and interactions ordered by external id), and evaluators rotate as in the service.
        """
        seed = f"demo:{self.seed}:{start.date().isoformat()}"
        found = monitoring._candidates(program, start, end)
        agents = dict(
            Employee.objects.filter(pk__in={c.agent_id for c in found}).values_list("pk", "external_id")
        )
        ext = dict(
            Interaction.objects.filter(pk__in=[c.interaction_id for c in found]).values_list(
                "pk", "external_id"
            )
        )
        agent_rank = {pk: n for n, pk in enumerate(sorted(agents, key=agents.get))}
        by_rank = sorted(found, key=lambda c: ext[c.interaction_id])
        ranked = [
            Candidate(interaction_id=n, agent_id=agent_rank[c.agent_id], category=c.category)
            for n, c in enumerate(by_rank)
        ]
        picked = sample(
            ranked,
            per_agent=program.sample_per_agent,
            seed=seed,
            critical_share=float(program.sample_critical_share),
        )
        rows = [(by_rank[i].agent_id, by_rank[i].interaction_id) for a in sorted(picked) for i in picked[a]]
        drawn = MonitoringSample.objects.create(
            organization_id=self.org.pk, program=program, period_start=start, period_end=end, seed=seed
        )
        evaluators = monitoring.org_evaluators()
        SampleItem.objects.bulk_create(
            SampleItem(
                organization_id=self.org.pk,
                sample=drawn,
                interaction_id=interaction_id,
                agent_id=agent_id,
                evaluator_id=evaluators[(offset + n) % len(evaluators)] if evaluators else None,
            )
            for n, (agent_id, interaction_id) in enumerate(rows)
        )
        return drawn

    def calibration(self, program, items, evaluators) -> None:
        """One closed session: three evaluators score a recent call blind, then agree."""
        taken = set(SampleItem.objects.values_list("interaction_id", flat=True))
        candidates = (
            Interaction.objects.filter(channel__kind="phone", occurred_at__lt=self.now - dt.timedelta(days=2))
            .order_by("-occurred_at", "pk")
            .values_list("pk", flat=True)[:50]
        )
        interaction_id = next((i for i in candidates if i not in taken), None)
        if interaction_id is None or not evaluators:
            return
        session = monitoring.calibration_create(
            organization=self.org,
            actor=self.actor,
            program=program,
            interaction=Interaction.objects.get(pk=interaction_id),
        )
        base = {"reason": "asked", "explained": "4", "hold-seconds": "45", "self-service": "n/a"}
        for n, user_id in enumerate(evaluators[:3]):
            answers = {}
            for item in items:
                if item.type == "text":
                    continue
                value = base.get(item.key, "yes")
                if n == 1 and item.key == "summary":
                    value = "no"  # one evaluator stricter than the others
                if n == 2 and item.key == "explained":
                    value = "3"
                answers[item.key] = {"value": value, "comment": "Not done." if value == "no" else ""}
            monitoring.calibration_evaluate(
                organization=self.org, actor=Actor(user_id=user_id), session=session, answers=answers
            )
        final = {i.key: {"value": base.get(i.key, "yes")} for i in items if i.type != "text"}
        closer = Actor(user_id=evaluators[0])
        monitoring.calibration_close(organization=self.org, actor=closer, session=session, answers=final)
        self.counts["calibration sessions"] = 1

    def run(self) -> dict:
        if self.org.slug == "northwind":
            self.northwind()
        elif self.org.slug == "contoso":
            self.contoso()
        services.audit_log_write(
            organization=self.org,
            actor=self.actor,
            action="seed_demo.audits",
            object_type="cem.Organization",
            object_id=self.org.pk,
            changes={"scale": self.scale, **self.counts},
        )
        return self.counts


def seed_audits(org, *, seed: int, scale: float, actor: Actor | None = None, step=None) -> dict:
    """Load the organization's audits demo data (inside its tenant_context); returns counts."""
    return AuditSeeder(org, seed=seed, scale=scale, actor=actor, step=step).run()
