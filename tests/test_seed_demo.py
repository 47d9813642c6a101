"""seed_demo at 2% scale: both tenants load once, deterministically, and every persona can sign in."""

from __future__ import annotations

import datetime as dt
import hashlib
import zoneinfo
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.db.models import Avg, Max, Min, Sum
from django.test import RequestFactory
from django.utils import timezone

from alignment import models as alm
from alignment.business import rule_matches
from alignment.demo import MISALIGNED_STORES
from alignment.selectors import quadrant
from audits import models as am
from cem import models as m
from cem.management.commands.seed_demo import PASSWORD, PERSONAS, SUPERUSER_EMAIL
from cem.principals import api_key_from_header
from cem.tenancy import tenant_context, unscoped
from feedback import models as fm
from incentives import models as im
from learning import models as lm
from tests.incentives.ledger_helpers import ledger_check

pytestmark = pytest.mark.django_db

SCALE = 0.02
SEED = 4242
COUNTED = (
    m.Region,
    m.Location,
    m.Team,
    m.Employee,
    m.EmployeeAssignment,
    m.Channel,
    m.Touchpoint,
    m.SkillCategory,
    m.CustomerExpectation,
    m.BrandMessage,
    m.Standard,
    m.Segment,
    m.Customer,
    m.Interaction,
    m.InteractionEmployee,
    m.Membership,
    m.ApiKey,
    m.OutboxEvent,
    m.AuditLog,
    fm.Survey,
    fm.SurveyVersion,
    fm.Question,
    fm.SurveyTrigger,
    fm.Response,
    fm.Answer,
    fm.Case,
    fm.AlertRule,
    am.Program,
    am.Scenario,
    am.ScenarioLeg,
    am.FormItem,
    am.Shopper,
    am.Certification,
    am.Assignment,
    am.Audit,
    am.AuditAnswer,
    am.StandardScore,
    am.Dispute,
    am.ScoreChange,
    am.MonitoringSample,
    am.SampleItem,
    am.CalibrationSession,
    lm.Lesson,
    lm.LessonVersion,
    lm.LessonStandard,
    lm.Quiz,
    lm.QuizQuestion,
    lm.Library,
    lm.LearningPath,
    lm.PathStep,
    lm.GapRule,
    lm.GapTrigger,
    lm.Assignment,
    lm.Completion,
    lm.QuizAttempt,
    im.RewardRule,
    im.CatalogItem,
    im.GiftCardCode,
    im.Account,
    im.LedgerTransaction,
    im.LedgerEntry,
    im.PointsLot,
    im.Redemption,
    lm.PathCertificate,
    alm.BusinessMetric,
    alm.CustomerTransaction,
    alm.JourneyMap,
    alm.JourneyStep,
    alm.Rollup,
    alm.RollupSource,
)


@pytest.fixture(autouse=True)
def _fast_hasher(settings):
    # The seed hashes the demo password once with the first hasher; PBKDF2 costs ~0.4 s per check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def seed(tmp_path, **options) -> str:
    out = StringIO()
    options = {"scale": SCALE, "seed": SEED, **options}
    call_command("seed_demo", logins_file=str(tmp_path / "logins.txt"), stdout=out, **options)
    return out.getvalue()


