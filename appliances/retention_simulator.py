"""The retention-to-bill simulator: what a retention policy, before it is saved, would keep
over the next 12 months, the GB that takes locally and off-site, and the monthly overage at
the price book. Reads the server's measured history; the arithmetic is
appliances/retention_projection.py (kept points) and billing/pricing.py (money)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db.models import Max, Min, Sum

from agent.store.retention import RetentionPolicy as AgentPolicy
from appliances import retention_projection as projection
from appliances.models import ProtectedServer
from billing import metering, pricing
from billing.errors import BillingError
from billing.models import UsageSource
from billing.subscriptions import price_book_for
from offsite.models import OffsiteRetention
from restores.models import RecoveryPoint

WINDOW_DAYS = 30


@dataclass
class Measured:
    """The server's size and daily change, and what they rest on (said on the page)."""

    full_bytes: int
    daily_change: float
    days: int  # days with points in the window, the first backup aside
    fallback: bool
    basis: str


@dataclass
class MonthBill:
    month: projection.MonthProjection
    billed_bytes: int  # the appliance's, all its servers: what the overage is on
    overage_gb: int | None = None
    overage: Decimal | None = None


@dataclass
class Simulation:
    measured: Measured
    months: list[MonthBill] = field(default_factory=list)
    price_note: str = ""
    offsite_note: str = ""


def _gb(n: float) -> str:
    return f"{n / pricing.GB_BYTES:.1f} GB"


def _day(day: dt.date) -> str:
    return f"{day.day} {day:%b}"


def measure(server: ProtectedServer, now: dt.datetime) -> Measured:
    """Full size: the newest point of each volume. Daily change: the bytes the server's
    points of the last 30 days added, per day (each volume's first backup, a full copy,
    left out). Fewer than BDR_SIMULATOR_MIN_DAYS days: a stated share of the full size."""
    points = RecoveryPoint.objects.filter(server=server, taken_at__lte=now)
    by_volume = points.values("volume").annotate(first=Min("taken_at"), newest=Max("taken_at"))
    firsts = {row["volume"]: row["first"] for row in by_volume}
    rows = list(
        points.filter(taken_at__gt=now - dt.timedelta(days=WINDOW_DAYS))
        .values_list("volume", "taken_at", "size_bytes", "stored_bytes")
        .order_by("taken_at")
    )
    newest: dict[str, int] = {}
    added, days = 0, set()
    for volume, taken_at, size, stored in rows:
        newest[volume] = size
        if taken_at != firsts.get(volume):
            added += stored
            days.add(taken_at.date())
    full = sum(newest.values()) or (server.volumes.aggregate(n=Sum("size_bytes"))["n"] or 0)
    share = settings.BDR_SIMULATOR_FALLBACK_CHANGE_PERCENT
    if len(days) < settings.BDR_SIMULATOR_MIN_DAYS:
        basis = (
            f"Too little history ({len(days)} day{'s' if len(days) != 1 else ''} of backups "
            f"in the last {WINDOW_DAYS}): assuming {share}% of the server's {_gb(full)} "
            f"changes a day."
        )
        return Measured(full, full * share / 100, len(days), True, basis)
    span = (max(days) - min(days)).days + 1
    change = added / span
    basis = (
        f"Measured: {_gb(change)} a day added on average by the recovery points of "
        f"{len(days)} days ({_day(min(days))} – {_day(max(days))}); a full copy is {_gb(full)}."
    )
    return Measured(full, change, len(days), False, basis)


def _schedule(server: ProtectedServer) -> projection.ScheduleShape:
    s = server.schedule
    return projection.ScheduleShape(s.interval_minutes, tuple(s.weekdays or range(7)),
                                    s.start_hour, s.end_hour, s.enabled)  # fmt: skip


def _offsite(server: ProtectedServer) -> tuple[AgentPolicy | None, str]:
    kept = OffsiteRetention.objects.filter(server=server).first()
    if kept is None:
        return None, "The vault keeps every point (no off-site retention set)."
    return AgentPolicy(intraday=None, **kept.as_policy()), f"The vault keeps {kept}."


def simulate(server: ProtectedServer, policy: dict, now: dt.datetime) -> Simulation:
    """The next 12 months under ``policy`` (the retention form's cleaned data)."""
    measured = measure(server, now)
    offsite_policy, offsite_note = _offsite(server)
    existing = sorted(
        set(
            RecoveryPoint.objects.filter(server=server)
            .order_by()
            .values_list("taken_at", flat=True)
        )
    )
    months = projection.project(
        existing=existing, schedule=_schedule(server), local=AgentPolicy(**policy),
        offsite=offsite_policy, full_bytes=measured.full_bytes,
        daily_change=measured.daily_change, now=now,
    )  # fmt: skip
    others, source = _other_billed_bytes(server)
    result = Simulation(measured, offsite_note=offsite_note)
    if source == UsageSource.LOCAL:
        result.offsite_note += (
            " Billed on local bytes: the appliance has no vault figure (as its invoice is)."
        )
    result.months = [
        MonthBill(m, others + (m.local_bytes if source == UsageSource.LOCAL else m.offsite_bytes))
        for m in months
    ]
    _price(result, server, now)
    return result


def _other_billed_bytes(server: ProtectedServer) -> tuple[int, str]:
    """What the appliance's other servers are billed for now, and on what (billing's own
    measure: the vault's figure, or local bytes without one)."""
    appliance_id = server.appliance_id
    total, source = metering.offsite_bytes([appliance_id])[appliance_id]
    mine = RecoveryPoint.objects.filter(server=server)
    if source == UsageSource.VAULT:
        mine = mine.filter(on_vault=True)
    return max(0, total - (mine.aggregate(n=Sum("stored_bytes"))["n"] or 0)), source


def _price(result: Simulation, server: ProtectedServer, now: dt.datetime) -> None:
    try:
        book, terms = price_book_for(now.date())
    except BillingError as exc:
        result.price_note = f"{' '.join(exc.messages)} The overage cannot be priced."
        return
    price = terms.get(server.appliance.model)
    if price is None:
        result.price_note = f"Price book {book} has no {server.appliance.model} price."
        return
    result.price_note = (
        f"At {book}: {price.included_gb} GB off-site included per "
        f"{price.model} appliance, ${price.overage_per_gb} per GB over (all its servers)."
    )
    for bill in result.months:
        bill.overage_gb, bill.overage = pricing.overage_charge(bill.billed_bytes, 1, price)
