"""Privacy (GDPR / CCPA): consent history, retention policy, and data-subject requests.

Only organization-wide roles see these rows (``SCOPE_PATHS = {}``): a store manager has no
business reading who asked to be forgotten.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from cem.tenancy import TenantModel

from .customers import Customer


class ConsentChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS and phone calls"
    ALL = "all", "Every channel (opt-out / opt-in)"


class ConsentSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Organization admin"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link in a message"
    IMPORT = "import", "Import"
    ERASURE = "erasure", "Erasure request"
    # Written by the platform when a customer arrives with an identifier on the suppression list.
    SUPPRESSION = "suppression", "Suppression list"


class ConsentRecord(TenantModel):
    """One grant or withdrawal of consent, as it happened: never edited, kept as proof."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_records")
    channel = models.CharField(max_length=8, choices=ConsentChannel.choices)
    granted = models.BooleanField()
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    # Where exactly, in the caller's words: "checkout tablet", "CRM sync 2026-01", the page's URL.
    detail = models.CharField(max_length=200, blank=True)
    recorded_at = models.DateTimeField()
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        "cem.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta(TenantModel.Meta):
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "customer", "recorded_at"], name="consent_org_cust_at"),
        ]

    def __str__(self):
        return f"{'granted' if self.granted else 'withdrawn'} {self.channel} ({self.source})"


def _months(default):
    return models.PositiveSmallIntegerField(
        null=True, blank=True, default=default, validators=[MinValueValidator(1), MaxValueValidator(240)]
    )


class RetentionPolicy(TenantModel):
    """How long raw personal data is kept; empty = kept until someone erases it.

    Applied daily by beat (``cem.privacy_retention_dispatch``); aggregates (scores, sentiment,
    topics, rollups) are kept, only the raw material goes.
    """

    comments_months = _months(36)
    invitations_months = _months(12)
    case_contacts_months = _months(12)
    abuse_hashes_days = models.PositiveSmallIntegerField(
        null=True, blank=True, default=30, validators=[MinValueValidator(1), MaxValueValidator(3650)]
    )
    exports_days = models.PositiveSmallIntegerField(
        default=7, validators=[MinValueValidator(1), MaxValueValidator(90)]
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_counts = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [models.UniqueConstraint(fields=["organization"], name="retention_policy_one_per_org")]

    def __str__(self):
        return "Retention policy"


class PrivacyRequest(TenantModel):
    """A data-subject request handled for the organization: an export (ZIP of JSON) or an erasure.

    The subject is kept as a type and an id only, never a name or an address, so the record of
    an erasure does not undo it; ``subject_hash`` lets the organization show a later request
    from the same person that it was handled.

    An erasure is ``redacting`` from the moment the person's own records are erased (in the
    request) until the sweep of the organization's free text (``cem.privacy_erasure_sweep``)
    has removed their identifiers everywhere else; then ``done``, with ``finished_at``. The
    sweep finds the person by ``sweep_identifiers``, the one place their identifiers outlive
    their records: it is emptied in the transaction that completes the sweep.
    """

    class Kind(models.TextChoices):
        EXPORT = "export", "Export"
        ERASURE = "erasure", "Erasure"

    class SubjectType(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        EMPLOYEE = "employee", "Employee"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        # An erasure whose subject's own records are gone while the free-text sweep runs.
        REDACTING = "redacting", "Erased — redacting free text"
        DONE = "done", "Completed"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "File deleted (retention)"

    kind = models.CharField(max_length=8, choices=Kind.choices)
    subject_type = models.CharField(max_length=8, choices=SubjectType.choices)
    subject_id = models.BigIntegerField()
    subject_hash = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    counts = models.JSONField(default=dict, blank=True)
    # {"terms": [...], "name_parts": [...]} while an erasure's sweep runs, {} otherwise (never
    # shown, exported or swept: see the class docstring).
    sweep_identifiers = models.JSONField(default=dict, blank=True, editable=False)
    file_path = models.CharField(max_length=300, blank=True)
    file_size = models.PositiveBigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_api_key = models.ForeignKey(
        "cem.ApiKey", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # The erasure sweep must not rewrite what it is reading (cem.privacy.free_text_fields).
    PRIVACY_SWEEP_SKIP = ("sweep_identifiers",)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="privacy_req_org_created"),
            models.Index(
                fields=["organization", "subject_type", "subject_id"], name="privacy_req_org_subject"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} of {self.subject_type} #{self.subject_id}"


class SuppressedIdentifier(TenantModel):
    """An email, phone number or external id that must never be contacted again: an erased
    customer's, or an opted-out one's. Only a keyed hash is kept (``cem.suppression``), so the
    list itself identifies nobody; a customer created or updated later with the same identifier
    is stored opted out, and no invitation goes to it, until the person consents again.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", "Email address"
        PHONE = "phone", "Phone number"
        EXTERNAL_ID = "external_id", "External id"

    class Reason(models.TextChoices):
        ERASURE = "erasure", "Erased on request"
        OPT_OUT = "opt_out", "Opted out"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    value_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=8, choices=Reason.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "value_hash", "reason"], name="suppressed_identifier_uniq"
            )
        ]
        indexes = [models.Index(fields=["organization", "created_at"], name="suppressed_org_created")]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.get_reason_display().lower()})"
