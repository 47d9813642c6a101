"""Feedback demo data for ``manage.py seed_demo``, and the set-based response loader it uses.

``seed_feedback(org, ...)`` adds to an organization seed_demo has just loaded:

* surveys in English and Spanish with questions linked to the organization's standards and
  triggers on channels / touchpoints (Northwind: store visit, support call, web checkout;
  Contoso: support call), a QR link per store, and default alert rules;
* six months of responses (~200,000 over both organizations at ``--scale 1``) whose scores
  differ between stores (a few clearly better or worse than the rest, and the misaligned stores
  of alignment/demo.py rated poorly although their audits are strong), employees, customer
  segments and touchpoints, with comments in both languages carrying sentiment and topics;
* a few hundred cases on recent detractors, most still open.

The seed loads *history*, like an import: rows go straight into the fact tables with
:func:`load_responses` (one ``INSERT … SELECT FROM unnest(arrays)`` per 20,000 responses and
their answers, inside ``tenant_context`` so RLS checks every row) and no ``ResponseReceived``
event is emitted per response: alerts, cases and rollups for this history are not replayed, and
metrics read the tables. Comment sentiment and topics are computed once per distinct comment
text (:class:`CommentBank`), not once per answer.

Everything comes from the seed (``numpy`` generator + ``random.Random``), so a seed always
gives the same rows; dates are relative to the day of the run.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import zoneinfo
from dataclasses import dataclass, field

import numpy as np
import psycopg
from django.db import connection
from django.utils import timezone

from alignment.demo import MISALIGNED_FEEDBACK_EFFECT, MISALIGNED_STORES
from cem import services
from cem.models import Channel, Customer, Employee, Location, Membership, Role, Segment, Standard, Touchpoint
from cem.principals import Actor
from feedback import text_analytics
from feedback.models import AlertRule, AnonymousLink, Question, Survey, SurveyTrigger, SurveyVersion

HISTORY_DAYS = 182
WRITE_CHUNK = 20_000

# --- the loader -------------------------------------------------------------------------------


class CommentBank:
    """Distinct comment texts with their sentiment and topics, computed once per text."""

    def __init__(self, keywords: dict | None = None):
        self.keywords = keywords or text_analytics.DEFAULT_TOPICS
        self.index: dict[str, int] = {}
        self.text: list[str] = []
        self.sentiment: list[str] = []
        self.score: list[float | None] = []
        self.topics: list[str] = []

    def ref(self, text: str) -> int:
        """1-based position of ``text`` (the loader joins on it)."""
        n = self.index.get(text)
        if n is None:
            found = text_analytics.sentiment(text)
            label, score = found if found else ("", None)
            self.text.append(text)
            self.sentiment.append(label)
            self.score.append(score)
            self.topics.append(",".join(text_analytics.topics(text, self.keywords)))
            n = self.index[text] = len(self.text)
        return n


@dataclass
class ResponseBatch:
    """Responses and their answers as column arrays, ready for :func:`load_responses`.

    Answers are (question id, number, comment ref, choice): key, type and standard come from the
    question, and the dimensions from the response, inside the INSERT.
    """

    r: dict[str, list] = field(
        default_factory=lambda: {
            c: []
            for c in (
                "id",
                "survey_id",
                "version_id",
                "source",
                "locale",
                "submitted_at",
                "location_id",
                "channel_id",
                "touchpoint_id",
                "employee_id",
                "customer_id",
                "segment_id",
                "category",
                "external_id",
            )
        }
    )
    a: dict[str, list] = field(
        default_factory=lambda: {c: [] for c in ("response_id", "question_id", "number", "comment", "choice")}
    )

    def __len__(self) -> int:
        return len(self.r["id"])

    def add(self, response_id: int, answers: list[tuple], **columns) -> None:
        r = self.r
        r["id"].append(response_id)
        for name in (
            "survey_id",
            "version_id",
            "source",
            "locale",
            "submitted_at",
            "location_id",
            "channel_id",
            "touchpoint_id",
            "employee_id",
            "customer_id",
            "segment_id",
            "external_id",
        ):
            r[name].append(columns.get(name))
        r["category"].append(columns.get("category") or "")
        a = self.a
        for question_id, number, comment, choice in answers:
            a["response_id"].append(response_id)
            a["question_id"].append(question_id)
            a["number"].append(number)
            a["comment"].append(comment)
            a["choice"].append(choice)


def reserve_response_ids(n: int) -> list[int]:
    """Ids from the table's own sequence, so answers can point at responses not yet written."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        cur.execute(
            "SELECT nextval(pg_get_serial_sequence('feedback_response', 'id')) FROM generate_series(1, %b)",
            [n],
        )
        return [row[0] for row in cur.fetchall()]


