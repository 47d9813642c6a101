"""Public respondent pages (no login). URL names are part of the contract between areas:

- ``respond_invitation`` ``i/<token>/``: a personal invitation link (GET shows, POST submits)
- ``respond_anonymous`` ``a/<token>/``: an anonymous link / QR code
- ``unsubscribe`` ``u/<token>/``: opt out of all surveys (signed token, no login)
- ``widget_*``: the embeddable pop-up's script and endpoints
"""

from django.urls import path

from feedback.respondent import AnonymousRespondView, InvitationRespondView
from feedback.unsubscribe import UnsubscribeView
from feedback.widget import WidgetSubmitView, WidgetSurveyView

urlpatterns = [
    path("i/<token>/", InvitationRespondView.as_view(), name="respond_invitation"),
    path("a/<token>/", AnonymousRespondView.as_view(), name="respond_anonymous"),
    path("w/<public_key>/survey.json", WidgetSurveyView.as_view(), name="widget_survey"),
    path("w/<public_key>/responses", WidgetSubmitView.as_view(), name="widget_submit"),
    path("u/<str:token>/", UnsubscribeView.as_view(), name="unsubscribe"),
]
