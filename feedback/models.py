"""Surveys, invitations, responses and the cases that close the loop.

Answers carry the dimensions dashboards group by (location, employee, channel, touchpoint,
segment, submitted_at), copied from their response when written, so metrics over millions of
answers need no joins. Like interactions, the answer and response tables are high-volume facts:
their references are enforced by the services that write them (``fact_fk``), not by database
foreign keys.
"""

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from cem.models import (
    Channel,
    Customer,
    Employee,
    Interaction,
    InteractionCategory,
    Location,
    Segment,
    Standard,
    Touchpoint,
)
from cem.tenancy import TenantModel


def fact_fk(to, *, on_delete, **kwargs):
    return models.ForeignKey(to, on_delete=on_delete, db_constraint=False, db_index=False, **kwargs)


def public_token() -> str:
    return secrets.token_urlsafe(24)


class DeliveryChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    IVR = "ivr", "IVR / phone"


class ResponseSource(models.TextChoices):
    EMAIL = "email", "Email invitation"
    SMS = "sms", "SMS invitation"
    IVR = "ivr", "IVR / phone"
    QR = "qr", "QR code / anonymous link"
    WIDGET = "widget", "Web / app pop-up"
    API = "api", "API"


class QuestionType(models.TextChoices):
    NPS = "nps", "NPS (0–10)"
    CSAT = "csat", "CSAT (1–5)"
    CES = "ces", "CES (1–7)"
    FCR = "fcr", "First contact resolution (yes/no)"
    RATING = "rating", "Rating scale"
    SINGLE = "single", "Single choice"
    MULTI = "multi", "Multiple choice"
    TEXT = "text", "Free text"


# The fixed scales; "rating" uses the question's own scale_min / scale_max.
QUESTION_SCALES = {
    QuestionType.NPS: (0, 10),
    QuestionType.CSAT: (1, 5),
    QuestionType.CES: (1, 7),
    QuestionType.FCR: (0, 1),  # 1 = yes, 0 = no
}


class Survey(TenantModel):
    """A survey and its distribution settings. Its questions live in versions."""

    SCOPE_PATHS = None  # reference data

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        ARCHIVED = "archived", "Archived"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    default_locale = models.CharField(max_length=16, default="en")
    locales = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    # Distribution
    delivery_channel = models.CharField(
        max_length=8, choices=DeliveryChannel.choices, default=DeliveryChannel.EMAIL
    )
    send_delay_minutes = models.PositiveIntegerField(default=60)
    reminder_after_days = models.PositiveSmallIntegerField(null=True, blank=True, default=3)
    expires_after_days = models.PositiveSmallIntegerField(default=7, validators=[MinValueValidator(1)])
    # Embeddable widget: a public key (not a secret) and the web origins allowed to post.
    public_key = models.CharField(max_length=40, unique=True, default=public_token)
    allowed_origins = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="survey_name_uniq")]

    def __str__(self):
        return self.name


class SurveyTrigger(TenantModel):
    """Attach a survey to a channel and/or touchpoint: "after a store visit", "after a support call"."""

    SCOPE_PATHS = None

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="triggers")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    touchpoint = models.ForeignKey(
        Touchpoint, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.CheckConstraint(
                condition=Q(channel__isnull=False) | Q(touchpoint__isnull=False), name="trigger_needs_target"
            ),
            models.UniqueConstraint(
                fields=["organization", "survey", "channel", "touchpoint"],
                name="trigger_uniq",
                nulls_distinct=False,
            ),
        ]


class SurveyVersion(TenantModel):
    """An immutable-once-answered set of questions. Editing an answered survey makes a new one."""

    SCOPE_PATHS = None

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta(TenantModel.Meta):
        ordering = ["survey_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "survey", "number"], name="survey_version_uniq")
        ]

    def __str__(self):
        return f"{self.survey} v{self.number}"


