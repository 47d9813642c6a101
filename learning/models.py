"""Learning: lessons and quizzes tied to Standards, libraries and paths, assignments (manual and
gap-triggered), completions, quiz attempts and xAPI statements.

Content is versioned like surveys and audit forms: editing a published lesson adds a
LessonVersion, and completions and attempts keep the version they were made on. A learner is an
Employee (staff, scoped by their location) or, for shoppers certifying for an audit programme, a
User; every learner row carries one of the two.

Why each assignment was made is data (GapTrigger: the rule, the scores, the counts), so the
portal can say it in plain words and the effectiveness analysis can compare assigned cases with
the holdout cases the same rules deliberately left unassigned for a while.
"""

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from cem.models import Employee, Location, SkillCategory, Standard, Team
from cem.tenancy import TenantModel

PERCENT = [MinValueValidator(0), MaxValueValidator(100)]


class Audience(models.TextChoices):
    EMPLOYEES = "employees", "Employees"
    SHOPPERS = "shoppers", "Mystery shoppers"
    EVERYONE = "everyone", "Employees and shoppers"


class ContentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    ARCHIVED = "archived", "Archived"


class Lesson(TenantModel):
    """A lesson's identity; what it says lives in its versions (a published lesson is never edited)."""

    SCOPE_PATHS = None  # the catalogue is visible to every member; assignments carry the scope

    title = models.CharField(max_length=200)
    summary = models.CharField(max_length=300, blank=True)
    language = models.CharField(max_length=8, default="en")
    estimated_minutes = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.EMPLOYEES)
    status = models.CharField(max_length=10, choices=ContentStatus.choices, default=ContentStatus.DRAFT)
    standards = models.ManyToManyField(Standard, blank=True, related_name="+", through="LessonStandard")
    skill_categories = models.ManyToManyField(
        SkillCategory, blank=True, related_name="+", through="LessonSkillCategory"
    )
    current_version = models.ForeignKey(
        "LessonVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["title"]
        constraints = [models.UniqueConstraint(fields=["organization", "title"], name="lesson_title_uniq")]
        indexes = [models.Index(fields=["organization", "status"], name="lesson_org_status")]

    def __str__(self):
        return self.title


class LessonStandard(TenantModel):
    SCOPE_PATHS = None

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="standard_links")
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, related_name="lesson_links")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "lesson", "standard"], name="lesson_standard_uniq"
            )
        ]
        indexes = [models.Index(fields=["organization", "standard"], name="lesson_std_org_std")]


class LessonSkillCategory(TenantModel):
    SCOPE_PATHS = None

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="skill_links")
    skill_category = models.ForeignKey(SkillCategory, on_delete=models.PROTECT, related_name="lesson_links")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "lesson", "skill_category"], name="lesson_skill_uniq"
            )
        ]
        indexes = [models.Index(fields=["organization", "skill_category"], name="lesson_skill_org_skill")]


class LessonVersion(TenantModel):
    """What a lesson said at one time. ``body`` is the author's Markdown; ``body_html`` is the
    sanitised rendering shown to learners (rendered once, on save, never from the request)."""

    SCOPE_PATHS = None

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    body_html = models.TextField()
    video_url = models.URLField(blank=True)
    # Other languages: {"es": {"title": …, "body": …, "body_html": …}}; a missing one falls back
    # to the lesson's own language.
    translations = models.JSONField(default=dict, blank=True)
    estimated_minutes = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    published_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["lesson_id", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "lesson", "number"], name="lesson_version_uniq")
        ]


class LessonAttachment(TenantModel):
    SCOPE_PATHS = None

    version = models.ForeignKey(LessonVersion, on_delete=models.CASCADE, related_name="attachments")
    name = models.CharField(max_length=200)
    file = models.FileField(upload_to="learning/attachments/%Y/%m/")
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        indexes = [models.Index(fields=["organization", "version"], name="lesson_att_org_version")]


class Quiz(TenantModel):
    """A test: ends a lesson, or stands alone (a shopper certification test)."""

    SCOPE_PATHS = None

    lesson = models.OneToOneField(
        Lesson, on_delete=models.CASCADE, null=True, blank=True, related_name="quiz"
    )
    title = models.CharField(max_length=200)
    pass_mark = models.DecimalField(max_digits=5, decimal_places=2, default=80, validators=PERCENT)
    # None: unlimited attempts.
    attempts_allowed = models.PositiveSmallIntegerField(null=True, blank=True, default=3)
    randomise = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=ContentStatus.choices, default=ContentStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["title"]
        constraints = [
            models.CheckConstraint(
                condition=Q(attempts_allowed__isnull=True) | Q(attempts_allowed__gte=1),
                name="quiz_attempts_positive",
            )
        ]

    def __str__(self):
        return self.title


