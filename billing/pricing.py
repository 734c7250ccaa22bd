"""Invoice arithmetic as pure functions: what a month of subscriptions and usage costs.

No database here, so the rules can be tested as tables. Money is Decimal throughout and each
line is rounded half-up to cents exactly once, when its amount is fixed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from billing.periods import active_days, days_in_month

CENTS = Decimal("0.01")
GB_BYTES = 2**30


@dataclass(frozen=True)
class PriceTerms:
    model: str
    purchase: Decimal
    rental_monthly: Decimal
    monitoring_monthly: Decimal
    included_gb: int
    overage_per_gb: Decimal


@dataclass(frozen=True)
class SubscriptionTerms:
    appliance_id: int
    appliance_label: str
    model: str
    kind: str  # "purchase" or "rental"
    starts_on: dt.date
    ends_on: dt.date | None
    # Off-site usage of the appliance over the days it was subscribed in the month.
    usage_bytes_total: int = 0
    usage_samples: int = 0
    # Of those samples, the days with no vault set, measured by local bytes instead.
    usage_local_samples: int = 0


@dataclass
class LineDraft:
    appliance_id: int | None
    category: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal
    detail: dict = field(default_factory=dict)


def round_cents(value: Decimal) -> Decimal:
    return value.quantize(CENTS, rounding=ROUND_HALF_UP)


def overage_gb(total_bytes: int, samples: int, included_gb: int) -> int:
    """Whole GB (2^30 bytes) by which the month's average exceeds ``included_gb``, rounded up."""
    if samples <= 0:
        return 0
    over_bytes_days = total_bytes - included_gb * GB_BYTES * samples
    if over_bytes_days <= 0:
        return 0
    return -(-over_bytes_days // (GB_BYTES * samples))


def overage_charge(total_bytes: int, samples: int, price: PriceTerms) -> tuple[int, Decimal]:
    """(GB over, amount) the month's average usage costs above the included GB."""
    over = overage_gb(total_bytes, samples, price.included_gb)
    return over, round_cents(price.overage_per_gb * over)


def _prorated(monthly: Decimal, days: int, month_days: int) -> Decimal:
    return round_cents(monthly * days / month_days)


def _span(first: dt.date, last: dt.date) -> str:
    return f"{first:%d %b} – {last:%d %b %Y}"


def subscription_lines(
    sub: SubscriptionTerms, price: PriceTerms, period: dt.date
) -> list[LineDraft]:
    """The lines one subscription adds to the invoice of ``period``'s month (maybe none)."""
    span = active_days(sub.starts_on, sub.ends_on, period)
    if span is None:
        return []
    first, last = span
    days = (last - first).days + 1
    month_days = days_in_month(period)
    fraction = (Decimal(days) / Decimal(month_days)).quantize(Decimal("0.0001"))
    days_detail = {"days": days, "days_in_month": month_days, "from": str(first), "to": str(last)}
    label = sub.appliance_label
    lines: list[LineDraft] = []
    if sub.kind == "purchase" and first <= sub.starts_on <= last:
        lines.append(
            LineDraft(
                sub.appliance_id,
                "hardware",
                f"{sub.model} appliance {label}, purchased {sub.starts_on:%d %b %Y}",
                Decimal(1),
                price.purchase,
                round_cents(price.purchase),
            )
        )
    if sub.kind == "rental":
        lines.append(
            LineDraft(
                sub.appliance_id,
                "rental",
                f"{sub.model} appliance {label} rental, {_span(first, last)} "
                f"({days}/{month_days} days)",
                fraction,
                price.rental_monthly,
                _prorated(price.rental_monthly, days, month_days),
                days_detail,
            )
        )
    lines.append(
        LineDraft(
            sub.appliance_id,
            "monitoring",
            f"Monitoring of {label}, {_span(first, last)} ({days}/{month_days} days)",
            fraction,
            price.monitoring_monthly,
            _prorated(price.monitoring_monthly, days, month_days),
            days_detail,
        )
    )
    if sub.usage_samples:
        lines.append(_overage_line(sub, price, label))
    return lines


def _overage_line(sub: SubscriptionTerms, price: PriceTerms, label: str) -> LineDraft:
    """The off-site storage over the included GB, from the month's daily usage samples."""
    over, amount = overage_charge(sub.usage_bytes_total, sub.usage_samples, price)
    average = Decimal(sub.usage_bytes_total) / sub.usage_samples / GB_BYTES
    measured = "measured on the vault"
    if sub.usage_local_samples:
        measured = (
            f"{sub.usage_local_samples} of them local bytes (no vault figure)"
            if sub.usage_local_samples < sub.usage_samples
            else "local bytes: no vault figure"
        )
    return LineDraft(
        sub.appliance_id,
        "overage",
        f"Off-site storage of {label}: average {average:.2f} GB over "
        f"{sub.usage_samples} daily samples ({measured}), {price.included_gb} GB included, "
        f"{over} GB over (1 GB = 2^30 bytes)",
        Decimal(over),
        price.overage_per_gb,
        amount,
        {
            "average_bytes": sub.usage_bytes_total // sub.usage_samples,
            "samples": sub.usage_samples,
            "local_samples": sub.usage_local_samples,
            "included_gb": price.included_gb,
            "overage_gb": over,
        },
    )


def invoice_lines(
    subs: list[SubscriptionTerms], prices: dict[str, PriceTerms], period: dt.date
) -> list[LineDraft]:
    """All lines of one customer's invoice for ``period``, appliance by appliance."""
    ordered = sorted(subs, key=lambda s: (s.appliance_label, s.appliance_id, s.starts_on))
    lines: list[LineDraft] = []
    for sub in ordered:
        lines.extend(subscription_lines(sub, prices[sub.model], period))
    return lines


def invoice_total(lines: list[LineDraft]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0.00"))
