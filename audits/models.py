"""Mystery shopping and call/chat monitoring: forms, programs, shoppers, jobs, audits, disputes.

Scoring rules live in audits/scoring.py (pure); these tables store forms, answers and the
scores computed from them. Like survey answers, audit scores per standard are facts dashboards
read; every score change is kept in ScoreChange.
"""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from cem.models import Channel, Employee, Interaction, Location, Standard
from cem.tenancy import TenantModel


class ProgramKind(models.TextChoices):
    MYSTERY_SHOP = "mystery_shop", "Mystery shopping"
    MONITORING = "monitoring", "Call / chat monitoring"


class AuditForm(TenantModel):
    """A structured form; its sections and items live in versions (edits to a used form add one)."""

    SCOPE_PATHS = None

    class CriticalPolicy(models.TextChoices):
        ZERO = "zero", "A failed critical item scores the audit 0"
        CAP = "cap", "A failed critical item caps the audit score"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=14, choices=ProgramKind.choices)
    description = models.TextField(blank=True)
    critical_policy = models.CharField(
        max_length=4, choices=CriticalPolicy.choices, default=CriticalPolicy.ZERO
    )
    critical_cap = models.DecimalField(
        max_digits=5, decimal_places=2, default=0, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="audit_form_name_uniq")]

    def __str__(self):
        return self.name


class AuditFormVersion(TenantModel):
    SCOPE_PATHS = None

    form = models.ForeignKey(AuditForm, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["form_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "form", "number"], name="audit_form_version_uniq")
        ]


class FormSection(TenantModel):
    """A part of a form; in a cross-channel scenario each leg (call, then visit) has its own."""

    SCOPE_PATHS = None

    version = models.ForeignKey(AuditFormVersion, on_delete=models.CASCADE, related_name="sections")
    key = models.SlugField(max_length=60)
    title = models.JSONField(default=dict)  # {"en": …, "es": …}
    position = models.PositiveSmallIntegerField(default=0)
    channel_kind = models.CharField(max_length=12, choices=Channel.Kind.choices, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["version_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "version", "key"], name="form_section_key_uniq")
        ]


class FormItem(TenantModel):
    """One question of an audit form. Types and scoring: audits/scoring.py."""

    SCOPE_PATHS = None

    class Type(models.TextChoices):
        YES_NO = "yes_no", "Yes / no"
        YES_NO_NA = "yes_no_na", "Yes / no / N-A"
        SCALE = "scale", "Scale"
        NUMERIC = "numeric", "Number"
        TIME = "time", "Time (seconds)"
        CHOICE = "choice", "Choice"
        TEXT = "text", "Text"
        PHOTO = "photo", "Photo / receipt"

    version = models.ForeignKey(AuditFormVersion, on_delete=models.CASCADE, related_name="items")
    section = models.ForeignKey(FormSection, on_delete=models.CASCADE, related_name="items")
    key = models.SlugField(max_length=60)
    position = models.PositiveSmallIntegerField(default=0)
    text = models.JSONField(default=dict)
    type = models.CharField(max_length=10, choices=Type.choices)
    weight = models.DecimalField(max_digits=6, decimal_places=2, default=1, validators=[MinValueValidator(0)])
    critical = models.BooleanField(default=False)
    required = models.BooleanField(default=True)
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    scale_min = models.SmallIntegerField(default=1)
    scale_max = models.SmallIntegerField(default=5)
    target_min = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    target_max = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    # [{"value": "asked", "label": {"en": "…"}, "points": "1"}, …]: points is the fraction earned
    choices = models.JSONField(default=list, blank=True)
    pass_fraction = models.DecimalField(
        max_digits=4, decimal_places=3, default=1, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    comment_required_on_fail = models.BooleanField(default=True)
    # Plausibility bound for time items (a 3-hour wait is a typo): submit refuses values above it.
    plausible_max = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["version_id", "section_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "version", "key"], name="form_item_key_uniq"),
        ]


class Program(TenantModel):
    """A mystery-shopping or monitoring programme using one form, with its workforce rules."""

    SCOPE_PATHS = None

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=14, choices=ProgramKind.choices)
    form = models.ForeignKey(AuditForm, on_delete=models.PROTECT, related_name="programs")
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    lockout_days = models.PositiveSmallIntegerField(default=90)
    max_open_jobs = models.PositiveSmallIntegerField(default=3)
    certification_valid_days = models.PositiveSmallIntegerField(default=365)
    # Shoppers certify by completing this learning path (its lessons and quizzes, on the
    # learning portal); audits.handlers records the Certification when the path is completed.
    certification_path = models.ForeignKey(
        "learning.LearningPath", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revision_window_hours = models.PositiveSmallIntegerField(default=24)
    # Jobs nobody takes from the board within this many hours are assigned by the scheduler
    # (audits.jobs.assignments_auto_assign); empty = the board only.
    auto_assign_after_hours = models.PositiveSmallIntegerField(null=True, blank=True)
    # Monitoring: evaluations per agent per week, and the share drawn from Critical interactions.
    sample_per_agent = models.PositiveSmallIntegerField(default=4)
    sample_critical_share = models.DecimalField(
        max_digits=3, decimal_places=2, default=0.5, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="program_name_uniq")]

    def __str__(self):
        return self.name


class Scenario(TenantModel):
    """What the shopper does and says; cross-channel scenarios have several linked legs."""

    SCOPE_PATHS = None

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="scenarios")
    title = models.CharField(max_length=200)
    instructions = models.TextField()
    active = models.BooleanField(default=True)

    class Meta(TenantModel.Meta):
        ordering = ["title"]


class ScenarioLeg(TenantModel):
    SCOPE_PATHS = None

    scenario = models.ForeignKey(Scenario, on_delete=models.CASCADE, related_name="legs")
    position = models.PositiveSmallIntegerField(default=0)
    channel_kind = models.CharField(max_length=12, choices=Channel.Kind.choices)
    instructions = models.TextField(blank=True)
    section_key = models.SlugField(max_length=60, help_text="The form section this leg is scored in.")

    class Meta(TenantModel.Meta):
        ordering = ["scenario_id", "position"]


class Shopper(TenantModel):
    """A mystery shopper's profile with one organization (a person may shop for several)."""

    SCOPE_PATHS = {"shopper": "user"}

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=160)
    email = models.EmailField()
    phone = models.CharField(max_length=32, blank=True)
    home_area = models.CharField(max_length=200, blank=True)
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    radius_km = models.PositiveSmallIntegerField(default=25)
    languages = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    demographics = models.JSONField(default=dict, blank=True)
    availability = models.JSONField(default=dict, blank=True)
    consent_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.APPLIED)
    decision_reason = models.CharField(max_length=300, blank=True)
    # Shoppers never audit the business they work for: the employers they declare.
    employer_organization_names = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    rating = models.DecimalField(max_digits=3, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "email"], name="shopper_email_uniq")]
        indexes = [models.Index(fields=["organization", "status"], name="shopper_org_status")]

    def __str__(self):
        return self.name


