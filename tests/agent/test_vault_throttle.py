"""The uplink throttle: rates, windows (RELIABILITY 16e), the token bucket's accounting, and a
limit changed in the settings while a replication runs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import time_machine

from agent.errors import UsageError
from agent.service.appliance_config import ConfigError, offsite_rate, save_settings
from agent.vault.throttle import Throttle, parse_rate, parse_windows, rate_at, zone
from tests.agent.conftest import write_volume
from tests.agent.vault_world import T0, cli_json, start_cli

BERLIN = zone("Europe/Berlin")
SPEC = "mon-fri 08:00-18:00 512kbit; sat,sun 22:00-06:00 1M; * * 20mbit"


@pytest.mark.parametrize(
    "text, rate",
    [("512K", 524288), ("4M", 4 << 20), ("1G", 1 << 30), ("4MiB", 4 << 20), ("10kb", 10240),
     ("512kbit", 64000), ("20mbit", 2_500_000), ("1gbit", 125_000_000), ("1000", 1000),
     ("1.5M", 1.5 * (1 << 20)), ("off", None), ("unlimited", None), ("", None), ("0", 0)],
)  # fmt: skip
def test_rates(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "spec", ["mon-fri 08:00-18:00", "xyz * 1M", "mon 25:00-26:00 1M", "mon 08:00-08:00 1M",
             "* 8-18 1M", "* * 7 parsecs", "mon-funday * 1M"],
)  # fmt: skip
def test_bad_windows_are_usage_errors(spec):
    with pytest.raises(UsageError):
        parse_windows(spec)


def local(*args) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.mark.parametrize(
    "when, rate",
    [
        (local(2025, 3, 3, 7, 59, 59), 2_500_000),  # Monday before the working day
        (local(2025, 3, 3, 8, 0, 0), 64000),
        (local(2025, 3, 7, 17, 59, 59), 64000),  # Friday
        (local(2025, 3, 7, 18, 0, 0), 2_500_000),
        (local(2025, 3, 8, 21, 59, 59), 2_500_000),  # Saturday evening
        (local(2025, 3, 8, 22, 0, 0), 1 << 20),
        (local(2025, 3, 9, 23, 59, 59), 1 << 20),  # Sunday 23:59:59 ...
        (local(2025, 3, 10, 0, 0, 0), 1 << 20),  # ... Monday 00:00: Sunday's night goes on
        (local(2025, 3, 10, 5, 59, 59), 1 << 20),
        (local(2025, 3, 10, 6, 0, 0), 2_500_000),  # Monday 06:00, before 08:00
        (local(2025, 3, 11, 0, 30, 0), 2_500_000),  # Tuesday night: Monday had no night rule
        # Daylight saving: 30 March 2025 02:00 -> 03:00 (Sunday), 26 October 03:00 -> 02:00.
        (datetime(2025, 3, 30, 0, 59, 59, tzinfo=UTC), 1 << 20),  # 01:59:59 CET
        (datetime(2025, 3, 30, 1, 0, 0, tzinfo=UTC), 1 << 20),  # 03:00 CEST
        (datetime(2025, 3, 31, 5, 59, 59, tzinfo=UTC), 2_500_000),  # Monday 07:59:59 CEST
        (datetime(2025, 3, 31, 6, 0, 0, tzinfo=UTC), 64000),  # Monday 08:00 CEST
    ],
)
def test_windows_across_midnight_weekdays_and_dst(when, rate):
    assert rate_at(parse_windows(SPEC), None, when, BERLIN) == rate


def test_working_hours_follow_the_wall_clock_across_the_dst_change():
    windows = parse_windows("mon-fri 08:00-18:00 512kbit")
    # Friday before (CET, UTC+1) and Monday after (CEST, UTC+2) the spring change
    assert rate_at(windows, None, datetime(2025, 3, 28, 7, 0, tzinfo=UTC), BERLIN) == 64000
    assert rate_at(windows, None, datetime(2025, 3, 28, 6, 59, tzinfo=UTC), BERLIN) is None
    assert rate_at(windows, None, datetime(2025, 3, 31, 6, 0, tzinfo=UTC), BERLIN) == 64000
    assert rate_at(windows, None, datetime(2025, 3, 31, 5, 59, tzinfo=UTC), BERLIN) is None
    # the autumn change's repeated hour (02:00-03:00 twice) is night both times
    night = parse_windows("sun 01:00-04:00 1K")
    for utc_hour in (0, 1, 2):
        assert rate_at(night, None, datetime(2025, 10, 26, utc_hour, 30, tzinfo=UTC), BERLIN)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.waits = 0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def beat(self) -> None:
        self.waits += 1


def test_the_bucket_holds_the_rate_and_picks_up_a_changed_limit_within_a_second():
    clock = FakeClock()
    limits = {"rate": 1 << 20}
    throttle = Throttle(lambda: limits["rate"], clock=lambda: clock.now, sleep=clock.sleep)
    sent = 0
    while clock.now < 60:
        throttle.take(64 << 10)
        sent += 64 << 10
    assert abs(sent / clock.now - (1 << 20)) / (1 << 20) < 0.01
    limits["rate"] = 64000  # the portal lowers it mid-run: in force within a second
    changed = clock.now
    while clock.now < changed + 1:
        throttle.take(16 << 10)
    start, sent = clock.now, 0
    while clock.now < start + 60:
        throttle.take(16 << 10)
        sent += 16 << 10
    assert abs(sent / (clock.now - start) - 64000) / 64000 < 0.01


def test_a_paused_window_sends_nothing_and_keeps_the_job_alive():
    clock = FakeClock()
    limits = {"rate": 0.0}

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now > 30:  # the window ends after half a minute
            limits["rate"] = None

    throttle = Throttle(lambda: limits["rate"], clock=lambda: clock.now, sleep=sleep,
                        on_wait=clock.beat)  # fmt: skip
    throttle.take(1 << 20)
    assert clock.now > 30 and clock.waits >= 30  # a heartbeat each second it waited


def test_the_settings_windows_apply_at_the_appliances_local_time(store):
    save_settings(store.root, {"timezone": "Europe/Berlin", "offsite_windows": SPEC})
    rate = offsite_rate(store.root)
    with time_machine.travel(local(2025, 3, 9, 23, 59, 59), tick=False):
        assert rate() == 1 << 20
    with time_machine.travel(local(2025, 3, 10, 8, 0, 0), tick=False):
        assert rate() == 64000
    assert offsite_rate(store.root, limit="4M", windows="")() == 4 << 20  # the CLI's flags
    with pytest.raises(ConfigError):
        save_settings(store.root, {"offsite_windows": "weekdays 9-5 lots"})
    with pytest.raises(ConfigError):
        save_settings(store.root, {"offsite_limit": "fast"})


def test_a_short_limit_is_held_and_can_be_lifted_during_the_run(tmp_path, store):
    volume = write_volume(tmp_path / "disk0.img", 3 << 20, seed=11)
    from agent.store.backup import backup_volume

    backup_volume(store, "srv1", volume, "disk0", T0)
    vault = tmp_path / "vault"
    cli_json("vault", "init", str(vault))
    started = time.monotonic()
    code, out, err = cli_json("--store", str(store.root), "replicate", str(vault),
                              "--limit", "512K")  # fmt: skip
    elapsed = time.monotonic() - started
    assert code == 0, err
    assert elapsed >= out["bytes_sent"] / (512 << 10) - 1.5  # the limit held (less the burst)
    # Settings read during the run: a slow limit lifted after a second lets it finish early.
    backup_volume(store, "srv2", write_volume(tmp_path / "d2.img", 3 << 20, seed=12), "disk0", T0)
    save_settings(store.root, {"offsite_limit": "64K"})
    started = time.monotonic()
    proc = start_cli("--store", str(store.root), "--json", "replicate", str(vault))
    time.sleep(1.5)
    save_settings(store.root, {"offsite_limit": ""})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    sent = json.loads(out)["bytes_sent"]
    assert sent > 1 << 20 and time.monotonic() - started < sent / (64 << 10) / 2
