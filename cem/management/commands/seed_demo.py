"""``manage.py seed_demo``: deterministic demo data for two tenants, in well under a minute.

* **Northwind Retail** (``northwind``, America/New_York): 3 regions, 30 stores, 3 teams per
  store, 300 employees, 3,000 customers, 40,000 interactions over the last six months, and
  40 standards.
* **Contoso Care** (``contoso``, Europe/London): one contact centre with 4 teams, 80 agents,
  1,200 customers, 10,000 interactions and 20 standards.

Both get feedback (``feedback/demo.py``): Northwind three surveys (store visit, support call, web
checkout), Contoso one (support call), in English and Spanish, with 200,000 responses over the
six months between them, comments with sentiment and topics, a few hundred cases and default
alert rules. Like an import, this history goes into the tables set-based with no per-response
``ResponseReceived`` event (dashboards and metrics read the tables). Then audits
(``audits/demo.py``): Northwind two mystery-shopping programmes (in store; phone then store), 40
shoppers and ~3,000 published audits; Contoso a monitoring programme with weekly samples, ~400
evaluations and a closed calibration session (three evaluator personas), again set-based with no
per-audit event. Then learning at Northwind (``learning/demo.py``): a lesson per standard in
English and Spanish, quizzes, libraries, three paths (the shopper certification path is both
mystery-shopping programmes' ``certification_path``), gap rules and ~5,000 assignments with
completions, quiz attempts, holdouts and certificates. Then incentives (``incentives/demo.py``,
``incentives/bonus_demo.py``) and alignment (``alignment/demo.py``): six months of business
metrics per store, CRM transactions, journey maps for the three customer segments, and three
misaligned stores (S001, S013, S024: strong audits, weak customer scores, which the feedback
and audits generators produce); at the end of each organization its rollup is built from the
raw tables in SQL and the latest alignment scores computed, so the dashboards have data at
once. The whole seed took about 22 s at ``--scale 1`` before learning; learning added 12 s when
measured on a shared 2-core machine at load average 7, where the rest of the seed took 110 s
instead of 22 (so roughly 3 s unloaded). With everything, the seed took 163 s on that machine at
load average 3.5, of which the alignment part 85 s (65 s building the rollup of ~1M rows and its
RollupSource rows, 9 s the latest scores).

Everything comes from one ``random.Random(seed)``, so a seed always yields the same rows (dates
are relative to the day of the run). ``--scale`` shrinks the volume counts (stores, employees,
customers, interactions; at least one of each) for tests.

Tenant rows are written inside ``tenant_context(org)`` through the services: ``record_create``
for reference data and hierarchy, ``employee_create``/``employee_move`` for employees (so every
employee has an assignment and an audit trail), ``membership_create`` and ``api_key_create``
for access, and ``interactions_ingest`` (set-based, 10,000 rows a call) for interactions.
Customers are the one bulk_create; each organization gets one audit-log row summarising the
seed instead of a row per customer.

The whole seed is a single transaction: a failure leaves nothing half-loaded, and a rerun
finds ``northwind`` and stops ("demo data already loaded"). ``--reset`` deletes both demo
organizations (and the demo users) first.

Outbox events: the ingest emits one ``InteractionRecorded`` event per 1,000 interactions and
asks for an on-commit kick of ``events_deliver``. Publishing to an unreachable broker takes
kombu ~0.6 s of retries per kick (50 kicks = 30 s), so the broker is probed once up front; if it
is down, the kicks queued during the seed are dropped before the commit and the events stay
pending in the outbox, where the ``events-sweep`` beat task delivers them once Redis and the
worker are up. Nothing is lost: the outbox row, not the kick, is the source of truth.
"""

from __future__ import annotations

import datetime as dt
import math
import random
import time
import zoneinfo
from bisect import bisect_right
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.utils import timezone
from psycopg import sql

from cem import services
from cem.db.purge import tenant_purge
from cem.ingest import interactions_ingest
from cem.models import (
    BrandMessage,
    Channel,
    Customer,
    CustomerExpectation,
    Employee,
    InteractionCategory,
    Location,
    Organization,
    Region,
    Role,
    Segment,
    SkillCategory,
    Standard,
    Team,
    Touchpoint,
)
from cem.models.privacy import ConsentRecord
from cem.principals import Actor
from cem.privacy import imported_consent_records
from cem.tenancy import tenant_context, tenant_models, unscoped

DEFAULT_SEED = 20240917
PASSWORD = "demo-pass-123"  # noqa: S105 - a published demo password, by design
SUPERUSER_EMAIL = "staff@cem.demo"
DEMO_SLUGS = ("northwind", "contoso")
INGEST_BATCH = 10_000
HISTORY_DAYS = 182

STABILIZING, CRITICAL, PLANNED = (
    InteractionCategory.STABILIZING,
    InteractionCategory.CRITICAL,
    InteractionCategory.PLANNED,
)

# --- names -----------------------------------------------------------------------------------

FIRST_NAMES = (
    "Aaliyah",
    "Aaron",
    "Abigail",
    "Adrian",
    "Aisha",
    "Alejandro",
    "Amara",
    "Andre",
    "Angela",
    "Arjun",
    "Beatriz",
    "Benjamin",
    "Bianca",
    "Brandon",
    "Caleb",
    "Camila",
    "Carlos",
    "Chloe",
    "Daniel",
    "Deepa",
    "Diego",
    "Elena",
    "Elijah",
    "Emily",
    "Fatima",
    "Gabriel",
    "Grace",
    "Hannah",
    "Hiroshi",
    "Imani",
    "Isaac",
    "Jamal",
    "Jasmine",
    "Javier",
    "Jessica",
    "Jordan",
    "Kai",
    "Keisha",
    "Liam",
    "Lucia",
    "Malik",
    "Maria",
    "Mei",
    "Mohammed",
    "Nadia",
    "Noah",
    "Olivia",
    "Omar",
    "Priya",
    "Rachel",
    "Rafael",
    "Samuel",
    "Sofia",
    "Tariq",
    "Tyler",
    "Valentina",
    "Wei",
    "Xavier",
    "Yusuf",
    "Zoe",
)
LAST_NAMES = (
    "Adams",
    "Ahmed",
    "Alvarez",
    "Anderson",
    "Baker",
    "Bennett",
    "Brooks",
    "Brown",
    "Campbell",
    "Chen",
    "Clark",
    "Collins",
    "Cruz",
    "Davis",
    "Diaz",
    "Edwards",
    "Evans",
    "Fischer",
    "Flores",
    "Garcia",
    "Gomez",
    "Green",
    "Hall",
    "Harris",
    "Hernandez",
    "Hughes",
    "Jackson",
    "Johnson",
    "Kaur",
    "Kim",
    "Lee",
    "Lewis",
    "Lopez",
    "Martin",
    "Martinez",
    "Mitchell",
    "Moore",
    "Murphy",
    "Nguyen",
    "O'Brien",
    "Okafor",
    "Patel",
    "Perez",
    "Phillips",
    "Reed",
    "Rivera",
    "Roberts",
    "Robinson",
    "Rossi",
    "Sanchez",
    "Scott",
    "Shah",
    "Singh",
    "Smith",
    "Taylor",
    "Thomas",
    "Tran",
    "Walker",
    "Williams",
    "Wright",
)
STREETS = (
    "Main St",
    "Market St",
    "Oak Ave",
    "Maple Ave",
    "Washington Blvd",
    "Park Ave",
    "Elm St",
    "Lake Dr",
    "Commerce Way",
    "Riverside Dr",
    "Broadway",
    "Center St",
)

# --- Northwind Retail ------------------------------------------------------------------------

