"""Public audit pages (no login): the shopper application form."""

urlpatterns = []
