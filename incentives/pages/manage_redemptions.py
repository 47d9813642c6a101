"""Admin pages of the redemption side: approvals and the catalogue (items, gift-card code pools)."""

urlpatterns = []