# (region code, region name, [(city, state, zip, latitude, longitude) x 10])
NW_REGIONS = (
    (
        "northeast",
        "Northeast",
        (
            ("New York", "NY", "10001", 40.7128, -74.0060),
            ("Boston", "MA", "02108", 42.3601, -71.0589),
            ("Philadelphia", "PA", "19103", 39.9526, -75.1652),
            ("Hartford", "CT", "06103", 41.7658, -72.6734),
            ("Providence", "RI", "02903", 41.8240, -71.4128),
            ("Albany", "NY", "12207", 42.6526, -73.7562),
            ("Newark", "NJ", "07102", 40.7357, -74.1724),
            ("Pittsburgh", "PA", "15222", 40.4406, -79.9959),
            ("Buffalo", "NY", "14202", 42.8864, -78.8784),
            ("Portland", "ME", "04101", 43.6591, -70.2568),
        ),
    ),
    (
        "southeast",
        "Southeast",
        (
            ("Atlanta", "GA", "30303", 33.7490, -84.3880),
            ("Miami", "FL", "33130", 25.7617, -80.1918),
            ("Charlotte", "NC", "28202", 35.2271, -80.8431),
            ("Orlando", "FL", "32801", 28.5383, -81.3792),
            ("Tampa", "FL", "33602", 27.9506, -82.4572),
            ("Raleigh", "NC", "27601", 35.7796, -78.6382),
            ("Nashville", "TN", "37203", 36.1627, -86.7816),
            ("Charleston", "SC", "29401", 32.7765, -79.9311),
            ("Richmond", "VA", "23219", 37.5407, -77.4360),
            ("Jacksonville", "FL", "32202", 30.3322, -81.6557),
        ),
    ),
    (
        "midwest",
        "Midwest",
        (
            ("Chicago", "IL", "60601", 41.8781, -87.6298),
            ("Detroit", "MI", "48226", 42.3314, -83.0458),
            ("Columbus", "OH", "43215", 39.9612, -82.9988),
            ("Indianapolis", "IN", "46204", 39.7684, -86.1581),
            ("Milwaukee", "WI", "53202", 43.0389, -87.9065),
            ("Minneapolis", "MN", "55401", 44.9778, -93.2650),
            ("Cleveland", "OH", "44113", 41.4993, -81.6944),
            ("St. Louis", "MO", "63101", 38.6270, -90.1994),
            ("Kansas City", "MO", "64105", 39.0997, -94.5786),
            ("Cincinnati", "OH", "45202", 39.1031, -84.5120),
        ),
    ),
)
NW_TEAMS = ("Sales floor", "Checkout", "Customer service")
CS = "Customer service"

CHANNEL_NAMES = {
    "in_store": "In store",
    "phone": "Phone",
    "chat": "Live chat",
    "email": "Email",
    "web": "Website",
    "app": "Mobile app",
}

# (channel, code, name, category, weight, staffed, amount (median, sigma) or None, team or None)
NW_TOUCHPOINTS = (
    ("in_store", "store-greeting", "Greeting at entrance", STABILIZING, 10, True, None, "Sales floor"),
    (
        "in_store",
        "store-product-advice",
        "Product advice on the floor",
        STABILIZING,
        14,
        True,
        None,
        "Sales floor",
    ),
    ("in_store", "store-fitting-room", "Fitting room", STABILIZING, 5, True, None, "Sales floor"),
    ("in_store", "store-checkout", "Checkout", STABILIZING, 30, True, (45, 0.7), "Checkout"),
    ("in_store", "store-returns-desk", "Returns desk", CRITICAL, 5, True, None, CS),
    ("in_store", "store-complaint", "In-store complaint", CRITICAL, 1.5, True, None, CS),
    (
        "in_store",
        "store-personal-shopping",
        "Personal shopping appointment",
        PLANNED,
        1.5,
        True,
        (220, 0.5),
        "Sales floor",
    ),
    ("in_store", "store-click-collect", "Click & collect pick-up", PLANNED, 5, True, None, CS),
    ("phone", "phone-order-status", "Order status call", STABILIZING, 4, True, None, CS),
    ("phone", "phone-complaint-call", "Complaint call", CRITICAL, 1.5, True, None, CS),
    ("phone", "phone-delivery-booking", "Delivery booking call", PLANNED, 1.5, True, None, CS),
    ("chat", "chat-product-question", "Product question", STABILIZING, 4, True, None, CS),
    ("chat", "chat-delivery-issue", "Late or missing delivery", CRITICAL, 1.5, True, None, CS),
    ("email", "email-enquiry", "Customer enquiry", STABILIZING, 2, True, None, CS),
    ("email", "email-complaint", "Written complaint", CRITICAL, 0.7, True, None, CS),
    ("email", "email-follow-up", "Post-purchase follow-up", PLANNED, 1.5, True, None, "Sales floor"),
    ("web", "web-checkout", "Online checkout", STABILIZING, 6, False, (80, 0.6), None),
    ("web", "web-payment-failure", "Payment failure", CRITICAL, 0.5, False, None, None),
    ("app", "app-order", "In-app order", STABILIZING, 3, False, (60, 0.6), None),
    ("app", "app-loyalty-signup", "Loyalty sign-up", PLANNED, 1, False, None, None),
)

SKILL_CATEGORIES = (
    ("Greeting", "Making contact: how quickly and warmly customers are acknowledged."),
    ("Product knowledge", "Knowing the range, the offers and the policies well enough to advise."),
    ("Needs discovery", "Finding out what the customer actually needs before recommending anything."),
    ("Closing", "Turning a conversation into a confident decision, without pressure."),
    ("Complaint handling", "Recovering when something went wrong: listen, own, fix, confirm."),
    ("Follow-up", "Doing what was promised after the customer has left."),
)

