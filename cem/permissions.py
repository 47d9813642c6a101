"""Who may do what: role → allowed actions, and role → how far down the hierarchy they see.

Permissions are data. Views declare a ``resource``; the permission class asks
``role_can(role, f"{resource}.{verb}")``. Nothing else in the code branches on a role name.
"""

from cem.models.access import Role

VERBS = ("view", "add", "change", "delete")

RESOURCES = (
    "organization",
    "hierarchy",  # regions, locations, teams, employees, assignments
    "standards",  # channels, touchpoints, skill categories, expectations, brand messages, standards
    "customers",  # customers, segments
    "interactions",
    "memberships",
    "apikeys",
    "auditlog",
    "events",
    # feedback
    "surveys",  # surveys, versions, questions, triggers, anonymous links / QR codes
    "responses",  # responses, answers, metrics, text analytics
    "alerts",  # alert rules
    "cases",  # cases and their notes
    "exports",
    # audits
    "audit_forms",  # audit forms, versions, sections, items
    "programs",  # programmes and scenarios
    "shoppers",  # shopper applications, approvals, certifications, blocks
    "assignments",  # mystery-shopping jobs (the job board for shoppers)
    "audits",  # filled audits and evaluations, disputes, score history
    "monitoring",  # monitoring samples, evaluator queues, calibration sessions
    "payments",  # what shoppers are owed per job, payment batches (export, mark paid)
    # learning
    "lessons",  # lessons, versions, quizzes, libraries, learning paths
    "training",  # learning assignments (manual and gap-triggered), completions, certificates
    "gap_rules",  # automatic assignment rules and the gaps they found
    "learning_analytics",  # trainer analytics, lesson effectiveness, xAPI statements
    # incentives
    "points",  # ledger accounts, transactions, statements (employees: their own wallet)
    "reward_rules",  # reward rules, budgets (funding), skips
    "recognition",  # recognition given and the feed
    "catalog",  # catalogue items and gift-card code pools
    "redemptions",  # redemptions and their approval
    "bonus",  # bonus periods, scorecards, payouts
    # alignment
    "alignment",  # alignment scores and their explanations, dashboards, rollups, alignment settings
    "business_data",  # business metrics, CRM transactions, driver analysis, journey maps
    "webhooks",  # outgoing webhook endpoints and their delivery log
    "privacy",  # data-subject exports and erasures, consent records, retention policy
)


def _all(*resources: str) -> set[str]:
    return {f"{r}.{v}" for r in resources for v in VERBS}


def _view(*resources: str) -> set[str]:
    return {f"{r}.view" for r in resources}


_MANAGER = frozenset(
    _view(
        "organization", "hierarchy", "standards", "interactions", "surveys", "responses", "cases", "exports"
    )
    | _view("audit_forms", "programs", "assignments", "audits")
    | {"cases.change", "exports.add", "audits.dispute"}
    # Managers assign lessons to their own people and follow their training.
    | _view("lessons", "training", "learning_analytics")
    | {"training.add", "training.change"}
    # Managers recognise their people and see their scope's points; their own bonus scorecard.
    | _view("points", "recognition", "catalog", "redemptions", "bonus")
    | {"recognition.add"}
    # Dashboards of their scope; business figures and journeys behind them.
    | _view("alignment", "business_data")
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.ORG_ADMIN: frozenset(
        _all(*RESOURCES)
        - {
            "auditlog.add",
            "auditlog.change",
            "auditlog.delete",
            "events.add",
            "events.change",
            "events.delete",
        }
        # Admins may try a dispute (the service decides whose it is to raise) and resolve one.
        | {"audits.resolve", "audits.dispute", "training.take"}
    ),
    Role.EXECUTIVE: frozenset(
        _view("organization", "hierarchy", "standards", "customers", "interactions", "auditlog")
        | _view("surveys", "responses", "alerts", "cases", "exports")
        | {"exports.add", "cases.change"}
        | _view("lessons", "training", "learning_analytics")
        | _view("points", "reward_rules", "recognition", "redemptions", "bonus")
        | _view("alignment", "business_data")
    ),
    # Regional and store managers may do the same things; their scope differs (ROLE_SCOPE).
    Role.REGIONAL_MANAGER: _MANAGER,
    Role.STORE_MANAGER: _MANAGER,
    Role.TRAINER: frozenset(
        _view("organization", "hierarchy", "standards", "surveys", "responses")
        | _all("standards")
        | _all("lessons", "training", "gap_rules", "learning_analytics")
        | _view("alignment")
    ),
    Role.EVALUATOR: frozenset(
        _view("organization", "hierarchy", "standards", "interactions", "surveys", "responses")
        | _view("audit_forms", "programs", "shoppers", "assignments")
        | _all("audits", "monitoring")
        | {
            "assignments.add",
            "assignments.change",
            "audits.resolve",
        }  # schedule and review visits, settle disputes
    ),
    # Agents read their own evaluations (scope "employee") and acknowledge them; only they can.
    Role.EMPLOYEE: frozenset(
        _view("organization", "hierarchy", "standards", "interactions", "responses", "audits")
        | {"audits.acknowledge", "audits.dispute"}  # agents acknowledge and dispute their evaluations
        # The portal: the catalogue, and their own assignments (scope "employee"), which they take.
        | _view("lessons", "training")
        | {"training.take"}
        # The rewards portal: their own wallet and statement, the catalogue, redeeming, the feed;
        # peer recognition when the organization enables it (the service decides).
        | _view("points", "recognition", "catalog", "redemptions")
        | {"redemptions.add", "recognition.add"}
        # Supervisors (employees) in a bonus period: their own scorecard only (the views filter
        # to the caller's participation; an employee in no period sees none).
        | _view("bonus")
        # Their own scores only (scope "employee"): the self view.
        | _view("alignment")
    ),
    # Shoppers see only their own profile, jobs and audits (scope level "shopper").
    Role.SHOPPER: frozenset(
        _view("organization", "standards", "programs", "shoppers", "assignments", "audits", "payments")
        | {"assignments.change", "audits.add", "audits.change"}
        # Certification lessons and tests for the programmes they shop.
        | _view("lessons", "training")
        | {"training.take"}
    ),
    Role.INTEGRATOR: frozenset(
        _view("organization", "hierarchy", "standards", "events")
        | _all("customers", "interactions")
        | {"hierarchy.add", "hierarchy.change"}
        | _view("surveys", "responses", "cases")
        | {"responses.add"}
        | _view("alignment")
        | _all("business_data", "webhooks")
        # GDPR / CCPA requests arrive through the CRM or ticketing system as often as by hand.
        | _all("privacy")
    ),
}

# How far down the hierarchy each role sees. "organization" sees everything in the tenant.
ROLE_SCOPE: dict[str, str] = {
    Role.ORG_ADMIN: "organization",
    Role.EXECUTIVE: "organization",
    Role.REGIONAL_MANAGER: "region",
    Role.STORE_MANAGER: "location",
    Role.TRAINER: "organization",
    Role.EVALUATOR: "organization",
    Role.EMPLOYEE: "employee",
    Role.SHOPPER: "shopper",
    Role.INTEGRATOR: "organization",
}

# The API-key scopes an integrator can grant, one read and one write per app.
API_KEY_APPS = ("core", "feedback", "audits", "learning", "incentives", "alignment")
API_KEY_SCOPES = tuple(f"{app}:{mode}" for app in API_KEY_APPS for mode in ("read", "write"))


def role_can(role: str, action: str) -> bool:
    return action in ROLE_PERMISSIONS.get(role, frozenset())
