"""Which points a policy keeps: hand-written tables, then a property test."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.store.retention import PERIODS, RetentionPolicy, select_points


def at(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def keep(points: list[str], policy: RetentionPolicy, now: str) -> dict[str, str]:
    return select_points([(p, at(p)) for p in points], policy, at(now))


ZERO = RetentionPolicy(intraday=0, daily=0, weekly=0, monthly=0, yearly=0)


def only(**counts) -> RetentionPolicy:
    return RetentionPolicy(**{**ZERO.__dict__, **counts})


DEFAULT_WEEK = [f"2025-03-{d:02d}T{h}:00" for d in range(1, 10) for h in ("10", "22")]

CASES = {
    "defaults: today's points, 7 days, then the week before": (
        RetentionPolicy(),
        "2025-03-10T12:00",
        DEFAULT_WEEK + ["2025-03-10T09:00", "2025-03-10T10:00", "2025-03-10T11:00"],
        {
            "2025-03-10T11:00": "intraday",
            "2025-03-10T10:00": "intraday",
            "2025-03-10T09:00": "intraday",
            **{f"2025-03-{d:02d}T22:00": "daily" for d in range(3, 10)},
            "2025-03-02T22:00": "weekly",  # ISO week 9; week 10 is covered by the dailies
        },
    ),
    "ISO weeks across New Year (29-31 Dec 2025 are week 1 of 2026)": (
        only(weekly=3),
        "2026-01-05T12:00",
        [f"2025-12-{d}T12:00" for d in range(25, 32)]
        + [f"2026-01-0{d}T12:00" for d in range(1, 5)],
        {"2026-01-04T12:00": "weekly", "2025-12-28T12:00": "weekly"},
    ),
    "month ends and 29 February": (
        only(monthly=3),
        "2024-03-15T00:00",
        [
            "2024-01-31T23:00",
            "2024-02-01T01:00",
            "2024-02-29T23:59",
            "2024-03-01T00:00",
            "2024-03-01T00:30",
        ],
        {
            "2024-03-01T00:30": "monthly",
            "2024-02-29T23:59": "monthly",
            "2024-01-31T23:00": "monthly",
        },
    ),
    "year boundary, yearly count reached": (
        only(daily=1, yearly=2),
        "2025-01-01T00:10",
        [
            "2022-05-05T00:00",
            "2023-01-01T00:00",
            "2023-12-31T23:59",
            "2024-06-01T00:00",
            "2024-12-31T23:55",
            "2025-01-01T00:05",
        ],
        {
            "2025-01-01T00:05": "daily",
            "2024-12-31T23:55": "yearly",
            "2023-12-31T23:59": "yearly",
        },
    ),
    "every tier 0: the newest point is still kept": (
        ZERO,
        "2025-06-01T00:00",
        ["2025-05-01T00:00", "2025-05-02T00:00", "2025-05-03T00:00"],
        {"2025-05-03T00:00": "latest"},
    ),
    "days without backups do not use up the daily count": (
        only(daily=2),
        "2025-05-20T08:00",
        ["2025-05-01T10:00", "2025-05-12T10:00", "2025-05-19T10:00"],
        {"2025-05-19T10:00": "daily", "2025-05-12T10:00": "daily"},
    ),
    "intraday count, UTC days on the night clocks change": (
        only(intraday=2, daily=1),
        "2025-03-30T12:00",
        [
            "2025-03-30T00:30+01:00",  # 23:30 UTC on the 29th
            "2025-03-30T01:30",
            "2025-03-30T02:30",
            "2025-03-30T03:30",
        ],
        {
            "2025-03-30T03:30": "intraday",
            "2025-03-30T02:30": "intraday",
            "2025-03-30T00:30+01:00": "daily",
        },
    ),
    "a point passed over by a finer tier is still the newest of its month": (
        only(weekly=1, monthly=1),
        "2024-05-06T12:00",
        ["2024-03-16T03:30", "2024-04-30T23:45", "2024-05-05T23:45"],
        # 30 April and 5 May share ISO week 18: the weekly keeps 5 May and passes over 30
        # April, which is still April's newest point, so it, not 16 March, is the monthly.
        {"2024-05-05T23:45": "weekly", "2024-04-30T23:45": "monthly"},
    ),
    "a zero tier is skipped, the next one still counts": (
        only(daily=1, weekly=0, monthly=2),
        "2025-08-20T00:00",
        ["2025-06-10T00:00", "2025-07-01T00:00", "2025-07-30T00:00", "2025-08-19T00:00"],
        {
            "2025-08-19T00:00": "daily",
            "2025-07-30T00:00": "monthly",
            "2025-06-10T00:00": "monthly",
        },
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_policy_table(name):
    policy, now, points, expected = CASES[name]
    shuffled = points[:]
    random.Random(name).shuffle(shuffled)  # out-of-order input
    assert keep(shuffled, policy, now) == expected


def test_negative_counts_are_refused():
    with pytest.raises(ValueError):
        RetentionPolicy(daily=-1)


def reference(points, policy, now):
    """Straightforward restatement: per tier, the newest point of each uncovered period."""
    points = sorted(points, key=lambda p: (p[1], p[0]), reverse=True)
    kept = {}
    today = [p for p in points if p[1].date() >= now.date()]
    n = len(today) if policy.intraday is None else policy.intraday
    kept.update({pid: "intraday" for pid, _ in today[:n]})
    for tier, period in PERIODS.items():
        covered = {period(t) for pid, t in points if pid in kept}
        buckets = {}
        for pid, t in points:
            if pid not in kept and period(t) not in covered:
                buckets.setdefault(period(t), pid)
        chosen = sorted(buckets.values(), key=lambda pid: dict(points)[pid], reverse=True)
        kept.update({pid: tier for pid in chosen[: getattr(policy, tier)]})
    if points and points[0][0] not in kept:
        kept[points[0][0]] = "latest"
    return kept


BASE = datetime(2023, 12, 1, tzinfo=UTC)
stamps = st.lists(
    st.integers(min_value=0, max_value=500 * 24 * 4).map(
        lambda q: BASE + timedelta(minutes=15 * q)
    ),
    min_size=0,
    max_size=60,
    unique=True,
)
counts = st.integers(min_value=0, max_value=6)
policies = st.builds(
    RetentionPolicy,
    intraday=st.one_of(st.none(), counts),
    daily=counts,
    weekly=counts,
    monthly=counts,
    yearly=counts,
)


@settings(max_examples=300, deadline=None)
@given(stamps, policies, st.integers(min_value=0, max_value=520 * 24))
def test_selection_matches_reference_and_is_stable(times, policy, hours):
    now = BASE + timedelta(hours=hours)
    points = [(t.isoformat(), t) for t in times]
    kept = select_points(points, policy, now)
    assert kept == reference(points, policy, now)
    if points:
        assert max(points, key=lambda p: p[1])[0] in kept  # newest always kept
    for tier in PERIODS:
        assert sum(1 for t in kept.values() if t == tier) <= getattr(policy, tier)
    # rolling up again at the same moment removes nothing more
    again = select_points([p for p in points if p[0] in kept], policy, now)
    assert again == kept
