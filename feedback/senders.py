"""Delivering an invitation on its channel: email through Django's mail backend, SMS and IVR through
small pluggable backends chosen by settings.

    FEEDBACK_SMS_BACKEND = "feedback.senders.ConsoleSmsBackend"   # default: log + in-memory outbox
    FEEDBACK_IVR_BACKEND = "feedback.senders.ConsoleIvrBackend"

A backend is any class with ``send(message: dict) -> None`` that raises :class:`SendFailed` when
the provider refuses the address for good (the invitation becomes FAILED); any other exception is
treated as transient and the invitation stays due. The console backends append every message to
``sms_outbox`` / ``ivr_outbox``, which tests read like ``django.core.mail.outbox``.

Texts come from per-language templates (``templates/feedback/{email,sms,ivr}/…<lang>.*``): the
invitation's locale when the survey is offered in it, else the survey's default, else English.
A language without templates therefore falls back to a whole English message, never to keys.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.module_loading import import_string

from feedback.models import DeliveryChannel, Invitation
from feedback.unsubscribe import unsubscribe_token

logger = logging.getLogger(__name__)

sms_outbox: list[dict] = []
ivr_outbox: list[dict] = []


class SendFailed(Exception):
    """The provider refused this message for good (bad address, blocked number)."""


class ConsoleSmsBackend:
    def send(self, message: dict) -> None:
        logger.info("SMS to %s: %s", message["to"], message["text"])
        sms_outbox.append(message)


class ConsoleIvrBackend:
    def send(self, message: dict) -> None:
        logger.info("IVR call to %s (%s): %s", message["to"], message["locale"], message["script"])
        ivr_outbox.append(message)


def _backend(setting: str, default: str):
    return import_string(getattr(settings, setting, default))()


# --- language and links ---------------------------------------------------------------------


def message_languages(locale: str, survey) -> list[str]:
    """Languages to try, best first: the invitation's (if the survey speaks it), the survey's, English."""
    offered = {loc.lower() for loc in (survey.locales or [])} | {survey.default_locale.lower()}
    offered |= {loc.split("-")[0] for loc in offered}
    wanted = (locale or "").lower().replace("_", "-")
    out: list[str] = []
    for lang in (wanted, wanted.split("-")[0]):
        if lang and lang in offered:
            out.append(lang)
    default = survey.default_locale.lower()
    out += [default, default.split("-")[0], settings.LANGUAGE_CODE, "en"]
    return list(dict.fromkeys(out))


def _template(stem: str, ext: str, languages: list[str]):
    for lang in languages:
        try:
            return get_template(f"{stem}.{lang}.{ext}"), lang
        except TemplateDoesNotExist:
            continue
    raise TemplateDoesNotExist(f"{stem}.*.{ext}")


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def respond_url(raw_token: str) -> str:
    try:
        path = reverse("respond_invitation", args=[raw_token])
    except NoReverseMatch:
        # The respondent pages own that route (feedback/public_urls.py contract: r/i/<token>/);
        # the link must still be right in a build where they are not mounted.
        path = f"/r/i/{raw_token}/"
    return _absolute(path)


def unsubscribe_url(invitation: Invitation) -> str:
    token = unsubscribe_token(invitation.organization_id, invitation.customer_id)
    return _absolute(reverse("unsubscribe", args=[token]))


def _context(organization, invitation: Invitation, raw_token: str, reminder: bool) -> dict:
    return {
        "organization": organization,
        "organization_name": organization.name,
        "survey_name": invitation.survey.name,
        "url": respond_url(raw_token),
        "unsubscribe_url": unsubscribe_url(invitation),
        "reminder": reminder,
        "expires_at": invitation.expires_at,
    }


# --- channels -------------------------------------------------------------------------------


def _render(stem: str, ext: str, languages: list[str], context: dict) -> tuple[str, str]:
    template, lang = _template(stem, ext, languages)
    # Dates read in the customer's language and the organization's local time.
    with translation.override(lang), timezone.override(context["organization"].time_zone or "UTC"):
        return template.render(context).strip(), lang


def send_email(*, organization, invitation: Invitation, raw_token: str, reminder: bool) -> None:
    languages = message_languages(invitation.locale, invitation.survey)
    context = _context(organization, invitation, raw_token, reminder)
    # The text part decides the language; subject and HTML follow it so the parts never mix.
    text, lang = _render("feedback/email/invitation", "txt", languages, context)
    subject, _ = _render("feedback/email/invitation_subject", "txt", [lang, *languages], context)
    html, _ = _render("feedback/email/invitation", "html", [lang, *languages], context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[invitation.customer.email],
        headers={
            # RFC 8058 one-click unsubscribe: mail clients POST to the same page, which needs no login.
            "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "Content-Language": lang,
        },
    )
    message.attach_alternative(html, "text/html")
    message.send()


def send_sms(*, organization, invitation: Invitation, raw_token: str, reminder: bool) -> None:
    languages = message_languages(invitation.locale, invitation.survey)
    context = _context(organization, invitation, raw_token, reminder)
    text, lang = _render("feedback/sms/invitation", "txt", languages, context)
    _backend("FEEDBACK_SMS_BACKEND", "feedback.senders.ConsoleSmsBackend").send(
        {
            "to": invitation.customer.phone,
            "text": " ".join(text.split()),
            "locale": lang,
            "invitation_id": invitation.pk,
            "reminder": reminder,
        }
    )


def send_ivr(*, organization, invitation: Invitation, raw_token: str, reminder: bool) -> None:
    languages = message_languages(invitation.locale, invitation.survey)
    context = _context(organization, invitation, raw_token, reminder)
    script, lang = _render("feedback/ivr/invitation", "txt", languages, context)
    _backend("FEEDBACK_IVR_BACKEND", "feedback.senders.ConsoleIvrBackend").send(
        {
            "to": invitation.customer.phone,
            "script": " ".join(script.split()),
            "locale": lang,
            # The IVR provider runs the survey itself and posts answers back with this token.
            "token": raw_token,
            "survey_id": invitation.survey_id,
            "invitation_id": invitation.pk,
            "reminder": reminder,
        }
    )


SENDERS = {
    DeliveryChannel.EMAIL: send_email,
    DeliveryChannel.SMS: send_sms,
    DeliveryChannel.IVR: send_ivr,
}


def send_invitation(*, organization, invitation: Invitation, raw_token: str, reminder: bool = False) -> None:
    sender = SENDERS.get(invitation.delivery_channel)
    if sender is None:
        raise SendFailed(f"no sender for channel {invitation.delivery_channel!r}")
    sender(organization=organization, invitation=invitation, raw_token=raw_token, reminder=reminder)