_LOAD_SQL = """
WITH r AS (
    SELECT * FROM unnest(%(id)b::bigint[], %(survey_id)b::bigint[], %(version_id)b::bigint[],
        %(source)b::text[], %(locale)b::text[], %(submitted_at)b::timestamptz[], %(location_id)b::bigint[],
        %(channel_id)b::bigint[], %(touchpoint_id)b::bigint[], %(employee_id)b::bigint[],
        %(customer_id)b::bigint[], %(segment_id)b::bigint[], %(category)b::text[], %(external_id)b::text[])
    AS t(id, survey_id, version_id, source, locale, submitted_at, location_id, channel_id, touchpoint_id,
        employee_id, customer_id, segment_id, category, external_id)
), ins AS (
    INSERT INTO feedback_response (id, organization_id, survey_id, version_id, external_id, source, locale,
        submitted_at, location_id, channel_id, touchpoint_id, employee_id, customer_id, segment_id, category,
        device_hash, ip_hash, created_at)
    SELECT id, %(org)b, survey_id, version_id, external_id, source, locale, submitted_at, location_id,
        channel_id, touchpoint_id, employee_id, customer_id, segment_id, category, '', '', now()
    FROM r
), c AS (
    SELECT * FROM unnest(%(c_text)b::text[], %(c_sentiment)b::text[], %(c_score)b::float8[],
        %(c_topics)b::text[]) WITH ORDINALITY AS c(text, sentiment, score, topics, n)
)
INSERT INTO feedback_answer (organization_id, response_id, question_id, question_key, question_type,
    standard_id, number, text, choices, sentiment, sentiment_score, topics, survey_id, submitted_at,
    location_id, channel_id, touchpoint_id, employee_id, segment_id, category)
SELECT %(org)b, a.response_id, q.id, q.key, q.type, q.standard_id, a.number, coalesce(c.text, ''),
    CASE WHEN a.choice IS NULL THEN '{}'::varchar[] ELSE string_to_array(a.choice, ',') END,
    coalesce(c.sentiment, ''), c.score,
    CASE WHEN coalesce(c.topics, '') = '' THEN '{}'::varchar[] ELSE string_to_array(c.topics, ',') END,
    r.survey_id, r.submitted_at, r.location_id, r.channel_id, r.touchpoint_id, r.employee_id, r.segment_id,
    r.category
FROM unnest(%(a_response)b::bigint[], %(a_question)b::bigint[], %(a_number)b::numeric[],
    %(a_comment)b::bigint[], %(a_choice)b::text[]) AS a(response_id, question_id, number, comment, choice)
JOIN r ON r.id = a.response_id
JOIN feedback_question q ON q.id = a.question_id AND q.organization_id = %(org)b
LEFT JOIN c ON c.n = a.comment
"""


def load_responses(org_id: int, batch: ResponseBatch, bank: CommentBank) -> int:
    """Write a batch of responses and answers in one statement; returns the answers written.

    Must run inside ``tenant_context(org_id)``: the INSERTs go through RLS like any write (COPY
    cannot target an RLS table). Multi-choice values travel comma-joined.
    """
    if not len(batch):
        return 0
    connection.ensure_connection()
    params = {
        "org": org_id,
        **batch.r,
        "c_text": bank.text,
        "c_sentiment": bank.sentiment,
        "c_score": bank.score,
        "c_topics": bank.topics,
        "a_response": batch.a["response_id"],
        "a_question": batch.a["question_id"],
        "a_number": batch.a["number"],
        "a_comment": batch.a["comment"],
        "a_choice": batch.a["choice"],
    }
    with psycopg.Cursor(connection.connection) as cur:
        # No statistics on unnest(): without this the planner may JIT-compile a statement that
        # runs faster than the compilation (see cem/ingest.py).
        cur.execute("SET LOCAL jit = off")
        cur.execute(_LOAD_SQL, params)
        return cur.rowcount


# --- survey definitions -----------------------------------------------------------------------