def snapshot() -> dict:
    """Row counts per demo tenant plus a digest of the generated content (ids excluded)."""
    with unscoped():
        demo = m.Organization.objects.filter(slug__in=["northwind", "contoso"])
        orgs = dict(demo.values_list("slug", "id"))
        counts = {
            f"{slug}.{model.__name__}": model.objects.filter(organization_id=org_id).count()
            for slug, org_id in sorted(orgs.items())
            for model in COUNTED
        }
        content = (
            list(
                m.Interaction.objects.filter(organization_id__in=orgs.values())
                .order_by("organization__slug", "external_id")
                .values_list(
                    "organization__slug",
                    "external_id",
                    "location__code",
                    "touchpoint__code",
                    "customer__external_id",
                    "amount",
                    "category",
                    "attributes",
                )
            ),
            list(
                m.Employee.objects.filter(organization_id__in=orgs.values())
                .order_by("organization__slug", "external_id")
                .values_list(
                    "external_id", "name", "email", "role", "current_location__code", "current_team__name"
                )
            ),
            list(
                m.Customer.objects.filter(organization_id__in=orgs.values())
                .order_by("organization__slug", "external_id")
                .values_list("external_id", "segment__name", "email", "phone", "consent_email")
            ),
            list(
                fm.Answer.objects.filter(organization_id__in=orgs.values())
                .order_by("organization__slug", "survey__name", "submitted_at", "question_key")
                .values_list(
                    "organization__slug",
                    "survey__name",
                    "question_key",
                    "number",
                    "text",
                    "choices",
                    "location__code",
                    "employee__external_id",
                )
            ),
            list(
                am.Audit.objects.filter(organization_id__in=orgs.values())
                .order_by("organization__slug", "visited_at", "location__code", "score")
                .values_list("organization__slug", "location__code", "score", "critical_failed", "status")
            ),
            list(
                am.Shopper.objects.filter(organization_id__in=orgs.values())
                .order_by("email")
                .values_list("email", "name", "status")
            ),
            list(
                lm.Assignment.objects.filter(organization_id__in=orgs.values())
                .order_by(
                    "employee__external_id", "user__username", "assigned_at", "lesson__title", "path__name"
                )
                .values_list(
                    "source",
                    "status",
                    "lesson__title",
                    "path__name",
                    "employee__external_id",
                    "user__username",
                    "reason",
                    "progress",
                )
            ),
            list(
                alm.BusinessMetric.objects.filter(organization_id__in=orgs.values())
                .order_by("location__code", "period_start", "kind")
                .values_list("location__code", "period_start", "kind", "value")
            ),
            list(
                alm.CustomerTransaction.objects.filter(organization_id__in=orgs.values())
                .order_by("external_id")
                .values_list(
                    "external_id", "customer__external_id", "location__code", "occurred_on", "amount"
                )
            ),
        )
    digest = hashlib.sha256(repr(content).encode()).hexdigest()
    return {"orgs": sorted(orgs), "counts": counts, "digest": digest}


def api_key_from(text: str) -> str:
    lines = text.splitlines()
    return next(lines[i + 1] for i, line in enumerate(lines) if line.startswith("Integrator API key")).strip()