class Certification(TenantModel):
    SCOPE_PATHS = {"shopper": "shopper__user"}

    shopper = models.ForeignKey(Shopper, on_delete=models.CASCADE, related_name="certifications")
    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="certifications")
    passed_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-passed_at"]
        indexes = [
            models.Index(fields=["organization", "shopper", "program"], name="cert_org_shopper_program")
        ]


class LocationBlock(TenantModel):
    """A location a shopper may not audit (rejected from it, or any other stated reason)."""

    SCOPE_PATHS = {}

    shopper = models.ForeignKey(Shopper, on_delete=models.CASCADE, related_name="blocks")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "shopper", "location"], name="location_block_uniq"
            )
        ]


class Assignment(TenantModel):
    """A job: one scenario at one location in a visit window, for a fee."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "shopper": "shopper__user"}

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ASSIGNED = "assigned", "Assigned"
        IN_PROGRESS = "in_progress", "In progress"
        SUBMITTED = "submitted", "Submitted"
        IN_REVIEW = "in_review", "In review"
        RETURNED = "returned", "Returned for revision"
        APPROVED = "approved", "Approved"
        PUBLISHED = "published", "Published"
        CANCELLED = "cancelled", "Cancelled"
        REJECTED = "rejected", "Rejected"

    program = models.ForeignKey(Program, on_delete=models.PROTECT, related_name="assignments")
    scenario = models.ForeignKey(Scenario, on_delete=models.PROTECT, related_name="assignments")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="+")
    shopper = models.ForeignKey(
        Shopper, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    fee = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    reimbursement_cap = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    reimbursement = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    assigned_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    revision_due_at = models.DateTimeField(null=True, blank=True)
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["window_start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_end__gt=models.F("window_start")), name="assignment_window"
            ),
            models.CheckConstraint(
                condition=Q(reimbursement__lte=models.F("reimbursement_cap")),
                name="assignment_reimbursement_cap",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "status", "window_start"], name="assignment_org_status_window"
            ),
            models.Index(fields=["organization", "shopper", "status"], name="assignment_org_shopper_status"),
            models.Index(fields=["organization", "location", "status"], name="assignment_org_loc_status"),
        ]


class Audit(TenantModel):
    """One filled form: a mystery-shop visit (assignment) or an evaluation of an interaction."""

    SCOPE_PATHS = {
        "region": "location__region",
        "location": "location",
        "employee": "employee",
        "shopper": "assignment__shopper__user",
    }

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SUBMITTED = "submitted", "Submitted"
        PUBLISHED = "published", "Published"

    version = models.ForeignKey(AuditFormVersion, on_delete=models.PROTECT, related_name="+")
    assignment = models.ForeignKey(
        Assignment, on_delete=models.CASCADE, null=True, blank=True, related_name="audits"
    )
    interaction = models.ForeignKey(
        Interaction, on_delete=models.SET_NULL, null=True, blank=True, db_constraint=False, related_name="+"
    )
    calibration = models.ForeignKey(
        "CalibrationSession", on_delete=models.CASCADE, null=True, blank=True, related_name="audits"
    )
    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    visited_at = models.DateTimeField(null=True, blank=True)
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    raw_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    critical_failed = models.BooleanField(default=False)
    section_scores = models.JSONField(default=dict, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)  # agents acknowledge evaluations
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "location", "published_at"], name="audit_org_loc_published"),
            models.Index(fields=["organization", "employee", "published_at"], name="audit_org_emp_published"),
        ]


class AuditAnswer(TenantModel):
    SCOPE_PATHS = {
        "region": "audit__location__region",
        "location": "audit__location",
        "employee": "audit__employee",
    }

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="answers")
    item = models.ForeignKey(FormItem, on_delete=models.PROTECT, related_name="+")
    value = models.CharField(max_length=200, blank=True)  # raw answer; "n/a" for not applicable
    text = models.TextField(blank=True)
    comment = models.TextField(blank=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "audit", "item"], name="audit_answer_once_per_item"
            )
        ]


class AuditPhoto(TenantModel):
    """An uploaded photo or receipt, re-encoded without EXIF (GPS included) and with a thumbnail."""

    SCOPE_PATHS = {
        "region": "audit__location__region",
        "location": "audit__location",
        "employee": "audit__employee",
        "shopper": "audit__assignment__shopper__user",
    }

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="photos")
    item = models.ForeignKey(FormItem, on_delete=models.PROTECT, related_name="+")
    file_path = models.CharField(max_length=300)
    thumbnail_path = models.CharField(max_length=300)
    content_type = models.CharField(max_length=40)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)


class StandardScore(TenantModel):
    """An audit's score on one standard: what dashboards and gap rules read."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="standard_scores")
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    earned = models.DecimalField(max_digits=8, decimal_places=3)
    possible = models.DecimalField(max_digits=8, decimal_places=3)
    value = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "audit", "standard"], name="standard_score_uniq")
        ]
        indexes = [
            models.Index(
                fields=["organization", "standard", "published_at"], name="stdscore_org_std_published"
            ),
            # Employee gap rules (learning.gaps) read one employee's window: without this the
            # planner ANDs the employee FK index, whose cost grows with the employee's whole history.
            models.Index(
                fields=["organization", "standard", "employee", "published_at"],
                name="stdscore_org_std_emp_pub",
            ),
            models.Index(
                fields=["organization", "location", "published_at"], name="stdscore_org_loc_published"
            ),
        ]


