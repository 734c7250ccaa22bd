"""The MSP admins' billing reports: MRR, revenue by category, overage, unpaid invoices by age.

Each report is a fixed, small number of queries whatever the number of customers, and
returns plain rows that the page draws as tables and charts and the CSV export writes out.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from billing.models import (
    BILLED_STATUSES,
    GB_BYTES,
    UNPAID_STATUSES,
    Invoice,
    InvoiceLine,
    LineCategory,
    PriceBook,
    Subscription,
    SubscriptionKind,
    UsageSample,
    UsageSource,
)
from billing.periods import month_end, month_start, previous_month
from portal.models import User

ZERO = Decimal("0.00")
CATEGORIES = [(c.value, c.label) for c in LineCategory]
AGE_BUCKETS = [
    ("0-30 days", 0, 30),
    ("31-60 days", 31, 60),
    ("61-90 days", 61, 90),
    ("90+ days", 91, None),
]


def last_months(count: int, *, until: dt.date | None = None) -> list[dt.date]:
    """The first days of the ``count`` months ending with ``until``'s month, oldest first."""
    month = month_start(until or timezone.localdate())
    months = [month]
    for _ in range(count - 1):
        months.append(previous_month(months[-1]))
    return months[::-1]


def mrr_by_month(user: User, months: list[dt.date]) -> list[dict]:
    """Monthly recurring revenue (rental + monitoring list price of the subscriptions running on
    the month's last day, at the price book of that month) and its change month over month."""
    first, last = months[0], month_end(months[-1])
    subs = list(
        Subscription.objects.for_user(user)
        .filter(starts_on__lte=last)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=first))
        .values_list("kind", "starts_on", "ends_on", "appliance__model")
    )
    books = list(PriceBook.objects.prefetch_related("prices").order_by("effective_from"))
    rows, previous = [], None
    for month in months:
        book = next((b for b in reversed(books) if b.effective_from <= month), None)
        prices = {p.model: p for p in book.prices.all()} if book else {}
        day = month_end(month)
        mrr = ZERO
        for kind, starts_on, ends_on, model in subs:
            if starts_on <= day and (ends_on is None or ends_on >= day) and model in prices:
                price = prices[model]
                mrr += price.monitoring_monthly
                if kind == SubscriptionKind.RENTAL:
                    mrr += price.rental_monthly
        change = None if previous is None else mrr - previous
        pct = None
        if change is not None and previous:
            pct = (change * 100 / previous).quantize(Decimal("0.1"))
        rows.append({"month": month, "mrr": mrr, "change": change, "change_pct": pct})
        previous = mrr
    return rows


def revenue_by_month(user: User, months: list[dt.date]) -> list[dict]:
    """Billed revenue (finalized, past due or paid invoices) by month and category."""
    rows = (
        InvoiceLine.objects.for_user(user)
        .filter(
            invoice__status__in=BILLED_STATUSES,
            invoice__period_start__gte=months[0],
            invoice__period_start__lte=months[-1],
        )
        .values("invoice__period_start", "category")
        .annotate(amount=Sum("amount"))
        .order_by()
    )
    table = {m: {"month": m, **{c: ZERO for c, _ in CATEGORIES}, "total": ZERO} for m in months}
    for r in rows:
        row = table[r["invoice__period_start"]]
        row[r["category"]] += r["amount"]
        row["total"] += r["amount"]
    return [table[m] for m in months]


def top_consumers(user: User, period: dt.date, limit: int = 10) -> list[dict]:
    """The appliances with the most off-site storage on average in ``period``'s month."""
    rows = list(
        UsageSample.objects.for_user(user)
        .filter(day__gte=period, day__lte=month_end(period))
        .values(
            "appliance_id",
            "appliance__name",
            "appliance__serial",
            "appliance__model",
            "appliance__customer__name",
        )
        .annotate(
            average=Avg("offsite_bytes"),
            samples=Count("id"),
            local_samples=Count("id", filter=Q(source=UsageSource.LOCAL)),
        )
        .order_by("-average", "appliance_id")[:limit]
    )
    billed = dict(
        InvoiceLine.objects.for_user(user)
        .filter(
            category=LineCategory.OVERAGE,
            invoice__status__in=BILLED_STATUSES,
            invoice__period_start=period,
            appliance_id__in=[r["appliance_id"] for r in rows],
        )
        .values("appliance_id")
        .annotate(amount=Sum("amount"))
        .values_list("appliance_id", "amount")
    )
    return [
        {
            "customer": r["appliance__customer__name"],
            "appliance": r["appliance__name"],
            "serial": r["appliance__serial"],
            "model": r["appliance__model"],
            "average_gb": (Decimal(r["average"]) / GB_BYTES).quantize(Decimal("0.01")),
            "samples": r["samples"],
            "measured": _measured(r["samples"], r["local_samples"]),
            "overage_billed": billed.get(r["appliance_id"], ZERO),
        }
        for r in rows
    ]


def _measured(samples: int, local_samples: int) -> str:
    """Where a month's samples came from: the vault, or local bytes where no vault was set."""
    if not local_samples:
        return "vault"
    if local_samples == samples:
        return "local (no vault figure)"
    return f"vault, {local_samples} days local"


def unpaid_by_age(user: User, today: dt.date | None = None) -> list[dict]:
    """Unpaid invoices (finalized or past due) grouped by days since they were finalized."""
    today = today or timezone.localdate()
    aggregates = {}
    for i, (_, low, high) in enumerate(AGE_BUCKETS):
        # finalized_at is a datetime: "at least low days old" means before the start of that day.
        in_bucket = Q(finalized_at__lt=_day_start(today - dt.timedelta(days=low - 1)))
        if low == 0:
            in_bucket = Q()
        if high is not None:
            in_bucket &= Q(finalized_at__gte=_day_start(today - dt.timedelta(days=high)))
        aggregates[f"n{i}"] = Count("id", filter=in_bucket)
        aggregates[f"s{i}"] = Sum("total", filter=in_bucket)
    found = (
        Invoice.objects.for_user(user).filter(status__in=UNPAID_STATUSES).aggregate(**aggregates)
    )
    return [
        {"bucket": label, "count": found[f"n{i}"], "amount": found[f"s{i}"] or ZERO}
        for i, (label, _, _) in enumerate(AGE_BUCKETS)
    ]


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def default_report_month() -> dt.date:
    """The last month the monthly run has billed: the one before this."""
    return previous_month(timezone.localdate())
