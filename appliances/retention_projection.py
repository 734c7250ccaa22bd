"""The retention-to-bill simulator's arithmetic: which points a retention policy would keep
at the end of each of the next 12 months, and about how many bytes they hold.

Pure functions taking "now". The kept points come from the agent's own retention function
(agent/store/retention.py ``select_points``), run on the server's existing points plus the
points its schedule will take, so the simulation keeps exactly what rollup would keep.
Only the last point of a day can outlive that day (every tier keeps the newest point of its
period, and a period's newest point is its last day's newest), so days before the evaluated
one contribute their last scheduled point only: a year of 15-minute backups is ~400 points.

Bytes: a full copy (the newest points' size), plus for each older kept point the measured
change per day times the days to the next kept point, never more than a full copy.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from agent.store.retention import RetentionPolicy, select_points

MONTHS = 12
KEEP_EVERYTHING = 10**6  # counts large enough that nothing in the simulated span goes
SECOND = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class ScheduleShape:
    """When backups run: every ``interval_minutes`` between the hours, on the weekdays."""

    interval_minutes: int = 15
    weekdays: tuple[int, ...] = tuple(range(7))
    start_hour: int = 0
    end_hour: int = 24
    enabled: bool = True

    def times_on(self, day: dt.date) -> list[dt.datetime]:
        if not self.enabled or day.weekday() not in self.weekdays:
            return []
        start = dt.datetime(day.year, day.month, day.day, self.start_hour, tzinfo=dt.UTC)
        minutes = (self.end_hour - self.start_hour) * 60
        return [start + dt.timedelta(minutes=m) for m in range(0, minutes, self.interval_minutes)]


@dataclass
class MonthProjection:
    month: dt.date  # its first day
    at: dt.datetime  # the moment simulated: the month's last second
    kept: Counter = field(default_factory=Counter)  # tier -> points
    local_bytes: int = 0
    offsite_bytes: int = 0

    @property
    def points(self) -> int:
        return sum(self.kept.values())

    @property
    def by_tier(self) -> list[tuple[str, int]]:
        """(tier, points), finest first (a template cannot read a Counter's items)."""
        order = ("intraday", "daily", "weekly", "monthly", "yearly", "latest")
        return [(tier, self.kept[tier]) for tier in order if self.kept[tier]]


def month_ends(now: dt.datetime, months: int = MONTHS) -> list[tuple[dt.date, dt.datetime]]:
    """(first day, last second) of this month and the ``months - 1`` after it."""
    first = now.date().replace(day=1)
    ends = []
    for _ in range(months):
        following = (first + dt.timedelta(days=32)).replace(day=1)
        at = dt.datetime(following.year, following.month, 1, tzinfo=dt.UTC) - SECOND
        ends.append((first, at))
        first = following
    return ends


def series_until(
    existing: list[dt.datetime], schedule: ScheduleShape, now: dt.datetime, at: dt.datetime
) -> list[dt.datetime]:
    """The points there will be at ``at``: the existing ones, then the scheduled ones after
    ``now`` (of days before ``at``'s day only the last, as only it can be kept)."""
    times = [t for t in existing if t <= now]
    day = now.date()
    while day < at.date():
        scheduled = [t for t in schedule.times_on(day) if t > now]
        times.extend(scheduled[-1:])
        day += dt.timedelta(days=1)
    times.extend(t for t in schedule.times_on(at.date()) if now < t <= at)
    return times


def kept_points(
    times: list[dt.datetime], policy: RetentionPolicy, at: dt.datetime
) -> dict[dt.datetime, str]:
    """{taken_at: tier} the agent's retention keeps at ``at`` (its own function)."""
    chosen = select_points(((t.isoformat(), t) for t in times), policy, at)
    return {dt.datetime.fromisoformat(pid): tier for pid, tier in chosen.items()}


def held_bytes(kept: list[dt.datetime], full_bytes: int, daily_change: float) -> int:
    """Bytes ``kept`` points hold: one full copy, and each older point's change to the next."""
    if not kept:
        return 0
    ordered = sorted(kept)
    total = full_bytes
    for older, newer in zip(ordered, ordered[1:], strict=False):
        days = (newer - older).total_seconds() / 86400
        total += min(full_bytes, round(daily_change * days))
    return total


def project(
    *,
    existing: list[dt.datetime],
    schedule: ScheduleShape,
    local: RetentionPolicy,
    offsite: RetentionPolicy | None,
    full_bytes: int,
    daily_change: float,
    now: dt.datetime,
) -> list[MonthProjection]:
    """Each of the next 12 months at its end: the points kept locally by tier, and the
    bytes held locally and off-site (``offsite`` None: the vault keeps every point)."""
    vault_policy = offsite or RetentionPolicy(
        intraday=None, daily=KEEP_EVERYTHING, weekly=KEEP_EVERYTHING,
        monthly=KEEP_EVERYTHING, yearly=KEEP_EVERYTHING,
    )  # fmt: skip
    months = []
    for first, at in month_ends(now):
        times = series_until(existing, schedule, now, at)
        here = kept_points(times, local, at)
        there = kept_points(times, vault_policy, at)
        months.append(
            MonthProjection(
                month=first,
                at=at,
                kept=Counter(here.values()),
                local_bytes=held_bytes(list(here), full_bytes, daily_change),
                offsite_bytes=held_bytes(list(there), full_bytes, daily_change),
            )  # fmt: skip
        )
    return months
