"""factory_boy factories for the portal's models. Tests build what they need with these."""

import datetime as dt

import factory
from django.utils import timezone

from appliances.models import Alert, Appliance, Job, ProtectedServer, Volume
from portal.models import AuditEvent, Customer, Role, Site, User
from restores.models import RecoveryPoint, RestoreGrant, VirtualMachine

DEFAULT_PASSWORD = "correct-horse-battery-staple"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    name = factory.Sequence(lambda n: f"Customer {n}")
    contact_email = factory.LazyAttribute(lambda o: f"it@{o.name.replace(' ', '').lower()}.example")


class SiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Site

    customer = factory.SubFactory(CustomerFactory)
    name = factory.Sequence(lambda n: f"Site {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@bdr.example")
    role = Role.CUSTOMER_USER
    customer = factory.Maybe(
        factory.LazyAttribute(lambda o: o.role in (Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER)),
        yes_declaration=factory.SubFactory(CustomerFactory),
        no_declaration=None,
    )
    is_staff = factory.LazyAttribute(lambda o: o.role == Role.MSP_ADMIN)
    is_superuser = factory.LazyAttribute(lambda o: o.role == Role.MSP_ADMIN)

    @factory.post_generation
    def password(obj, create, extracted, **kwargs):
        obj.set_password(extracted or DEFAULT_PASSWORD)
        if create:
            obj.save(update_fields=["password"])


class ApplianceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Appliance

    serial = factory.Sequence(lambda n: f"SN{n:06}")
    name = factory.Sequence(lambda n: f"nas-{n}")
    model = "V2"
    customer = factory.SubFactory(CustomerFactory)
    site = factory.SubFactory(SiteFactory, customer=factory.SelfAttribute("..customer"))
    capacity_bytes = 2 * 10**12
    purchased_on = dt.date(2026, 1, 1)


class ProtectedServerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProtectedServer

    appliance = factory.SubFactory(ApplianceFactory)
    name = factory.Sequence(lambda n: f"srv{n}")
    hostname = factory.LazyAttribute(lambda o: f"{o.name}.corp.local")


class VolumeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Volume

    server = factory.SubFactory(ProtectedServerFactory)
    name = "C"
    source = "/dev/null"
    size_bytes = 100 * 2**30


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    appliance = factory.SubFactory(ApplianceFactory)
    server = factory.SubFactory(
        ProtectedServerFactory, appliance=factory.SelfAttribute("..appliance")
    )
    kind = "backup"
    state = "succeeded"


class AlertFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Alert

    appliance = factory.SubFactory(ApplianceFactory)
    customer = factory.SelfAttribute("appliance.customer")
    kind = "backup_failed"
    message = factory.Sequence(lambda n: f"Backup failed #{n}")


class RecoveryPointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecoveryPoint

    server = factory.SubFactory(ProtectedServerFactory)
    agent_id = factory.Sequence(lambda n: f"pt{n:08}")
    volume = "C"
    taken_at = factory.Sequence(lambda n: timezone.now() - dt.timedelta(minutes=15 * n))
    size_bytes = 10 * 2**30


class VirtualMachineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VirtualMachine

    server = factory.SubFactory(ProtectedServerFactory)
    point = factory.SubFactory(RecoveryPointFactory, server=factory.SelfAttribute("..server"))
    agent_id = factory.Sequence(lambda n: f"vm{n:06}")
    state = "stopped"


class AuditEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AuditEvent

    customer = factory.SubFactory(CustomerFactory)
    action = "test.event"
    actor_label = "system"


# --- billing ---------------------------------------------------------------------------------

from decimal import Decimal  # noqa: E402

from billing.models import (  # noqa: E402
    Invoice,
    InvoiceLine,
    Price,
    PriceBook,
    Subscription,
    UsageSample,
)


def default_price_book() -> PriceBook:
    """Version 1 as the data migration seeds it (rebuilt when a transactional test flushed it)."""
    from importlib import import_module

    seeded = import_module("billing.migrations.0002_default_price_book")
    book, created = PriceBook.objects.get_or_create(
        version=1, defaults={"effective_from": dt.date(2000, 1, 1), "note": "List prices at launch"}
    )
    if created:
        for model, fields in seeded.DEFAULT_PRICES.items():
            Price.objects.create(price_book=book, model=model, **fields)
    return book


class PriceBookFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PriceBook

    version = factory.Sequence(lambda n: n + 2)
    effective_from = dt.date(2026, 7, 1)


class PriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Price

    price_book = factory.SubFactory(PriceBookFactory)
    model = "V1"
    purchase = Decimal("1399.00")
    rental_monthly = Decimal("79.00")
    monitoring_monthly = Decimal("49.00")
    included_gb = 30
    overage_per_gb = Decimal("0.99")


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    appliance = factory.SubFactory(ApplianceFactory)
    customer = factory.SelfAttribute("appliance.customer")
    kind = "rental"
    starts_on = dt.date(2026, 1, 1)


class UsageSampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageSample

    appliance = factory.SubFactory(ApplianceFactory)
    day = dt.date(2026, 1, 1)
    offsite_bytes = 10 * 2**30


class InvoiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Invoice

    customer = factory.SubFactory(CustomerFactory)
    period_start = dt.date(2026, 1, 1)
    number = factory.Sequence(lambda n: f"TEST-{n:06}")
    price_book = factory.LazyFunction(default_price_book)
    total = Decimal("128.00")


class InvoiceLineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvoiceLine

    invoice = factory.SubFactory(InvoiceFactory)
    position = factory.Sequence(lambda n: n + 1)
    category = "rental"
    description = "Rental"
    quantity = Decimal("1")
    unit_price = Decimal("79.00")
    amount = Decimal("79.00")


class RestoreGrantFactory(factory.django.DjangoModelFactory):
    """A customer user allowed to restore from a server of their customer."""

    class Meta:
        model = RestoreGrant

    server = factory.SubFactory(ProtectedServerFactory)
    user = factory.SubFactory(
        UserFactory,
        role=Role.CUSTOMER_USER,
        customer=factory.SelfAttribute("..server.appliance.customer"),
    )


# --- off-site ---------------------------------------------------------------------------------

from offsite.models import ApplianceOffsite, Vault  # noqa: E402


class VaultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Vault

    name = factory.Sequence(lambda n: f"vault{n}")
    data_centre = factory.Sequence(lambda n: f"DC {n}")
    endpoint = factory.Sequence(lambda n: f"s3://bdr-vault-{n}/appliances")
    capacity_bytes = 100 * 10**12


class ApplianceOffsiteFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ApplianceOffsite

    appliance = factory.SubFactory(ApplianceFactory)
    vault = factory.SubFactory(VaultFactory)


def issue_api_key(customer=None, access="read", **kwargs):
    """A Status API key issued the way the page issues one: (ApiKey, plaintext)."""
    from statusapi import services

    now = kwargs.pop("now", timezone.now())
    actor = kwargs.pop("actor", None) or UserFactory(role=Role.MSP_ADMIN)
    return services.issue_key(
        name=kwargs.pop("name", "PSA"), customer=customer, access=access,
        expires_at=kwargs.pop("expires_at", now + dt.timedelta(days=90)), actor=actor, now=now,
    )  # fmt: skip
