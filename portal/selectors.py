"""Reads for tenancy pages."""

from __future__ import annotations

from django.db.models import Count, QuerySet

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
    return AuditEvent.objects.for_user(user).select_related("customer")