# (name, importance 1-5)
NW_EXPECTATIONS = (
    ("Acknowledged promptly", 5),
    ("A friendly, personal welcome", 4),
    ("Staff who know the products", 5),
    ("Honest advice", 5),
    ("Being listened to", 4),
    ("Finding the right product quickly", 4),
    ("A fast, easy checkout", 4),
    ("Clear prices and offers", 3),
    ("Problems fixed first time", 5),
    ("Being kept informed", 4),
    ("Hassle-free returns", 4),
    ("Recognition as a loyal customer", 2),
    ("Follow-through on promises", 5),
    ("Not feeling pressured", 3),
    ("Fair treatment when things go wrong", 5),
)
NW_BRAND_MESSAGES = (
    ("Helpful by nature", "We notice, we ask, we help - before anyone has to ask us."),
    ("Quality you can trust", "We only recommend what we would buy ourselves, and we say why."),
    ("Easy to do business with", "One conversation, one owner, one fix."),
    ("Part of the neighbourhood", "Every store knows its regulars and its community."),
)
# (skill category, code, title, interaction category, expectation, brand message or None)
NW_STANDARDS = (
    (
        "Greeting",
        "greet-within-10-seconds",
        "Acknowledge every customer within 10 seconds",
        STABILIZING,
        "Acknowledged promptly",
        "Helpful by nature",
    ),
    (
        "Greeting",
        "greet-eye-contact-smile",
        "Make eye contact and smile when greeting",
        STABILIZING,
        "A friendly, personal welcome",
        None,
    ),
    (
        "Greeting",
        "greet-open-offer",
        "Open with an offer of help, not a yes/no question",
        STABILIZING,
        "A friendly, personal welcome",
        "Helpful by nature",
    ),
    (
        "Greeting",
        "greet-returning-customer",
        "Recognise returning customers and loyalty members by name",
        PLANNED,
        "Recognition as a loyal customer",
        "Part of the neighbourhood",
    ),
    (
        "Greeting",
        "greet-acknowledge-queue",
        "Acknowledge waiting customers while serving someone else",
        STABILIZING,
        "Acknowledged promptly",
        None,
    ),
    (
        "Greeting",
        "greet-phone-three-rings",
        "Answer the phone within three rings with store and name",
        STABILIZING,
        "Acknowledged promptly",
        None,
    ),
    (
        "Greeting",
        "greet-chat-60-seconds",
        "Reply to chats within 60 seconds with a personal greeting",
        STABILIZING,
        "Acknowledged promptly",
        None,
    ),
    (
        "Product knowledge",
        "pk-features-benefits",
        "Explain features as benefits to this customer",
        STABILIZING,
        "Staff who know the products",
        "Quality you can trust",
    ),
    (
        "Product knowledge",
        "pk-stock-check",
        "Check store and online stock before saying 'sold out'",
        STABILIZING,
        "Finding the right product quickly",
        "Easy to do business with",
    ),
    (
        "Product knowledge",
        "pk-compare-options",
        "Compare at least two suitable options honestly",
        STABILIZING,
        "Honest advice",
        "Quality you can trust",
    ),
    (
        "Product knowledge",
        "pk-current-promotions",
        "Know this week's promotions and price-match rules",
        STABILIZING,
        "Clear prices and offers",
        None,
    ),
    (
        "Product knowledge",
        "pk-care-warranty",
        "Explain care, warranty and returns terms",
        STABILIZING,
        "Honest advice",
        None,
    ),
    (
        "Product knowledge",
        "pk-walk-to-product",
        "Walk the customer to the product instead of pointing",
        STABILIZING,
        "Finding the right product quickly",
        "Helpful by nature",
    ),
    (
        "Product knowledge",
        "pk-find-out",
        "Admit when you don't know, then find out",
        STABILIZING,
        "Honest advice",
        None,
    ),
    (
        "Needs discovery",
        "nd-open-questions",
        "Ask at least two open questions about the need",
        STABILIZING,
        "Being listened to",
        None,
    ),
    (
        "Needs discovery",
        "nd-summarise-need",
        "Summarise the need back before recommending",
        STABILIZING,
        "Being listened to",
        None,
    ),
    (
        "Needs discovery",
        "nd-respect-budget",
        "Establish the budget and respect it",
        STABILIZING,
        "Not feeling pressured",
        None,
    ),
    (
        "Needs discovery",
        "nd-usage-occasion",
        "Ask how and when the product will be used",
        STABILIZING,
        "Staff who know the products",
        None,
    ),
    (
        "Needs discovery",
        "nd-appointment-shortlist",
        "Prepare a shortlist before a personal-shopping visit",
        PLANNED,
        "Recognition as a loyal customer",
        "Part of the neighbourhood",
    ),
    (
        "Needs discovery",
        "nd-offer-assistance",
        "Offer help proactively to customers who may need it",
        STABILIZING,
        "Acknowledged promptly",
        "Helpful by nature",
    ),
    (
        "Needs discovery",
        "nd-record-preferences",
        "Record preferences in the profile, with consent",
        PLANNED,
        "Recognition as a loyal customer",
        None,
    ),
    (
        "Closing",
        "cl-confirm-choice",
        "Confirm the choice meets the stated need",
        STABILIZING,
        "Honest advice",
        None,
    ),
    (
        "Closing",
        "cl-complementary-item",
        "Suggest one relevant complementary item, without pressure",
        STABILIZING,
        "Not feeling pressured",
        None,
    ),
    (
        "Closing",
        "cl-fast-checkout",
        "Complete checkout in under three minutes",
        STABILIZING,
        "A fast, easy checkout",
        "Easy to do business with",
    ),
    (
        "Closing",
        "cl-returns-period",
        "Point out the returns period and receipt options",
        STABILIZING,
        "Hassle-free returns",
        None,
    ),
    (
        "Closing",
        "cl-loyalty-offer",
        "Offer loyalty sign-up to non-members",
        PLANNED,
        "Recognition as a loyal customer",
        None,
    ),
    (
        "Closing",
        "cl-thank-and-invite",
        "Thank the customer, by name if known, and invite them back",
        STABILIZING,
        "A friendly, personal welcome",
        "Part of the neighbourhood",
    ),
    (
        "Complaint handling",
        "ch-listen-fully",
        "Let the customer finish without interrupting",
        CRITICAL,
        "Being listened to",
        None,
    ),
    (
        "Complaint handling",
        "ch-apologise",
        "Apologise sincerely and acknowledge the impact",
        CRITICAL,
        "Fair treatment when things go wrong",
        None,
    ),
    (
        "Complaint handling",
        "ch-own-the-problem",
        "Take ownership: no passing the customer around",
        CRITICAL,
        "Problems fixed first time",
        "Easy to do business with",
    ),
    (
        "Complaint handling",
        "ch-resolve-first-contact",
        "Resolve within your authority at the first contact",
        CRITICAL,
        "Problems fixed first time",
        None,
    ),
    (
        "Complaint handling",
        "ch-consistent-returns",
        "Apply the returns policy consistently",
        CRITICAL,
        "Hassle-free returns",
        None,
    ),
    (
        "Complaint handling",
        "ch-warm-escalation",
        "Escalate with a warm hand-over when needed",
        CRITICAL,
        "Being kept informed",
        None,
    ),
    (
        "Complaint handling",
        "ch-agree-next-step",
        "Agree the next step and a time-frame",
        CRITICAL,
        "Follow-through on promises",
        None,
    ),
    (
        "Follow-up",
        "fu-callback-on-time",
        "Call back at the time promised",
        PLANNED,
        "Follow-through on promises",
        "Easy to do business with",
    ),
    (
        "Follow-up",
        "fu-order-updates",
        "Update customers proactively on special orders",
        PLANNED,
        "Being kept informed",
        None,
    ),
    (
        "Follow-up",
        "fu-complaint-check",
        "Check satisfaction within 48 hours of a resolved complaint",
        PLANNED,
        "Fair treatment when things go wrong",
        None,
    ),
    (
        "Follow-up",
        "fu-thank-you-note",
        "Send a personal thank-you after high-value purchases",
        PLANNED,
        "Recognition as a loyal customer",
        "Part of the neighbourhood",
    ),
    (
        "Follow-up",
        "fu-service-reminders",
        "Offer reminders for alterations, repairs and collections",
        PLANNED,
        "Being kept informed",
        None,
    ),
    (
        "Follow-up",
        "fu-log-outcome",
        "Log the outcome of every follow-up",
        PLANNED,
        "Follow-through on promises",
        None,
    ),
)
# (name, description, rule, share of customers, interaction weight)
NW_SEGMENTS = (
    (
        "New customers",
        "Lifetime value under $100.",
        [{"field": "lifetime_value", "op": "lt", "value": 100}],
        0.50,
        1,
    ),
    (
        "Regulars",
        "Lifetime value $100-$999.",
        [
            {"field": "lifetime_value", "op": "gte", "value": 100},
            {"field": "lifetime_value", "op": "lt", "value": 1000},
        ],
        0.38,
        3,
    ),
    (
        "VIP",
        "Lifetime value $1,000 or more.",
        [{"field": "lifetime_value", "op": "gte", "value": 1000}],
        0.12,
        8,
    ),
)

# --- Contoso Care ----------------------------------------------------------------------------