class Question(TenantModel):
    """One question of one version. ``key`` is its identity across versions (reports combine on it)."""

    SCOPE_PATHS = None

    version = models.ForeignKey(SurveyVersion, on_delete=models.CASCADE, related_name="questions")
    key = models.SlugField(max_length=60)
    position = models.PositiveSmallIntegerField(default=0)
    page = models.PositiveSmallIntegerField(default=1)
    type = models.CharField(max_length=8, choices=QuestionType.choices)
    required = models.BooleanField(default=False)
    # {"en": "How likely…", "es": "¿Qué probabilidad…"}; missing locales fall back to the default.
    text = models.JSONField(default=dict)
    help_text = models.JSONField(default=dict, blank=True)
    # single/multi: [{"value": "price", "label": {"en": "Price", "es": "Precio"}}, …]
    choices = models.JSONField(default=list, blank=True)
    scale_min = models.SmallIntegerField(null=True, blank=True)
    scale_max = models.SmallIntegerField(null=True, blank=True)
    standard = models.ForeignKey(Standard, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # Skip logic: show only if {"question": <key>, "op": "eq"|"ne"|"in"|"lte"|"gte", "value": …} holds.
    show_if = models.JSONField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["version_id", "page", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "version", "key"], name="question_key_uniq"),
        ]

    def __str__(self):
        return self.key