class QuizQuestion(TenantModel):
    SCOPE_PATHS = None

    class Kind(models.TextChoices):
        SINGLE = "single", "Multiple choice, one answer"
        MULTI = "multi", "Multiple choice, several answers"
        TRUE_FALSE = "true_false", "True / false"

    quiz = models.ForeignKey(Quiz, on_delete=models.CASCADE, related_name="questions")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    text = models.TextField()
    # [{"key": "a", "text": "…", "correct": true}, …]; true/false questions use keys "true"/"false".
    choices = models.JSONField(default=list)
    explanation = models.TextField(blank=True)
    translations = models.JSONField(default=dict, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["quiz_id", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "quiz", "position"], name="quiz_question_pos_uniq"
            )
        ]


class Library(TenantModel):
    """A searchable collection of lessons, usually one skill category's."""

    SCOPE_PATHS = None

    name = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    skill_category = models.ForeignKey(
        SkillCategory, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    lessons = models.ManyToManyField(Lesson, blank=True, related_name="libraries", through="LibraryLesson")

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="library_name_uniq")]

    def __str__(self):
        return self.name


class LibraryLesson(TenantModel):
    SCOPE_PATHS = None

    library = models.ForeignKey(Library, on_delete=models.CASCADE, related_name="lesson_links")
    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="library_links")

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "library", "lesson"], name="library_lesson_uniq")
        ]


class LearningPath(TenantModel):
    """Ordered lessons ("new associate onboarding", "mystery shopper certification")."""

    SCOPE_PATHS = None

    name = models.CharField(max_length=160)
    description = models.TextField(blank=True)
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.EMPLOYEES)
    status = models.CharField(max_length=10, choices=ContentStatus.choices, default=ContentStatus.DRAFT)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="path_name_uniq")]

    def __str__(self):
        return self.name


class PathStep(TenantModel):
    SCOPE_PATHS = None

    path = models.ForeignKey(LearningPath, on_delete=models.CASCADE, related_name="steps")
    lesson = models.ForeignKey(Lesson, on_delete=models.PROTECT, related_name="path_steps")
    position = models.PositiveSmallIntegerField()

    class Meta(TenantModel.Meta):
        ordering = ["path_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "path", "position"], name="path_step_pos_uniq"),
            models.UniqueConstraint(fields=["organization", "path", "lesson"], name="path_step_lesson_uniq"),
        ]


