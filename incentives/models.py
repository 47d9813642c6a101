"""Incentives: a double-entry points ledger, reward rules, recognition, a redemption catalogue and
manager bonus periods.

The ledger is the source of truth for points. Every movement is a LedgerTransaction whose
entries sum to zero; entries are never updated or deleted (a database trigger refuses it), and a
correction is a new transaction that ``reverses`` the old one (the one edit allowed: an erasure
redacting a person out of a transaction's ``note``, ``cem.db.purge.ledger_redaction``). Each
account stores its balance, updated in the same transaction as its entries under
``select_for_update`` (accounts locked in id order), and a CHECK keeps wallets and budgets at or
above zero, so no race can overdraw one. ``manage.py ledger_check`` proves the stored balances
equal the sums of entries.

Points enter through the organization's ISSUANCE account (the only one that goes negative: it is
minus everything ever issued), are funded into BUDGET accounts, awarded into employees' WALLETs,
held in CLEARING while a redemption is decided, and end in REDEEMED, EXPIRED or back in a wallet.
"""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from cem.db.purge import ledger_redaction
from cem.models import Channel, Employee, Location, Region, Standard, Team, Touchpoint
from cem.models.standards import InteractionCategory
from cem.tenancy import TenantModel

PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


class IncentiveSettings(TenantModel):
    """One row per organization."""

    SCOPE_PATHS = None

    # None: points never expire.
    points_expire_months = models.PositiveSmallIntegerField(null=True, blank=True, default=12)
    # When an award is reversed after its points were spent: True leaves the wallet in debt
    # (future awards pay it back); False writes the shortfall off against the rule's budget.
    allow_debt = models.BooleanField(default=False)
    peer_recognition_enabled = models.BooleanField(default=False)
    peer_monthly_allowance = models.PositiveIntegerField(default=100)
    manager_monthly_recognition_limit = models.PositiveIntegerField(default=1000)
    recognition_max_points = models.PositiveIntegerField(default=100)
    leaderboard_enabled = models.BooleanField(default=False)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="incentive_settings_one_per_org")
        ]


class Account(TenantModel):
    # Managers and employees read wallets (their people's, their own); budgets and system accounts
    # have no employee, so only organization-wide roles see them.
    SCOPE_PATHS = {
        "region": "employee__current_location__region",
        "location": "employee__current_location",
        "employee": "employee",
    }

    class Kind(models.TextChoices):
        ISSUANCE = "issuance", "Points issued"
        BUDGET = "budget", "Budget"
        WALLET = "wallet", "Employee wallet"
        CLEARING = "clearing", "Redemptions on hold"
        REDEEMED = "redeemed", "Redeemed"
        EXPIRED = "expired", "Expired"
        WRITE_OFF = "write_off", "Written off"

    SYSTEM_KINDS = (Kind.ISSUANCE, Kind.CLEARING, Kind.REDEEMED, Kind.EXPIRED, Kind.WRITE_OFF)

    kind = models.CharField(max_length=10, choices=Kind.choices)
    name = models.CharField(max_length=160)
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Budgets may belong to a location or a manager; wallets carry their employee's location
    # only through the employee.
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    balance = models.BigIntegerField(default=0)
    # Set on a wallet only while the organization allows debt from reversals.
    allow_negative = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["kind", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0) | Q(kind="issuance") | Q(allow_negative=True),
                name="account_balance_not_negative",
            ),
            models.CheckConstraint(
                condition=~Q(kind="wallet") | Q(employee__isnull=False), name="account_wallet_has_employee"
            ),
            models.UniqueConstraint(
                fields=["organization", "employee"], condition=Q(kind="wallet"), name="account_one_wallet"
            ),
            models.UniqueConstraint(
                fields=["organization", "kind"],
                condition=Q(kind__in=["issuance", "clearing", "redeemed", "expired", "write_off"]),
                name="account_one_system_account_per_kind",
            ),
            models.UniqueConstraint(
                fields=["organization", "name"], condition=Q(kind="budget"), name="account_budget_name_uniq"
            ),
        ]
        indexes = [models.Index(fields=["organization", "kind"], name="account_org_kind")]

    def __str__(self):
        return self.name


