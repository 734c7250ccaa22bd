"""Reads for tenancy pages."""

from __future__ import annotations

from django.db.models import Case, Count, F, GenericIPAddressField, QuerySet, Value, When

from portal.models import AuditEvent, Customer, User


def customers_with_counts(user: User) -> QuerySet[Customer]:
    return (
        Customer.objects.for_user(user)
        .annotate(
            appliance_count=Count("appliances", distinct=True),
            site_count=Count("sites", distinct=True),
        )
        .order_by("name")
    )


def users_visible_to(user: User) -> QuerySet[User]:
    return (
        User.objects.for_user(user)
        .select_related("customer")
        .annotate(restore_grant_count=Count("restore_grants"))
        .order_by("customer__name", "username")
    )


def audit_events_for(user: User) -> QuerySet[AuditEvent]:
    return as_seen_by(AuditEvent.objects.for_user(user).select_related("customer"), user)


def as_seen_by(events: QuerySet[AuditEvent], user: User) -> QuerySet[AuditEvent]:
    """Events with ``who`` and ``where`` to show ``user``: to MSP staff the actor's name and
    address; to a customer, "MSP staff" and no address when the MSP's staff did it (the MSP's
    people and networks are not the customer's business)."""
    if user.is_msp:
        return events.annotate(who=F("actor_label"), where=F("ip_address"))
    return events.annotate(
        who=Case(When(actor_is_msp=True, then=Value("MSP staff")), default=F("actor_label")),
        where=Case(
            When(actor_is_msp=True, then=Value(None)),
            default=F("ip_address"),
            output_field=GenericIPAddressField(),
        ),
    )
