from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cem import views
from cem.health import healthz


def favicon(request):
    # Browsers ask for /favicon.ico on pages that do not name an icon (a 404 on every page otherwise).
    return HttpResponsePermanentRedirect(static("cem/favicon.svg"))


urlpatterns = [
    # First: the API is the hot path (integrations post here), and its URL resolution walks the
    # patterns in order.
    path("api/v1/", include("cem.api.urls")),
    path("favicon.ico", favicon),
    path("", views.HomeView.as_view(), name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("organization/switch/", views.organization_switch, name="organization_switch"),
    path("interactions/", views.InteractionListView.as_view(), name="interactions"),
    path("manage/", include("cem.manage_urls")),
    path("feedback/", include("feedback.urls")),
    path("audits/", include("audits.urls")),
    path("learning/", include("learning.urls")),
    path("rewards/", include("incentives.urls")),
    path("alignment/", include("alignment.urls")),
    path("shop/", include("audits.public_urls")),
    path("r/", include("feedback.public_urls")),
    path("healthz", healthz, name="healthz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api_docs"),
    path("admin/", admin.site.urls),
]