class Invitation(TenantModel):
    """A personal, single-use link sent after an interaction. Only a hash of the token is stored."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    class Status(models.TextChoices):
        SCHEDULED = "scheduled", "Scheduled"
        SENT = "sent", "Sent"
        RESPONDED = "responded", "Responded"
        EXPIRED = "expired", "Expired"
        SUPPRESSED = "suppressed", "Suppressed (contact rules)"
        FAILED = "failed", "Failed"

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="invitations")
    version = models.ForeignKey(SurveyVersion, on_delete=models.PROTECT, related_name="+")
    interaction = fact_fk(Interaction, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    delivery_channel = models.CharField(max_length=8, choices=DeliveryChannel.choices)
    locale = models.CharField(max_length=16, default="en")
    token_hash = models.CharField(max_length=64, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    suppressed_reason = models.CharField(max_length=200, blank=True)
    send_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    reminder_due_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    responded_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        constraints = [
            # One invitation per interaction and survey, however often the event is delivered.
            models.UniqueConstraint(
                fields=["organization", "survey", "interaction"],
                name="invitation_once_per_interaction",
                condition=Q(interaction__isnull=False),
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "send_at"], name="invitation_org_status_send"),
            models.Index(
                fields=["organization", "customer", "created_at"], name="invitation_org_cust_created"
            ),
        ]


class AnonymousLink(TenantModel):
    """A public link (printed as a QR code) for in-store feedback at one location/touchpoint."""

    SCOPE_PATHS = {"region": "location__region", "location": "location"}

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="anonymous_links")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    touchpoint = models.ForeignKey(
        Touchpoint, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    token = models.CharField(max_length=40, unique=True, default=public_token)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "survey", "location"], name="anonlink_org_survey_loc")
        ]


class Response(TenantModel):
    """One submitted survey. Dimensions are copied from the interaction / link when written."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    organization = fact_fk("cem.Organization", on_delete=models.CASCADE, related_name="+")
    survey = fact_fk(Survey, on_delete=models.PROTECT, related_name="responses")
    version = fact_fk(SurveyVersion, on_delete=models.PROTECT, related_name="+")
    invitation = fact_fk(Invitation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    interaction = fact_fk(Interaction, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    external_id = models.CharField(max_length=100, null=True, blank=True)
    source = models.CharField(max_length=8, choices=ResponseSource.choices)
    locale = models.CharField(max_length=16, default="en")
    submitted_at = models.DateTimeField()
    location = fact_fk(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    channel = fact_fk(Channel, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    touchpoint = fact_fk(Touchpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = fact_fk(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    customer = fact_fk(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    segment = fact_fk(Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)
    # Ballot-stuffing defence for anonymous sources: keyed hashes, never the raw IP or cookie.
    device_hash = models.CharField(max_length=64, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-submitted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"],
                name="response_external_id_uniq",
                condition=Q(external_id__isnull=False),
            ),
            models.UniqueConstraint(
                fields=["organization", "invitation"],
                name="response_once_per_invitation",
                condition=Q(invitation__isnull=False),
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "submitted_at"], name="response_org_submitted"),
            models.Index(
                fields=["organization", "location", "submitted_at"], name="response_org_loc_submitted"
            ),
            models.Index(
                fields=["organization", "survey", "submitted_at"], name="response_org_survey_submitted"
            ),
            models.Index(
                fields=["organization", "survey", "device_hash", "submitted_at"],
                name="response_org_device",
                condition=~Q(device_hash=""),
            ),
        ]


class Answer(TenantModel):
    """One answer. ``number`` holds scores (FCR: 1 yes / 0 no); text answers carry sentiment and topics."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    class Sentiment(models.TextChoices):
        POSITIVE = "positive", "Positive"
        NEUTRAL = "neutral", "Neutral"
        NEGATIVE = "negative", "Negative"

    organization = fact_fk("cem.Organization", on_delete=models.CASCADE, related_name="+")
    response = fact_fk(Response, on_delete=models.CASCADE, related_name="answers")
    question = fact_fk(Question, on_delete=models.PROTECT, related_name="+")
    question_key = models.SlugField(max_length=60)
    question_type = models.CharField(max_length=8, choices=QuestionType.choices)
    standard = fact_fk(Standard, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    number = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    text = models.TextField(blank=True)
    choices = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    sentiment = models.CharField(max_length=8, choices=Sentiment.choices, blank=True)
    sentiment_score = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(-1), MaxValueValidator(1)]
    )
    topics = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    # Copied from the response so metrics group without joins.
    survey = fact_fk(Survey, on_delete=models.PROTECT, related_name="+")
    submitted_at = models.DateTimeField()
    location = fact_fk(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    channel = fact_fk(Channel, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    touchpoint = fact_fk(Touchpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = fact_fk(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    segment = fact_fk(Segment, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["response_id", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "response", "question"], name="answer_once_per_question"
            )
        ]
        indexes = [
            # Metrics: filter by type and period, group by any copied dimension.
            models.Index(
                fields=["organization", "question_type", "submitted_at"],
                name="answer_org_type_submitted",
                include=["number", "location", "employee", "channel", "touchpoint", "segment", "survey"],
            ),
            # The dashboards' main cut (a score by location): an index-only scan reads a third of
            # what the table scan does.
            models.Index(
                fields=["organization", "question_type", "location"],
                name="answer_org_type_loc",
                include=["number", "submitted_at"],
            ),
            models.Index(
                fields=["organization", "standard", "submitted_at"], name="answer_org_std_submitted"
            ),
            models.Index(
                fields=["organization", "location", "submitted_at"], name="answer_org_loc_submitted"
            ),
        ]


class AlertRule(TenantModel):
    """When a response matches, open a case for the responsible manager.

    ``condition``: {"question_type": "nps", "op": "lte", "value": 6} for scores,
    {"sentiment": "negative"}, or {"topic": "rude"}; ``category`` narrows to an interaction category.
    """

    SCOPE_PATHS = None

    class Priority(models.IntegerChoices):
        LOW = 1, "Low"
        NORMAL = 2, "Normal"
        HIGH = 3, "High"
        URGENT = 4, "Urgent"

    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    condition = models.JSONField()
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NORMAL)
    sla_hours = models.PositiveIntegerField(default=24, validators=[MinValueValidator(1)])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="alert_rule_name_uniq")]

    def __str__(self):
        return self.name


class Case(TenantModel):
    """Closing the loop on one response: assigned, worked within an SLA, escalated when late."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "In progress"
        RESOLVED = "resolved", "Resolved"
        CLOSED = "closed", "Closed"

    response = models.ForeignKey(Response, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    rule = models.ForeignKey(
        AlertRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="cases"
    )
    title = models.CharField(max_length=300)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    priority = models.PositiveSmallIntegerField(
        choices=AlertRule.Priority.choices, default=AlertRule.Priority.NORMAL
    )
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    sla_due_at = models.DateTimeField()
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    customer_contact = models.JSONField(default=dict, blank=True)  # only when the customer consented
    customer_contacted_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_reason = models.CharField(max_length=300, blank=True)
    themes = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-priority", "sla_due_at"]
        constraints = [
            # One case per response and rule, however often ResponseReceived is delivered.
            models.UniqueConstraint(fields=["organization", "response", "rule"], name="case_once_per_rule"),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "sla_due_at"], name="case_org_status_due"),
            models.Index(fields=["organization", "location", "created_at"], name="case_org_loc_created"),
        ]

    def __str__(self):
        return self.title


class CaseNote(TenantModel):
    SCOPE_PATHS = {
        "region": "case__location__region",
        "location": "case__location",
        "employee": "case__employee",
    }

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["created_at"]


class ExportJob(TenantModel):
    """A CSV/XLSX export of responses, built by a Celery task with progress the page polls."""

    # The requester's scope is recorded in ``filters["scope"]`` (feedback.exports), so a scoped
    # member can only ever reach jobs whose contents lie inside their own part of the hierarchy.
    SCOPE_PATHS = {"region": "filters__scope__region", "location": "filters__scope__location"}

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    format = models.CharField(max_length=4, choices=[("csv", "CSV"), ("xlsx", "XLSX")])
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    file_path = models.CharField(max_length=300, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
