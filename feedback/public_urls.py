"""Public respondent pages (no login): invitation links, anonymous links / QR codes, widget, unsubscribe."""

urlpatterns = []
