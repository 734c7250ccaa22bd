"""The retention promise as a calendar, table-driven (no database)."""

import datetime as dt

from monitoring.retention import History, Policy, timeline

NOW = dt.datetime(2026, 11, 10, 9, 0, tzinfo=dt.UTC)  # Tuesday 10 Nov
EVERY_DAY = set(range(7))


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def daily_points(first: str, last: str, skip=(), vault=True):
    day, end, found = at(first).date(), at(last).date(), []
    while day <= end:
        if day.isoformat() not in skip:
            found.append((dt.datetime.combine(day, dt.time(17, 30), dt.UTC), vault))
        day += dt.timedelta(days=1)
    return found


SMALL = Policy(intraday=96, daily=7, weekly=2, monthly=2, yearly=1)


def test_a_server_with_every_period_is_compliant():
    points = daily_points("2025-12-20", "2026-11-09")
    result = timeline(points, SMALL, EVERY_DAY, NOW, protected_since=at("2025-01-01"))
    assert result.compliant and result.summary == "compliant"
    assert [s.label for s in result.tiers["daily"]] == [
        "Mon 9 Nov", "Sun 8 Nov", "Sat 7 Nov", "Fri 6 Nov", "Thu 5 Nov", "Wed 4 Nov", "Tue 3 Nov",
    ]  # fmt: skip
    assert [s.label for s in result.tiers["weekly"]] == [
        "week 45 (2 Nov–8 Nov)", "week 44 (26 Oct–1 Nov)",
    ]  # fmt: skip
    assert [s.label for s in result.tiers["monthly"]] == ["Oct 2026", "Sep 2026"]
    assert [s.label for s in result.tiers["yearly"]] == ["2025"]
    assert result.today_points == 0


def test_missing_days_while_the_appliance_was_offline_are_named():
    points = daily_points("2025-12-20", "2026-11-09", skip=("2026-11-04", "2026-11-05",
                                                            "2026-11-06"))  # fmt: skip
    history = History(offline=((at("2026-11-03 22:10"), at("2026-11-07 07:00")),))
    result = timeline(
        points, SMALL, EVERY_DAY, NOW, protected_since=at("2025-01-01"), history=history
    )
    assert not result.compliant
    assert result.summary == "3 dailies missing: the appliance was offline on 4–6 Nov"
    states = {s.label: (s.status, s.reason) for s in result.tiers["daily"]}
    assert states["Thu 5 Nov"] == ("missing", "the appliance was offline")
    assert states["Tue 3 Nov"] == ("ok", "")


def test_reasons_are_told_apart_and_weeks_and_months_named():
    points = daily_points(
        "2025-12-20",
        "2026-11-09",
        skip=("2026-11-06",) + tuple(f"2026-09-{d:02}" for d in range(1, 31)),
    )
    history = History(
        maintenance=((at("2026-11-06 08:00"), at("2026-11-06 12:00")),),
        failed_backups=(at("2026-09-14 10:00"),),
    )  # fmt: skip
    result = timeline(
        points, SMALL, EVERY_DAY, NOW, protected_since=at("2025-01-01"), history=history
    )
    assert result.summary == (
        "1 daily missing: the appliance was in maintenance on 6 Nov; "
        "1 monthly missing: backups failed in Sep 2026"
    )


def test_periods_before_protection_began_are_not_due():
    points = daily_points("2026-11-06", "2026-11-10")
    result = timeline(points, SMALL, EVERY_DAY, NOW, protected_since=at("2026-11-06 08:00"))
    assert result.compliant, result.summary
    daily = {s.label: s.status for s in result.tiers["daily"]}
    assert daily["Fri 6 Nov"] == "ok" and daily["Thu 5 Nov"] == "not_due"
    assert {s.status for s in result.tiers["yearly"]} == {"not_due"}
    assert result.today_points == 1


def test_dailies_count_scheduled_days_only():
    weekdays = {0, 1, 2, 3, 4}
    points = [(t, v) for t, v in daily_points("2026-10-01", "2026-11-09") if t.weekday() < 5]
    result = timeline(
        points, Policy(daily=5, weekly=0, monthly=0, yearly=0), weekdays, NOW,
        protected_since=at("2026-10-01"),
    )  # fmt: skip
    assert result.compliant
    assert [s.label for s in result.tiers["daily"]] == [
        "Mon 9 Nov", "Fri 6 Nov", "Thu 5 Nov", "Wed 4 Nov", "Tue 3 Nov",
    ]  # fmt: skip


def test_with_a_vault_each_period_needs_a_copy_there_too():
    points = daily_points("2026-10-01", "2026-11-07") + daily_points(
        "2026-11-08", "2026-11-09", vault=False
    )
    policy = Policy(daily=3, weekly=0, monthly=0, yearly=0)
    local_only = timeline(points, policy, EVERY_DAY, NOW, protected_since=at("2026-10-01"))
    assert local_only.compliant
    result = timeline(
        points, policy, EVERY_DAY, NOW, protected_since=at("2026-10-01"), has_vault=True
    )
    assert result.summary == "2 dailies not off-site: on 8–9 Nov"
    assert [s.status for s in result.tiers["daily"]] == ["offsite_missing", "offsite_missing",
                                                         "ok"]  # fmt: skip


def test_a_tier_set_to_zero_promises_nothing_and_months_cross_the_new_year():
    now = at("2027-01-15 09:00")
    points = daily_points("2026-10-01", "2027-01-14")
    result = timeline(points, Policy(daily=0, weekly=0, monthly=3, yearly=0), EVERY_DAY, now,
                      protected_since=at("2026-01-01"))  # fmt: skip
    assert result.tiers["daily"] == [] and result.compliant
    assert [s.label for s in result.tiers["monthly"]] == ["Dec 2026", "Nov 2026", "Oct 2026"]


def test_the_offsite_policy_says_which_periods_need_a_copy_on_the_vault():
    points = daily_points("2026-10-01", "2026-11-06") + daily_points(
        "2026-11-07", "2026-11-09", vault=False
    )  # the vault's retention dropped nothing yet; the last three days are not there
    policy = Policy(daily=7, weekly=0, monthly=0, yearly=0)
    result = timeline(
        points,
        policy,
        EVERY_DAY,
        NOW,
        protected_since=at("2026-10-01"),
        has_vault=True,
        offsite=Policy(daily=2, weekly=0, monthly=0, yearly=0),
    )
    assert result.summary == "2 dailies not off-site: on 8–9 Nov"
