from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from cem import views, views_account, views_password
from cem.health import healthz
from cem.login import LoginCodeView, LoginView


def favicon(request):
    # Browsers ask for /favicon.ico on pages that do not name an icon (a 404 on every page otherwise).
    return HttpResponsePermanentRedirect(static("cem/favicon.svg"))


def admin_login(request):
    # Staff sign in through the site's login, so lockout and two-factor apply to /admin/ too.
    return redirect_to_login(request.GET.get("next") or "/admin/", login_url="login")


handler400 = "cem.errors.bad_request"
handler403 = "cem.errors.permission_denied"
handler404 = "cem.errors.page_not_found"
handler500 = "cem.errors.server_error"


urlpatterns = [
    # First: the API is the hot path (integrations post here), and its URL resolution walks the
    # patterns in order.
    path("api/v1/", include("cem.api.urls")),
    path("favicon.ico", favicon),
    path("", views.HomeView.as_view(), name="home"),
    path("login/", LoginView.as_view(), name="login"),
    path("login/code/", LoginCodeView.as_view(), name="login_code"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Forgotten password, and the first one of a login created without it (cem/passwords.py).
    path("login/reset/", views_password.PasswordResetView.as_view(), name="password_reset"),
    path("login/reset/sent/", views_password.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "login/reset/done/",
        views_password.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path(
        "login/reset/<uidb64>/<token>/",
        views_password.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "login/welcome/<uidb64>/<token>/",
        views_password.PasswordSetConfirmView.as_view(),
        name="password_set",
    ),
    path("account/", views_account.AccountView.as_view(), name="account"),
    path("account/password/", views_account.PasswordChangeView.as_view(), name="account_password"),
    path("account/two-factor/", views_account.TwoFactorSetupView.as_view(), name="account_two_factor"),
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
    # The split view serves Swagger UI's start-up script as a file: no inline script under the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api_docs"),
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
]
