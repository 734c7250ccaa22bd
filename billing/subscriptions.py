"""Writes for price book versions and subscriptions (each audited), and the subscription terms
a month's invoices are made from."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Count, F, Q, Sum

from appliances.models import Appliance
from billing import pricing
from billing.errors import BillingError
from billing.models import Price, PriceBook, Subscription, UsageSource
from billing.periods import month_end, month_start
from portal import audit
from portal.models import User

# --- price book -------------------------------------------------------------------------------


def price_book_for(period: dt.date) -> tuple[PriceBook, dict[str, pricing.PriceTerms]]:
    """The price book version in force for ``period``'s month, with its prices by model."""
    book = (
        PriceBook.objects.filter(effective_from__lte=month_start(period))
        .prefetch_related("prices")
        .order_by("-effective_from")
        .first()
    )
    if book is None:
        raise BillingError(f"No price book is in force for {period:%B %Y}.")
    terms = {
        p.model: pricing.PriceTerms(
            p.model,
            p.purchase,
            p.rental_monthly,
            p.monitoring_monthly,
            p.included_gb,
            p.overage_per_gb,
        )
        for p in book.prices.all()
    }
    return book, terms


@transaction.atomic
def create_price_book(
    *,
    effective_from: dt.date,
    prices: dict[str, dict],
    note: str = "",
    actor: User | None,
    request=None,
) -> PriceBook:
    """Add a price book version, in force from the first of ``effective_from``'s month."""
    if effective_from.day != 1:
        raise BillingError("A price book version starts on the first day of a month.")
    if PriceBook.objects.filter(effective_from=effective_from).exists():
        raise BillingError(f"A price book already starts on {effective_from}.")
    last = PriceBook.objects.order_by("-version").values_list("version", flat=True).first() or 0
    book = PriceBook.objects.create(version=last + 1, effective_from=effective_from, note=note)
    Price.objects.bulk_create(Price(price_book=book, model=m, **v) for m, v in prices.items())
    audit.record(
        actor,
        "billing.price_book_create",
        book,
        request=request,
        detail={"effective_from": str(effective_from), "models": sorted(prices)},
    )
    return book


# --- subscriptions ----------------------------------------------------------------------------


@transaction.atomic
def create_subscription(
    appliance: Appliance,
    *,
    kind: str,
    starts_on: dt.date,
    ends_on: dt.date | None = None,
    actor: User | None,
    request=None,
) -> Subscription:
    """Start billing ``appliance`` to its customer, bought or rented from ``starts_on``."""
    appliance = Appliance.objects.select_for_update().get(pk=appliance.pk)
    sub = Subscription(
        customer_id=appliance.customer_id,
        appliance=appliance,
        kind=kind,
        starts_on=starts_on,
        ends_on=ends_on,
    )
    sub.full_clean()
    overlapping = Subscription.objects.filter(appliance=appliance).filter(
        Q(ends_on__isnull=True) | Q(ends_on__gte=starts_on)
    )
    if ends_on is not None:
        overlapping = overlapping.filter(starts_on__lte=ends_on)
    if overlapping.exists():
        raise BillingError(f"{appliance.name} already has a subscription in that period.")
    sub.save()
    audit.record(
        actor,
        "billing.subscription_create",
        sub,
        request=request,
        detail={"kind": kind, "starts_on": str(starts_on), "ends_on": str(ends_on or "")},
    )
    return sub


@transaction.atomic
def end_subscription(
    sub: Subscription, *, ends_on: dt.date, actor: User | None, request=None
) -> Subscription:
    """Stop billing a subscription after ``ends_on`` (the last billed day)."""
    sub = Subscription.objects.select_for_update().get(pk=sub.pk)
    if ends_on < sub.starts_on:
        raise BillingError("A subscription cannot end before it starts.")
    sub.ends_on = ends_on
    sub.save(update_fields=["ends_on"])
    audit.record(
        actor, "billing.subscription_end", sub, request=request, detail={"ends_on": str(ends_on)}
    )
    return sub


def subscription_terms(
    period: dt.date, customer_ids: list[int] | None = None
) -> dict[int, list[pricing.SubscriptionTerms]]:
    """Each customer's subscriptions running in ``period``'s month, with their usage. One query."""
    first, last = month_start(period), month_end(period)
    in_span = (
        Q(appliance__usage_samples__day__gte=first)
        & Q(appliance__usage_samples__day__lte=last)
        & Q(appliance__usage_samples__day__gte=F("starts_on"))
        & (Q(ends_on__isnull=True) | Q(appliance__usage_samples__day__lte=F("ends_on")))
    )
    rows = (
        Subscription.objects.filter(starts_on__lte=last)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=first))
        .values(
            "customer_id",
            "appliance_id",
            "appliance__name",
            "appliance__serial",
            "appliance__model",
            "kind",
            "starts_on",
            "ends_on",
        )
        .annotate(
            usage_total=Sum("appliance__usage_samples__offsite_bytes", filter=in_span),
            usage_count=Count("appliance__usage_samples", filter=in_span),
            usage_local=Count(
                "appliance__usage_samples",
                filter=in_span & Q(appliance__usage_samples__source=UsageSource.LOCAL),
            ),
        )
        .order_by("customer_id", "pk")
    )
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=customer_ids)
    found: dict[int, list[pricing.SubscriptionTerms]] = {}
    for r in rows:
        found.setdefault(r["customer_id"], []).append(
            pricing.SubscriptionTerms(
                appliance_id=r["appliance_id"],
                appliance_label=f"{r['appliance__name']} ({r['appliance__serial']})",
                model=r["appliance__model"],
                kind=r["kind"],
                starts_on=r["starts_on"],
                ends_on=r["ends_on"],
                usage_bytes_total=r["usage_total"] or 0,
                usage_samples=r["usage_count"] or 0,
                usage_local_samples=r["usage_local"] or 0,
            )
        )
    return found