class GapRule(TenantModel):
    """ "When <subject>'s score on <standard> is below <threshold> over the last <window> days with
    at least <min_points> data points, assign <lesson> to <target>." Scores are on 0-100 (survey
    answers normalised from their scale, audit and monitoring standard scores as they are)."""

    SCOPE_PATHS = None

    class Subject(models.TextChoices):
        EMPLOYEE = "employee", "An employee"
        LOCATION = "location", "A location"
        TEAM = "team", "A team"

    class Target(models.TextChoices):
        EMPLOYEE = "employee", "The employee"
        LOCATION = "location", "All employees of the location"
        TEAM = "team", "The team"

    class Source(models.TextChoices):
        ANY = "any", "Feedback, audits and monitoring"
        FEEDBACK = "feedback", "Customer feedback only"
        AUDITS = "audits", "Audits and monitoring only"

    name = models.CharField(max_length=160)
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, related_name="+")
    subject = models.CharField(max_length=10, choices=Subject.choices, default=Subject.EMPLOYEE)
    target = models.CharField(max_length=10, choices=Target.choices, default=Target.EMPLOYEE)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ANY)
    threshold = models.DecimalField(max_digits=5, decimal_places=2, validators=PERCENT)
    window_days = models.PositiveSmallIntegerField(default=30, validators=[MinValueValidator(1)])
    min_points = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    lesson = models.ForeignKey(Lesson, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    path = models.ForeignKey(LearningPath, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    cooldown_days = models.PositiveSmallIntegerField(default=28)
    due_days = models.PositiveSmallIntegerField(default=7, validators=[MinValueValidator(1)])
    holdout_share = models.DecimalField(
        max_digits=4,
        decimal_places=3,
        default="0.100",
        validators=[MinValueValidator(0), MaxValueValidator(1)],
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta(TenantModel.Meta):
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="gap_rule_name_uniq"),
            models.CheckConstraint(
                condition=Q(lesson__isnull=False, path__isnull=True)
                | Q(lesson__isnull=True, path__isnull=False),
                name="gap_rule_lesson_xor_path",
            ),
        ]
        indexes = [models.Index(fields=["organization", "standard", "active"], name="gap_rule_org_std")]

    def __str__(self):
        return self.name


class GapTrigger(TenantModel):
    """One time a rule found a gap for a subject. Holds the evidence; the holdout ones are the
    control group (assigned only after the cooldown, so nobody is denied training for good)."""

    SCOPE_PATHS = {"region": "location__region", "location": "location", "employee": "employee"}

    class Outcome(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        HOLDOUT = "holdout", "Held out (control group), assigned after the cooldown"
        SKIPPED = "skipped", "Skipped"

    rule = models.ForeignKey(GapRule, on_delete=models.CASCADE, related_name="triggers")
    standard = models.ForeignKey(Standard, on_delete=models.PROTECT, related_name="+")
    subject = models.CharField(max_length=10, choices=GapRule.Subject.choices)
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    employee = models.ForeignKey(Employee, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    score = models.DecimalField(max_digits=5, decimal_places=2)
    points = models.PositiveIntegerField()
    # {"feedback": {"n": 12, "mean": 41.2, "native": "2.1/5"}, "audits": {...}, "window_days": 30, …}
    evidence = models.JSONField(default=dict)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    skip_reason = models.CharField(max_length=200, blank=True)
    holdout_until = models.DateTimeField(null=True, blank=True)
    event_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["organization", "rule", "subject", "created_at"], name="gap_trigger_org_rule"
            ),
            models.Index(fields=["organization", "outcome", "holdout_until"], name="gap_trigger_org_holdout"),
            models.Index(fields=["organization", "employee", "created_at"], name="gap_trigger_org_emp"),
            models.Index(fields=["organization", "location", "created_at"], name="gap_trigger_org_loc"),
        ]


class Assignment(TenantModel):
    """A lesson or path someone must take, by a due date. Exactly one of lesson/path, and a
    learner: an employee, or a user (shoppers have no Employee row)."""

    SCOPE_PATHS = {
        "region": "location__region",
        "location": "location",
        "employee": "employee",
        "shopper": "user",
    }

    class Source(models.TextChoices):
        MANUAL = "manual", "Assigned by a trainer or manager"
        RULE = "rule", "Assigned automatically after a gap"
        CERTIFICATION = "certification", "Certification for an audit programme"
        SELF = "self", "Started by the learner"

    class Status(models.TextChoices):
        ASSIGNED = "assigned", "Assigned"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        WITHDRAWN = "withdrawn", "Withdrawn"

    OPEN = (Status.ASSIGNED, Status.IN_PROGRESS)

    lesson = models.ForeignKey(
        Lesson, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments"
    )
    path = models.ForeignKey(
        LearningPath, on_delete=models.PROTECT, null=True, blank=True, related_name="assignments"
    )
    employee = models.ForeignKey(
        Employee, on_delete=models.CASCADE, null=True, blank=True, related_name="learning_assignments"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    # Where the learner worked when assigned: analytics by location/team stay true after moves.
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    role = models.CharField(max_length=20, blank=True)
    source = models.CharField(max_length=14, choices=Source.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ASSIGNED)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    rule = models.ForeignKey(
        GapRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="assignments"
    )
    trigger = models.ForeignKey(
        GapTrigger, on_delete=models.SET_NULL, null=True, blank=True, related_name="assignments"
    )
    reason = models.CharField(max_length=400, blank=True)
    assigned_at = models.DateTimeField()
    due_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, validators=PERCENT)
    # Path assignments: lessons done so far (ids), so progress survives content edits.
    completed_lesson_ids = models.JSONField(default=list, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_note = models.CharField(max_length=400, blank=True)
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    overdue_notified_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["due_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(lesson__isnull=False, path__isnull=True)
                | Q(lesson__isnull=True, path__isnull=False),
                name="assignment_lesson_xor_path",
            ),
            models.CheckConstraint(
                condition=Q(employee__isnull=False) | Q(user__isnull=False), name="assignment_has_learner"
            ),
            # One open assignment of a lesson per learner: "skip if already assigned" holds
            # under concurrent handlers too.
            models.UniqueConstraint(
                fields=["organization", "employee", "lesson"],
                condition=Q(
                    status__in=["assigned", "in_progress"], employee__isnull=False, lesson__isnull=False
                ),
                name="assignment_open_lesson_per_employee",
            ),
            models.UniqueConstraint(
                fields=["organization", "employee", "path"],
                condition=Q(
                    status__in=["assigned", "in_progress"], employee__isnull=False, path__isnull=False
                ),
                name="assignment_open_path_per_employee",
            ),
            models.UniqueConstraint(
                fields=["organization", "user", "lesson"],
                condition=Q(status__in=["assigned", "in_progress"], user__isnull=False, lesson__isnull=False),
                name="assignment_open_lesson_per_user",
            ),
            models.UniqueConstraint(
                fields=["organization", "user", "path"],
                condition=Q(status__in=["assigned", "in_progress"], user__isnull=False, path__isnull=False),
                name="assignment_open_path_per_user",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "employee", "status"], name="assignment_org_emp_status"),
            models.Index(fields=["organization", "user", "status"], name="assignment_org_user_status"),
            models.Index(fields=["organization", "status", "due_at"], name="assignment_org_status_due"),
            models.Index(fields=["organization", "lesson", "assigned_at"], name="assignment_org_lesson"),
            models.Index(fields=["organization", "location", "assigned_at"], name="assignment_org_loc"),
        ]


