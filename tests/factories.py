"""factory_boy factories. Each creates its row inside its organization's tenant context."""

import datetime as dt

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from cem import models as m
from cem.tenancy import tenant_context, unscoped


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = m.Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    time_zone = "UTC"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with unscoped():
            return super()._create(model_class, *args, **kwargs)


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    organization = factory.SubFactory(OrganizationFactory)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        with tenant_context(kwargs["organization"]):
            return super()._create(model_class, *args, **kwargs)


class RegionFactory(TenantFactory):
    class Meta:
        model = m.Region

    name = factory.Sequence(lambda n: f"Region {n}")
    code = factory.Sequence(lambda n: f"r{n}")


class LocationFactory(TenantFactory):
    class Meta:
        model = m.Location

    region = factory.SubFactory(RegionFactory, organization=factory.SelfAttribute("..organization"))
    name = factory.Sequence(lambda n: f"Store {n}")
    code = factory.Sequence(lambda n: f"s{n}")


class TeamFactory(TenantFactory):
    class Meta:
        model = m.Team

    location = factory.SubFactory(LocationFactory, organization=factory.SelfAttribute("..organization"))
    name = factory.Sequence(lambda n: f"Team {n}")


class EmployeeFactory(TenantFactory):
    class Meta:
        model = m.Employee
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Employee {n}")
    external_id = factory.Sequence(lambda n: f"E{n:05d}")
    email = factory.LazyAttribute(lambda o: f"{o.external_id.lower()}@example.com")
    current_location = factory.SubFactory(
        LocationFactory, organization=factory.SelfAttribute("..organization")
    )

    @factory.post_generation
    def assignment(obj, create, extracted, **kwargs):
        if create and obj.current_location_id:
            with tenant_context(obj.organization_id):
                m.EmployeeAssignment.objects.create(
                    organization_id=obj.organization_id,
                    employee=obj,
                    location_id=obj.current_location_id,
                    start_date=dt.date(2024, 1, 1),
                )


class ChannelFactory(TenantFactory):
    class Meta:
        model = m.Channel

    code = factory.Sequence(lambda n: f"ch{n}")
    name = factory.Sequence(lambda n: f"Channel {n}")
    kind = m.Channel.Kind.IN_STORE


class TouchpointFactory(TenantFactory):
    class Meta:
        model = m.Touchpoint

    channel = factory.SubFactory(ChannelFactory, organization=factory.SelfAttribute("..organization"))
    code = factory.Sequence(lambda n: f"tp{n}")
    name = factory.Sequence(lambda n: f"Touchpoint {n}")
    category = m.InteractionCategory.STABILIZING


class SkillCategoryFactory(TenantFactory):
    class Meta:
        model = m.SkillCategory

    name = factory.Sequence(lambda n: f"Skill {n}")


class ExpectationFactory(TenantFactory):
    class Meta:
        model = m.CustomerExpectation

    name = factory.Sequence(lambda n: f"Expectation {n}")


class BrandMessageFactory(TenantFactory):
    class Meta:
        model = m.BrandMessage

    title = factory.Sequence(lambda n: f"Brand message {n}")


class StandardFactory(TenantFactory):
    class Meta:
        model = m.Standard

    code = factory.Sequence(lambda n: f"std-{n}")
    title = factory.Sequence(lambda n: f"Standard {n}")
    skill_category = factory.SubFactory(
        SkillCategoryFactory, organization=factory.SelfAttribute("..organization")
    )
    expectation = factory.SubFactory(ExpectationFactory, organization=factory.SelfAttribute("..organization"))


class SegmentFactory(TenantFactory):
    class Meta:
        model = m.Segment

    name = factory.Sequence(lambda n: f"Segment {n}")
    rule = factory.LazyFunction(lambda: [{"field": "lifetime_value", "op": "lt", "value": 100}])


class CustomerFactory(TenantFactory):
    class Meta:
        model = m.Customer

    external_id = factory.Sequence(lambda n: f"C{n:06d}")


class InteractionFactory(TenantFactory):
    class Meta:
        model = m.Interaction
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"INT-{n:07d}")
    location = factory.SubFactory(LocationFactory, organization=factory.SelfAttribute("..organization"))
    channel = factory.SubFactory(ChannelFactory, organization=factory.SelfAttribute("..organization"))
    category = m.InteractionCategory.STABILIZING
    occurred_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(hours=2))

    @factory.post_generation
    def employees(obj, create, extracted, **kwargs):
        if create and extracted:
            with tenant_context(obj.organization_id):
                for employee in extracted:
                    m.InteractionEmployee.objects.create(
                        organization_id=obj.organization_id, interaction=obj, employee=employee
                    )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    password = factory.django.Password("correct-horse-battery")


class MembershipFactory(TenantFactory):
    class Meta:
        model = m.Membership

    user = factory.SubFactory(UserFactory)
    role = m.Role.ORG_ADMIN
