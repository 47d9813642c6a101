"""Shoppers (``/api/v1/shoppers/``) and mystery-shopping jobs (``/api/v1/assignments/``).

Org admins decide on applications, record certifications and post jobs; shoppers read the job
board, take jobs and file their visit reports; reviewers (organization-wide roles with
``assignments.change``) pick up, return, approve or reject submitted visits. Writes go through
audits.workforce and audits.jobs.
"""

import django_filters as f
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from audits import jobs, photos, workforce
from audits.models import Assignment, Audit, AuditAnswer, AuditPhoto, Program, Shopper
from cem.api.base import TenantModelViewSet, TenantReadOnlyViewSet
from cem.api.filters import IsoDateTimeFilter
from cem.api.permissions import caller_role
from cem.models import Location
from cem.params import id_of
from cem.scoping import scope_level
from cem.throttle import content_length

# A multipart body may exceed the file it carries by its boundaries and the item field.
MULTIPART_SLACK = 64 * 1024
# One-shot submissions from native apps: the answers plus a handful of photos.
SUBMISSION_MAX_PHOTOS = 8
SUBMISSION_MAX_BYTES = SUBMISSION_MAX_PHOTOS * photos.MAX_BYTES + 1024 * 1024
PHOTO_PART = "photo."

# --- serializers ---------------------------------------------------------------------------------


class ShopperSerializer(serializers.ModelSerializer):
    class Meta:
        model = Shopper
        fields = [
            "id",
            "name",
            "email",
            "phone",
            "home_area",
            "latitude",
            "longitude",
            "radius_km",
            "languages",
            "demographics",
            "availability",
            "employer_organization_names",
            "status",
            "decision_reason",
            "rating",
            "user",
            "consent_at",
            "created_at",
        ]
        read_only_fields = fields


class ShopperDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=jobs.REASON_MAX, required=False, allow_blank=True)


class JobReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=jobs.REASON_MAX)


class RatingFields(serializers.Serializer):
    """A reviewer may rate the shopper's work with any decision on a submitted visit."""

    rating = serializers.IntegerField(
        min_value=1, max_value=5, required=False, allow_null=True, help_text="The shopper's work, 1-5."
    )
    rating_comment = serializers.CharField(
        max_length=workforce.RATING_COMMENT_MAX, required=False, allow_blank=True, default=""
    )


class JobDecisionSerializer(JobReasonSerializer, RatingFields):
    pass


class JobApproveSerializer(RatingFields):
    reimbursement = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Adjust the shopper's claim (at most the job's reimbursement_cap); omit to keep it.",
    )


class JobSubmitSerializer(serializers.Serializer):
    reimbursement = serializers.DecimalField(
        max_digits=8,
        decimal_places=2,
        min_value=0,
        required=False,
        allow_null=True,
        help_text="Expenses claimed (at most the job's reimbursement_cap); omit to keep the last claim.",
    )


class JobSubmissionSerializer(JobSubmitSerializer):
    """The whole visit report in one multipart request, for native apps: answers, photos, submit."""

    answers = serializers.JSONField(
        required=False,
        help_text='JSON list of {"item", "value", "text", "comment"} (a JSON string in multipart).',
    )
    visited_at = serializers.DateTimeField(required=False, allow_null=True)
    revision = serializers.CharField(
        max_length=40, required=False, allow_blank=True, help_text="As on PUT draft/: stale → 409."
    )


class ShopperCertifySerializer(serializers.Serializer):
    program = serializers.PrimaryKeyRelatedField(queryset=Program.objects)
    score = serializers.DecimalField(max_digits=5, decimal_places=2)
    pass_mark = serializers.DecimalField(
        max_digits=5, decimal_places=2, required=False, default=workforce.DEFAULT_PASS_MARK
    )


class CertificationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    shopper = serializers.IntegerField(source="shopper_id")
    program = serializers.IntegerField(source="program_id")
    score = serializers.DecimalField(max_digits=5, decimal_places=2)
    passed_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class ShopperBlockSerializer(serializers.Serializer):
    location = serializers.PrimaryKeyRelatedField(queryset=Location.objects)
    reason = serializers.CharField(max_length=workforce.REASON_MAX)


class AssignmentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Assignment
        fields = [
            "id",
            "program",
            "scenario",
            "location",
            "shopper",
            "status",
            "window_start",
            "window_end",
            "fee",
            "reimbursement_cap",
            "reimbursement",
            "assigned_at",
            "submitted_at",
            "revision_due_at",
            "reviewer",
            "status_reason",
            "created_at",
        ]
        read_only_fields = [
            "shopper",
            "status",
            "reimbursement",
            "assigned_at",
            "submitted_at",
            "revision_due_at",
            "reviewer",
            "status_reason",
            "created_at",
        ]

    def validate(self, attrs):
        start = attrs.get("window_start", getattr(self.instance, "window_start", None))
        end = attrs.get("window_end", getattr(self.instance, "window_end", None))
        if start and end and end <= start:
            raise serializers.ValidationError({"window_end": "Must be after window_start."})
        return attrs


class AutoAssignSerializer(serializers.Serializer):
    program = serializers.PrimaryKeyRelatedField(
        queryset=Program.objects, required=False, help_text="Only this programme's open jobs."
    )
    assignments = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        max_length=500,
        help_text="Only these open jobs (ids).",
    )


class AutoAssignResultSerializer(serializers.Serializer):
    assignment = serializers.IntegerField()
    shopper = serializers.IntegerField()


class BoardEntrySerializer(serializers.Serializer):
    assignment = AssignmentSerializer()
    eligible = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.DictField())


class JobAnswerInputSerializer(serializers.Serializer):
    item = serializers.SlugField(max_length=60)
    value = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    text = serializers.CharField(max_length=5000, required=False, allow_blank=True, allow_null=True)
    comment = serializers.CharField(max_length=5000, required=False, allow_blank=True, allow_null=True)


class JobDraftInputSerializer(serializers.Serializer):
    answers = JobAnswerInputSerializer(many=True, required=False, default=list)
    visited_at = serializers.DateTimeField(required=False, allow_null=True)
    revision = serializers.CharField(
        max_length=40,
        required=False,
        allow_blank=True,
        help_text=(
            'The draft\'s `revision` this save builds on ("" before the first save). When given and '
            "the draft has been saved since, nothing is written and the answer is 409. Omit it for "
            "last-write-wins."
        ),
    )


class JobAnswerSerializer(serializers.ModelSerializer):
    item = serializers.CharField(source="item.key")

    class Meta:
        model = AuditAnswer
        fields = ["item", "value", "text", "comment"]


class JobDraftSerializer(serializers.ModelSerializer):
    answers = serializers.SerializerMethodField()
    revision = serializers.SerializerMethodField(
        help_text="Send it back as `revision` on the next PUT to refuse overwriting a newer save."
    )

    class Meta:
        model = Audit
        fields = ["id", "status", "version", "visited_at", "score", "answers", "revision", "updated_at"]

    def get_revision(self, audit) -> str:
        return jobs.draft_revision(audit)

    def get_answers(self, audit) -> list[dict]:
        rows = AuditAnswer.objects.filter(audit=audit).select_related("item").order_by("item__position", "pk")
        return JobAnswerSerializer(rows, many=True).data


class AuditPhotoSerializer(serializers.ModelSerializer):
    item = serializers.CharField(source="item.key", read_only=True)

    class Meta:
        model = AuditPhoto
        fields = ["id", "audit", "item", "content_type", "size", "created_at"]
        read_only_fields = fields


class AuditPhotoUploadSerializer(serializers.Serializer):
    item = serializers.SlugField(max_length=60, help_text="The key of a photo item of the job's form.")
    file = serializers.FileField(help_text="JPEG, PNG or WebP, at most 10 MB; stored without metadata.")


class TooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = {"file": [f"At most {photos.MAX_BYTES // (1024 * 1024)} MB."]}
    default_code = "too_large"


# --- filters -------------------------------------------------------------------------------------


class ShopperFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Shopper.Status.choices)
    email = f.CharFilter(lookup_expr="iexact")


class AssignmentFilter(f.FilterSet):
    status = f.ChoiceFilter(choices=Assignment.Status.choices)
    program = f.NumberFilter()
    scenario = f.NumberFilter()
    location = f.NumberFilter()
    shopper = f.NumberFilter()
    window_after = IsoDateTimeFilter(field_name="window_end", lookup_expr="gte")
    window_before = IsoDateTimeFilter(field_name="window_start", lookup_expr="lt")


