"""Writes of the feedback app. Keyword-only, organization first, atomic, audited, evented."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from cem.events import emit
from cem.models import Interaction, Organization
from cem.principals import Actor
from cem.services import _check_tenant, audit_log_write
from feedback import text_analytics
from feedback.answers import clean_answers
from feedback.models import Answer, Question, QuestionType, Response, Survey, SurveyVersion

RESPONSE_RECEIVED = "ResponseReceived"


@dataclass(frozen=True)
class Dimensions:
    """Where a response comes from; copied onto the response and each of its answers."""

    location_id: int | None = None
    channel_id: int | None = None
    touchpoint_id: int | None = None
    employee_id: int | None = None
    customer_id: int | None = None
    segment_id: int | None = None
    category: str = ""

    @classmethod
    def from_interaction(cls, interaction: Interaction, employee_id: int | None = None) -> Dimensions:
        if employee_id is None:
            employee_id = (
                interaction.employees.order_by("pk").values_list("pk", flat=True).first()
                if interaction.pk
                else None
            )
        segment_id = interaction.customer.segment_id if interaction.customer_id else None
        return cls(
            location_id=interaction.location_id,
            channel_id=interaction.channel_id,
            touchpoint_id=interaction.touchpoint_id,
            employee_id=employee_id,
            customer_id=interaction.customer_id,
            segment_id=segment_id,
            category=interaction.category,
        )


def current_version(survey: Survey) -> SurveyVersion:
    version = survey.versions.order_by("-number").first()
    if version is None:
        raise ValidationError({"survey": "This survey has no questions yet."})
    return version


def version_questions(version: SurveyVersion) -> list[Question]:
    return list(
        Question.objects.filter(version=version).select_related("standard").order_by("page", "position", "id")
    )


def _analyse(org: Organization, clean) -> tuple[str, float | None, list[str]]:
    if clean.question.type != QuestionType.TEXT or not clean.text:
        return "", None, []
    found = text_analytics.sentiment(clean.text)
    label, score = found if found else ("", None)
    return label, score, text_analytics.topics(clean.text, text_analytics.topic_keywords(org.settings))


@transaction.atomic
def response_record(
    *,
    organization: Organization,
    actor: Actor,
    survey: Survey,
    values: dict,
    source: str,
    dimensions: Dimensions = Dimensions(),
    version: SurveyVersion | None = None,
    invitation=None,
    interaction: Interaction | None = None,
    locale: str = "",
    external_id: str | None = None,
    submitted_at=None,
    device_hash: str = "",
    ip_hash: str = "",
    questions: list[Question] | None = None,
) -> Response:
    """Validate one submission and store it with its answers; emits ResponseReceived.

    Raises ValidationError keyed by question key for bad answers; nothing is written then.
    ``questions`` may carry the version's questions when the caller has already loaded them.
    """
    org_id = _check_tenant(organization)
    version = version or current_version(survey)
    if questions is None:
        questions = version_questions(version)
    answers, errors = clean_answers(questions, values)
    if errors:
        raise ValidationError(errors)
    submitted_at = submitted_at or timezone.now()
    response = Response.objects.create(
        organization_id=org_id,
        survey=survey,
        version=version,
        invitation=invitation,
        interaction=interaction,
        external_id=external_id,
        source=source,
        locale=locale or survey.default_locale,
        submitted_at=submitted_at,
        location_id=dimensions.location_id,
        channel_id=dimensions.channel_id,
        touchpoint_id=dimensions.touchpoint_id,
        employee_id=dimensions.employee_id,
        customer_id=dimensions.customer_id,
        segment_id=dimensions.segment_id,
        category=dimensions.category,
        device_hash=device_hash,
        ip_hash=ip_hash,
    )
    rows = []
    for clean in answers:
        label, score, tags = _analyse(organization, clean)
        q = clean.question
        rows.append(
            Answer(
                organization_id=org_id,
                response=response,
                question=q,
                question_key=q.key,
                question_type=q.type,
                standard_id=q.standard_id,
                number=clean.number,
                text=clean.text,
                choices=list(clean.choices),
                sentiment=label,
                sentiment_score=score,
                topics=tags,
                survey_id=survey.pk,
                submitted_at=submitted_at,
                location_id=dimensions.location_id,
                channel_id=dimensions.channel_id,
                touchpoint_id=dimensions.touchpoint_id,
                employee_id=dimensions.employee_id,
                segment_id=dimensions.segment_id,
                category=dimensions.category,
            )
        )
    Answer.objects.bulk_create(rows)
    # Callers that render the response (the API) need its answers: hand them over, no re-read.
    response._prefetched_objects_cache = {"answers": rows}
    emit(
        organization=org_id,
        event_type=RESPONSE_RECEIVED,
        payload={
            "response_ids": [response.pk],
            "survey_id": survey.pk,
            "location_id": dimensions.location_id,
            "employee_id": dimensions.employee_id,
            "standard_ids": sorted({a.standard_id for a in rows if a.standard_id}),
        },
        aggregate=response,
    )
    audit_log_write(
        organization=org_id,
        actor=actor,
        action="response.record",
        instance=response,
        changes={"survey": survey.pk, "source": source, "answers": len(rows)},
    )
    return response
