"""Writes for tenancy: customers, sites, users. Each change is audited."""

from __future__ import annotations

from django.contrib.auth import password_validation
from django.db import transaction

from portal import audit
from portal.models import Customer, Role, Site, User


@transaction.atomic
def create_customer(*, actor: User | None, request=None, **fields) -> Customer:
    """Create a customer (tenant)."""
    customer = Customer.objects.create(**fields)
    audit.record(actor, "customer.create", customer, request=request)
    return customer


@transaction.atomic
def update_customer(customer: Customer, *, actor: User, request=None, **fields) -> Customer:
    """Change a customer's details."""
    for name, value in fields.items():
        setattr(customer, name, value)
    customer.save()
    audit.record(
        actor, "customer.update", customer, request=request, detail={"fields": sorted(fields)}
    )
    return customer


@transaction.atomic
def create_site(customer: Customer, *, actor: User | None, request=None, **fields) -> Site:
    """Add a site to a customer."""
    site = Site.objects.create(customer=customer, **fields)
    audit.record(actor, "site.create", site, request=request)
    return site


@transaction.atomic
def save_user(user: User, *, actor: User | None, request=None, password: str | None = None) -> User:
    """Create or update a user; MSP admins get Django admin access, nobody else does.

    A new password must pass ``AUTH_PASSWORD_VALIDATORS`` (raises ValidationError), whichever
    way it arrives; the forms check it first to show the error beside the field.
    """
    created = user.pk is None
    if password:
        password_validation.validate_password(password, user)
    if not user.is_msp and actor is not None and not actor.is_msp:
        user.customer_id = actor.customer_id
    user.is_staff = user.role == Role.MSP_ADMIN
    user.is_superuser = user.role == Role.MSP_ADMIN
    if password:
        user.set_password(password)
    elif created:
        user.set_unusable_password()
    user.save()
    audit.record(
        actor,
        "user.create" if created else "user.update",
        user,
        request=request,
        customer=user.customer,
        detail={"role": user.role},
    )
    return user
