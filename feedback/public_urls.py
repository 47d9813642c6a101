"""Public respondent pages (no login). URL names are part of the contract between areas:

- ``respond_invitation`` ``i/<token>/``: a personal invitation link (GET shows, POST submits)
- ``respond_anonymous`` ``a/<token>/``: an anonymous link / QR code
- ``unsubscribe`` ``u/<token>/``: opt out of all surveys (signed token, no login)
- ``widget_*``: the embeddable pop-up's script and endpoints
"""

from django.urls import path

from feedback.unsubscribe import UnsubscribeView

urlpatterns = [
    path("u/<str:token>/", UnsubscribeView.as_view(), name="unsubscribe"),
]
