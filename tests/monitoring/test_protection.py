"""The protection state as a table: facts in, state and reason out (no database)."""

import datetime as dt

import pytest

from monitoring.protection import (
    Facts,
    Rules,
    Schedule,
    appliance_levels,
    disk_band,
    evaluate,
    required_since,
)

NOW = dt.datetime(2026, 11, 5, 10, 50, tzinfo=dt.UTC)  # a Thursday
RULES = Rules(grace=dt.timedelta(minutes=30), offsite_max_age=dt.timedelta(hours=24))
LONG_AGO = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def facts(**kw) -> Facts:
    base = {"server": "dc01", "appliance": "nas-1", "created_at": LONG_AGO}
    return Facts(**{**base, **kw})


WORKDAYS = Schedule(interval_minutes=60, weekdays=(0, 1, 2, 3, 4), start_hour=8, end_hour=18)


@pytest.mark.parametrize(
    "schedule, now, expected",
    [
        # every 15 min, all day: 2 x 15 min before now - 30 min
        (Schedule(), "2026-11-05 10:50", "2026-11-05 09:50"),
        # working hours, hourly: at 03:00 Tuesday the last two scheduled hours are Monday's
        (WORKDAYS, "2026-11-03 03:00", "2026-11-02 16:00"),
        # ... on Monday morning they are Friday's
        (WORKDAYS, "2026-11-02 07:00", "2026-10-30 16:00"),
        # one hour into Tuesday's window (08:30 after grace): 30 min today, 90 min Monday
        (WORKDAYS, "2026-11-03 09:00", "2026-11-02 16:30"),
        (WORKDAYS, "2026-11-03 11:00", "2026-11-03 08:30"),
        # a daily backup on Sundays only: two runs' worth of scheduled time is two Sundays
        (
            Schedule(interval_minutes=1440, weekdays=(6,)),
            "2026-11-05 12:00",
            "2026-10-25 00:00",
        ),
    ],
)
def test_rpo_counts_scheduled_time_only(schedule, now, expected):
    assert required_since(schedule, at(now), dt.timedelta(minutes=30)) == at(expected)


@pytest.mark.parametrize(
    "used, capacity, band",
    [(0, 100, "low"), (50, 100, "low"), (51, 100, "mid"), (80, 100, "mid"), (81, 100, "high"),
     (5, 0, "")],
)  # fmt: skip
def test_disk_bands_as_datto_shows_them(used, capacity, band):
    assert disk_band(used, capacity) == band


FRESH = at("2026-11-05 10:30")


@pytest.mark.parametrize(
    "kw, state, reason, alarm",
    [
        ({"newest_at": FRESH, "good_at": FRESH}, "protected", "", "ok"),
        ({}, "unprotected", "never backed up (RPO 2 × 15 min + 30 min grace)", "critical"),
        ({"created_at": at("2026-11-05 10:00")}, "unknown", "waiting for its first backup", "ok"),
        (
            {"newest_at": at("2026-11-05 08:00"), "good_at": at("2026-11-05 08:00")},
            "unprotected",
            "no backup since 5 Nov 08:00 UTC (RPO 2 × 15 min + 30 min grace)",
            "critical",
        ),
        (
            {"newest_at": FRESH, "good_at": at("2026-11-05 08:00"), "damaged_at": FRESH},
            "unprotected",
            "no good backup since 5 Nov 08:00 UTC: newer points are damaged (RPO 2 × 15 min + "
            "30 min grace); verify found damage in the point of 5 Nov 10:30 UTC",
            "critical",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "boot_failed_at": FRESH},
            "warning",
            "boot check failed at 5 Nov 10:30 UTC",
            "warning",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "boot_failed_at": at("2026-11-04 10:00"),
             "boot_ok_at": at("2026-11-05 09:00")},
            "protected", "", "ok",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "has_vault": True},
            "warning", "no point on the vault yet", "ok",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "has_vault": True,
             "offsite_at": at("2026-11-04 08:00")},
            "warning", "newest off-site point 4 Nov 08:00 UTC, over 24 h old", "ok",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "has_vault": True, "offsite_at": FRESH},
            "protected", "", "ok",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "disk_used": 86, "disk_capacity": 100},
            "warning", "appliance disk 86% full", "ok",
        ),
        (
            {"newest_at": FRESH, "good_at": FRESH, "appliance_state": "offline",
             "last_seen_at": at("2026-11-05 09:12")},
            "unknown", "appliance nas-1 offline (last seen 5 Nov 09:12 UTC)", "hold",
        ),
        (
            {"appliance_state": "offline", "maintenance_until": at("2026-11-05 12:00"),
             "maintenance_reason": "firmware"},
            "paused", "maintenance until 5 Nov 12:00 UTC: firmware", "hold",
        ),
        ({"active": False}, "paused", "protection switched off", "hold"),
        ({"schedule": Schedule(enabled=False)}, "paused", "backups paused (schedule off)", "hold"),
        ({"appliance_state": "new"}, "unknown", "appliance nas-1 not enrolled yet", "hold"),
        # back online 10 minutes ago: its backups are catching up, no alarm yet
        (
            {"newest_at": at("2026-11-05 06:00"), "good_at": at("2026-11-05 06:00"),
             "online_since": at("2026-11-05 10:40")},
            "unprotected",
            "no backup since 5 Nov 06:00 UTC (RPO 2 × 15 min + 30 min grace)",
            "hold",
        ),
    ],
)  # fmt: skip
def test_state_reason_and_alarm(kw, state, reason, alarm):
    verdict = evaluate(facts(**kw), NOW, RULES)
    assert (verdict.state, verdict.reason, verdict.alarm) == (state, reason, alarm)


def test_verifying_can_be_required():
    rules = Rules(verify_max_age=dt.timedelta(hours=48))
    unverified = evaluate(facts(newest_at=FRESH, good_at=FRESH), NOW, rules)
    assert (unverified.state, unverified.reason) == ("warning", "no point verified yet")
    old = evaluate(facts(newest_at=FRESH, good_at=FRESH, verified_at=LONG_AGO), NOW, rules)
    assert old.reason == "no point verified since 1 Jan 00:00 UTC"
    recent = evaluate(facts(newest_at=FRESH, good_at=FRESH, verified_at=FRESH), NOW, rules)
    assert recent.state == "protected"


def test_the_reason_does_not_change_as_time_passes():
    stale = facts(newest_at=at("2026-11-05 08:00"), good_at=at("2026-11-05 08:00"))
    later = [evaluate(stale, NOW + dt.timedelta(hours=h), RULES) for h in range(5)]
    assert len({v.reason for v in later}) == 1


@pytest.mark.parametrize(
    "state, used, maintenance, offline, disk",
    [
        ("online", 10, False, "ok", "ok"),
        ("online", 90, False, "ok", "warning"),
        ("offline", 90, False, "critical", "ok"),
        ("offline", 10, True, "hold", "hold"),
        ("host_key_mismatch", 10, False, "hold", "ok"),
        ("retired", 10, False, "hold", "hold"),
    ],
)
def test_appliance_alarm_levels(state, used, maintenance, offline, disk):
    levels = appliance_levels(state, used, 100, maintenance)
    assert levels == {"appliance_offline": offline, "appliance_disk": disk}