def test_seed_demo_loads_once_deterministically_with_working_logins(tmp_path):
    output = seed(tmp_path)
    first = snapshot()

    assert first["orgs"] == ["contoso", "northwind"]
    counts = first["counts"]
    assert counts["northwind.Location"] == 1 and counts["contoso.Location"] == 1
    assert counts["northwind.Region"] == 3
    assert counts["northwind.Employee"] == counts["northwind.EmployeeAssignment"] == 6
    assert counts["contoso.Employee"] == counts["contoso.EmployeeAssignment"] == 2
    assert counts["northwind.Interaction"] == 800 and counts["contoso.Interaction"] == 200
    assert counts["northwind.InteractionEmployee"] > 0
    assert counts["northwind.Standard"] == 40 and counts["contoso.Standard"] == 20
    assert counts["northwind.SkillCategory"] == counts["contoso.SkillCategory"] == 6
    assert counts["northwind.Customer"] == 60 and counts["contoso.Customer"] == 24
    assert counts["northwind.Membership"] == 8 and counts["contoso.Membership"] == 5
    assert counts["northwind.ApiKey"] == 1
    assert "Demo data loaded in" in output

    # Feedback: three surveys at Northwind, one at Contoso, responses scaled with --scale (2% of
    # 180,000 and 20,000), both languages, comments analysed, cases and alert rules.
    assert counts["northwind.Survey"] == 3 and counts["contoso.Survey"] == 1
    assert counts["northwind.Response"] == 3600 and counts["contoso.Response"] == 400
    assert counts["northwind.Answer"] > 3 * counts["northwind.Response"]
    assert counts["northwind.SurveyTrigger"] == 3 and counts["northwind.AlertRule"] == 4
    assert counts["northwind.Case"] >= 3
    with unscoped():
        northwind = m.Organization.objects.get(slug="northwind")
        responses = fm.Response.objects.filter(organization=northwind)
        assert set(responses.values_list("locale", flat=True)) == {"en", "es"}
        assert set(fm.Survey.objects.filter(organization=northwind).values_list("name", flat=True)) == {
            "Store visit",
            "Support call",
            "Web checkout",
        }
        questions = fm.Question.objects.filter(organization=northwind)
        assert all(set(q.text) == {"en", "es"} for q in questions)
        assert questions.filter(standard__isnull=False).exists()
        comments = fm.Answer.objects.filter(organization=northwind, question_type="text")
        assert set(comments.values_list("sentiment", flat=True)) >= {"positive", "negative"}
        assert comments.exclude(topics=[]).exists()
        assert comments.filter(text__contains="personal").exists()  # Spanish comments too
        # Dimensions copied onto every answer, as response_record does.
        answer = fm.Answer.objects.filter(organization=northwind, question_type="nps").first()
        response = fm.Response.objects.get(pk=answer.response_id)
        assert (answer.location_id, answer.submitted_at, answer.survey_id) == (
            response.location_id,
            response.submitted_at,
            response.survey_id,
        )
        assert fm.Case.objects.filter(organization=northwind, status="open").exists()
    assert "feedback responses" in output

    # Audits: two mystery-shopping programmes (one cross-channel with two legs) and shoppers in
    # several states at Northwind; a monitoring programme, samples, evaluations and a closed
    # calibration session at Contoso. Published audits carry scores and standard scores.
    assert counts["northwind.Program"] == 2 and counts["contoso.Program"] == 1
    assert counts["northwind.ScenarioLeg"] == 2
    assert counts["northwind.Audit"] >= 60 and counts["northwind.StandardScore"] > counts["northwind.Audit"]
    assert counts["northwind.Dispute"] >= 1
    assert counts["contoso.MonitoringSample"] == 4 and counts["contoso.CalibrationSession"] == 1
    with unscoped():
        shoppers = am.Shopper.objects.filter(organization=northwind)
        assert set(shoppers.values_list("status", flat=True)) == {
            "applied",
            "approved",
            "rejected",
            "suspended",
        }
        persona = shoppers.get(user__username="shopper@northwind.demo")
        assert persona.status == "approved" and persona.certifications.exists()
        jobs = am.Assignment.objects.filter(organization=northwind)
        assert {"open", "assigned", "returned", "published"} <= set(jobs.values_list("status", flat=True))
        assert jobs.filter(shopper=persona, status="returned").exists()
        # Reviewers' ratings (Shopper.rating their average) and paid / payable items in batches.
        rated = shoppers.filter(ratings__isnull=False).distinct()
        assert rated.exists() and not rated.filter(rating__isnull=True).exists()
        payables = am.Payable.objects.filter(organization=northwind)
        assert {"paid", "payable"} <= set(payables.values_list("status", flat=True))
        assert not payables.filter(status="paid", batch__isnull=True).exists()
        published = am.Audit.objects.filter(organization=northwind, status="published")
        assert published.count() == counts["northwind.Audit"] - 1  # the returned job's draft
        assert not published.filter(score__isnull=True).exists()
        assert am.StandardScore.objects.filter(organization=northwind, published_at__isnull=False).exists()
        # Six months of history, and standards that score differently (some weaker).
        span = published.aggregate(first=Min("published_at"), last=Max("published_at"))
        assert span["last"] - span["first"] > dt.timedelta(days=150)
        by_standard = (
            am.StandardScore.objects.filter(organization=northwind, value__isnull=False)
            .values("standard")
            .annotate(mean=Avg("value"))
        )
        means = sorted(row["mean"] for row in by_standard)
        assert len(means) >= 5 and means[-1] - means[0] > 10
        contoso = m.Organization.objects.get(slug="contoso")
        evaluations = am.Audit.objects.filter(
            organization=contoso, interaction__isnull=False, calibration__isnull=True, status="published"
        )
        assert evaluations.exists() and not evaluations.filter(employee__isnull=True).exists()
        session = am.CalibrationSession.objects.get(organization=contoso)
        assert session.closed_at is not None and session.final_audit_id is not None
        assert am.Audit.objects.filter(calibration=session).exclude(pk=session.final_audit_id).count() == 3

    # Learning: a lesson per standard (in English and Spanish) plus the shopper lessons, quizzes with
    # explanations, three paths (the certification path wired to the mystery-shopping
    # programmes), gap rules with assigned and held-out triggers, and assignments of every source
    # with completions, quiz attempts and certificates; the treated employees' later answers lifted.
    assert counts["northwind.Lesson"] == 43 and counts["northwind.LessonVersion"] == 43
    assert counts["northwind.LessonStandard"] == 40
    assert counts["northwind.Quiz"] == 21 and counts["northwind.QuizQuestion"] == 20 * 3 + 5
    assert counts["northwind.Library"] == 7
    assert counts["northwind.LearningPath"] == 3 and counts["northwind.GapRule"] == 5
    assert 90 <= counts["northwind.Assignment"] <= 130  # ~5,000 at --scale 1
    assert counts["northwind.Completion"] > counts["northwind.Assignment"] // 2
    assert counts["northwind.QuizAttempt"] > 0 and counts["northwind.PathCertificate"] > 0
    assert counts["contoso.Lesson"] == 0
    assert "learning assignments" in output
    with unscoped():
        lessons = lm.Lesson.objects.filter(organization=northwind)
        assert set(lessons.values_list("audience", flat=True)) == {"employees", "shoppers"}
        version = lm.LessonVersion.objects.get(organization=northwind, title="The 10-second welcome")
        assert "Why it matters" in version.body_html and "<ol>" in version.body_html
        assert version.translations["es"]["title"] == "La bienvenida en 10 segundos"
        assert "Por qué importa" in version.translations["es"]["body_html"]
        questions = lm.QuizQuestion.objects.filter(organization=northwind)
        assert not questions.filter(explanation="").exists()
        assert all("es" in q.translations for q in questions)
        cert_path = lm.LearningPath.objects.get(organization=northwind, name="Mystery shopper certification")
        programmes = am.Program.objects.filter(organization=northwind, kind="mystery_shop")
        assert set(programmes.values_list("certification_path", flat=True)) == {cert_path.pk}
        assert cert_path.audience == "shoppers" and cert_path.steps.count() == 3
        paths = lm.LearningPath.objects.filter(organization=northwind)
        assert paths.filter(name="New associate onboarding", audience="employees").exists()
        assignments = lm.Assignment.objects.filter(organization=northwind)
        assert {"manual", "rule", "certification"} <= set(assignments.values_list("source", flat=True))
        assert {"completed", "assigned"} <= set(assignments.values_list("status", flat=True))
        assert not assignments.filter(source="rule", trigger__isnull=True).exists()
        assert assignments.get(source="certification").user.username == "shopper@northwind.demo"
        triggers = lm.GapTrigger.objects.filter(organization=northwind)
        assert triggers.filter(outcome="assigned").exists()
        rule_reason = assignments.filter(source="rule").first().reason
        assert rule_reason.startswith("Customers rated ") and "over the last 30 days" in rule_reason
        persona_employee = m.Membership.objects.get(user__username="employee@northwind.demo").employee
        mine = assignments.filter(employee=persona_employee)
        assert mine.filter(status__in=["assigned", "in_progress"]).count() >= 2
        assert lm.PathCertificate.objects.filter(employee=persona_employee).exists()
        attempts = lm.QuizAttempt.objects.filter(organization=northwind)
        assert attempts.filter(passed=True).exists()
        assert not attempts.filter(submitted_at__isnull=True).exists()

    # Incentives: rules, funded budgets, a catalogue with code pools, awards derived from the
    # history (promoters, excellent audits, lessons, first-try quizzes, cases in SLA), redemptions
    # in every state; the ledger reconciles (manage.py ledger_check exits 0).
    assert counts["northwind.RewardRule"] == 5 and counts["northwind.CatalogItem"] == 20
    assert counts["northwind.LedgerTransaction"] > counts["northwind.Redemption"] > 0
    assert counts["northwind.LedgerEntry"] == 2 * counts["northwind.LedgerTransaction"]
    assert counts["contoso.LedgerTransaction"] == 0
    with unscoped():
        txs = im.LedgerTransaction.objects.filter(organization=northwind)
        awarded_rules = set(txs.filter(kind="award").values_list("rule__trigger", flat=True))
        assert {"promoter_response", "audit_score", "lesson_completed"} <= awarded_rules
        statuses = set(im.Redemption.objects.filter(organization=northwind).values_list("status", flat=True))
        assert statuses == {"pending", "fulfilled", "declined", "failed"}
        assert im.GiftCardCode.objects.filter(organization=northwind, redemption__status="fulfilled").exists()
        assert im.GiftCardCode.objects.filter(organization=northwind, redemption__isnull=True).exists()
        budgets = im.Account.objects.filter(organization=northwind, kind="budget")
        assert budgets.count() >= 3 and not budgets.filter(balance__lte=0).exists()
    assert "award transactions" in output
    code, report = ledger_check()
    assert code == 0, report

    # Alignment: six complete months of business metrics per store, CRM transactions that make
    # the seeded segments' rules true, a journey map per segment, and the rollup the dashboards
    # read, built from everything above. S001 (the only store at this scale, and the store
    # manager persona's) is one of the misaligned stores: strong audits, weak customer scores.
    assert counts["northwind.BusinessMetric"] == 1 * 6 * len(alm.BusinessMetric.Kind)
    assert counts["northwind.CustomerTransaction"] > counts["northwind.Customer"]
    assert counts["northwind.JourneyMap"] == 3 and counts["northwind.JourneyStep"] == 15
    assert counts["contoso.BusinessMetric"] == counts["contoso.JourneyMap"] == 0
    assert counts["northwind.Rollup"] > 0 and counts["contoso.Rollup"] > 0
    assert "business metrics" in output and "rows in SQL" in output
    with tenant_context(northwind):
        metrics = alm.BusinessMetric.objects.all()
        months = sorted(set(metrics.values_list("period_start", flat=True)))
        assert len(months) == 6 and all(m_.day == 1 for m_ in months)
        month_index = [d.year * 12 + d.month for d in months]
        today = timezone.now().astimezone(zoneinfo.ZoneInfo(northwind.time_zone)).date()
        last_complete = today.year * 12 + today.month - 1
        assert month_index == list(range(last_complete - 5, last_complete + 1))
        assert set(metrics.values_list("kind", flat=True)) == set(alm.BusinessMetric.Kind.values)
        retention = metrics.filter(kind="retention_rate").aggregate(lo=Min("value"), hi=Max("value"))
        assert 35 <= retention["lo"] <= retention["hi"] <= 85
        # "Under $100" splits the purchases into two real groups.
        transactions = alm.CustomerTransaction.objects.all()
        under = transactions.filter(amount__lt=100).count()
        assert 0.4 < under / transactions.count() < 0.9
        assert transactions.filter(location__isnull=False).exists()
        # The CRM data is the seeded segments' truth: applying each rule moves nobody.
        segments = m.Segment.objects.exclude(rule=[])
        assert segments.count() == 3
        for segment in segments:
            members = set(m.Customer.objects.filter(segment=segment).values_list("pk", flat=True))
            matched = rule_matches(organization=northwind, rule=segment.rule).values_list("pk", flat=True)
            assert members == set(matched), segment.name
        journeys = alm.JourneyMap.objects.select_related("segment")
        assert {j.segment.name for j in journeys} == {"New customers", "Regulars", "VIP"}
        for journey in journeys:
            positions = list(journey.steps.order_by("position").values_list("position", flat=True))
            assert positions == [1, 2, 3, 4, 5]
            assert journey.steps.filter(expectation__isnull=False).count() == 5
        # The rollup holds every response, audit and interaction (built in SQL at the end).
        rollups = alm.Rollup.objects.all()

        def rolled_up(measure):
            return rollups.filter(measure=measure).aggregate(n=Sum("n"))["n"]

        assert rolled_up("responses") == counts["northwind.Response"]
        assert rolled_up("audit") == published.count()
        assert rolled_up("interactions") == counts["northwind.Interaction"]
        # Misaligned: every standard both audited and rated by customers at S001 is a blind spot
        # on the impression x execution matrix, and the store's audit score is high while its NPS
        # is low.
        assert "S001" in MISALIGNED_STORES
        s001 = m.Location.objects.get(code="S001")
        at_store = rollups.filter(location=s001, standard__isnull=False)
        sides = {}
        for row in at_store.values("standard_id", "measure").annotate(n=Sum("n"), total=Sum("total")):
            sides.setdefault(row["standard_id"], {})[row["measure"]] = row["total"] / row["n"]
        both = {std: v for std, v in sides.items() if {"std_feedback", "std_audit"} <= v.keys()}
        assert len(both) >= 2, sides
        for std, v in both.items():
            assert quadrant(v["std_feedback"], v["std_audit"]) == "blind_spot", (std, v)
        audit = rollups.filter(location=s001, measure="audit").aggregate(n=Sum("n"), total=Sum("total"))
        assert audit["total"] / audit["n"] >= 80
        nps = rollups.filter(location=s001, measure="nps").aggregate(
            n=Sum("n"), top=Sum("top"), bottom=Sum("bottom")
        )
        assert 100 * (nps["top"] - nps["bottom"]) / nps["n"] < 20
        # The latest periods' alignment scores are there for the dashboards (the rest of the
        # history is queued for the worker when the seed commits).
        store_scores = alm.AlignmentScore.objects.filter(scope="location", scope_id=s001.pk, link="overall")
        assert {"day", "week", "month", "quarter"} <= set(store_scores.values_list("period", flat=True))
    logins = (tmp_path / "logins.txt").read_text()
    assert "Misaligned stores at Northwind Retail" in logins and "S001" in logins

    # Every persona authenticates with the demo password and holds the advertised role.
    request = RequestFactory().post("/accounts/login/")
    for _key, email, role, slug, _scope in PERSONAS:
        user = authenticate(request, username=email, password=PASSWORD)
        assert user is not None, email
        with unscoped():
            membership = m.Membership.objects.select_related("organization").get(user=user)
        assert (membership.role, membership.organization.slug) == (role, slug)
    staff = authenticate(request, username=SUPERUSER_EMAIL, password=PASSWORD)
    assert staff is not None and staff.is_staff and staff.is_superuser
    with unscoped():
        assert not m.Membership.objects.filter(user=staff).exists()
        employee_membership = m.Membership.objects.get(user__username="employee@northwind.demo")
        assert employee_membership.employee.current_location.code == "S001"

    # The logins file carries the table and a working integrator key.
    logins = (tmp_path / "logins.txt").read_text()
    assert "admin@northwind.demo" in logins and PASSWORD in logins
    key = api_key_from_header(f"Bearer {api_key_from(logins)}")
    assert key is not None and key.organization.slug == "northwind" and "*" in key.scopes

    # A second run is a no-op that prints the logins again.
    again = seed(tmp_path)
    assert "demo data already loaded" in again and api_key_from(logins) in again
    assert snapshot() == first
    assert get_user_model().objects.filter(username=SUPERUSER_EMAIL).count() == 1

    # Same seed after --reset: the same rows; another seed: other rows, same volumes.
    seed(tmp_path, reset=True)
    assert snapshot() == first
    assert ledger_check()[0] == 0
    seed(tmp_path, reset=True, seed=SEED + 1)
    other = snapshot()
    assert other["digest"] != first["digest"]
    for name in (
        "northwind.Employee",
        "northwind.Interaction",
        "contoso.Interaction",
        "northwind.Customer",
        "northwind.Response",
        "contoso.Response",
        "northwind.Audit",
        "contoso.CalibrationSession",
        "northwind.Lesson",
        "northwind.Quiz",
        "northwind.BusinessMetric",
        "northwind.JourneyStep",
    ):
        assert other["counts"][name] == first["counts"][name]