class LedgerTransaction(TenantModel):
    """A balanced movement of points. Immutable; reversed by another transaction, never edited."""

    SCOPE_PATHS = {
        "region": "employee__current_location__region",
        "location": "employee__current_location",
        "employee": "employee",
    }

    class Kind(models.TextChoices):
        FUND = "fund", "Budget funded"
        AWARD = "award", "Award by a rule"
        RECOGNITION = "recognition", "Recognition"
        REVERSAL = "reversal", "Reversal"
        HOLD = "hold", "Redemption on hold"
        SETTLE = "settle", "Redemption fulfilled"
        REFUND = "refund", "Redemption refunded"
        EXPIRE = "expire", "Points expired"
        WRITE_OFF = "write_off", "Write-off"
        ADJUST = "adjust", "Adjustment"

    kind = models.CharField(max_length=12, choices=Kind.choices)
    # Makes every automatic movement idempotent, e.g. "award:<rule>:<event>:<employee>".
    key = models.CharField(max_length=200, null=True, blank=True)
    rule = models.ForeignKey("RewardRule", on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    event_id = models.UUIDField(null=True, blank=True)
    # The person it concerns (the wallet's owner) and why, in words shown on their statement.
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    note = models.CharField(max_length=400, blank=True)
    # An erasure redacts a person out of ``note`` through this guard and nothing else changes
    # (cem.privacy.sweep_target; the trigger in migration 0005 checks it).
    privacy_redaction_guard = staticmethod(ledger_redaction)
    reverses = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField()

    @property
    def statement_note(self) -> str:
        """Why, as the person's statement says it: the note, or a recognition's message, which is
        kept on the Recognition alone (select_related ``recognition`` to read it in bulk)."""
        if self.note or self.kind != self.Kind.RECOGNITION:
            return self.note
        recognition = getattr(self, "recognition", None) if self.pk else None
        return f"Recognition: {recognition.message}" if recognition is not None else ""

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key"], condition=Q(key__isnull=False), name="ledger_tx_key_uniq"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="ledger_tx_org_created"),
            models.Index(fields=["organization", "employee", "created_at"], name="ledger_tx_org_emp"),
            models.Index(fields=["organization", "rule", "created_at"], name="ledger_tx_org_rule"),
            models.Index(fields=["organization", "event_id"], name="ledger_tx_org_event"),
        ]


class LedgerEntry(TenantModel):
    SCOPE_PATHS = {
        "region": "account__employee__current_location__region",
        "location": "account__employee__current_location",
        "employee": "account__employee",
    }

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    amount = models.BigIntegerField()
    balance_after = models.BigIntegerField()
    created_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_not_zero")]
        indexes = [
            models.Index(fields=["organization", "account", "created_at"], name="ledger_entry_org_account"),
            models.Index(fields=["organization", "transaction"], name="ledger_entry_org_tx"),
        ]


class PointsLot(TenantModel):
    """Points credited to a wallet together, spent first-in first-out, expiring together."""

    SCOPE_PATHS = {
        "region": "wallet__employee__current_location__region",
        "location": "wallet__employee__current_location",
        "employee": "wallet__employee",
    }

    wallet = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lots")
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="lots")
    amount = models.BigIntegerField(validators=[MinValueValidator(1)])
    remaining = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")),
                name="points_lot_remaining",
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "wallet", "created_at"],
                condition=Q(remaining__gt=0),
                name="points_lot_org_wallet_open",
            ),
            models.Index(
                fields=["organization", "expires_at"],
                condition=Q(remaining__gt=0),
                name="points_lot_org_expiry",
            ),
        ]


class RewardRule(TenantModel):
    """ "When <trigger> happens (matching the conditions), award <points> to <recipients>"."""

    SCOPE_PATHS = None

    class Trigger(models.TextChoices):
        PROMOTER_RESPONSE = "promoter_response", "Promoter response (NPS 9-10) naming an employee"
        RESPONSE_SCORE = "response_score", "Survey answer at or above a score"
        AUDIT_SCORE = "audit_score", "Audit published at or above a score"
        EVALUATION_SCORE = "evaluation_score", "Monitoring evaluation at or above a score"
        LESSON_COMPLETED = "lesson_completed", "Lesson completed"
        QUIZ_PASSED_FIRST_TRY = "quiz_first_try", "Quiz passed at the first try"
        QUIZ_PASSED = "quiz_passed", "Quiz passed"
        CASE_RESOLVED_IN_SLA = "case_in_sla", "Case resolved within its SLA"
        ALIGNMENT_SCORE = "alignment_score", "Store alignment score at or above a score for the month"

    class Recipients(models.TextChoices):
        NAMED_EMPLOYEE = "named", "The employee named in it"
        LOCATION_EMPLOYEES = "location", "Every employee of the location"
        LOCATION_MANAGERS = "managers", "The location's managers"
        LEARNER = "learner", "The learner"

    class CapPeriod(models.TextChoices):
        DAY = "day", "Day"
        WEEK = "week", "Week"
        MONTH = "month", "Month"
        QUARTER = "quarter", "Quarter"

    name = models.CharField(max_length=160)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    recipients = models.CharField(
        max_length=10, choices=Recipients.choices, default=Recipients.NAMED_EMPLOYEE
    )
    points = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    min_score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    # Conditions: blank means any.
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    touchpoint = models.ForeignKey(
        Touchpoint, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    category = models.CharField(max_length=12, choices=InteractionCategory.choices, blank=True)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee_role = models.CharField(max_length=20, blank=True)
    # "Critical counts double": the points are multiplied when the interaction is Critical.
    critical_multiplier = models.DecimalField(
        max_digits=4, decimal_places=2, default=1, validators=[MinValueValidator(0)]
    )
    budget = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="rules")
    cap_points = models.PositiveIntegerField(null=True, blank=True)  # per person per cap_period
    cap_period = models.CharField(max_length=8, choices=CapPeriod.choices, default=CapPeriod.MONTH)
    effective_from = models.DateField()
    effective_until = models.DateField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="reward_rule_name_uniq"),
            models.CheckConstraint(
                condition=Q(effective_until__isnull=True)
                | Q(effective_until__gte=models.F("effective_from")),
                name="reward_rule_dates",
            ),
        ]
        indexes = [models.Index(fields=["organization", "trigger", "active"], name="reward_rule_org_trigger")]

    def __str__(self):
        return self.name