class ScoreChange(TenantModel):
    """Every change of a published score (rescoring after a dispute, a reviewer's correction)."""

    SCOPE_PATHS = {
        "region": "audit__location__region",
        "location": "audit__location",
        "employee": "audit__employee",
    }

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="score_changes")
    old_score = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    new_score = models.DecimalField(max_digits=5, decimal_places=2, null=True)
    reason = models.CharField(max_length=300)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["created_at"]


class Dispute(TenantModel):
    SCOPE_PATHS = {
        "region": "audit__location__region",
        "location": "audit__location",
        "employee": "audit__employee",
    }

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted (rescored)"
        REJECTED = "rejected", "Rejected"

    audit = models.ForeignKey(Audit, on_delete=models.CASCADE, related_name="disputes")
    item = models.ForeignKey(FormItem, on_delete=models.PROTECT, related_name="+")
    raised_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    reason = models.TextField()
    proposed_value = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    resolution = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "audit", "item"],
                condition=Q(status="open"),
                name="dispute_one_open_per_item",
            )
        ]


class MonitoringSample(TenantModel):
    """A reproducible random sample of interactions for one programme and period."""

    SCOPE_PATHS = {}

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="samples")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    seed = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "program", "period_start"], name="sample_once_per_period"
            )
        ]


