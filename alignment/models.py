"""Models of the alignment app.

``Rollup`` is the one table dashboards read: per organization x local day x location x employee x
standard x channel x touchpoint x segment x interaction category x measure, how many values
arrived, their sum and sum of squares, and the top/bottom counts the percentage metrics need
(promoters/detractors, CSAT top box, FCR yes, lessons on time). Any figure over any period and
scope is a SUM over its rows. Event handlers keep it current (alignment.handlers), and
``RollupSource`` remembers what each source object contributed, so redelivery adds nothing and
a rescore or reversal subtracts exactly what was added (alignment.rollups).

``AlignmentScore`` holds the five link scores and the overall score per scope and period with
their explanation (alignment.scores). The rest are the customer-data side: business metrics,
CRM transactions, driver-analysis snapshots and journey maps.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from cem.models import InteractionCategory
from cem.tenancy import TenantModel


def _ref(to, **kwargs):
    # Rollups and scores are derived data keyed by ids. Like the fact tables, references are
    # checked where the source rows were written; a deleted dimension's rows are left to the
    # nightly rebuild, so deleting one never scans these tables. No single-column indexes: every
    # read leads with the organization (the composite indexes below), and seven of them halved
    # the rollup's write rate (seed_demo's rebuild: 36.7 s -> 19.0 s for 887k rows).
    return models.ForeignKey(
        to, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+", **kwargs
    )


class Measure(models.TextChoices):
    # Survey answers of a metric question: n answered, total = sum of raw values,
    # top = promoters / top-two box / yes, bottom = detractors / bottom-two box / no.
    NPS = "nps", "NPS"
    CSAT = "csat", "CSAT"
    CES = "ces", "CES"
    FCR = "fcr", "FCR"
    RESPONSES = "responses", "Responses"
    # 0-100 points on a standard (answers linked to it; audit/evaluation standard scores).
    STD_FEEDBACK = "std_feedback", "Standard: customer feedback"
    STD_AUDIT = "std_audit", "Standard: mystery shopping"
    STD_MONITORING = "std_monitoring", "Standard: monitoring"
    # Overall 0-100 score of each published audit / evaluation.
    AUDIT = "audit", "Audit score"
    MONITORING = "monitoring", "Monitoring score"
    INTERACTIONS = "interactions", "Interactions"
    # Lesson completions: n, top = on time, bottom = late; per standard the lesson is tagged with
    # (``LESSON_STD``) and once per completion with no standard (``LESSONS``).
    LESSONS = "lessons", "Lessons completed"
    LESSON_STD = "lesson_std", "Lessons completed on a standard"
    # Points awarded (net of reversals): n awards, total points; standard = the rule's standard.
    POINTS = "points", "Points awarded"


STANDARD_MEASURES = {
    "feedback": Measure.STD_FEEDBACK,
    "audit": Measure.STD_AUDIT,
    "monitoring": Measure.STD_MONITORING,
}


class Rollup(TenantModel):
    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    day = models.DateField(help_text="Local date in the organization's time zone.")
    location = _ref("cem.Location", null=True, blank=True)
    employee = _ref("cem.Employee", null=True, blank=True)
    standard = _ref("cem.Standard", null=True, blank=True)
    channel = _ref("cem.Channel", null=True, blank=True)
    touchpoint = _ref("cem.Touchpoint", null=True, blank=True)
    segment = _ref("cem.Segment", null=True, blank=True)
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)
    measure = models.CharField(max_length=16, choices=Measure.choices)
    n = models.BigIntegerField(default=0)
    # Values are quantized to 4 places before summing, so incremental and rebuilt sums are equal.
    total = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    sumsq = models.DecimalField(max_digits=24, decimal_places=4, default=Decimal(0))
    top = models.BigIntegerField(default=0)
    bottom = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    KEY = (
        "day",
        "location_id",
        "employee_id",
        "standard_id",
        "channel_id",
        "touchpoint_id",
        "segment_id",
        "category",
        "measure",
    )
    VALUES = ("n", "total", "sumsq", "top", "bottom")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "day",
                    "location",
                    "employee",
                    "standard",
                    "channel",
                    "touchpoint",
                    "segment",
                    "category",
                    "measure",
                ],
                name="rollup_key",
                nulls_distinct=False,
            )
        ]
        indexes = [
            # The store dashboard: one location, some measures, a period — read from the index alone.
            models.Index(
                fields=["organization", "location", "measure", "day"],
                name="rollup_org_loc_measure_day",
                include=["n", "total", "top", "bottom", "standard", "employee"],
            ),
            models.Index(
                fields=["organization", "measure", "day"],
                name="rollup_org_measure_day",
                include=["n", "total", "top", "bottom", "location", "standard"],
            ),
            models.Index(fields=["organization", "employee", "measure", "day"], name="rollup_org_emp_day"),
            models.Index(fields=["organization", "standard", "day"], name="rollup_org_std_day"),
        ]


class RollupSource(TenantModel):
    """What one source object added to the rollup (rows as JSON), for idempotence and rescores."""

    # Numbers and ids written by the rollup code: an erasure need not scan a row per source.
    PRIVACY_FREE_TEXT = ()

    class Kind(models.TextChoices):
        RESPONSE = "response", "Response"
        AUDIT = "audit", "Audit"
        INTERACTION = "interaction", "Interaction"
        COMPLETION = "completion", "Lesson completion"
        AWARD = "award", "Points award"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    source_id = models.BigIntegerField()
    rows = models.JSONField(default=list)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "source_id"], name="rollup_source_key")
        ]


class RollupCheck(TenantModel):
    """One nightly rebuild-and-compare run: what differed, and whether it was repaired."""

    SCOPE_PATHS = None

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    rows_compared = models.BigIntegerField(default=0)
    differences = models.IntegerField(default=0)
    repaired = models.BooleanField(default=False)
    sample = models.JSONField(
        default=list, blank=True, help_text="Up to 50 differing keys, stored vs rebuilt."
    )

    class Meta(TenantModel.Meta):
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["organization", "started_at"], name="rollup_check_org_started")]


class Link(models.TextChoices):
    MESSAGE_EXPECTATION = "message_expectation", "Brand message ↔ customer expectations"
    EXPECTATION_STANDARD = "expectation_standard", "Customer expectations ↔ service standards"
    STANDARD_TRAINING = "standard_training", "Service standards ↔ training"
    TRAINING_EXECUTION = "training_execution", "Training ↔ execution"
    EXECUTION_INCENTIVE = "execution_incentive", "Execution ↔ incentives"
    OVERALL = "overall", "Overall alignment"


class ScopeKind(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    REGION = "region", "Region"
    LOCATION = "location", "Location"
    TEAM = "team", "Team"
    EMPLOYEE = "employee", "Employee"


class PeriodKind(models.TextChoices):
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"


# The measures PeriodRollup keeps: what the alignment scores read (alignment.score_inputs
# STANDARD_MEASURES) and what the store dashboard compares with the region and the company
# (alignment.selectors.COMPARISON_MEASURES).
PERIOD_MEASURES = (
    Measure.STD_FEEDBACK,
    Measure.STD_AUDIT,
    Measure.STD_MONITORING,
    Measure.LESSON_STD,
    Measure.POINTS,
    Measure.NPS,
    Measure.CSAT,
    Measure.CES,
    Measure.FCR,
    Measure.AUDIT,
    Measure.MONITORING,
)


class PeriodRollup(TenantModel):
    """The rollup's score and comparison measures (``PERIOD_MEASURES``) summed per period (day, ISO
    week, month, quarter) and location, over employees, channels, touchpoints and segments.

    What the organization-, region- and location-level alignment scores of an event read
    (alignment.score_inputs.gather_touched), and the region and company totals the store
    dashboard compares with (alignment.selectors.region_totals): a quarter of the whole
    organization is a few thousand rows here, where the rollup holds a row per employee and day.
    Derived from ``Rollup`` in the same transaction as every change to it
    (alignment.rollups.apply_points, and statement triggers on alignment_rollup for every other
    writer: see migrations 0004 and 0005). ``rows`` counts the
    rollup rows the sums cover, so a group exists exactly while some rollup row does (a GROUP BY
    over the rollup returns groups of all-zero rows too, and the scores list what they find).
    """

    period = models.CharField(max_length=8, choices=PeriodKind.choices)
    period_start = models.DateField()
    location = _ref("cem.Location", null=True, blank=True)
    standard = _ref("cem.Standard", null=True, blank=True)
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)
    measure = models.CharField(max_length=16, choices=Measure.choices)
    rows = models.BigIntegerField(default=0)
    n = models.BigIntegerField(default=0)
    total = models.DecimalField(max_digits=20, decimal_places=4, default=Decimal(0))
    sumsq = models.DecimalField(max_digits=24, decimal_places=4, default=Decimal(0))
    top = models.BigIntegerField(default=0)
    bottom = models.BigIntegerField(default=0)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "organization",
                    "period",
                    "period_start",
                    "location",
                    "standard",
                    "category",
                    "measure",
                ],
                name="period_rollup_key",
                nulls_distinct=False,
            )
        ]


class RollupGeneration(TenantModel):
    """A counter per location (and one for rows with no location), raised in the transaction of
    every change to that location's rollup rows. The store dashboard caches a panel's payload
    under its store's counter (the organization's sum for figures that span stores), so a cached
    panel is served until the first event that changes it commits (alignment.panel_cache)."""

    location = _ref("cem.Location", null=True, blank=True)
    generation = models.BigIntegerField(default=0)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "location"], name="rollup_generation_key", nulls_distinct=False
            )
        ]


class PendingScore(TenantModel):
    """A (local day, location, employee) key whose alignment scores are due: written by the rollup
    handlers in the rollup change's transaction, taken (deleted) by alignment.scores_drain, which
    recomputes them in its own transaction after a short debounce (alignment.score_queue)."""

    day = models.DateField()
    location = _ref("cem.Location", null=True, blank=True)
    employee = _ref("cem.Employee", null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "created_at"], name="pending_score_org_created")]


class AlignmentScore(TenantModel):
    """One link score (0-100) of one scope and period, with what it was computed from.

    ``inputs`` lists the figures that went in and ``missing`` what is absent (an expectation with
    no standard, a standard with no lesson), so every score can be explained on the page. ``low``
    and ``high`` bound a 95 % interval; ``n`` is the sample it rests on, and scores under the
    organization's minimum sample are shown but never ranked.
    """

    SCOPE_PATHS = {"region": "region", "location": "location", "employee": "employee"}

    scope = models.CharField(max_length=12, choices=ScopeKind.choices)
    # The scope's own id (0 for the organization), so one unique key covers every kind; the
    # nullable references below carry the hierarchy for viewer scoping and drill-down.
    scope_id = models.BigIntegerField()
    region = _ref("cem.Region", null=True, blank=True)
    location = _ref("cem.Location", null=True, blank=True)
    team = _ref("cem.Team", null=True, blank=True)
    employee = _ref("cem.Employee", null=True, blank=True)
    period = models.CharField(max_length=8, choices=PeriodKind.choices)
    period_start = models.DateField()
    link = models.CharField(max_length=24, choices=Link.choices)
    value = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    low = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    high = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    n = models.IntegerField(default=0)
    inputs = models.JSONField(default=dict, blank=True)
    missing = models.JSONField(default=list, blank=True)
    computed_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["scope", "scope_id", "-period_start", "link"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "scope", "scope_id", "period", "period_start", "link"],
                name="alignment_score_key",
            ),
            models.CheckConstraint(
                condition=Q(value__isnull=True) | Q(value__gte=0, value__lte=100),
                name="alignment_score_range",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "period", "period_start", "scope", "link"],
                name="align_org_period_scope",
            ),
            models.Index(fields=["organization", "location", "period", "period_start"], name="align_org_loc"),
            models.Index(fields=["organization", "employee", "period", "period_start"], name="align_org_emp"),
        ]


def default_category_weights() -> dict:
    return {"critical": 2.0, "stabilizing": 1.0, "planned": 1.0}


def default_link_weights() -> dict:
    return {link: 1.0 for link in Link.values if link != Link.OVERALL}


class AlignmentSettings(TenantModel):
    """Per-organization knobs of the alignment scores and dashboards."""

    SCOPE_PATHS = None

    category_weights = models.JSONField(
        default=default_category_weights,
        help_text="Weight of each interaction category in overall scores; Critical weighs more.",
    )
    link_weights = models.JSONField(
        default=default_link_weights, help_text="Weight of each link in the overall score."
    )
    min_sample = models.PositiveIntegerField(
        default=30,
        help_text="Scores resting on fewer data points are shown with their uncertainty, never ranked.",
    )
    alert_threshold = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("60"),
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="An overall alignment score crossing this value raises AlignmentThresholdCrossed.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [models.UniqueConstraint(fields=["organization"], name="alignment_settings_once")]


class BusinessMetric(TenantModel):
    """A business figure of one location and period (imported by CSV or API, idempotent on the key)."""

    SCOPE_PATHS = {"region": "location__region", "location": "location"}

    class Kind(models.TextChoices):
        SALES = "sales", "Sales"
        TRANSACTIONS = "transactions", "Transactions"
        AVERAGE_PURCHASE = "average_purchase", "Average purchase"
        RETENTION_RATE = "retention_rate", "Retention rate (%)"
        COMPLAINTS = "complaints", "Complaints"
        RETURNS = "returns", "Returns"
        SALES_TARGET = "sales_target", "Sales target"

    location = models.ForeignKey("cem.Location", on_delete=models.PROTECT, related_name="+")
    period = models.CharField(max_length=8, choices=PeriodKind.choices, default=PeriodKind.MONTH)
    period_start = models.DateField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.DecimalField(max_digits=16, decimal_places=2)
    source = models.CharField(max_length=20, default="api")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["-period_start", "location_id", "kind"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "location", "period", "period_start", "kind"],
                name="business_metric_key",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "kind", "period_start"], name="bizmetric_org_kind_start"),
            models.Index(fields=["organization", "location", "period_start"], name="bizmetric_org_loc_start"),
        ]


class CustomerTransaction(TenantModel):
    """A purchase from the CRM (customer, date, amount, location), idempotent on its external id."""

    SCOPE_PATHS = {"region": "location__region", "location": "location"}

    external_id = models.CharField(max_length=100)
    customer = models.ForeignKey("cem.Customer", on_delete=models.CASCADE, related_name="+")
    location = models.ForeignKey(
        "cem.Location", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    occurred_on = models.DateField()
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-occurred_on", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="crm_transaction_external_id_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "customer", "occurred_on"], name="crm_tx_org_customer"),
            models.Index(fields=["organization", "location", "occurred_on"], name="crm_tx_org_location"),
        ]


class DriverAnalysis(TenantModel):
    """A snapshot of which standards/items most explain an outcome, for the org or one location."""

    SCOPE_PATHS = {"region": "location__region", "location": "location"}

    class Outcome(models.TextChoices):
        NPS = "nps", "NPS"
        RETENTION = "retention_rate", "Retention rate"
        SALES = "sales", "Sales"

    location = models.ForeignKey(
        "cem.Location", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    method = models.CharField(max_length=200)
    n = models.IntegerField(default=0)
    r_squared = models.FloatField(null=True, blank=True)
    # [{standard_id, standard, effect, low, high, importance, n}], ranked by importance.
    drivers = models.JSONField(default=list)
    # Estimated business value of a one-point improvement, where business metrics exist.
    value_per_point = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-computed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "location", "outcome", "period_start", "period_end"],
                name="driver_analysis_key",
                nulls_distinct=False,
            )
        ]
        indexes = [models.Index(fields=["organization", "outcome", "computed_at"], name="driver_org_outcome")]


class JourneyMap(TenantModel):
    """The touchpoints a customer segment goes through, in order, with expected vs actual experience."""

    SCOPE_PATHS = None

    name = models.CharField(max_length=160)
    segment = models.ForeignKey(
        "cem.Segment", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    description = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="journey_map_name_uniq")]

    def __str__(self):
        return self.name


class JourneyStep(TenantModel):
    SCOPE_PATHS = None

    journey = models.ForeignKey(JourneyMap, on_delete=models.CASCADE, related_name="steps")
    touchpoint = models.ForeignKey("cem.Touchpoint", on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()
    expectation = models.ForeignKey(
        "cem.CustomerExpectation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["journey_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "journey", "position"],
                name="journey_step_position_uniq",
                deferrable=models.Deferrable.DEFERRED,
            ),
            models.UniqueConstraint(
                fields=["organization", "journey", "touchpoint"], name="journey_step_touchpoint_uniq"
            ),
        ]
