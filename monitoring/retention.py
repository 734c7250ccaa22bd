"""A server's retention status: what its policy promises against the points that exist.

A pure function over the server's points, policy and schedule, taking "now". The promise is
a calendar: a point in each of the last N *scheduled* days before today (daily), the N ISO
weeks before this one (weekly), the N months before this one (monthly), the N years before
this one (yearly); the agent's retention (agent/store/retention.py) keeps the newest point of
each such period, in UTC, so any point in a period keeps the promise for it. Periods that
ended before protection began are not due. With a vault, the periods the server's off-site
policy keeps need a copy there too (points kept only off-site, beyond the local policy, are
not mirrored by the portal, so that longer promise is not checked).
A missing period says why, when the portal knows: a maintenance window, the appliance
offline (its ``appliance_offline`` alerts), failed backups, or else no backup was taken.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache

TIERS = ("daily", "weekly", "monthly", "yearly")
PLURAL = {"daily": "dailies", "weekly": "weeklies", "monthly": "monthlies", "yearly": "yearlies"}
MAX_DAYS_BACK = 800
Interval = tuple[dt.datetime, dt.datetime]


@dataclass(frozen=True)
class Policy:
    intraday: int = 96
    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    yearly: int = 3


@dataclass(frozen=True)
class History:
    """What the portal knows of the past, to say why a period has no point."""

    offline: tuple[Interval, ...] = ()
    maintenance: tuple[Interval, ...] = ()
    failed_backups: tuple[dt.datetime, ...] = ()


@dataclass
class Slot:
    tier: str
    label: str
    start: dt.datetime
    end: dt.datetime
    local: int = 0
    offsite: int = 0
    status: str = "ok"  # ok | missing | offsite_missing | not_due
    reason: str = ""


@dataclass
class Timeline:
    today_points: int
    tiers: dict[str, list[Slot]] = field(default_factory=dict)
    compliant: bool = True
    summary: str = "compliant"


def _day(d: dt.date) -> dt.datetime:
    return dt.datetime.combine(d, dt.time(0), dt.UTC)


def _daily(n: int, today: dt.date, weekdays: set[int]) -> list[Slot]:
    slots, day = [], today
    for _ in range(MAX_DAYS_BACK):
        if len(slots) >= n:
            break
        day -= dt.timedelta(days=1)
        if day.weekday() in weekdays:
            label = f"{day:%a} {day.day} {day:%b}"
            slots.append(Slot("daily", label, _day(day), _day(day + dt.timedelta(days=1))))
    return slots


def _weekly(n: int, today: dt.date) -> list[Slot]:
    monday = today - dt.timedelta(days=today.weekday())
    slots = []
    for k in range(1, n + 1):
        start = monday - dt.timedelta(weeks=k)
        sunday = start + dt.timedelta(days=6)
        label = f"week {start.isocalendar()[1]} ({start.day} {start:%b}–{sunday.day} {sunday:%b})"
        slots.append(Slot("weekly", label, _day(start), _day(start + dt.timedelta(weeks=1))))
    return slots


def _month_start(year: int, month: int) -> dt.date:
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return dt.date(year, month, 1)


def _monthly(n: int, today: dt.date) -> list[Slot]:
    slots = []
    for k in range(1, n + 1):
        start = _month_start(today.year, today.month - k)
        end = _month_start(today.year, today.month - k + 1)
        slots.append(Slot("monthly", f"{start:%b %Y}", _day(start), _day(end)))
    return slots


def _yearly(n: int, today: dt.date) -> list[Slot]:
    return [
        Slot("yearly", str(today.year - k), _day(dt.date(today.year - k, 1, 1)),
             _day(dt.date(today.year - k + 1, 1, 1)))
        for k in range(1, n + 1)
    ]  # fmt: skip


def _overlaps(slot: Slot, intervals) -> bool:
    return any(start < slot.end and end > slot.start for start, end in intervals)


def _why(slot: Slot, history: History) -> tuple[str, str]:
    """(kind, words) of the likeliest reason a period has no point."""
    if _overlaps(slot, history.maintenance):
        return "maintenance", "the appliance was in maintenance"
    if _overlaps(slot, history.offline):
        return "offline", "the appliance was offline"
    if any(slot.start <= t < slot.end for t in history.failed_backups):
        return "failed", "backups failed"
    return "none", "no backup was taken"


def _epoch(moment) -> float:
    return moment.timestamp() if isinstance(moment, dt.datetime) else float(moment)


@lru_cache(maxsize=256)
def calendar(counts: tuple[int, ...], weekdays: frozenset[int], today: dt.date) -> tuple:
    """The promise's periods (tier, label, start, end), the same for every server with the
    same policy and schedule on the same day: made once per cycle, not per server."""
    daily, weekly, monthly, yearly = counts
    made = (
        _daily(daily, today, set(weekdays) or set(range(7)))
        + _weekly(weekly, today)
        + _monthly(monthly, today)
        + _yearly(yearly, today)
    )
    return tuple((s.tier, s.label, s.start, s.end) for s in made)


def timeline(
    points: list[tuple[dt.datetime | float, bool]],
    policy: Policy,
    weekdays: set[int],
    now: dt.datetime,
    *,
    protected_since: dt.datetime,
    has_vault: bool = False,
    offsite: Policy | None = None,
    history: History = History(),  # noqa: B008 (frozen, never mutated)
) -> Timeline:
    """The promise by tier against ``points`` ((taken_at, on the vault) of each good point;
    taken_at as a datetime or epoch seconds). With a vault, the first N periods of each tier
    need a copy there too, N from the off-site policy (``offsite``; None: every period)."""
    today = now.astimezone(dt.UTC).date()
    ordered = sorted((_epoch(t), bool(v)) for t, v in points)
    times = [t for t, _ in ordered]
    on_vault = [0]
    for _, vault in ordered:
        on_vault.append(on_vault[-1] + vault)
    result = Timeline(today_points=len(times) - bisect_left(times, _day(today).timestamp()))
    counts = (policy.daily, policy.weekly, policy.monthly, policy.yearly)
    since = protected_since.timestamp()
    for tier in TIERS:
        result.tiers[tier] = []
    for tier, label, start, end in calendar(counts, frozenset(weekdays), today):
        slot = Slot(tier, label, start, end)
        lo, hi = bisect_left(times, start.timestamp()), bisect_left(times, end.timestamp())
        slot.local, slot.offsite = hi - lo, on_vault[hi] - on_vault[lo]
        copies = len(result.tiers[tier]) < (10**9 if offsite is None else getattr(offsite, tier))
        _judge(slot, since, has_vault and copies, history)
        result.tiers[tier].append(slot)
    _summarise(result)
    return result


def _judge(slot: Slot, protected_since: float, needs_copy: bool, history: History) -> None:
    if slot.local:
        if needs_copy and not slot.offsite:
            slot.status, slot.reason = "offsite_missing", "not on the vault"
        return
    if slot.end.timestamp() <= protected_since:
        slot.status, slot.reason = "not_due", "before protection began"
        return
    slot.status = "missing"
    slot.reason = _why(slot, history)[1]


def _days_text(slots: list[Slot]) -> str:
    """'2–4 Nov', '30 Oct–1 Nov', '2, 4 Nov': consecutive days as ranges."""
    days = sorted(s.start.date() for s in slots)
    runs: list[list[dt.date]] = []
    for d in days:
        if runs and d - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(d)
        else:
            runs.append([d])
    parts = []
    for run in runs:
        first, last = run[0], run[-1]
        if first == last:
            parts.append(f"{first.day} {first:%b}")
        elif first.month == last.month:
            parts.append(f"{first.day}–{last.day} {last:%b}")
        else:
            parts.append(f"{first.day} {first:%b}–{last.day} {last:%b}")
    return ", ".join(parts)


def _where(tier: str, slots: list[Slot]) -> str:
    if tier == "daily":
        return "on " + _days_text(slots)
    return "in " + ", ".join(s.label for s in sorted(slots, key=lambda s: s.start))


def _summarise(result: Timeline) -> None:
    parts = []
    for tier, slots in result.tiers.items():
        groups: dict[str, list[Slot]] = {}
        for slot in slots:
            if slot.status in ("missing", "offsite_missing"):
                groups.setdefault(slot.reason, []).append(slot)
        for reason, missing in groups.items():
            name = tier if len(missing) == 1 else PLURAL[tier]
            what = "not off-site" if reason == "not on the vault" else "missing"
            because = "" if what == "not off-site" else f"{reason} "
            parts.append(f"{len(missing)} {name} {what}: {because}{_where(tier, missing)}")
    if parts:
        result.compliant = False
        result.summary = "; ".join(parts)
