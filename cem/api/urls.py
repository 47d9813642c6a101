from rest_framework.routers import DefaultRouter

from alignment import api as alignment_api
from audits import api as audits_api
from cem.api import privacy as privacy_api
from cem.api import views
from cem.api import webhooks as webhooks_api
from feedback import api as feedback_api
from incentives import api as incentives_api
from learning import api as learning_api


class Router(DefaultRouter):
    # No "<route>.json" twins: they doubled the patterns every API request is matched against
    # (?format=json still works).
    include_format_suffixes = False


router = Router()
router.register("organization", views.OrganizationViewSet, basename="organization")
router.register("regions", views.RegionViewSet)
router.register("locations", views.LocationViewSet)
router.register("teams", views.TeamViewSet)
router.register("employees", views.EmployeeViewSet)
router.register("channels", views.ChannelViewSet)
router.register("touchpoints", views.TouchpointViewSet)
router.register("skill-categories", views.SkillCategoryViewSet)
router.register("expectations", views.CustomerExpectationViewSet)
router.register("brand-messages", views.BrandMessageViewSet)
router.register("standards", views.StandardViewSet)
router.register("segments", views.SegmentViewSet)
router.register("customers", views.CustomerViewSet)
router.register("interactions", views.InteractionViewSet)
router.register("memberships", views.MembershipViewSet)
router.register("api-keys", views.ApiKeyViewSet)
router.register("audit-log", views.AuditLogViewSet)
router.register("events", views.OutboxEventViewSet)
webhooks_api.register(router)
privacy_api.register(router)

# The apps add their routes to this one router, so the cross-tenant sweep, which walks it,
# covers every API route in the product.
feedback_api.register(router)
audits_api.register(router)
learning_api.register(router)
incentives_api.register(router)
alignment_api.register(router)

urlpatterns = router.urls
