from django.urls import include, path

urlpatterns = [
    path("", include("incentives.pages.manage_redemptions")),  # approvals, catalogue, code pools
]
