"""Public audit pages (no login): the shopper application form."""

from django.urls import path

from audits.public_application import ShopperApplyView

urlpatterns = [
    path("<slug:org_slug>/apply/", ShopperApplyView.as_view(), name="shopper_apply"),
]