CC_TEAMS = ("Billing", "Technical support", "Retention", "Onboarding")
CC_TOUCHPOINTS = (
    ("phone", "ivr-menu", "IVR menu", STABILIZING, 8, False, None, None),
    ("phone", "billing-query", "Billing query", STABILIZING, 22, True, (45, 0.4), "Billing"),
    (
        "phone",
        "tech-support-call",
        "Technical support call",
        STABILIZING,
        18,
        True,
        None,
        "Technical support",
    ),
    ("phone", "complaint-call", "Complaint call", CRITICAL, 6, True, None, "Retention"),
    ("phone", "cancellation-call", "Cancellation request", CRITICAL, 4, True, None, "Retention"),
    ("phone", "onboarding-call", "Onboarding call", PLANNED, 6, True, None, "Onboarding"),
    ("phone", "renewal-call", "Renewal call", PLANNED, 4, True, (360, 0.3), "Retention"),
    ("chat", "chat-enquiry", "General enquiry", STABILIZING, 12, True, None, None),
    ("chat", "chat-outage-report", "Outage report", CRITICAL, 3, True, None, "Technical support"),
    ("email", "email-enquiry", "Email enquiry", STABILIZING, 5, True, None, None),
    ("email", "email-complaint", "Written complaint", CRITICAL, 2, True, None, "Retention"),
    ("email", "welcome-follow-up", "Welcome follow-up", PLANNED, 2, True, None, "Onboarding"),
    ("web", "web-self-service", "Self-service account change", STABILIZING, 6, False, None, None),
    ("web", "web-callback-request", "Callback request", PLANNED, 2, False, None, None),
)
CC_EXPECTATIONS = (
    ("Quick to reach a person", 5),
    ("Not repeating myself", 5),
    ("Clear explanations", 4),
    ("Issue solved on the first contact", 5),
    ("Empathy when things go wrong", 4),
    ("Honest about timescales", 4),
    ("Accurate bills", 5),
    ("Proactive updates", 3),
    ("Easy self-service", 3),
    ("Respectful of my time", 4),
)
CC_BRAND_MESSAGES = (
    ("Here for you, first time", "The person who answers is the person who fixes it."),
    ("Plain English, always", "No jargon, no small print surprises."),
    ("We call back when we say we will", "A promised call-back is an appointment."),
)
CC_STANDARDS = (
    (
        "Greeting",
        "cc-greet-script",
        "Greet with brand, name and an offer to help within 5 seconds",
        STABILIZING,
        "Quick to reach a person",
        "Here for you, first time",
    ),
    (
        "Greeting",
        "cc-verify-once",
        "Verify identity once; never re-ask what the IVR captured",
        STABILIZING,
        "Not repeating myself",
        None,
    ),
    (
        "Greeting",
        "cc-chat-first-reply",
        "Send the first chat reply within 45 seconds",
        STABILIZING,
        "Quick to reach a person",
        None,
    ),
    (
        "Product knowledge",
        "cc-explain-bill",
        "Explain each line of the bill in plain English",
        STABILIZING,
        "Accurate bills",
        "Plain English, always",
    ),
    (
        "Product knowledge",
        "cc-plan-fit",
        "Check the customer is on the best-fit plan",
        PLANNED,
        "Clear explanations",
        None,
    ),
    (
        "Product knowledge",
        "cc-troubleshoot-guide",
        "Follow the troubleshooting guide before booking an engineer",
        STABILIZING,
        "Issue solved on the first contact",
        None,
    ),
    (
        "Product knowledge",
        "cc-self-service-tip",
        "Show how to do it in the app next time",
        STABILIZING,
        "Easy self-service",
        None,
    ),
    (
        "Needs discovery",
        "cc-reason-for-contact",
        "Confirm the real reason for contact before acting",
        STABILIZING,
        "Not repeating myself",
        None,
    ),
    (
        "Needs discovery",
        "cc-anything-else",
        "Ask whether there is anything else before closing",
        STABILIZING,
        "Respectful of my time",
        None,
    ),
    (
        "Needs discovery",
        "cc-retention-why",
        "Understand why a customer wants to leave before offering anything",
        CRITICAL,
        "Respectful of my time",
        None,
    ),
    (
        "Closing",
        "cc-summarise-actions",
        "Summarise what was done and what happens next",
        STABILIZING,
        "Honest about timescales",
        "Plain English, always",
    ),
    (
        "Closing",
        "cc-reference-number",
        "Give a reference number for every open case",
        STABILIZING,
        "Proactive updates",
        None,
    ),
    (
        "Closing",
        "cc-onboarding-checklist",
        "Complete the onboarding checklist on welcome calls",
        PLANNED,
        "Clear explanations",
        None,
    ),
    (
        "Complaint handling",
        "cc-acknowledge-impact",
        "Acknowledge the impact before explaining",
        CRITICAL,
        "Empathy when things go wrong",
        None,
    ),
    (
        "Complaint handling",
        "cc-own-the-case",
        "Own the case until resolved or warmly transferred",
        CRITICAL,
        "Issue solved on the first contact",
        "Here for you, first time",
    ),
    (
        "Complaint handling",
        "cc-goodwill-policy",
        "Apply goodwill credit within policy, consistently",
        CRITICAL,
        "Accurate bills",
        None,
    ),
    (
        "Complaint handling",
        "cc-outage-honesty",
        "Give outage status and restoration estimate honestly",
        CRITICAL,
        "Honest about timescales",
        None,
    ),
    (
        "Follow-up",
        "cc-callback-window",
        "Call back within the promised window",
        PLANNED,
        "Proactive updates",
        "We call back when we say we will",
    ),
    (
        "Follow-up",
        "cc-case-updates",
        "Update open cases at least every 48 hours",
        PLANNED,
        "Proactive updates",
        None,
    ),
    (
        "Follow-up",
        "cc-fix-check",
        "Check the fix worked within seven days",
        PLANNED,
        "Issue solved on the first contact",
        None,
    ),
)
CC_SEGMENTS = (
    ("Pay as you go", "No contract.", [{"field": "plan", "op": "eq", "value": "payg"}], 0.35, 1),
    ("Contract", "12- or 24-month contract.", [{"field": "plan", "op": "eq", "value": "contract"}], 0.45, 2),
    ("Business", "Business accounts.", [{"field": "plan", "op": "eq", "value": "business"}], 0.12, 3),
    (
        "At risk",
        "Contract ending within two months.",
        [
            {"field": "plan", "op": "eq", "value": "contract"},
            {"field": "months_to_renewal", "op": "lt", "value": 2},
        ],
        0.08,
        4,
    ),
)

# (key, email, role, org slug, scope)
PERSONAS = (
    ("admin", "admin@northwind.demo", Role.ORG_ADMIN, "northwind", None),
    ("executive", "exec@northwind.demo", Role.EXECUTIVE, "northwind", None),
    ("regional", "regional@northwind.demo", Role.REGIONAL_MANAGER, "northwind", "region 1"),
    ("manager", "manager@northwind.demo", Role.STORE_MANAGER, "northwind", "store S001"),
    ("employee", "employee@northwind.demo", Role.EMPLOYEE, "northwind", "employee at S001"),
    ("trainer", "trainer@northwind.demo", Role.TRAINER, "northwind", None),
    ("evaluator", "evaluator@northwind.demo", Role.EVALUATOR, "northwind", None),
    ("shopper", "shopper@northwind.demo", Role.SHOPPER, "northwind", None),
    ("outsider", "admin@contoso.demo", Role.ORG_ADMIN, "contoso", "org B outsider"),
    ("cc-manager", "manager@contoso.demo", Role.STORE_MANAGER, "contoso", "contact centre"),
    ("cc-evaluator", "evaluator@contoso.demo", Role.EVALUATOR, "contoso", None),
    ("cc-evaluator-2", "evaluator2@contoso.demo", Role.EVALUATOR, "contoso", None),
    ("cc-evaluator-3", "evaluator3@contoso.demo", Role.EVALUATOR, "contoso", None),
)


def default_logins_file() -> Path:
    return Path(settings.BASE_DIR) / ".local" / "demo_logins.txt"


def scaled(base: int, scale: float) -> int:
    return max(1, round(base * scale))


class Command(BaseCommand):
    help = "Load deterministic demo data (Northwind Retail and Contoso Care) once; --reset reloads it."

    def add_arguments(self, parser):
        parser.add_argument(
            "--seed", type=int, default=DEFAULT_SEED, help=f"Random seed (default {DEFAULT_SEED})."
        )
        parser.add_argument(
            "--scale",
            type=float,
            default=1.0,
            help="Multiply stores, employees, customers and interactions (minimum 1 each).",
        )
        parser.add_argument("--reset", action="store_true", help="Delete both demo organizations first.")
        parser.add_argument(
            "--logins-file",
            default=None,
            help="Where to write the login table (default .local/demo_logins.txt).",
        )

    def handle(self, *args, seed: int, scale: float, reset: bool, logins_file: str | None, **options):
        started = time.monotonic()
        if not 0 < scale <= 10:
            raise CommandError("--scale must be in (0, 10].")
        path = Path(logins_file) if logins_file else default_logins_file()

        if reset:
            deleted = reset_demo()
            self.stdout.write(f"Reset: removed {deleted} demo organization(s) and the demo users.")
        with unscoped():
            existing = set(Organization.objects.filter(slug__in=DEMO_SLUGS).values_list("slug", flat=True))
        if "northwind" in existing:
            self.stdout.write("demo data already loaded")
            self.stdout.write(path.read_text() if path.exists() else f"({path} not found; --reset reloads)")
            return
        if existing:
            raise CommandError(f"Organization(s) {sorted(existing)} exist without 'northwind': use --reset.")

        seeder = Seeder(seed=seed, scale=scale, out=self.stdout)
        text = seeder.run()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        self.stdout.write(text)
        self.stdout.write(f"Logins written to {path}")
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded in {time.monotonic() - started:.1f} s."))


