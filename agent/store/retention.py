"""Which recovery points to keep at time T: a pure function over (id, taken_at) pairs.

Tiers, finest first: all (or the newest N) of today's points are "intraday"; then, as in
Proxmox Backup Server's prune, each tier keeps the newest point of each of its N most
recent periods (day, ISO week, month, year) that hold points and that no finer tier has
already covered. Periods without backups do not use up a count. All calendars are UTC,
so daylight-saving changes never move a point between days. The newest point is always
kept, even with every count at 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

TIERS = ("intraday", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class RetentionPolicy:
    """Counts per tier; ``intraday=None`` keeps all of today's points."""

    intraday: int | None = None
    daily: int = 7
    weekly: int = 4
    monthly: int = 12
    yearly: int = 3

    def __post_init__(self):
        for tier in TIERS:
            value = getattr(self, tier)
            if value is None and tier == "intraday":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"retention {tier} must be a whole number >= 0, not {value!r}")


def _utc(dt: datetime) -> datetime:
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


PERIODS: dict[str, Callable[[datetime], tuple]] = {
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


def select_points(
    points: Iterable[tuple[str, datetime]], policy: RetentionPolicy, now: datetime
) -> dict[str, str]:
    """Return {point id: tier} for the points to keep; every other point goes."""
    ordered = sorted(((pid, _utc(t)) for pid, t in points), key=lambda p: (p[1], p[0]))
    ordered.reverse()  # newest first
    if not ordered:
        return {}
    today = _utc(now).date()
    mark: dict[str, str | None] = {}  # None: passed over by a tier, removed

    todays = [pid for pid, t in ordered if t.date() >= today]
    limit = len(todays) if policy.intraday is None else policy.intraday
    for pid in todays[:limit]:
        mark[pid] = "intraday"

    for tier, period in PERIODS.items():
        count = getattr(policy, tier)
        covered = {period(t) for pid, t in ordered if mark.get(pid)}
        chosen: set[tuple] = set()
        for pid, t in ordered:
            # A point a finer tier passed over (its day or week already had a newer one) is
            # still the newest of its month or year: a coarser tier may keep it. Proxmox
            # Backup Server's prune skips such points and keeps an older period instead.
            if mark.get(pid):
                continue
            key = period(t)
            if key in covered:
                continue
            if key in chosen:
                mark[pid] = None
                continue
            if len(chosen) >= count:
                break
            chosen.add(key)
            mark[pid] = tier

    newest = ordered[0][0]
    if not mark.get(newest):
        mark[newest] = "latest"
    return {pid: tier for pid, tier in mark.items() if tier}