# (key, type, required, en, es, standard code or None, extra)
STORE_VISIT = (
    (
        "nps",
        "nps",
        True,
        "How likely are you to recommend Northwind to a friend?",
        "¿Qué probabilidad hay de que recomiende Northwind a un amigo?",
        None,
        {},
    ),
    (
        "csat",
        "csat",
        False,
        "Overall, how satisfied were you with your visit?",
        "En general, ¿qué tan satisfecho quedó con su visita?",
        "greet-open-offer",
        {},
    ),
    (
        "staff_knowledge",
        "rating",
        False,
        "How well did our staff know the products?",
        "¿Qué tan bien conocía nuestro personal los productos?",
        "pk-features-benefits",
        {"scale_min": 1, "scale_max": 5},
    ),
    (
        "checkout_ease",
        "ces",
        False,
        "How easy was it to pay and leave?",
        "¿Qué tan fácil fue pagar y salir?",
        "cl-fast-checkout",
        {},
    ),
    (
        "why_low",
        "single",
        False,
        "What disappointed you most?",
        "¿Qué le decepcionó más?",
        None,
        {
            "show_if": {"question": "nps", "op": "lte", "value": 6},
            "choices": [
                {"value": v, "label": {"en": en, "es": es}}
                for v, en, es in (
                    ("wait", "Waiting", "Espera"),
                    ("staff", "Staff", "Personal"),
                    ("stock", "Out of stock", "Agotado"),
                    ("price", "Prices", "Precios"),
                    ("cleanliness", "Cleanliness", "Limpieza"),
                )
            ],
        },
    ),
    (
        "comment",
        "text",
        False,
        "Anything you would like to tell us?",
        "¿Algo más que quiera contarnos?",
        None,
        {},
    ),
)
SUPPORT_CALL = (
    (
        "nps",
        "nps",
        True,
        "How likely are you to recommend us after this call?",
        "Después de esta llamada, ¿qué probabilidad hay de que nos recomiende?",
        None,
        {},
    ),
    (
        "fcr",
        "fcr",
        True,
        "Was your issue resolved on this call?",
        "¿Se resolvió su problema en esta llamada?",
        "ch-resolve-first-contact",
        {},
    ),
    (
        "csat",
        "csat",
        False,
        "How satisfied were you with the agent?",
        "¿Qué tan satisfecho quedó con el agente?",
        "ch-listen-fully",
        {},
    ),
    (
        "ces",
        "ces",
        False,
        "How easy was it to get help?",
        "¿Qué tan fácil fue obtener ayuda?",
        "greet-phone-three-rings",
        {},
    ),
    ("comment", "text", False, "Anything else about the call?", "¿Algo más sobre la llamada?", None, {}),
)
WEB_CHECKOUT = (
    (
        "nps",
        "nps",
        True,
        "How likely are you to recommend our online shop?",
        "¿Qué probabilidad hay de que recomiende nuestra tienda en línea?",
        None,
        {},
    ),
    (
        "ces",
        "ces",
        True,
        "How easy was checkout?",
        "¿Qué tan fácil fue finalizar la compra?",
        "cl-fast-checkout",
        {},
    ),
    (
        "improve",
        "multi",
        False,
        "What could be better?",
        "¿Qué podríamos mejorar?",
        None,
        {
            "show_if": {"question": "ces", "op": "lte", "value": 4},
            "choices": [
                {"value": v, "label": {"en": en, "es": es}}
                for v, en, es in (
                    ("speed", "Page speed", "Velocidad"),
                    ("payment", "Payment options", "Formas de pago"),
                    ("delivery", "Delivery options", "Opciones de entrega"),
                    ("price", "Prices", "Precios"),
                )
            ],
        },
    ),
    ("comment", "text", False, "Anything else?", "¿Algo más?", None, {}),
)
CC_SUPPORT_CALL = (
    (
        "nps",
        "nps",
        True,
        "How likely are you to recommend Contoso Care?",
        "¿Qué probabilidad hay de que recomiende Contoso Care?",
        None,
        {},
    ),
    (
        "fcr",
        "fcr",
        True,
        "Was your issue resolved on this contact?",
        "¿Se resolvió su problema en este contacto?",
        "cc-own-the-case",
        {},
    ),
    (
        "csat",
        "csat",
        False,
        "How satisfied were you with the agent?",
        "¿Qué tan satisfecho quedó con el agente?",
        "cc-summarise-actions",
        {},
    ),
    (
        "ces",
        "ces",
        False,
        "How easy was it to get help?",
        "¿Qué tan fácil fue obtener ayuda?",
        "cc-verify-once",
        {},
    ),
    ("comment", "text", False, "Anything else about your contact?", "¿Algo más sobre su contacto?", None, {}),
)

