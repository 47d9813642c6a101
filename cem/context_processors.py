from cem.permissions import role_can

# (label, url name, required action). Navigation is data: a link shows only if the role may use it.
NAVIGATION = [
    ("Home", "home", "organization.view"),
    # Alignment dashboards: each viewer lands where their scope starts (store, region, company, self).
    ("Dashboard", "alignment_home", "alignment.view"),
    ("Interactions", "interactions", "interactions.view"),
    ("Hierarchy", "locations", "hierarchy.view"),
    ("Employees", "employees", "hierarchy.view"),
    ("Standards", "standards", "standards.view"),
    ("Feedback", "feedback_dashboard", "responses.view"),
    ("Cases", "feedback_cases", "cases.view"),
    ("Audits", "audit_results", "audits.view"),
    ("Jobs", "audit_jobs", "assignments.view"),
    ("Review", "audit_job_queue", "assignments.add"),
    ("Monitoring", "monitoring_queue", "monitoring.view"),
    # Agents and their managers (the people evaluations are about) hold audits.dispute.
    ("Evaluations", "monitoring_evaluations", "audits.dispute"),
    ("Forms", "audit_forms", "audit_forms.view"),
    ("Shoppers", "audit_shoppers", "shoppers.view"),
    # Trainers and managers: who must take which lesson, and the gap rules behind the automatic ones.
    ("Training", "learning_assignments", "training.add"),
    ("My learning", "learning_portal", "training.take"),
    # Trainers and admins author content; learners reach the catalogue from "My learning".
    ("Lessons", "learning_library", "lessons.change"),
    # Trainers, managers and executives: what lessons are sent, done, and whether they work.
    ("Training analytics", "learning_analytics", "learning_analytics.view"),
    # Managers: their bonus scorecard; admins and executives: every manager's, payouts.
    ("Bonus", "bonus_periods", "bonus.view"),
    # Incentives: admins' reward rules and budgets; recognition and its feed for those who give or get it.
    ("Rewards", "incentives_rules", "reward_rules.view"),
    ("Recognition", "incentives_recognition", "recognition.view"),
    # Employees: balance, statement, catalogue, redeeming; admins approve and keep the catalogue.
    ("My rewards", "rewards_portal", "redemptions.add"),
    ("Approvals", "rewards_approvals", "redemptions.change"),
    ("Catalogue", "rewards_catalog_admin", "catalog.change"),
    ("Surveys", "feedback_surveys", "surveys.view"),
    # Admins, executives, managers and integrators: business metrics, CRM data, segment rules.
    ("Business data", "alignment_business", "business_data.view"),
    # Customer journey maps per segment (expected vs actual per touchpoint); driver analysis links from there.
    ("Journeys", "alignment_journeys", "business_data.view"),
    ("Exports", "feedback_exports", "exports.view"),
    ("Users", "members", "memberships.view"),
    ("API keys", "api_keys", "apikeys.view"),
    ("Webhooks", "webhooks", "webhooks.view"),
    ("Audit log", "audit_log", "auditlog.view"),
]


def navigation(request):
    membership = getattr(request, "membership", None)
    if membership is None:
        return {"nav_items": [], "current_membership": None}
    items = [(label, name) for label, name, action in NAVIGATION if role_can(membership.role, action)]
    return {
        "nav_items": items,
        "current_membership": membership,
        "other_memberships": [m for m in getattr(request, "memberships", []) if m.pk != membership.pk],
    }