# --- reset -----------------------------------------------------------------------------------


def reset_demo() -> int:
    """Delete the demo organizations, every tenant row they own and the demo users.

    Tenant tables reference each other with PROTECT (interactions → locations, employees …),
    which Django's collector refuses even when both sides go, and it would load 50k rows to
    delete them. Django creates its PostgreSQL foreign keys DEFERRABLE INITIALLY DEFERRED, so
    plain DELETEs per tenant table in one transaction, in any order, are checked together;
    ``SET CONSTRAINTS ALL IMMEDIATE`` then forces that check before the block ends, so a table
    this function missed fails here rather than at some later commit.
    """
    user_model = get_user_model()
    with unscoped(), transaction.atomic():
        org_ids = list(Organization.objects.filter(slug__in=DEMO_SLUGS).values_list("id", flat=True))
        # The points ledger is append-only for the application role: only the owner's purge
        # path may delete it, and only here, for whole organizations (cem/db/purge.py).
        with tenant_purge() as cur:
            cur.execute("SET CONSTRAINTS ALL DEFERRED")
            if org_ids:
                _delete_tenant_rows(cur, org_ids)
            cur.execute("SET CONSTRAINTS ALL IMMEDIATE")
        emails = [p[1] for p in PERSONAS] + [SUPERUSER_EMAIL]
        user_model.objects.filter(username__in=emails).delete()
    return len(org_ids)


def _delete_tenant_rows(cur, org_ids: list[int]) -> None:
    from django.apps import apps

    tenants = [m for m in tenant_models() if m is not Organization]
    tenant_set = {*tenants, Organization}

    def org_column(model) -> str:
        return model._meta.get_field(model.TENANT_FIELD.removesuffix("_id")).column

    # Rows outside the tenant tables that point into them (auto-created many-to-many tables,
    # or some other app's global table) go first, or the deferred check would fail.
    for model in apps.get_models(include_auto_created=True):
        if model in tenant_set or not model._meta.managed:
            continue
        for fk in model._meta.concrete_fields:
            target = fk.related_model if fk.is_relation and fk.many_to_one else None
            if target not in tenant_set:
                continue
            subquery = sql.SQL("SELECT {pk} FROM {t} WHERE {org} = ANY(%s)").format(
                pk=sql.Identifier(target._meta.pk.column),
                t=sql.Identifier(target._meta.db_table),
                org=sql.Identifier(org_column(target)),
            )
            if fk.null and fk.remote_field.on_delete is models.SET_NULL:
                statement = "UPDATE {t} SET {c} = NULL WHERE {c} IN ({sub})"
            else:
                statement = "DELETE FROM {t} WHERE {c} IN ({sub})"
            cur.execute(
                sql.SQL(statement).format(
                    t=sql.Identifier(model._meta.db_table), c=sql.Identifier(fk.column), sub=subquery
                ),
                [org_ids],
            )
    for model in tenants:
        cur.execute(
            sql.SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                sql.Identifier(model._meta.db_table), sql.Identifier(org_column(model))
            ),
            [org_ids],
        )
    cur.execute("DELETE FROM cem_organization WHERE id = ANY(%s)", [org_ids])


# --- outbox kicks ----------------------------------------------------------------------------


