from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from cem.tenancy import TenantModel


class Region(TenantModel):
    SCOPE_PATHS = {"region": "pk", "location": "locations", "employee": "locations__current_employees"}

    name = models.CharField(max_length=120)
    code = models.SlugField(max_length=40)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "code"], name="region_code_uniq")]

    def __str__(self):
        return self.name


class Location(TenantModel):
    class Kind(models.TextChoices):
        STORE = "store", "Store"
        BRANCH = "branch", "Branch"
        CONTACT_CENTRE = "contact_centre", "Contact centre"

    SCOPE_PATHS = {"region": "region", "location": "pk", "employee": "current_employees"}

    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="locations")
    name = models.CharField(max_length=160)
    code = models.SlugField(max_length=40)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.STORE)
    address = models.TextField(blank=True)
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
    active = models.BooleanField(default=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "code"], name="location_code_uniq"),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="location_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="location_longitude_range",
            ),
        ]
        indexes = [models.Index(fields=["organization", "region"], name="location_org_region")]

    def __str__(self):
        return self.name


class Team(TenantModel):
    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "current_employees"}

    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="teams")
    name = models.CharField(max_length=120)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "location", "name"], name="team_name_uniq")
        ]

    def __str__(self):
        return self.name


class Employee(TenantModel):
    class Role(models.TextChoices):
        ASSOCIATE = "associate", "Associate"
        AGENT = "agent", "Agent"
        SUPERVISOR = "supervisor", "Supervisor"
        STORE_MANAGER = "store_manager", "Store manager"

    SCOPE_PATHS = {"region": "current_location__region", "location": "current_location", "employee": "pk"}

    name = models.CharField(max_length=160)
    email = models.EmailField(blank=True)
    external_id = models.CharField(max_length=64)
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.ASSOCIATE)
    active = models.BooleanField(default=True)
    # Denormalised from the open assignment so scope filters and lists need no date logic;
    # maintained only by cem.services.employee_assign.
    current_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="current_employees"
    )
    current_team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="current_employees"
    )

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "external_id"], name="employee_external_id_uniq")
        ]
        indexes = [models.Index(fields=["organization", "current_location"], name="employee_org_location")]

    def __str__(self):
        return self.name


class EmployeeAssignment(TenantModel):
    """Where an employee worked and when. Closed, never deleted, so history stays attributable."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, related_name="assignments")
    location = models.ForeignKey(Location, on_delete=models.PROTECT, related_name="assignments")
    team = models.ForeignKey(
        Team, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments"
    )
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-start_date"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="assignment_dates_ordered",
            ),
            models.UniqueConstraint(
                fields=["organization", "employee"],
                condition=Q(end_date__isnull=True),
                name="assignment_one_open_per_employee",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "employee", "start_date"], name="assignment_org_emp_start"),
            models.Index(fields=["organization", "location", "start_date"], name="assignment_org_loc_start"),
        ]
