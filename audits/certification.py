"""Shopper certification through the learning app.

A programme names a certification learning path (Program.certification_path): its lessons and
quizzes are taken on the learning portal like any other assignment. Approved shoppers are given
the path (source "certification") when approved and whenever they open a programme's
certification page; when they complete it, the learning app's PathCompleted event reaches
audits.handlers, which records a Certification for every programme certified by that path
through audits.workforce.shopper_certify. Job eligibility (audits.jobs: a certification row that
has not expired) is unchanged.
"""

from __future__ import annotations

from decimal import Decimal

from django.core.exceptions import ValidationError

from audits.models import Certification, Program, Shopper
from audits.workforce import DEFAULT_PASS_MARK, shopper_certify
from cem.principals import Actor
from cem.services import _check_tenant
from learning import certification as learning_certification
from learning.models import Assignment, PathCertificate, QuizAttempt


def _reason(program: Program) -> str:
    return (
        f"Certification for {program.name}: complete every lesson and pass the tests to take "
        "this programme's jobs."
    )


def certification_start(*, organization, actor: Actor, shopper: Shopper, program: Program) -> Assignment:
    """The shopper's open assignment of the programme's certification path (created if needed)."""
    _check_tenant(organization)
    if shopper.status != Shopper.Status.APPROVED or shopper.user_id is None:
        raise ValidationError({"status": "Only approved shoppers can certify."})
    if program.certification_path_id is None:
        raise ValidationError({"program": f"{program.name} has no certification course yet."})
    assignment, _ = learning_certification.certification_assign(
        organization=organization,
        actor=actor,
        user_id=shopper.user_id,
        path=program.certification_path,
        reason=_reason(program),
    )
    return assignment


def assign_after_approval(*, organization, shopper_id: int) -> list[Assignment]:
    """Give a newly approved shopper the certification path of each active programme that has
    one (a path shared by several programmes is assigned once)."""
    shopper = Shopper.objects.filter(pk=shopper_id, status=Shopper.Status.APPROVED).first()
    if shopper is None or shopper.user_id is None:
        return []
    programs = (
        Program.objects.filter(active=True, certification_path__isnull=False)
        .select_related("certification_path")
        .order_by("pk")
    )
    seen, out = set(), []
    for program in programs:
        if program.certification_path_id in seen:
            continue
        seen.add(program.certification_path_id)
        try:
            out.append(
                certification_start(
                    organization=organization, actor=Actor.system(), shopper=shopper, program=program
                )
            )
        except ValidationError:
            continue  # e.g. the path is not published yet: the certification page will assign it later
    return out


def _score(certificate: PathCertificate) -> tuple[Decimal, Decimal]:
    """The certification score: the mean of the best passed score of each quiz taken in the
    path's assignment, against the lowest of their pass marks (every quiz was passed, so the mean
    clears it). A path without quizzes certifies at 100."""
    best: dict[int, tuple[Decimal, Decimal]] = {}
    attempts = QuizAttempt.objects.filter(assignment_id=certificate.assignment_id, passed=True)
    for quiz_id, score, pass_mark in attempts.values_list("quiz_id", "score", "quiz__pass_mark"):
        if quiz_id not in best or score > best[quiz_id][0]:
            best[quiz_id] = (score, pass_mark)
    if certificate.assignment_id is None or not best:
        return Decimal(100), DEFAULT_PASS_MARK
    mean = sum(s for s, _ in best.values()) / len(best)
    return mean.quantize(Decimal("0.01")), min(m for _, m in best.values())


def certify_after_path(
    *, organization, path_id: int, user_id: int | None, certificate_id: int
) -> list[Certification]:
    """Record the certifications a completed path earns: one per active programme it certifies,
    dated when the certificate was issued (so the expiry counts from then). Idempotent: a
    certification already recorded from this certificate is not recorded again."""
    org_id = _check_tenant(organization)
    if user_id is None:
        return []  # an employee's path: employees are not shoppers
    programs = list(Program.objects.filter(active=True, certification_path_id=path_id).order_by("pk"))
    if not programs:
        return []
    shopper = Shopper.objects.filter(user_id=user_id, status=Shopper.Status.APPROVED).first()
    # Any completion of the path certifies, however it was assigned (certification, manual, self).
    certificate = PathCertificate.objects.filter(pk=certificate_id, path_id=path_id).first()
    if shopper is None or certificate is None:
        return []
    score, pass_mark = _score(certificate)
    already = set(
        Certification.objects.filter(
            shopper=shopper, program__in=programs, passed_at=certificate.issued_at
        ).values_list("program_id", flat=True)
    )
    out = []
    for program in programs:
        if program.pk in already:
            continue
        out.append(
            shopper_certify(
                organization=org_id,
                actor=Actor(user_id=user_id),
                shopper=shopper,
                program=program,
                score=score,
                pass_mark=pass_mark,
                now=certificate.issued_at,
            )
        )
    return out