class Completion(TenantModel):
    """A lesson finished by a learner, on the version they read (assigned or not)."""

    SCOPE_PATHS = {
        "region": "location__region",
        "location": "location",
        "employee": "employee",
        "shopper": "user",
    }

    lesson = models.ForeignKey(Lesson, on_delete=models.PROTECT, related_name="completions")
    version = models.ForeignKey(LessonVersion, on_delete=models.PROTECT, related_name="completions")
    assignment = models.ForeignKey(
        Assignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="completions"
    )
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    completed_at = models.DateTimeField()
    on_time = models.BooleanField(null=True)

    class Meta(TenantModel.Meta):
        ordering = ["-completed_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(employee__isnull=False) | Q(user__isnull=False), name="completion_has_learner"
            ),
            # A lesson completes an assignment once, however many times "complete" is clicked.
            models.UniqueConstraint(
                fields=["organization", "assignment", "lesson"],
                condition=Q(assignment__isnull=False),
                name="completion_once_per_assignment_lesson",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "lesson", "completed_at"], name="completion_org_lesson"),
            models.Index(fields=["organization", "employee", "completed_at"], name="completion_org_emp"),
            models.Index(fields=["organization", "user", "completed_at"], name="completion_org_user"),
        ]


class QuizAttempt(TenantModel):
    """One try at a quiz. The question order and choices shown are stored (from a stored seed), so
    the result page explains exactly what the learner saw, even after the quiz is edited."""

    SCOPE_PATHS = {
        "region": "location__region",
        "location": "location",
        "employee": "employee",
        "shopper": "user",
    }

    quiz = models.ForeignKey(Quiz, on_delete=models.PROTECT, related_name="attempts")
    assignment = models.ForeignKey(
        Assignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="attempts"
    )
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    number = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()
    # [{"question_id", "kind", "text", "choices": [{"key", "text", "correct"}], "explanation"}]
    questions = models.JSONField(default=list)
    answers = models.JSONField(default=dict, blank=True)  # {"<question_id>": ["a", …]}
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    passed = models.BooleanField(null=True)
    started_at = models.DateTimeField()
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-started_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(employee__isnull=False) | Q(user__isnull=False), name="attempt_has_learner"
            ),
            models.UniqueConstraint(
                fields=["organization", "quiz", "employee", "number"],
                condition=Q(employee__isnull=False),
                name="attempt_number_per_employee",
            ),
            models.UniqueConstraint(
                fields=["organization", "quiz", "user", "number"],
                condition=Q(employee__isnull=True),
                name="attempt_number_per_user",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "quiz", "submitted_at"], name="attempt_org_quiz"),
            models.Index(fields=["organization", "employee", "quiz"], name="attempt_org_emp_quiz"),
            models.Index(fields=["organization", "user", "quiz"], name="attempt_org_user_quiz"),
        ]