COMMENTS = {
    "store": {
        "en": {
            "pos": (
                "Staff were friendly and helpful, found exactly what I needed.",
                "Quick checkout, no waiting at all. Great visit!",
                "The employee gave me honest advice on the product, really appreciated it.",
                "Clean store, well organised and good prices.",
                "Love this store, always a pleasant experience.",
                "The cashier was lovely and the queue moved fast.",
            ),
            "mid": (
                "It was ok, nothing special.",
                "Found the product but had to look for a while.",
                "Prices are a bit high but the quality is good.",
                "The line at checkout was long but it moved eventually.",
                "Fine visit, could use more staff on the floor.",
            ),
            "neg": (
                "Waited 20 minutes at checkout, only one cashier working.",
                "Staff were rude and ignored me when I asked for help.",
                "The product was out of stock again, wasted trip.",
                "The store was dirty and messy.",
                "Too expensive for the quality, I won't come back.",
                "Nobody greeted me and I could not find anyone to help.",
            ),
        },
        "es": {
            "pos": (
                "El personal fue amable y me ayudó a encontrar lo que buscaba.",
                "Pagué rápido, sin cola. ¡Excelente visita!",
                "La tienda estaba limpia y los precios son buenos.",
                "Me encanta esta tienda, siempre una experiencia agradable.",
            ),
            "mid": (
                "Estuvo bien, nada especial.",
                "Encontré el producto pero tardé un rato.",
                "Los precios son algo caros pero la calidad es buena.",
            ),
            "neg": (
                "Esperé 20 minutos en la cola, solo había un cajero.",
                "El personal fue grosero y me ignoró.",
                "El producto estaba agotado otra vez.",
                "La tienda estaba sucia y desordenada.",
                "Demasiado caro para la calidad, no vuelvo.",
            ),
        },
    },
    "call": {
        "en": {
            "pos": (
                "The agent solved my problem on the first call, thank you!",
                "Very helpful and patient agent, explained everything clearly.",
                "Quick answer and a friendly agent.",
            ),
            "mid": (
                "Took a while to get through but the issue is sorted.",
                "The agent was nice but I still need to call back.",
            ),
            "neg": (
                "I was on hold for 40 minutes and the problem is still not fixed.",
                "The agent was rude and hung up on me.",
                "Had to explain my issue three times, very frustrating.",
                "Slow and unhelpful, nobody called me back as promised.",
            ),
        },
        "es": {
            "pos": (
                "El agente resolvió mi problema en la primera llamada, ¡gracias!",
                "Agente muy amable y paciente.",
            ),
            "mid": ("Tardaron en atender pero se resolvió.",),
            "neg": (
                "Estuve 40 minutos en espera y el problema sigue sin resolverse.",
                "El agente fue grosero y me colgó.",
                "Servicio lento, nadie me devolvió la llamada.",
            ),
        },
    },
    "web": {
        "en": {
            "pos": ("Fast and easy checkout.", "Great prices and a smooth website, love it."),
            "mid": (
                "Checkout worked but the delivery cost was a surprise.",
                "Ok, but the page was a bit slow.",
            ),
            "neg": (
                "Payment failed twice, very slow website.",
                "Shipping price is too expensive, terrible.",
                "The product I wanted was out of stock after I paid.",
            ),
        },
        "es": {
            "pos": ("Compra rápida y fácil.", "Excelentes precios, me encanta."),
            "mid": ("Funcionó, pero el envío es caro.",),
            "neg": ("El pago falló dos veces, muy lento.", "El producto estaba agotado, terrible."),
        },
    },
}
WHY_LOW = ("wait", "staff", "stock", "price", "cleanliness")
IMPROVE = ("speed", "payment", "delivery", "price")


@dataclass(frozen=True)
class SurveySpec:
    name: str
    description: str
    questions: tuple
    delivery_channel: str
    trigger_channel: str | None  # channel code
    trigger_touchpoint: str | None  # touchpoint code
    touchpoints: tuple[str, ...]  # where responses come from
    volume: int  # responses at --scale 1
    sources: tuple[tuple[str, float], ...]
    comments: str
    at_stores: bool
    staffed: bool
    mood: float  # base of the latent score
    es_share_anonymous: float = 0.15
    second_version_days: int | None = None  # a newer version from this many days ago adds the 4th question


NORTHWIND = (
    SurveySpec(
        "Store visit",
        "Asked after a visit to one of our stores (receipt QR code, e-mail or SMS).",
        STORE_VISIT,
        "email",
        "in_store",
        None,
        (
            "store-greeting",
            "store-product-advice",
            "store-checkout",
            "store-returns-desk",
            "store-click-collect",
        ),
        120_000,
        (("qr", 0.35), ("email", 0.45), ("sms", 0.20)),
        "store",
        True,
        True,
        0.0,
        second_version_days=60,
    ),
    SurveySpec(
        "Support call",
        "Asked by SMS or at the end of the call (IVR) after a call to customer service.",
        SUPPORT_CALL,
        "sms",
        "phone",
        None,
        ("phone-order-status", "phone-complaint-call", "phone-delivery-booking"),
        30_000,
        (("ivr", 0.4), ("sms", 0.35), ("email", 0.25)),
        "call",
        True,
        True,
        -0.25,
    ),
    SurveySpec(
        "Web checkout",
        "Pop-up after an online order, and an e-mail to customers who did not answer it.",
        WEB_CHECKOUT,
        "email",
        None,
        "web-checkout",
        ("web-checkout",),
        30_000,
        (("widget", 0.7), ("email", 0.3)),
        "web",
        False,
        False,
        0.15,
    ),
)
CONTOSO = (
    SurveySpec(
        "Support call",
        "Asked after a call to the contact centre.",
        CC_SUPPORT_CALL,
        "sms",
        "phone",
        None,
        ("billing-query", "tech-support-call", "complaint-call", "cancellation-call", "onboarding-call"),
        20_000,
        (("ivr", 0.5), ("sms", 0.3), ("email", 0.2)),
        "call",
        True,
        True,
        -0.1,
    ),
)
SPECS = {"northwind": NORTHWIND, "contoso": CONTOSO}
# Latent score shifts by customer segment and touchpoint (by name / code), on top of the store's
# and the employee's: newcomers are harder to please, best customers warmer, and the moments
# where something went wrong score lower, so the journey maps differ by segment and step.
SEGMENT_EFFECT = {"New customers": -0.3, "VIP": 0.25, "At risk": -0.35, "Business": 0.1}
TOUCHPOINT_EFFECT = {
    "store-greeting": 0.1,
    "store-returns-desk": -0.35,
    "store-click-collect": -0.2,
    "phone-complaint-call": -0.3,
    "complaint-call": -0.3,
    "cancellation-call": -0.4,
}