def broker_reachable() -> bool:
    """True when Celery runs eagerly or one quick connection to the broker succeeds."""
    from cem.celery import app

    if app.conf.task_always_eager:
        return True
    try:
        with app.connection_for_write(connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
    except Exception:  # kombu wraps some failures, not all; any failure means "down"
        return False
    return True


@contextmanager
def kicks_left_to_sweep(enabled: bool):
    """Drop the on-commit callbacks queued inside the block (only the outbox kicks are queued).

    Must run inside the seed's transaction. Touches ``connection.run_on_commit``, the list
    Django's own ``captureOnCommitCallbacks`` reads: there is no public API to cancel a
    callback, and the alternative is ~0.6 s of kombu connection retries per event.
    """
    conn = transaction.get_connection()
    mark = len(conn.run_on_commit)
    dropped = []
    try:
        yield dropped
    finally:
        if enabled:
            dropped.extend(conn.run_on_commit[mark:])
            del conn.run_on_commit[mark:]


# --- the seed --------------------------------------------------------------------------------


class Seeder:
    def __init__(self, *, seed: int, scale: float, out):
        self.seed, self.scale, self.out = seed, scale, out
        self.rng = random.Random(seed)
        self.actor = Actor.system()
        self.password_hash = ""
        self.logins: list[tuple[str, str, str, str]] = []
        self.api_key = ""
        self.summary: dict[str, dict[str, int]] = {}
        self.misaligned: list[tuple[str, str, str]] = []  # (code, name, region) at Northwind

    def step(self, label: str, started: float) -> None:
        self.out.write(f"  {label:<44} {time.monotonic() - started:6.1f} s")

    def run(self) -> str:
        t0 = time.monotonic()
        # One PBKDF2 hash (~0.4 s) shared by every demo user instead of one per user.
        self.password_hash = make_password(PASSWORD)
        broker_up = broker_reachable()
        with transaction.atomic(), kicks_left_to_sweep(enabled=not broker_up) as dropped:
            with unscoped():
                northwind = self.organization("Northwind Retail", "northwind", "America/New_York", "en")
                contoso = self.organization("Contoso Care", "contoso", "Europe/London", "en")
            with tenant_context(northwind):
                self.seed_northwind(northwind)
                self.seed_feedback(northwind, "Northwind Retail")
                self.seed_audits(northwind, "Northwind Retail")
                self.seed_learning(northwind, "Northwind Retail")
                self.seed_incentives(northwind, "Northwind Retail")
                self.seed_bonus(northwind, "Northwind Retail")
                self.seed_alignment(northwind, "Northwind Retail")
                self.finish_alignment(northwind, "Northwind Retail")
            self.step("Northwind Retail", t0)
            with tenant_context(contoso):
                self.seed_contoso(contoso)
                self.seed_feedback(contoso, "Contoso Care")
                self.seed_audits(contoso, "Contoso Care")
                self.finish_alignment(contoso, "Contoso Care")
            self.step("Contoso Care", t0)
            self.superuser()
        if dropped:
            self.out.write(
                f"  broker unreachable: {len(dropped)} outbox kick(s) skipped; the events stay "
                "pending until the events-sweep beat task delivers them"
            )
        return self.logins_text()

    def seed_feedback(self, org, label: str) -> None:
        """Surveys, six months of responses, cases and alert rules (feedback/demo.py)."""
        from feedback.demo import seed_feedback

        counts = seed_feedback(org, seed=self.seed, scale=self.scale, actor=self.actor, step=self.step)
        self.summary[label].update({f"feedback {k}": v for k, v in counts.items()})

    def seed_audits(self, org, label: str) -> None:
        """Mystery shopping (Northwind) and call monitoring (Contoso) history (audits/demo.py)."""
        from audits.demo import seed_audits

        counts = seed_audits(org, seed=self.seed, scale=self.scale, actor=self.actor, step=self.step)
        self.summary[label].update({f"audits {k}": v for k, v in counts.items()})

    def seed_learning(self, org, label: str) -> None:
        """Lessons, quizzes, paths, gap rules and six months of assignments (learning/demo.py)."""
        from learning.demo import seed_learning

        counts = seed_learning(org, seed=self.seed, scale=self.scale, actor=self.actor, step=self.step)
        self.summary[label].update({f"learning {k}": v for k, v in counts.items()})

    def seed_incentives(self, org, label: str) -> None:
        """Rules, budgets, catalogue, ~50,000 awards from the history, redemptions (incentives/demo.py)."""
        from incentives.demo import seed_incentives

        counts = seed_incentives(org, seed=self.seed, scale=self.scale, actor=self.actor, step=self.step)
        self.summary[label].update(counts)

    def seed_bonus(self, org, label: str) -> None:
        """Bonus periods: last quarter closed and approved, this quarter open (incentives/bonus_demo.py)."""
        from incentives.bonus_demo import seed_bonus

        counts = seed_bonus(org, actor=self.actor, now=timezone.now(), step=self.step)
        self.summary[label].update(counts)

    def seed_alignment(self, org, label: str) -> None:
        """Business metrics, CRM transactions and journey maps (alignment/demo.py)."""
        from alignment.demo import seed_alignment

        counts = seed_alignment(org, seed=self.seed, scale=self.scale, actor=self.actor, step=self.step)
        self.summary[label].update(counts)
        misaligned = Location.objects.filter(code__in=counts.get("misaligned stores", ())).order_by("code")
        self.misaligned = [(s.code, s.name, s.region.name) for s in misaligned.select_related("region")]

    def finish_alignment(self, org, label: str) -> None:
        """The rollup built from everything loaded, and the alignment scores (alignment/demo.py)."""
        from alignment.demo import finish_alignment

        self.summary[label].update(finish_alignment(org, step=self.step))

    # --- shared building blocks -------------------------------------------------------------

    def organization(self, name: str, slug: str, time_zone: str, locale: str) -> Organization:
        org = Organization(name=name, slug=slug, time_zone=time_zone, locale=locale)
        org.full_clean()
        org.save()
        return org

    def create(self, org, model, **data):
        return services.record_create(organization=org, actor=self.actor, model=model, data=data)

    def reference_data(self, org, channels, touchpoints, expectations, brand_messages, standards, segments):
        channel_objs = {
            code: self.create(org, Channel, code=code, name=CHANNEL_NAMES[code], kind=code)
            for code in channels
        }
        tps, order = [], {}
        for channel, code, name, category, weight, staffed, amount, team in touchpoints:
            order[channel] = order.get(channel, 0) + 1
            tp = self.create(
                org,
                Touchpoint,
                channel=channel_objs[channel],
                code=code,
                name=name,
                category=category,
                journey_order=order[channel],
            )
            tps.append((tp, channel, weight, staffed, amount, team))
        skills = {
            name: self.create(org, SkillCategory, name=name, description=description)
            for name, description in SKILL_CATEGORIES
        }
        exps = {
            name: self.create(org, CustomerExpectation, name=name, importance=importance)
            for name, importance in expectations
        }
        brands = {
            title: self.create(org, BrandMessage, title=title, text=text) for title, text in brand_messages
        }
        for skill, code, title, category, expectation, brand in standards:
            self.create(
                org,
                Standard,
                code=code,
                title=title,
                skill_category=skills[skill],
                expectation=exps[expectation],
                brand_message=brands.get(brand),
                category=category,
            )
        segs = [
            (self.create(org, Segment, name=name, description=description, rule=rule), share, weight)
            for name, description, rule, share, weight in segments
        ]
        return tps, segs

    def person_name(self) -> tuple[str, str]:
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def employee(self, org, *, external_id, role, domain, location, team, start_date, email=None):
        first, last = self.person_name()
        email = email or f"{first}.{last}.{external_id}@{domain}".lower().replace("'", "")
        return services.employee_create(
            organization=org,
            actor=self.actor,
            location=location,
            team=team,
            start_date=start_date,
            data={"name": f"{first} {last}", "email": email, "external_id": external_id, "role": role},
        )

    def customers(self, org, prefix: str, count: int, segments, locales, phone_prefix: str):
        """Bulk-create customers (the one bulk write: thousands of plain rows, one summary audit row)."""
        rng = self.rng
        seg_objs = [s for s, _, _ in segments]
        picks = rng.choices(range(len(segments)), weights=[share for _, share, _ in segments], k=count)
        now = timezone.now()
        rows, weights, refs = [], [], []
        for n, seg_index in enumerate(picks, start=1):
            ref = f"{prefix}-C{n:06d}"
            opted_out = rng.random() < 0.03
            rows.append(
                Customer(
                    organization_id=org.pk,
                    external_id=ref,
                    segment=seg_objs[seg_index],
                    email=f"{ref.lower()}@example.com" if rng.random() < 0.85 else "",
                    phone=f"{phone_prefix}{rng.randrange(10**6, 10**7)}" if rng.random() < 0.7 else "",
                    locale=rng.choices(locales[0], weights=locales[1])[0],
                    consent_email=rng.random() < 0.7,
                    consent_sms=rng.random() < 0.4,
                    opted_out_at=now - dt.timedelta(days=rng.randint(1, 365)) if opted_out else None,
                )
            )
            refs.append(ref)
            weights.append(segments[seg_index][2])
        Customer.objects.bulk_create(rows, batch_size=2000)
        # Their consent as an import records it: channel, time and source (cem.privacy).
        ConsentRecord.objects.bulk_create(
            imported_consent_records(rows, at=now, detail="demo data import"), batch_size=5000
        )
        return refs, list(_accumulate(weights))

    def ingest(self, org, rows: list[dict]) -> int:
        created = 0
        for start in range(0, len(rows), INGEST_BATCH):
            batch = rows[start : start + INGEST_BATCH]
            results = interactions_ingest(organization=org, actor=self.actor, rows=batch)
            errors = [r.as_dict() for r in results if r.status == "error"]
            if errors:
                raise CommandError(f"ingest rejected {len(errors)} row(s), first: {errors[0]}")
            created += sum(r.status == "created" for r in results)
        return created

    def day_weights(self, tz, weekday_factor) -> tuple[list[dt.date], list[float]]:
        """The last HISTORY_DAYS days (not today) with weekly rhythm, growth and a holiday peak."""
        today = timezone.now().astimezone(tz).date()
        days = [today - dt.timedelta(days=d) for d in range(HISTORY_DAYS, 0, -1)]
        weights = []
        for i, day in enumerate(days):
            w = weekday_factor[day.weekday()] * (0.85 + 0.3 * i / len(days))
            if (day.month == 11 and day.day >= 20) or (day.month == 12 and day.day <= 24):
                w *= 1.6
            weights.append(w)
        return days, list(_accumulate(weights))

    def audit_summary(self, org, counts: dict) -> None:
        services.audit_log_write(
            organization=org,
            actor=self.actor,
            action="seed_demo.load",
            object_type="cem.Organization",
            object_id=org.pk,
            changes={"seed": self.seed, "scale": self.scale, **counts},
        )

    def member(self, org, key: str, email: str, role: str, scope_label: str | None, **scope):
        user_model = get_user_model()
        # Users are global (not tenant rows); pre-create them with the shared hash so
        # membership_create (which reuses an existing user by username) skips set_password.
        user, _ = user_model.objects.get_or_create(username=email, defaults={"email": email})
        user.password = self.password_hash
        user.first_name = key.replace("-", " ").title()
        user.last_name = "(demo)"
        user.save()
        services.membership_create(organization=org, actor=self.actor, email=email, role=role, **scope)
        role_label = role if scope_label is None else f"{role} ({scope_label})"
        self.logins.append((key, email, role_label, org.name))

    # --- Northwind Retail -------------------------------------------------------------------

    def seed_northwind(self, org) -> None:
        rng, t0 = self.rng, time.monotonic()
        tz = zoneinfo.ZoneInfo(org.time_zone)
        today = timezone.now().astimezone(tz).date()
        tps, segments = self.reference_data(
            org,
            list(CHANNEL_NAMES),
            NW_TOUCHPOINTS,
            NW_EXPECTATIONS,
            NW_BRAND_MESSAGES,
            NW_STANDARDS,
            NW_SEGMENTS,
        )
        self.step("northwind: reference data and standards", t0)

        n_stores = min(scaled(30, self.scale), 30)
        regions = [self.create(org, Region, code=code, name=name) for code, name, _ in NW_REGIONS]
        stores, teams = [], {}
        for i in range(n_stores):
            region_index = i * len(NW_REGIONS) // n_stores
            city, state, zip_code, lat, lon = NW_REGIONS[region_index][2][i % 10]
            store = self.create(
                org,
                Location,
                region=regions[region_index],
                code=f"S{i + 1:03d}",
                name=f"Northwind {city}",
                kind=Location.Kind.STORE,
                address=f"{rng.randint(10, 9899)} {rng.choice(STREETS)}, {city}, {state} {zip_code}",
                latitude=Decimal(f"{lat + rng.uniform(-0.04, 0.04):.6f}"),
                longitude=Decimal(f"{lon + rng.uniform(-0.04, 0.04):.6f}"),
            )
            stores.append(store)
            for name in NW_TEAMS:
                teams[store.pk, name] = self.create(org, Team, location=store, name=name)
        self.step(f"northwind: {len(regions)} regions, {n_stores} stores, {len(teams)} teams", t0)

        # Employees: blocks of ~10 per store; the first of a block manages the store, the next
        # two supervise, the rest are associates spread over the teams.
        n_employees = max(scaled(300, self.scale), n_stores)
        roster: dict[int, list] = {s.pk: [] for s in stores}  # store → [[ext id, role, team, from, to]]
        # The "employee" persona is S001's fourth employee (an associate), or its last if smaller.
        persona_k = min(3, math.ceil(n_employees / n_stores) - 1)
        persona_employee = store_manager_s001 = None
        position: dict[int, int] = {}
        employees = []
        for i in range(n_employees):
            store = stores[i * n_stores // n_employees]
            k = position[store.pk] = position.get(store.pk, -1) + 1
            role = (
                Employee.Role.STORE_MANAGER
                if k == 0
                else Employee.Role.SUPERVISOR
                if k <= 2
                else Employee.Role.ASSOCIATE
            )
            team = None if k == 0 else teams[store.pk, NW_TEAMS[k % len(NW_TEAMS)]]
            external_id = f"E{i + 1:04d}"
            is_persona = store is stores[0] and k == persona_k
            start = today - dt.timedelta(days=rng.randint(HISTORY_DAYS + 10, 3000))
            emp = self.employee(
                org,
                external_id=external_id,
                role=role,
                domain="northwind.demo",
                location=store,
                team=team,
                start_date=start,
                email="employee@northwind.demo" if is_persona and k > 0 else None,
            )
            if is_persona:
                persona_employee = emp
            if store is stores[0] and k == 0:
                store_manager_s001 = emp
            employees.append((emp, store, team))
            roster[store.pk].append([external_id, role, team.name if team else None, None, None])

        # A few associates transferred between stores 75 days ago: history via employee_move.
        moved_on = today - dt.timedelta(days=75)
        movers = [
            e for e in employees if e[0].role == Employee.Role.ASSOCIATE and e[0] is not persona_employee
        ]
        n_movers = min(len(movers), max(0, round(n_employees / 100))) if n_stores > 1 else 0
        for emp, old_store, team in rng.sample(movers, n_movers):
            new_store = rng.choice([s for s in stores if s is not old_store])
            new_team = teams[new_store.pk, team.name]
            services.employee_move(
                organization=org,
                actor=self.actor,
                employee=emp,
                location=new_store,
                team=new_team,
                start_date=moved_on,
            )
            entry = next(r for r in roster[old_store.pk] if r[0] == emp.external_id)
            entry[4] = moved_on
            roster[new_store.pk].append([emp.external_id, emp.role, team.name, moved_on, None])
        self.step(f"northwind: {n_employees} employees ({n_movers} moved)", t0)

        n_customers = scaled(3000, self.scale)
        refs, customer_cum = self.customers(
            org, "NW", n_customers, segments, (("en-US", "es-US"), (85, 15)), "+1555"
        )
        self.step(f"northwind: {n_customers} customers", t0)

        rows = self.retail_interactions(
            org, tz, stores, roster, tps, refs, customer_cum, scaled(40_000, self.scale)
        )
        created = self.ingest(org, rows)
        self.step(f"northwind: {created} interactions", t0)

        region1, s001 = regions[0], stores[0]
        for key, email, role, slug, scope_label in PERSONAS:
            if slug != "northwind":
                continue
            scope = {}
            if role == Role.REGIONAL_MANAGER:
                scope, scope_label = {"region": region1}, f"region {region1.name}"
            elif role == Role.STORE_MANAGER:
                scope, scope_label = {"location": s001, "employee": store_manager_s001}, f"store {s001.code}"
            elif role == Role.EMPLOYEE:
                scope = {"employee": persona_employee}
                scope_label = f"{persona_employee.external_id} {persona_employee.name} at {s001.code}"
            self.member(org, key, email, role, scope_label, **scope)
        _, self.api_key = services.api_key_create(
            organization=org, actor=self.actor, name="Demo integrator", scopes=["*"]
        )
        counts = {
            "regions": len(regions),
            "stores": n_stores,
            "teams": len(teams),
            "employees": n_employees,
            "transfers": n_movers,
            "customers": n_customers,
            "interactions": created,
            "standards": len(NW_STANDARDS),
        }
        self.audit_summary(org, counts)
        self.summary["Northwind Retail"] = counts

    def retail_interactions(self, org, tz, stores, roster, tps, refs, customer_cum, count) -> list[dict]:
        rng = self.rng
        days, day_cum = self.day_weights(tz, (1.0, 0.9, 0.95, 1.0, 1.2, 1.5, 1.25))
        hours = list(range(9, 21))
        hour_cum = list(_accumulate((3, 5, 7, 9, 10, 9, 8, 8, 9, 10, 8, 5)))
        store_cum = list(_accumulate(rng.lognormvariate(0, 0.35) for _ in stores))
        tp_cum = list(_accumulate(t[2] for t in tps))
        pick_store = rng.choices(range(len(stores)), cum_weights=store_cum, k=count)
        pick_tp = rng.choices(range(len(tps)), cum_weights=tp_cum, k=count)
        pick_day = rng.choices(days, cum_weights=day_cum, k=count)
        pick_hour = rng.choices(hours, cum_weights=hour_cum, k=count)
        rows = []
        for n in range(count):
            store = stores[pick_store[n]]
            tp, channel, _, staffed, amount, team = tps[pick_tp[n]]
            day = pick_day[n]
            occurred = dt.datetime(
                day.year, day.month, day.day, pick_hour[n], rng.randrange(60), rng.randrange(60), tzinfo=tz
            )
            row = {
                "external_id": f"NW-I{n + 1:07d}",
                "occurred_at": occurred,
                "location": store.code,
                "touchpoint": tp.code,
            }
            # Share of anonymous contacts: browsing in store is often anonymous, buying less so.
            anonymous = 0.02 if channel != "in_store" else 0.2 if amount else 0.45
            if rng.random() >= anonymous:
                row["customer"] = refs[_pick(rng, customer_cum)]
            if staffed:
                staff = _staff(rng, roster[store.pk], day, team)
                if staff and tp.category == CRITICAL and rng.random() < 0.3:
                    boss = _staff(rng, roster[store.pk], day, None, roles=("supervisor", "store_manager"))
                    staff = staff + boss if boss and boss != staff else staff
                row["employees"] = staff
            if amount:
                row["amount"] = f"{rng.lognormvariate(math.log(amount[0]), amount[1]):.2f}"
            attributes = {}
            if tp.code in ("store-checkout", "web-checkout", "app-order"):
                attributes["basket_items"] = 1 + int(rng.expovariate(0.45))
            elif channel == "phone":
                attributes["duration_s"] = int(rng.lognormvariate(math.log(240), 0.5))
            if tp.category == CRITICAL:
                attributes["resolved_first_contact"] = rng.random() < 0.68
            if attributes:
                row["attributes"] = attributes
            rows.append(row)
        return rows

    # --- Contoso Care -----------------------------------------------------------------------

    def seed_contoso(self, org) -> None:
        rng, t0 = self.rng, time.monotonic()
        tz = zoneinfo.ZoneInfo(org.time_zone)
        today = timezone.now().astimezone(tz).date()
        tps, segments = self.reference_data(
            org,
            ["phone", "chat", "email", "web"],
            CC_TOUCHPOINTS,
            CC_EXPECTATIONS,
            CC_BRAND_MESSAGES,
            CC_STANDARDS,
            CC_SEGMENTS,
        )
        region = self.create(org, Region, code="uk", name="United Kingdom")
        centre = self.create(
            org,
            Location,
            region=region,
            code="CC-MAN",
            name="Contoso Care Manchester",
            kind=Location.Kind.CONTACT_CENTRE,
            address="1 Piccadilly Gardens, Manchester M1 1RG, United Kingdom",
            latitude=Decimal("53.480800"),
            longitude=Decimal("-2.242600"),
        )
        teams = {name: self.create(org, Team, location=centre, name=name) for name in CC_TEAMS}
        self.step("contoso: reference data, centre and teams", t0)

        # 80 people: a centre manager, a supervisor per team, and agents spread over the teams.
        n_agents = scaled(80, self.scale)
        roster = []
        manager = None
        for i in range(n_agents):
            if i == 0:
                role, team = Employee.Role.STORE_MANAGER, None
            elif i <= len(CC_TEAMS):
                role, team = Employee.Role.SUPERVISOR, teams[CC_TEAMS[i - 1]]
            else:
                role, team = Employee.Role.AGENT, teams[CC_TEAMS[i % len(CC_TEAMS)]]
            start = today - dt.timedelta(days=rng.randint(HISTORY_DAYS + 10, 2000))
            emp = self.employee(
                org,
                external_id=f"C{i + 1:04d}",
                role=role,
                domain="contoso.demo",
                location=centre,
                team=team,
                start_date=start,
            )
            manager = manager or emp
            roster.append([emp.external_id, role, team.name if team else None, None, None])
        self.step(f"contoso: {n_agents} agents", t0)

        n_customers = scaled(1200, self.scale)
        refs, customer_cum = self.customers(org, "CC", n_customers, segments, (("en-GB",), (1,)), "+447700")
        rows = self.contact_centre_interactions(
            tz, centre, roster, tps, refs, customer_cum, scaled(10_000, self.scale)
        )
        created = self.ingest(org, rows)
        self.step(f"contoso: {n_customers} customers, {created} interactions", t0)

        for key, email, role, slug, scope_label in PERSONAS:
            if slug != "contoso":
                continue
            scope = {"location": centre, "employee": manager} if role == Role.STORE_MANAGER else {}
            self.member(org, key, email, role, scope_label, **scope)
        counts = {
            "regions": 1,
            "locations": 1,
            "teams": len(teams),
            "employees": n_agents,
            "customers": n_customers,
            "interactions": created,
            "standards": len(CC_STANDARDS),
        }
        self.audit_summary(org, counts)
        self.summary["Contoso Care"] = counts

    def contact_centre_interactions(self, tz, centre, roster, tps, refs, customer_cum, count) -> list[dict]:
        rng = self.rng
        days, day_cum = self.day_weights(tz, (1.3, 1.1, 1.0, 1.0, 0.95, 0.5, 0.3))
        hours = list(range(8, 20))
        hour_cum = list(_accumulate((6, 9, 10, 9, 7, 7, 8, 8, 7, 6, 4, 3)))
        tp_cum = list(_accumulate(t[2] for t in tps))
        pick_tp = rng.choices(range(len(tps)), cum_weights=tp_cum, k=count)
        pick_day = rng.choices(days, cum_weights=day_cum, k=count)
        pick_hour = rng.choices(hours, cum_weights=hour_cum, k=count)
        rows = []
        for n in range(count):
            tp, channel, _, staffed, amount, team = tps[pick_tp[n]]
            day = pick_day[n]
            occurred = dt.datetime(
                day.year, day.month, day.day, pick_hour[n], rng.randrange(60), rng.randrange(60), tzinfo=tz
            )
            row = {
                "external_id": f"CC-I{n + 1:07d}",
                "occurred_at": occurred,
                "location": centre.code,
                "touchpoint": tp.code,
            }
            if rng.random() >= 0.05:
                row["customer"] = refs[_pick(rng, customer_cum)]
            if staffed:
                row["employees"] = _staff(rng, roster, day, team, roles=("agent", "supervisor"))
            if amount:
                row["amount"] = f"{rng.lognormvariate(math.log(amount[0]), amount[1]):.2f}"
            attributes = {}
            if channel == "phone":
                attributes["duration_s"] = int(rng.lognormvariate(math.log(360 if staffed else 60), 0.5))
                attributes["wait_s"] = int(rng.expovariate(1 / 70))
            elif channel == "chat":
                attributes["messages"] = 2 + int(rng.expovariate(0.15))
            if tp.category == CRITICAL:
                attributes["resolved_first_contact"] = rng.random() < 0.61
            if attributes:
                row["attributes"] = attributes
            rows.append(row)
        return rows

    # --- the rest ---------------------------------------------------------------------------

    def superuser(self) -> None:
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=SUPERUSER_EMAIL, defaults={"email": SUPERUSER_EMAIL}
        )
        user.password = self.password_hash
        user.is_staff = user.is_superuser = True
        user.first_name, user.last_name = "Platform", "Staff (demo)"
        user.save()
        self.logins.append(("staff", SUPERUSER_EMAIL, "superuser (/admin/, no membership)", "-"))

    def logins_text(self) -> str:
        header = ("persona", "email", "password", "role", "org")
        table = [header] + [(key, email, PASSWORD, role, org) for key, email, role, org in self.logins]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines = [f"CEM demo logins (seed {self.seed}, scale {self.scale:g})", ""]
        for i, row in enumerate(table):
            lines.append("  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)).rstrip())
            if i == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines += [
            "",
            "Integrator API key (Northwind Retail, scopes ['*']; send as 'Authorization: Bearer <key>'):",
            self.api_key,
            "",
        ]
        if self.misaligned:
            lines += [
                "Misaligned stores at Northwind Retail (strong audits, weak customer scores on the same "
                "standards; /alignment/):",
                *(
                    f"  {code} {name}, region {region}"
                    + (" - store manager persona manager@northwind.demo" if code == "S001" else "")
                    for code, name, region in self.misaligned
                ),
                "  The regional manager regional@northwind.demo sees S001 among their stores; "
                "exec@northwind.demo sees all of them.",
                "",
            ]
        for org, counts in self.summary.items():
            figures = (f"{v} {k}" for k, v in counts.items() if not isinstance(v, list))
            lines.append(f"{org}: " + ", ".join(figures))
        return "\n".join(lines) + "\n"


def _accumulate(values):
    total = 0.0
    for v in values:
        total += v
        yield total


def _pick(rng: random.Random, cum_weights: list[float]) -> int:
    return min(bisect_right(cum_weights, rng.random() * cum_weights[-1]), len(cum_weights) - 1)


def _staff(rng: random.Random, roster: list, day: dt.date, team: str | None, roles=None) -> list[str]:
    """One employee who worked there that day, preferring the touchpoint's team."""
    on_duty = [
        r
        for r in roster
        if (r[3] is None or r[3] <= day) and (r[4] is None or day < r[4]) and (roles is None or r[1] in roles)
    ]
    if team is not None:
        on_duty = [r for r in on_duty if r[2] == team] or on_duty
    return [rng.choice(on_duty)[0]] if on_duty else []