class PathCertificate(TenantModel):
    """Issued when a learner finishes every lesson of a path; printable, verifiable by its code."""

    SCOPE_PATHS = {
        "region": "location__region",
        "location": "location",
        "employee": "employee",
        "shopper": "user",
    }

    path = models.ForeignKey(LearningPath, on_delete=models.PROTECT, related_name="certificates")
    assignment = models.OneToOneField(
        Assignment, on_delete=models.SET_NULL, null=True, blank=True, related_name="certificate"
    )
    employee = models.ForeignKey(Employee, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    learner_name = models.CharField(max_length=200)
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    issued_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        ordering = ["-issued_at"]
        indexes = [models.Index(fields=["organization", "path", "issued_at"], name="certificate_org_path")]


class LearningSettings(TenantModel):
    """Per-organization learning settings (one row per organization)."""

    SCOPE_PATHS = None

    max_open_assignments = models.PositiveSmallIntegerField(default=5, validators=[MinValueValidator(1)])
    reminder_days_before_due = models.PositiveSmallIntegerField(default=2)
    escalate_days_overdue = models.PositiveSmallIntegerField(default=3)
    # Optional external LRS: statements are POSTed there too (signed, retried).
    lrs_url = models.URLField(blank=True)
    lrs_secret = models.CharField(max_length=128, blank=True)

    class Meta(TenantModel.Meta):
        constraints = [models.UniqueConstraint(fields=["organization"], name="learning_settings_one_per_org")]


class Statement(TenantModel):
    """An xAPI 1.0.3 statement for one learning event, stored as sent (and forwarded if an LRS is set)."""

    SCOPE_PATHS = {
        "region": "location__region",
        "location": "location",
        "employee": "employee",
        "shopper": "user",
    }

    statement_id = models.UUIDField(default=uuid.uuid4, editable=False)
    verb = models.CharField(max_length=20)  # experienced / completed / passed / failed
    employee = models.ForeignKey(Employee, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    location = models.ForeignKey(Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    body = models.JSONField()
    timestamp = models.DateTimeField()
    stored = models.DateTimeField(auto_now_add=True)
    forwarded_at = models.DateTimeField(null=True, blank=True)
    forward_attempts = models.PositiveSmallIntegerField(default=0)
    forward_error = models.CharField(max_length=300, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-timestamp", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "statement_id"], name="statement_id_uniq")
        ]
        indexes = [
            models.Index(fields=["organization", "timestamp"], name="statement_org_ts"),
            models.Index(
                fields=["organization", "forwarded_at"],
                condition=Q(forwarded_at__isnull=True),
                name="statement_org_unforwarded",
            ),
        ]


class LessonEffect(TenantModel):
    """The latest effectiveness figures of one lesson on one standard (learning/effect_data.py),
    computed by a Celery task (beat, hourly, or on demand) because a page should not gather them.

    Organization-wide like the catalogue: the figures are about the lesson, not about people, and
    a store's own cases would be too few to say anything.
    """

    SCOPE_PATHS = None

    class Verdict(models.TextChoices):
        EFFECTIVE = "effective", "Effective"
        INEFFECTIVE = "ineffective", "Ineffective"
        INSUFFICIENT = "insufficient data", "Insufficient data"

    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="effects")
    standard = models.ForeignKey(Standard, on_delete=models.CASCADE, related_name="+")
    computed_at = models.DateTimeField()
    treated_n = models.PositiveIntegerField(default=0)
    control_n = models.PositiveIntegerField(default=0)
    treated_change = models.FloatField(null=True, blank=True)
    control_change = models.FloatField(null=True, blank=True)
    difference = models.FloatField(null=True, blank=True)
    ci_low = models.FloatField(null=True, blank=True)
    ci_high = models.FloatField(null=True, blank=True)
    verdict = models.CharField(max_length=20, choices=Verdict.choices)
    # {"treated": [change, …], "control": [...], "cases": {"treated": n, "control": n,
    #  "without_data": n}, "window_days": [...], "delay_days": d}: what the figures came from.
    changes = models.JSONField(default=dict, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["lesson_id", "standard_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "lesson", "standard"], name="lesson_effect_uniq")
        ]
        indexes = [models.Index(fields=["organization", "verdict"], name="lesson_effect_org_verdict")]
