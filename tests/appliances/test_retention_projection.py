"""The simulator's kept points are the agent's: the shortened series it simulates on keeps
exactly what the agent's retention function keeps on every point a schedule would take."""

from __future__ import annotations

import datetime as dt

import pytest

from agent.store.retention import RetentionPolicy, select_points
from appliances.retention_projection import (
    ScheduleShape,
    held_bytes,
    kept_points,
    month_ends,
    project,
    series_until,
)

NOW = dt.datetime(2026, 11, 5, 10, 7, tzinfo=dt.UTC)
GB = 2**30


def every_point(schedule: ScheduleShape, start: dt.date, until: dt.datetime) -> list[dt.datetime]:
    """Every point the schedule takes from ``start`` to ``until``: the real, unshortened series."""
    times, day = [], start
    while day <= until.date():
        times += [t for t in schedule.times_on(day) if t <= until]
        day += dt.timedelta(days=1)
    return times


POLICIES = [
    RetentionPolicy(intraday=96, daily=7, weekly=4, monthly=12, yearly=3),
    RetentionPolicy(intraday=4, daily=30, weekly=0, monthly=6, yearly=1),
    RetentionPolicy(intraday=0, daily=0, weekly=0, monthly=0, yearly=0),
    RetentionPolicy(intraday=None, daily=3, weekly=10, monthly=2, yearly=5),
]
SCHEDULES = [
    ScheduleShape(interval_minutes=60),
    ScheduleShape(interval_minutes=240, weekdays=(0, 1, 2, 3, 4), start_hour=8, end_hour=20),
]


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("policy", POLICIES)
def test_simulated_kept_points_match_the_agents_retention_on_the_full_series(schedule, policy):
    history_start = dt.date(2026, 8, 20)
    existing = every_point(schedule, history_start, NOW)
    for _, at in month_ends(NOW):
        simulated = kept_points(series_until(existing, schedule, NOW, at), policy, at)
        full = every_point(schedule, history_start, at)
        real = select_points(((t.isoformat(), t) for t in full), policy, at)
        assert {t.isoformat(): tier for t, tier in simulated.items()} == real, at


def test_month_ends_are_the_last_second_of_this_month_and_the_next_eleven():
    ends = month_ends(NOW)
    assert len(ends) == 12
    assert ends[0] == (dt.date(2026, 11, 1), dt.datetime(2026, 11, 30, 23, 59, 59, tzinfo=dt.UTC))
    assert ends[2][1] == dt.datetime(2027, 1, 31, 23, 59, 59, tzinfo=dt.UTC)
    assert ends[3][1] == dt.datetime(2027, 2, 28, 23, 59, 59, tzinfo=dt.UTC)
    assert ends[11][0] == dt.date(2027, 10, 1)


@pytest.mark.parametrize(
    "days, full, change, expected",
    [
        ([], 100, 10, 0),
        ([0], 100, 10, 100),
        ([0, 1, 3], 100, 10, 100 + 10 + 20),
        ([0, 30], 100, 10, 100 + 100),  # never more than a full copy per point
        ([0, 0.5], 100, 10, 105),
    ],
)
def test_held_bytes_is_a_full_copy_plus_each_older_points_change(days, full, change, expected):
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    kept = [base + dt.timedelta(days=d) for d in days]
    assert held_bytes(kept, full, change) == expected


def test_a_longer_policy_keeps_more_points_and_bytes_every_month():
    schedule = ScheduleShape(interval_minutes=15)
    args = dict(existing=[], schedule=schedule, offsite=None, full_bytes=100 * GB,
                daily_change=2 * GB, now=NOW)  # fmt: skip
    short = project(local=RetentionPolicy(intraday=96, daily=7, weekly=4, monthly=0, yearly=0),
                    **args)  # fmt: skip
    long = project(local=RetentionPolicy(intraday=96, daily=7, weekly=4, monthly=12, yearly=3),
                   **args)  # fmt: skip
    monthlies = [m.kept["monthly"] for m in long]
    # A month whose newest point a weekly already keeps takes no monthly (the agent's rule).
    assert monthlies == sorted(monthlies) and monthlies[0] == 0 and monthlies[-1] >= 10
    assert all(m.kept.get("monthly", 0) == 0 for m in short)
    assert long[-1].local_bytes > short[-1].local_bytes
    # The vault keeps everything (no off-site policy): it grows by the change every day.
    days = (long[-1].at - NOW).total_seconds() / 86400
    assert long[-1].offsite_bytes == pytest.approx(100 * GB + 2 * GB * days, rel=0.01)
    assert [m.offsite_bytes for m in long] == sorted(m.offsite_bytes for m in long)
    assert long[0].kept["intraday"] == 96