class RewardSkip(TenantModel):
    """An award a rule would have made but did not (budget empty, cap reached), said once."""

    SCOPE_PATHS = {
        "region": "employee__current_location__region",
        "location": "employee__current_location",
        "employee": "employee",
    }

    rule = models.ForeignKey(RewardRule, on_delete=models.CASCADE, related_name="skips")
    event_id = models.UUIDField()
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "rule", "event_id", "employee"], name="reward_skip_once"
            )
        ]


class Recognition(TenantModel):
    """Points given by a manager (or a peer) with a message, shown on the recognition feed."""

    SCOPE_PATHS = {
        "region": "receiver__current_location__region",
        "location": "receiver__current_location",
        "employee": "receiver",
    }

    giver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    giver_employee = models.ForeignKey(
        Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    receiver = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="recognitions")
    points = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    message = models.CharField(max_length=500)
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    peer = models.BooleanField(default=False)
    transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="recognition"
    )
    created_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(giver_employee__isnull=True) | ~Q(giver_employee=models.F("receiver")),
                name="recognition_not_self",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="recognition_org_created"),
            models.Index(fields=["organization", "giver", "created_at"], name="recognition_org_giver"),
        ]


class LeaderboardOptIn(TenantModel):
    SCOPE_PATHS = {
        "region": "employee__current_location__region",
        "location": "employee__current_location",
        "employee": "employee",
    }

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="+")
    opted_in_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "employee"], name="leaderboard_opt_in_once")
        ]


class CatalogItem(TenantModel):
    SCOPE_PATHS = None  # visibility by location/role is applied by the portal's selector

    class Kind(models.TextChoices):
        GIFT_CARD = "gift_card", "Gift card"
        MERCHANDISE = "merchandise", "Merchandise"
        TIME_OFF = "time_off", "Extra time off"
        CHARITY = "charity", "Charity donation"

    name = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=12, choices=Kind.choices)
    cost = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    # None: unlimited. Decremented under a row lock, never below zero.
    stock = models.PositiveIntegerField(null=True, blank=True)
    per_person_limit = models.PositiveSmallIntegerField(null=True, blank=True)
    auto_approve = models.BooleanField(default=False)
    # Empty: visible everywhere / to every role.
    visible_locations = models.ManyToManyField(
        Location, blank=True, related_name="+", through="CatalogItemLocation"
    )
    visible_roles = models.JSONField(default=list, blank=True)
    image = models.ImageField(upload_to="incentives/catalog/%Y/%m/", blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["cost", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="catalog_item_name_uniq")
        ]

    def __str__(self):
        return self.name


class CatalogItemLocation(TenantModel):
    SCOPE_PATHS = None

    item = models.ForeignKey(CatalogItem, on_delete=models.CASCADE, related_name="location_links")
    location = models.ForeignKey(Location, on_delete=models.CASCADE, related_name="+")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "item", "location"], name="catalog_item_location_uniq"
            )
        ]


class GiftCardCode(TenantModel):
    """A pre-loaded code revealed to the one redemption that takes it."""

    SCOPE_PATHS = {}

    item = models.ForeignKey(CatalogItem, on_delete=models.PROTECT, related_name="codes")
    code = models.CharField(max_length=200)
    redemption = models.OneToOneField(
        "Redemption", on_delete=models.PROTECT, null=True, blank=True, related_name="gift_card_code"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "item", "code"], name="gift_code_uniq")
        ]
        indexes = [
            models.Index(
                fields=["organization", "item"],
                condition=Q(redemption__isnull=True),
                name="gift_code_org_free",
            )
        ]