class SampleItem(TenantModel):
    """One sampled interaction waiting in an evaluator's queue."""

    SCOPE_PATHS = {
        "region": "agent__current_location__region",
        "location": "agent__current_location",
        "employee": "agent",
    }

    sample = models.ForeignKey(MonitoringSample, on_delete=models.CASCADE, related_name="items")
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    agent = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="+")
    evaluator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    audit = models.OneToOneField(
        Audit, on_delete=models.SET_NULL, null=True, blank=True, related_name="sample_item"
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "interaction"], name="sample_item_once_per_interaction"
            )
        ]


class CalibrationSession(TenantModel):
    """Several evaluators score one interaction blind; the final audit is the agreed answer."""

    SCOPE_PATHS = {}

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="calibrations")
    interaction = models.ForeignKey(
        Interaction, on_delete=models.CASCADE, db_constraint=False, related_name="+"
    )
    final_audit = models.OneToOneField(
        Audit, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The users invited to score it blind; empty means any evaluator may.
    evaluators = ArrayField(models.BigIntegerField(), default=list, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class ShopperRating(TenantModel):
    """A reviewer's 1-5 rating of a shopper's work on one job; Shopper.rating is their average.

    Organization-wide roles only (no shopper scope): reviewers' notes are not shown to shoppers.
    """

    SCOPE_PATHS = {}

    shopper = models.ForeignKey(Shopper, on_delete=models.CASCADE, related_name="ratings")
    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="ratings")
    score = models.PositiveSmallIntegerField(validators=[MinValueValidator(1), MaxValueValidator(5)])
    comment = models.CharField(max_length=1000, blank=True)
    rated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "assignment"], name="shopper_rating_once_per_job"
            ),
            models.CheckConstraint(condition=Q(score__gte=1, score__lte=5), name="shopper_rating_1_to_5"),
        ]
        indexes = [
            models.Index(fields=["organization", "shopper", "created_at"], name="rating_org_shopper_created")
        ]


class PaymentBatch(TenantModel):
    """One export of payable items for payment; marking it paid pays every item in it."""

    SCOPE_PATHS = {}

    reference = models.CharField(max_length=40)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    item_count = models.PositiveIntegerField(default=0)
    total = models.DecimalField(max_digits=12, decimal_places=2, default=0)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "reference"], name="payment_batch_reference_uniq")
        ]

    def __str__(self):
        return self.reference


class Payable(TenantModel):
    """What one job pays its shopper: the fee plus the approved reimbursement.

    pending (submitted, not yet approved) → payable (approved) → paid (its batch was marked paid);
    cancelled when the job is rejected. Amounts are fixed at approval: a later rescore of the
    audit does not change what the shopper is owed.
    """

    SCOPE_PATHS = {"shopper": "shopper__user"}

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        PAYABLE = "payable", "Payable"
        PAID = "paid", "Paid"
        CANCELLED = "cancelled", "Cancelled"

    assignment = models.ForeignKey(Assignment, on_delete=models.PROTECT, related_name="payables")
    shopper = models.ForeignKey(Shopper, on_delete=models.PROTECT, related_name="payables")
    fee = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    reimbursement = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    approved_at = models.DateTimeField(null=True, blank=True)
    batch = models.ForeignKey(
        PaymentBatch, on_delete=models.PROTECT, null=True, blank=True, related_name="items"
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "assignment"], name="payable_once_per_job"),
            models.CheckConstraint(
                condition=Q(fee__gte=0, reimbursement__gte=0), name="payable_amounts_not_negative"
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(paid_at__isnull=False, batch__isnull=False),
                name="payable_paid_has_batch",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "batch"], name="payable_org_status_batch"),
            models.Index(fields=["organization", "shopper", "status"], name="payable_org_shopper_status"),
        ]

    @property
    def total(self):
        return self.fee + self.reimbursement