ALERT_RULES = (
    # name, condition, category, priority, sla hours
    (
        "Detractor (NPS 0-6)",
        {"question_type": "nps", "op": "lte", "value": 6},
        "",
        AlertRule.Priority.HIGH,
        24,
    ),
    ("Negative comment", {"sentiment": "negative"}, "", AlertRule.Priority.NORMAL, 48),
    ("Rudeness reported", {"topic": "rude"}, "", AlertRule.Priority.URGENT, 8),
    (
        "Unresolved critical contact",
        {"question_type": "fcr", "op": "eq", "value": 0},
        "critical",
        AlertRule.Priority.HIGH,
        24,
    ),
)


# --- the seed ---------------------------------------------------------------------------------


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


class FeedbackSeeder:
    def __init__(self, org, *, seed: int, scale: float, actor: Actor | None = None, step=None):
        self.org = org
        self.scale = scale
        self.actor = actor or Actor.system()
        # Independent of seed_demo's random stream, so adding feedback left the rest unchanged.
        self.rng = random.Random(f"{seed}-{org.slug}-feedback")
        self.np = np.random.default_rng([seed, sum(org.slug.encode())])
        self.step = step or (lambda label, started: None)
        self.tz = zoneinfo.ZoneInfo(org.time_zone or "UTC")
        self.bank = CommentBank(text_analytics.topic_keywords(org.settings))
        self.counts = {"surveys": 0, "responses": 0, "answers": 0, "cases": 0, "alert rules": 0}

    def create(self, model, **data):
        return services.record_create(organization=self.org, actor=self.actor, model=model, data=data)

    # --- definitions --------------------------------------------------------------------------

    def survey(self, spec: SurveySpec, standards: dict, channels: dict, touchpoints: dict):
        now = timezone.now()
        survey = self.create(
            Survey,
            name=spec.name,
            description=spec.description,
            status=Survey.Status.ACTIVE,
            default_locale="en",
            locales=["en", "es"],
            delivery_channel=spec.delivery_channel,
        )
        versions = []
        n_versions = 2 if spec.second_version_days else 1
        for number in range(1, n_versions + 1):
            version = self.create(SurveyVersion, survey=survey, number=number)
            questions = {}
            for position, (key, qtype, required, en, es, standard, extra) in enumerate(spec.questions):
                if number == 1 and n_versions == 2 and position == 3:
                    continue  # the question version 2 added
                questions[key] = self.create(
                    Question,
                    version=version,
                    key=key,
                    position=position,
                    type=qtype,
                    required=required,
                    text={"en": en, "es": es},
                    standard=standards.get(standard),
                    **extra,
                )
            start = (
                now - dt.timedelta(days=spec.second_version_days)
                if number == 2
                else now - dt.timedelta(days=HISTORY_DAYS + 1)
            )
            versions.append((version, questions, start))
        self.create(
            SurveyTrigger,
            survey=survey,
            channel=channels.get(spec.trigger_channel),
            touchpoint=touchpoints.get(spec.trigger_touchpoint),
        )
        return survey, versions

    # --- responses ----------------------------------------------------------------------------

    def responses(self, spec, survey, versions, ctx) -> tuple[int, list]:
        """Generate and load one survey's responses; returns (answers, detractor candidates)."""
        n = scaled(spec.volume, self.scale)
        g, rng = self.np, self.rng
        stores = ctx["stores"]
        tps = [ctx["touchpoints"][code] for code in spec.touchpoints if code in ctx["touchpoints"]]
        # When: the last HISTORY_DAYS days, busier on weekends and growing, 8:00-21:00 local.
        today = timezone.now().astimezone(self.tz).date()
        days = np.arange(HISTORY_DAYS, 0, -1)
        weekday = np.array([(today - dt.timedelta(days=int(d))).weekday() for d in days])
        weights = np.where(weekday >= 5, 1.4, 1.0) * np.linspace(0.85, 1.15, len(days))
        day_pick = g.choice(days, size=n, p=weights / weights.sum())
        seconds = g.integers(8 * 3600, 21 * 3600, size=n)
        midnight = dt.datetime.combine(today, dt.time.min, tzinfo=self.tz).timestamp()
        epoch = midnight - day_pick * 86400 + seconds
        order = np.argsort(epoch, kind="stable")
        epoch = epoch[order]
        age_days = (midnight - epoch) / 86400  # 0 = today
        # Where: busier stores get more responses; each store and employee has its own quality.
        if spec.at_stores and stores:
            traffic = np.array([s["traffic"] for s in stores])
            loc_pick = g.choice(len(stores), size=n, p=traffic / traffic.sum())
            store_effect = np.array([s["effect"] for s in stores])[loc_pick]
        else:
            loc_pick = np.full(n, -1)
            store_effect = np.zeros(n)
        trend = 0.25 * (1 - age_days / HISTORY_DAYS)  # a slow improvement over the half year
        # Who: an employee of that store, each with their own (smaller) effect on the score.
        employee_pick = [None] * n
        if spec.staffed:
            for i in range(n):
                staff = stores[loc_pick[i]]["employees"] if loc_pick[i] >= 0 else ()
                if staff:
                    employee_pick[i] = staff[rng.randrange(len(staff))]
        emp_effect = ctx["employee_effect"]
        person = np.array([emp_effect.get(e, 0.0) for e in employee_pick])
        noise = g.normal(0, 1, size=n)
        fifth = g.normal(0, 1, size=n)  # what the other questions see beyond the overall mood
        fcr_draw = g.random(n)
        comment_draw = g.random(n)
        sources = [s for s, _ in spec.sources]
        source_pick = g.choice(len(sources), size=n, p=[w for _, w in spec.sources])
        uniform = g.random((n, 4))
        # Who answered, and at which touchpoint, come before the scores: customer segments and
        # touchpoints have their own effect (the journey maps compare them).
        customers, cust_by_locale = ctx["customers"], ctx["customers_by_locale"]
        picks = []
        for i in range(n):
            source = sources[source_pick[i]]
            customer = None
            if source in ("email", "sms") and customers:
                customer = customers[rng.randrange(len(customers))]
                locale = customer[2]
            else:
                locale = "es" if uniform[i, 0] < spec.es_share_anonymous else "en"
                if source == "ivr" and locale == "es" and cust_by_locale.get("es"):
                    customer = rng.choice(cust_by_locale["es"])
            picks.append((source, customer, locale, tps[rng.randrange(len(tps))] if tps else None))
        segment_effect, tp_effect = ctx["segment_effect"], ctx["touchpoint_effect"]
        where_who = np.array(
            [
                (segment_effect.get(customer[1], 0.0) if customer else 0.0)
                + (tp_effect.get(tp[0], 0.0) if tp else 0.0)
                for _, customer, _, tp in picks
            ]
        )
        latent = spec.mood + store_effect + person + trend + where_who + noise
        nps = np.clip(np.rint(8.3 + 1.9 * latent), 0, 10).astype(int)
        csat = np.clip(np.rint(3.95 + 0.95 * (0.8 * latent + 0.6 * fifth)), 1, 5).astype(int)
        ces = np.clip(np.rint(5.4 + 1.3 * (0.6 * latent + 0.8 * fifth)), 1, 7).astype(int)
        rating = np.clip(np.rint(3.8 + 0.9 * (0.7 * latent + 0.7 * fifth)), 1, 5).astype(int)
        fcr = (fcr_draw < 1 / (1 + np.exp(-(1.1 + 1.3 * latent)))).astype(int)
        commented = comment_draw < np.where(nps <= 6, 0.45, np.where(nps >= 9, 0.25, 0.18))

        comments = COMMENTS[spec.comments]
        detractors = []
        response_ids = reserve_response_ids(n)
        batch = ResponseBatch()
        answers_total = 0
        second_from = versions[-1][2].timestamp() if len(versions) > 1 else None
        for i in range(n):
            source, customer, locale, tp = picks[i]
            version, questions, _ = (
                versions[-1] if second_from is None or epoch[i] >= second_from else versions[0]
            )
            store = stores[loc_pick[i]] if loc_pick[i] >= 0 else None
            employee = employee_pick[i]
            answers = []
            score = int(nps[i])
            for key, q in questions.items():
                qtype = q.type
                if qtype == "nps":
                    answers.append((q.pk, score, None, None))
                elif qtype == "csat":
                    if uniform[i, 1] < 0.85:
                        answers.append((q.pk, int(csat[i]), None, None))
                elif qtype == "ces":
                    if q.required or uniform[i, 2] < 0.8:
                        answers.append((q.pk, int(ces[i]), None, None))
                elif qtype == "rating":
                    if uniform[i, 2] < 0.75:
                        answers.append((q.pk, int(rating[i]), None, None))
                elif qtype == "fcr":
                    answers.append((q.pk, int(fcr[i]), None, None))
                elif qtype == "single" and key == "why_low" and score <= 6:
                    answers.append((q.pk, None, None, WHY_LOW[rng.randrange(len(WHY_LOW))]))
                elif qtype == "multi" and ces[i] <= 4:
                    picked = rng.sample(IMPROVE, rng.randint(1, 2))
                    answers.append((q.pk, None, None, ",".join(sorted(picked))))
                elif qtype == "text" and commented[i]:
                    mood = "neg" if score <= 6 else "pos" if score >= 9 else "mid"
                    texts = comments["es" if locale.startswith("es") else "en"][mood]
                    answers.append((q.pk, None, self.bank.ref(texts[rng.randrange(len(texts))]), None))
            submitted = dt.datetime.fromtimestamp(float(epoch[i]), dt.UTC)
            rid = response_ids[i]
            batch.add(
                rid,
                answers,
                survey_id=survey.pk,
                version_id=version.pk,
                source=source,
                locale="es" if locale.startswith("es") else "en",
                submitted_at=submitted,
                location_id=store["id"] if store else None,
                channel_id=tp[1] if tp else None,
                touchpoint_id=tp[0] if tp else None,
                employee_id=employee,
                customer_id=customer[0] if customer else None,
                segment_id=customer[1] if customer else None,
                category=tp[2] if tp else "",
            )
            if score <= 4 and age_days[i] < 21:
                detractors.append((rid, score, submitted, store, employee, tp, survey.name))
            if len(batch) >= WRITE_CHUNK:
                answers_total += load_responses(self.org.pk, batch, self.bank)
                batch = ResponseBatch()
        answers_total += load_responses(self.org.pk, batch, self.bank)
        self.counts["responses"] += n
        return answers_total, detractors

    # --- cases --------------------------------------------------------------------------------

    def cases(self, rule, detractors: list, store_managers: dict) -> int:
        """A case per recent strong detractor, capped: most recent still open, older ones worked."""
        from feedback.models import Case

        limit = max(3, round(450 * self.scale))
        detractors.sort(key=lambda d: d[2], reverse=True)
        picked = detractors[:limit]
        now = timezone.now()
        rows = []
        for n, (rid, score, submitted, store, employee, tp, survey_name) in enumerate(picked):
            created = submitted + dt.timedelta(minutes=self.rng.randint(1, 20))
            due = created + dt.timedelta(hours=rule.sla_hours)
            age = (now - created).days
            if age <= 3:
                status = Case.Status.OPEN
            elif age <= 8:
                status = Case.Status.IN_PROGRESS if n % 3 else Case.Status.OPEN
            else:
                status = Case.Status.RESOLVED if n % 4 else Case.Status.CLOSED
            late = status in (Case.Status.OPEN, Case.Status.IN_PROGRESS) and due < now
            where = store["name"] if store else "online"
            rows.append(
                Case(
                    organization_id=self.org.pk,
                    response_id=rid,
                    rule=rule,
                    title=f"{survey_name}: NPS {score} at {where}",
                    location_id=store["id"] if store else None,
                    employee_id=employee,
                    assignee_id=store_managers.get(store["id"]) if store else None,
                    priority=rule.priority + (1 if score <= 1 and rule.priority < 4 else 0),
                    category=tp[2] if tp else "",
                    status=status,
                    sla_due_at=due,
                    escalation_level=1 if late else 0,
                    escalated_at=due if late else None,
                    resolved_at=created + dt.timedelta(days=2)
                    if status in (Case.Status.RESOLVED, Case.Status.CLOSED)
                    else None,
                    closed_reason="Customer called back; apology and voucher."
                    if status == Case.Status.CLOSED
                    else "",
                    themes=["wait"] if n % 2 else ["staff"],
                )
            )
        made = Case.objects.bulk_create(rows)
        # created_at is auto_now_add: backdate it to the response, as if the alert had fired then.
        with psycopg.Cursor(connection.connection) as cur:
            cur.execute(
                "UPDATE feedback_case AS c SET created_at = v.created_at FROM unnest(%b::bigint[],"
                " %b::timestamptz[]) AS v(id, created_at) WHERE c.id = v.id AND c.organization_id = %b",
                [
                    [c.pk for c in made],
                    [c.sla_due_at - dt.timedelta(hours=rule.sla_hours) for c in made],
                    self.org.pk,
                ],
            )
        return len(made)

    # --- run ----------------------------------------------------------------------------------

    def context(self) -> dict:
        """What responses point at, read back from what seed_demo just wrote."""
        g = self.np
        stores = []
        employees_at: dict[int, list[int]] = {}
        for emp_id, loc_id in Employee.objects.filter(current_location__isnull=False).values_list(
            "id", "current_location_id"
        ):
            employees_at.setdefault(loc_id, []).append(emp_id)
        locations = list(Location.objects.order_by("code").values_list("id", "code", "name"))
        effects = g.normal(0, 0.22, size=len(locations))
        if len(locations) >= 6:
            # A few stores clearly stand out, so the demo's "best and worst" is obvious.
            effects[[1, 7]] = [0.7, 0.6]
            effects[[4, len(locations) - 3]] = [-0.7, -0.6]
        # The misaligned stores: customers rate them poorly while their audits are strong.
        for k, (_, code, _) in enumerate(locations):
            if code in MISALIGNED_STORES:
                effects[k] = MISALIGNED_FEEDBACK_EFFECT
        for (loc_id, code, name), effect in zip(locations, effects, strict=True):
            stores.append(
                {
                    "id": loc_id,
                    "code": code,
                    "name": name,
                    "effect": float(effect),
                    "traffic": float(g.uniform(0.6, 1.6)),
                    "employees": sorted(employees_at.get(loc_id, [])),
                }
            )
        customers = [
            (cid, seg, "es" if (loc or "").startswith("es") else "en")
            for cid, seg, loc in Customer.objects.order_by("id").values_list("id", "segment_id", "locale")
        ]
        by_locale: dict[str, list] = {}
        for c in customers:
            by_locale.setdefault(c[2], []).append(c)
        touchpoints = {
            code: (pk, channel_id, category)
            for code, pk, channel_id, category in Touchpoint.objects.values_list(
                "code", "id", "channel_id", "category"
            )
        }
        everyone = sorted(e for staff in employees_at.values() for e in staff)
        segment_effect = {
            pk: SEGMENT_EFFECT[name]
            for pk, name in Segment.objects.values_list("pk", "name")
            if name in SEGMENT_EFFECT
        }
        return {
            "segment_effect": segment_effect,
            "touchpoint_effect": {
                pk: TOUCHPOINT_EFFECT[code]
                for code, (pk, _, _) in touchpoints.items()
                if code in TOUCHPOINT_EFFECT
            },
            "employee_effect": dict(
                zip(everyone, g.normal(0, 0.25, size=len(everyone)).tolist(), strict=True)
            ),
            "stores": stores,
            "customers": customers,
            "customers_by_locale": by_locale,
            "touchpoints": touchpoints,
        }

    def run(self) -> dict:
        t0 = time.monotonic()
        specs = SPECS.get(self.org.slug, ())
        standards = {s.code: s for s in Standard.objects.all()}
        channels = {c.code: c for c in Channel.objects.all()}
        touchpoints = {t.code: t for t in Touchpoint.objects.all()}
        rules = {}
        for name, condition, category, priority, sla in ALERT_RULES:
            rules[name] = self.create(
                AlertRule, name=name, condition=condition, category=category, priority=priority, sla_hours=sla
            )
        self.counts["alert rules"] = len(rules)
        ctx = self.context()
        self.step(f"{self.org.slug}: feedback surveys, rules", t0)
        detractors = []
        for spec in specs:
            survey, versions = self.survey(spec, standards, channels, touchpoints)
            self.counts["surveys"] += 1
            if spec.at_stores and spec.trigger_channel == "in_store":
                AnonymousLink.objects.bulk_create(
                    AnonymousLink(organization_id=self.org.pk, survey=survey, location_id=s["id"])
                    for s in ctx["stores"]
                )
            answers, found = self.responses(spec, survey, versions, ctx)
            self.counts["answers"] += answers
            detractors += found
            self.step(f"{self.org.slug}: {spec.name.lower()} responses", t0)
        # Cases at a store go to its manager when the store has a manager who signs in.
        managers = dict(
            Membership.objects.filter(role=Role.STORE_MANAGER, location__isnull=False).values_list(
                "location_id", "user_id"
            )
        )
        self.counts["cases"] = self.cases(rules[ALERT_RULES[0][0]], detractors, managers) if detractors else 0
        services.audit_log_write(
            organization=self.org,
            actor=self.actor,
            action="seed_demo.feedback",
            object_type="cem.Organization",
            object_id=self.org.pk,
            changes={"scale": self.scale, **self.counts},
        )
        self.step(f"{self.org.slug}: {self.counts['cases']} cases", t0)
        return self.counts


def seed_feedback(org, *, seed: int, scale: float, actor: Actor | None = None, step=None) -> dict:
    """Load the organization's feedback demo data (inside its tenant_context); returns counts."""
    return FeedbackSeeder(org, seed=seed, scale=scale, actor=actor, step=step).run()