class AuditPhotoFilter(f.FilterSet):
    audit = f.NumberFilter()
    assignment = f.NumberFilter(field_name="audit__assignment")


# --- viewsets ------------------------------------------------------------------------------------


class ShopperViewSet(TenantReadOnlyViewSet):
    """Shopper profiles and applications; shoppers see only their own profile."""

    queryset = Shopper.objects
    serializer_class = ShopperSerializer
    resource = "shoppers"
    api_app = "audits"
    filterset_class = ShopperFilter
    http_method_names = ["get", "post", "head", "options"]
    action_verbs = {"approve": "change", "reject": "change", "certify": "change", "block": "change"}

    def _done(self, shopper):
        return Response(ShopperSerializer(self.get_queryset().get(pk=shopper.pk)).data)

    @extend_schema(request=ShopperDecisionSerializer, responses=ShopperSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """applied → approved; links or creates the user and a shopper membership."""
        shopper = self.get_object()
        body = ShopperDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        shopper = workforce.shopper_approve(
            organization=self.organization,
            actor=self.actor,
            shopper=shopper,
            reason=body.validated_data.get("reason", ""),
        )
        return self._done(shopper)

    @extend_schema(request=JobReasonSerializer, responses=ShopperSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        shopper = self.get_object()
        body = JobReasonSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        shopper = workforce.shopper_reject(
            organization=self.organization,
            actor=self.actor,
            shopper=shopper,
            reason=body.validated_data["reason"],
        )
        return self._done(shopper)

    @extend_schema(request=ShopperCertifySerializer, responses=CertificationSerializer)
    @action(detail=True, methods=["post"])
    def certify(self, request, pk=None):
        """Record a passed certification test (interim, until the learning app runs the tests)."""
        shopper = self.get_object()
        body = ShopperCertifySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        certification = workforce.shopper_certify(
            organization=self.organization, actor=self.actor, shopper=shopper, **body.validated_data
        )
        return Response(CertificationSerializer(certification).data, status=201)

    @extend_schema(request=ShopperBlockSerializer, responses=None)
    @action(detail=True, methods=["post"])
    def block(self, request, pk=None):
        """Keep this shopper away from one location."""
        shopper = self.get_object()
        body = ShopperBlockSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        block = workforce.shopper_block_location(
            organization=self.organization, actor=self.actor, shopper=shopper, **body.validated_data
        )
        return Response({"id": block.pk, "location": block.location_id, "reason": block.reason}, status=201)


class AssignmentViewSet(TenantModelViewSet):
    """Jobs. Admins post and edit open jobs; shoppers see their own jobs plus the board."""

    queryset = Assignment.objects
    serializer_class = AssignmentSerializer
    resource = "assignments"
    api_app = "audits"
    filterset_class = AssignmentFilter
    ordering_fields = ["window_start", "window_end", "created_at", "id"]
    http_method_names = ["get", "post", "patch", "put", "head", "options"]
    action_verbs = {
        "board": "view",
        "auto_assign": "change",
        "take": "change",
        "start": "change",
        "draft": "change",
        "photos": "view",
        "photos_add": "change",
        "submit": "change",
        "submission": "change",
        "review": "change",
        "return_": "change",
        "approve": "change",
        "reject": "change",
        "cancel": "delete",  # withdrawing a job is what admins do instead of deleting it
    }

    def safely_get_queryset(self, queryset):
        return queryset.select_related("program", "scenario", "location").order_by("window_start", "pk")

    def perform_create(self, serializer):
        serializer.instance = jobs.assignment_create(
            organization=self.organization, actor=self.actor, data=serializer.validated_data
        )

    def perform_update(self, serializer):
        from cem.services import record_update

        self._reviewer_only()
        if serializer.instance.status != Assignment.Status.OPEN:
            raise ValidationError({"status": "Only open jobs can be edited."})
        serializer.instance = record_update(
            organization=self.organization,
            actor=self.actor,
            instance=serializer.instance,
            data=serializer.validated_data,
        )

    def initial(self, request, *args, **kwargs):
        # Refuse an oversized upload by its declared length, before authentication (the CSRF
        # check) or the parser reads the body.
        if self.action == "photos_add" and content_length(request) > photos.MAX_BYTES + MULTIPART_SLACK:
            raise TooLarge()
        if self.action == "submission" and content_length(request) > SUBMISSION_MAX_BYTES:
            raise TooLarge({"file": [f"At most {SUBMISSION_MAX_PHOTOS} photos of 10 MB in one submission."]})
        super().initial(request, *args, **kwargs)

    # --- helpers ---
    def _shopper(self):
        return jobs.shopper_for_user(self.request.user)

    def _decide(self, service, *, body_class=None):
        """A reviewer's step on the job in the URL, through its service.

        The job is looked up and the reviewer checked before the body is read: another
        tenant's id is a 404 whatever the body says.
        """
        assignment = self.get_object()
        self._reviewer_only()
        kwargs = {}
        if body_class is not None:
            body = body_class(data=self.request.data)
            body.is_valid(raise_exception=True)
            kwargs = {k: v for k, v in body.validated_data.items() if v is not None}
        return self._done(
            service(organization=self.organization, actor=self.actor, assignment=assignment, **kwargs)
        )

    def _reviewer_only(self):
        # Shoppers hold assignments.change for their own work; reviewing needs organization-wide scope.
        if scope_level(caller_role(self.request)) != "organization":
            raise PermissionDenied("Only reviewers can do this.")

    def _done(self, assignment):
        return Response(AssignmentSerializer(Assignment.objects.get(pk=assignment.pk)).data)

    # --- shopper actions ---
    @extend_schema(
        parameters=[
            OpenApiParameter("reasons", bool, description="Also list jobs you may not take, with why.")
        ],
        responses=BoardEntrySerializer(many=True),
    )
    @action(detail=False, methods=["get"])
    def board(self, request):
        """Open jobs the calling shopper may take (``?reasons=1`` adds the others with reasons)."""
        with_reasons = request.query_params.get("reasons", "").lower() in {"1", "true", "yes"}
        entries = jobs.job_board(
            organization=self.organization, shopper=self._shopper(), with_reasons=with_reasons
        )
        return Response(BoardEntrySerializer(entries, many=True).data)

    @extend_schema(request=AutoAssignSerializer, responses=AutoAssignResultSerializer(many=True))
    @action(detail=False, methods=["post"], url_path="auto-assign", url_name="auto-assign")
    def auto_assign(self, request):
        """Reviewers: run the scheduler now. Each open job (all, one ``program``'s, or the listed
        ``assignments``) goes to the eligible shopper with the fewest open jobs, nearest first
        among equals; jobs nobody may take stay on the board. The beat does the same for
        programmes with ``auto_assign_after_hours`` once a job has waited that long."""
        self._reviewer_only()
        body = AutoAssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        qs = Assignment.objects.filter(status=Assignment.Status.OPEN)
        if "program" in body.validated_data:
            qs = qs.filter(program=body.validated_data["program"])
        if "assignments" in body.validated_data:
            qs = qs.filter(pk__in=body.validated_data["assignments"])
        done = jobs.assignments_auto_assign(
            organization=self.organization, actor=self.actor, ids=list(qs.values_list("pk", flat=True))
        )
        return Response([{"assignment": a, "shopper": s} for a, s in done])

    @extend_schema(request=None, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def take(self, request, pk=None):
        """open → assigned to the caller, when eligible (400 lists every reason otherwise)."""
        # Not get_object(): the scope hides unassigned jobs from shoppers; the tenant still bounds it.
        pk = id_of(pk)
        assignment = Assignment.objects.filter(pk=pk).first() if pk is not None else None
        if assignment is None:
            raise Http404
        shopper = self._shopper()
        if shopper is None:
            raise PermissionDenied("You have no shopper profile in this organization.")
        assignment = jobs.assignment_take(
            organization=self.organization, actor=self.actor, shopper=shopper, assignment=assignment
        )
        return self._done(assignment)

    @extend_schema(request=None, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        assignment = jobs.assignment_start(
            organization=self.organization,
            actor=self.actor,
            shopper=self._shopper(),
            assignment=self.get_object(),
        )
        return self._done(assignment)

    @extend_schema(methods=["GET"], request=None, responses=JobDraftSerializer)
    @extend_schema(
        methods=["PUT"],
        request=JobDraftInputSerializer,
        responses={
            200: JobDraftSerializer,
            409: OpenApiResponse(description="`revision` is stale: the draft was saved since"),
        },
    )
    @action(detail=True, methods=["get", "put"])
    def draft(self, request, pk=None):
        """GET the visit report so far; PUT saves answers (autosave: any number of times).

        An offline client replaying queued saves sends the ``revision`` it last saw, so a stale
        save is refused (409) instead of undoing answers saved since from another device."""
        assignment = self.get_object()
        if request.method == "GET":
            audit = jobs._current_audit(assignment)
            if audit is None:
                raise Http404
            return Response(JobDraftSerializer(audit).data)
        body = JobDraftInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            audit = jobs.assignment_draft_save(
                organization=self.organization,
                actor=self.actor,
                shopper=self._shopper(),
                assignment=assignment,
                answers=body.validated_data["answers"],
                visited_at=body.validated_data.get("visited_at"),
                base_revision=body.validated_data.get("revision"),
            )
        except jobs.DraftConflict as exc:
            current = jobs._current_audit(assignment)
            return Response(
                {**exc.message_dict, "current_revision": jobs.draft_revision(current)},
                status=status.HTTP_409_CONFLICT,
            )
        return Response(JobDraftSerializer(audit).data)

    @extend_schema(responses=AuditPhotoSerializer(many=True))
    @action(detail=True, methods=["get"], parser_classes=[MultiPartParser])
    def photos(self, request, pk=None):
        """The photos of the job's current visit report."""
        assignment = self.get_object()
        audit = jobs._current_audit(assignment)
        rows = (
            AuditPhoto.objects.filter(audit=audit).select_related("item").order_by("item__position", "pk")
            if audit is not None
            else AuditPhoto.objects.none()
        )
        return Response(AuditPhotoSerializer(rows, many=True).data)

    @extend_schema(
        request={"multipart/form-data": AuditPhotoUploadSerializer},
        responses={
            201: AuditPhotoSerializer,
            413: OpenApiResponse(description="The upload is larger than 10 MB"),
        },
    )
    @photos.mapping.post
    def photos_add(self, request, pk=None):
        """Upload a photo or receipt for a photo item (multipart: ``item`` key and ``file``)."""
        assignment = self.get_object()
        body = AuditPhotoUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        photo = photos.assignment_photo_add(
            organization=self.organization,
            actor=self.actor,
            shopper=self._shopper(),
            assignment=assignment,
            item_key=body.validated_data["item"],
            upload=body.validated_data["file"],
        )
        return Response(AuditPhotoSerializer(photo).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=JobSubmitSerializer, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """in_progress / returned → submitted, when the report is complete and plausible; the body
        may claim a ``reimbursement`` (at most the job's cap)."""
        assignment = self.get_object()
        body = JobSubmitSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        assignment = jobs.assignment_submit(
            organization=self.organization,
            actor=self.actor,
            shopper=self._shopper(),
            assignment=assignment,
            reimbursement=body.validated_data.get("reimbursement"),
        )
        return self._done(assignment)

    @extend_schema(
        request={"multipart/form-data": JobSubmissionSerializer, "application/json": JobSubmissionSerializer},
        responses={
            200: AssignmentSerializer,
            409: OpenApiResponse(description="`revision` is stale: the draft was saved since"),
            413: OpenApiResponse(description="More than 8 photos of 10 MB"),
        },
    )
    @action(detail=True, methods=["post"])
    def submission(self, request, pk=None):
        """For native mobile apps: the whole visit report in one multipart request — ``answers``
        (JSON), ``visited_at``, ``reimbursement``, optional ``revision`` and photo file parts named
        ``photo.<item key>`` — saved, checked and submitted at once. All or nothing: any error
        (a bad photo, a missing answer, a visit outside the window) leaves the job as it was and no
        stored photo behind. An assigned job that was never started is started."""
        assignment = self.get_object()
        body = JobSubmissionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        answers = JobAnswerInputSerializer(data=data.get("answers", []), many=True)
        if not answers.is_valid():
            raise ValidationError({"answers": answers.errors})
        uploads = []
        for name in request.FILES:
            if not name.startswith(PHOTO_PART) or not name[len(PHOTO_PART) :]:
                raise ValidationError({name: f"Photo parts are named {PHOTO_PART}<item key>."})
            uploads += [(name, name[len(PHOTO_PART) :], u) for u in request.FILES.getlist(name)]
        if len(uploads) > SUBMISSION_MAX_PHOTOS:
            raise ValidationError({"photos": f"At most {SUBMISSION_MAX_PHOTOS} photos in one submission."})
        shopper, stored = self._shopper(), []
        kwargs = {"organization": self.organization, "actor": self.actor, "shopper": shopper}
        try:
            with transaction.atomic():
                if assignment.status == Assignment.Status.ASSIGNED:
                    jobs.assignment_start(**kwargs, assignment=assignment)
                jobs.assignment_draft_save(
                    **kwargs,
                    assignment=assignment,
                    answers=answers.validated_data,
                    visited_at=data.get("visited_at"),
                    base_revision=data.get("revision"),
                )
                for name, key, upload in uploads:
                    try:
                        photo = photos.assignment_photo_add(
                            **kwargs, assignment=assignment, item_key=key, upload=upload
                        )
                    except DjangoValidationError as exc:
                        raise ValidationError(
                            {name: [m for v in exc.message_dict.values() for m in v]}
                        ) from exc
                    stored += [photo.file_path, photo.thumbnail_path]
                assignment = jobs.assignment_submit(
                    **kwargs, assignment=assignment, reimbursement=data.get("reimbursement")
                )
        except jobs.DraftConflict as exc:
            photos._remove(*stored)
            current = jobs._current_audit(assignment)
            return Response(
                {**exc.message_dict, "current_revision": jobs.draft_revision(current)},
                status=status.HTTP_409_CONFLICT,
            )
        except BaseException:
            photos._remove(*stored)  # rolled back: the rows are gone, so are their files
            raise
        return self._done(assignment)

    # --- reviewer actions ---
    @extend_schema(request=None, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        """submitted → in_review (the caller becomes the reviewer)."""
        return self._decide(jobs.assignment_review)

    @extend_schema(request=JobDecisionSerializer, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"], url_path="return", url_name="return")
    def return_(self, request, pk=None):
        """Back to the shopper with a reason; they have program.revision_window_hours to resubmit.
        Optionally rate their work (``rating`` 1-5, ``rating_comment``)."""
        return self._decide(jobs.assignment_return, body_class=JobDecisionSerializer)

    @extend_schema(request=JobApproveSerializer, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve the visit; its audit is scored and published at once and its fee and
        reimbursement become payable. Optionally adjust the ``reimbursement`` and rate the work."""
        return self._decide(jobs.assignment_approve, body_class=JobApproveSerializer)

    @extend_schema(request=JobDecisionSerializer, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Rejected visits pay nothing. Optionally rate the work."""
        return self._decide(jobs.assignment_reject, body_class=JobDecisionSerializer)

    @extend_schema(request=JobReasonSerializer, responses=AssignmentSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._decide(jobs.assignment_cancel, body_class=JobReasonSerializer)


class AuditPhotoViewSet(TenantReadOnlyViewSet):
    """Audit photos: listed, streamed (file, thumbnail) to callers who may see the audit, deleted
    by the draft's author. Never served from a public URL."""

    queryset = AuditPhoto.objects
    serializer_class = AuditPhotoSerializer
    resource = "audits"
    api_app = "audits"
    http_method_names = ["get", "delete", "head", "options"]
    action_verbs = {"destroy": "change", "file": "view", "thumbnail": "view"}
    filterset_class = AuditPhotoFilter

    def safely_get_queryset(self, queryset):
        return queryset.select_related("item").order_by("pk")

    def destroy(self, request, pk=None):
        photos.audit_photo_delete(organization=self.organization, actor=self.actor, photo=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _stream(self, *, thumbnail: bool):
        photo = self.get_object()
        path = photos.photo_file(photo, thumbnail=thumbnail)
        if path is None:
            raise Http404("The file is missing.")
        response = FileResponse(
            open(path, "rb"),  # noqa: SIM115 (FileResponse closes it)
            content_type=photo.content_type,
        )
        response["Cache-Control"] = "private, no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The image")})
    @action(detail=True, methods=["get"])
    def file(self, request, pk=None):
        return self._stream(thumbnail=False)

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.BINARY, description="The thumbnail")})
    @action(detail=True, methods=["get"])
    def thumbnail(self, request, pk=None):
        return self._stream(thumbnail=True)


def register(router) -> None:
    """Add this area's viewsets to the core router."""
    router.register("shoppers", ShopperViewSet, basename="shopper")
    router.register("assignments", AssignmentViewSet, basename="assignment")
    router.register("audit-photos", AuditPhotoViewSet, basename="auditphoto")