class Redemption(TenantModel):
    SCOPE_PATHS = {
        "region": "employee__current_location__region",
        "location": "employee__current_location",
        "employee": "employee",
    }

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting approval"
        FULFILLED = "fulfilled", "Fulfilled"
        DECLINED = "declined", "Declined (refunded)"
        FAILED = "failed", "Fulfilment failed (refunded)"

    item = models.ForeignKey(CatalogItem, on_delete=models.PROTECT, related_name="redemptions")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, related_name="redemptions")
    points = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices)
    hold = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="+")
    settlement = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    refund = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=400, blank=True)
    created_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["organization", "status", "created_at"], name="redemption_org_status"),
            models.Index(fields=["organization", "employee", "item"], name="redemption_org_emp_item"),
        ]


class BonusPeriod(TenantModel):
    """A bonus period for managers with a weighted scorecard; closed, then approved and exported."""

    SCOPE_PATHS = None

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed (payouts calculated)"
        APPROVED = "approved", "Approved"

    name = models.CharField(max_length=160)
    starts_on = models.DateField()
    ends_on = models.DateField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # Payout: % of each participant's target bonus = scorecard score, capped.
    payout_cap_percent = models.DecimalField(max_digits=6, decimal_places=2, default=150)
    # A scorecard below this pays nothing.
    payout_threshold = models.DecimalField(max_digits=5, decimal_places=2, default=50, validators=PERCENT)
    points_per_score_point = models.PositiveIntegerField(default=0)  # optional points on top of cash
    closed_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["-starts_on"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="bonus_period_name_uniq"),
            models.CheckConstraint(
                condition=Q(ends_on__gte=models.F("starts_on")), name="bonus_period_dates"
            ),
        ]


class BonusKpi(TenantModel):
    SCOPE_PATHS = None

    class Kpi(models.TextChoices):
        NPS = "nps", "NPS"
        CSAT = "csat", "CSAT"
        AUDIT_SCORE = "audit_score", "Audit score"
        MONITORING_SCORE = "monitoring_score", "Monitoring score"
        TRAINING_ON_TIME = "training_on_time", "Training completed on time"
        CASES_IN_SLA = "cases_in_sla", "Cases resolved within SLA"
        ALIGNMENT = "alignment", "Alignment score"
        SALES_VS_TARGET = "sales_vs_target", "Sales vs target"
        AVERAGE_PURCHASE = "average_purchase", "Average purchase"
        RETENTION = "retention", "Retention rate"

    period = models.ForeignKey(BonusPeriod, on_delete=models.CASCADE, related_name="kpis")
    kpi = models.CharField(max_length=20, choices=Kpi.choices)
    weight = models.DecimalField(max_digits=5, decimal_places=2, validators=[MinValueValidator(0)])
    # Normalisation to 0-100: the value at ``floor`` scores 0, at ``target`` 100 (linear, clamped).
    target = models.DecimalField(max_digits=12, decimal_places=2)
    floor = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    min_sample = models.PositiveIntegerField(default=30)

    class Meta(TenantModel.Meta):
        ordering = ["period_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "period", "kpi"], name="bonus_kpi_once")
        ]


class BonusParticipant(TenantModel):
    """A manager in a bonus period, scored over their scope: a location (store manager), a region
    (regional manager) or a team (supervisor). Employees (supervisors) see only their own row."""

    SCOPE_PATHS = {"region": "region", "location": "location", "employee": "employee"}

    period = models.ForeignKey(BonusPeriod, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    region = models.ForeignKey(Region, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    target_bonus = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "period", "user"], name="bonus_participant_once"),
            models.CheckConstraint(
                condition=Q(location__isnull=False) | Q(region__isnull=False) | Q(team__isnull=False),
                name="bonus_participant_has_scope",
            ),
        ]


class BonusResult(TenantModel):
    """The calculated payout of one participant at close (kept; re-closing replaces it)."""

    SCOPE_PATHS = {
        "region": "participant__region",
        "location": "participant__location",
        "employee": "participant__employee",
    }

    participant = models.OneToOneField(BonusParticipant, on_delete=models.CASCADE, related_name="result")
    kpi_scores = models.JSONField(default=list)  # [{"kpi", "value", "n", "score", "weight", "status"}]
    score = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    payout_percent = models.DecimalField(max_digits=6, decimal_places=2)
    payout_amount = models.DecimalField(max_digits=10, decimal_places=2)
    points = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()
    exported_at = models.DateTimeField(null=True, blank=True)
