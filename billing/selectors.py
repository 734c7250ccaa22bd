"""Reads for the billing pages. Every tenant read goes through ``for_user``."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet, Sum

from billing.models import (
    UNPAID_STATUSES,
    Invoice,
    InvoiceStatus,
    PriceBook,
    Subscription,
)
from portal.models import User
from portal.tenancy import get_for_user


def invoices_for(
    user: User, *, period: dt.date | None = None, status: str | None = None
) -> QuerySet[Invoice]:
    qs = Invoice.objects.for_user(user).select_related("customer")
    if period is not None:
        qs = qs.filter(period_start=period)
    if status:
        qs = qs.filter(status=status)
    return qs


def invoice_for(user: User, pk: int) -> Invoice:
    """One invoice the user may see (404 otherwise), with its customer and replacement links."""
    invoice = get_for_user(Invoice, user, pk=pk)
    return invoice


def invoice_lines(invoice: Invoice):
    return invoice.lines.select_related("appliance").order_by("position")


def subscriptions_for(user: User) -> QuerySet[Subscription]:
    return Subscription.objects.for_user(user).select_related("customer", "appliance")


def subscription_for(user: User, pk: int) -> Subscription:
    return get_for_user(Subscription, user, pk=pk)


def price_books() -> QuerySet[PriceBook]:
    return PriceBook.objects.prefetch_related("prices").order_by("-effective_from")


def latest_prices() -> dict[str, object]:
    book = price_books().first()
    return {p.model: p for p in book.prices.all()} if book else {}


def billing_summary(user: User) -> dict:
    """The figures at the top of the billing home page, in one query."""
    return Invoice.objects.for_user(user).aggregate(
        drafts=Count("id", filter=Q(status=InvoiceStatus.DRAFT)),
        unpaid_count=Count("id", filter=Q(status__in=UNPAID_STATUSES)),
        unpaid_total=Sum("total", filter=Q(status__in=UNPAID_STATUSES)),
        past_due=Count("id", filter=Q(status=InvoiceStatus.PAST_DUE)),
    )
