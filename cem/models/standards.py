from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from cem.tenancy import TenantModel


class InteractionCategory(models.TextChoices):
    """How an interaction matters to the relationship (white paper, section on interaction types)."""

    STABILIZING = "stabilizing", "Stabilizing"
    CRITICAL = "critical", "Critical"
    PLANNED = "planned", "Planned"


class Channel(TenantModel):
    SCOPE_PATHS = None  # reference data

    class Kind(models.TextChoices):
        IN_STORE = "in_store", "In-store"
        PHONE = "phone", "Phone"
        CHAT = "chat", "Chat"
        EMAIL = "email", "Email"
        WEB = "web", "Web"
        APP = "app", "App"

    code = models.SlugField(max_length=40)
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=12, choices=Kind.choices)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "code"], name="channel_code_uniq")]

    def __str__(self):
        return self.name


class Touchpoint(TenantModel):
    SCOPE_PATHS = None  # reference data

    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="touchpoints")
    code = models.SlugField(max_length=60)
    name = models.CharField(max_length=160)
    category = models.CharField(max_length=12, choices=InteractionCategory.choices)
    journey_order = models.PositiveSmallIntegerField(default=0)

    class Meta(TenantModel.Meta):
        ordering = ["channel_id", "journey_order", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "code"], name="touchpoint_code_uniq")]

    def __str__(self):
        return self.name


class SkillCategory(TenantModel):
    SCOPE_PATHS = None  # reference data

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        verbose_name_plural = "skill categories"
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="skill_category_name_uniq")
        ]

    def __str__(self):
        return self.name


class CustomerExpectation(TenantModel):
    """What customers expect at a touchpoint, with how much it matters to them (1-5)."""

    SCOPE_PATHS = None  # reference data

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    importance = models.PositiveSmallIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="1 (nice to have) to 5 (essential)",
    )

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="expectation_name_uniq"),
            models.CheckConstraint(
                condition=models.Q(importance__gte=1, importance__lte=5), name="expectation_importance_range"
            ),
        ]

    def __str__(self):
        return self.name


class BrandMessage(TenantModel):
    SCOPE_PATHS = None  # reference data

    title = models.CharField(max_length=200)
    text = models.TextField(blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["title"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "title"], name="brand_message_title_uniq")
        ]

    def __str__(self):
        return self.title


class Standard(TenantModel):
    """A service standard: the key every survey question, audit item, lesson and reward points at."""

    SCOPE_PATHS = None  # reference data

    code = models.SlugField(max_length=60)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    skill_category = models.ForeignKey(SkillCategory, on_delete=models.PROTECT, related_name="standards")
    expectation = models.ForeignKey(
        CustomerExpectation, on_delete=models.PROTECT, null=True, blank=True, related_name="standards"
    )
    brand_message = models.ForeignKey(
        BrandMessage, on_delete=models.SET_NULL, null=True, blank=True, related_name="standards"
    )
    category = models.CharField(
        max_length=12,
        choices=InteractionCategory.choices,
        blank=True,
        help_text="The interaction category this standard matters most in, if any.",
    )
    active = models.BooleanField(default=True)

    class Meta(TenantModel.Meta):
        ordering = ["code"]
        constraints = [models.UniqueConstraint(fields=["organization", "code"], name="standard_code_uniq")]
        indexes = [models.Index(fields=["organization", "skill_category"], name="standard_org_skill")]

    def __str__(self):
        return self.title
