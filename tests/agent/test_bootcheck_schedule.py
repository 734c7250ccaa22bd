"""Scheduled boot verification: the ``run`` service boots new points with no network."""

from __future__ import annotations

import datetime as dt
import os
import time

import pytest

from agent.service import appliance_config as config
from agent.service import jobs, scheduler
from agent.store.backup import backup_volume, parse_time
from agent.vm import bootcheck
from agent.vm.bootsector import write_boot_disk
from tests.support.bootable import needs_qemu

UTC = dt.UTC


def _p(server, volume, taken_at, pid=None):
    return {
        "id": pid or f"{server}/{volume}/{taken_at}",
        "server": server,
        "volume": volume,
        "taken_at": taken_at,
    }


@pytest.mark.parametrize(
    ("settings", "state", "expected"),
    [
        ({"bootcheck": "off"}, {}, []),
        ({"bootcheck": "each"}, {}, [("a/C", "a/C/2"), ("b/C", "b/C/1")]),
        ({"bootcheck": "each"}, {"bootchecked": {"a/C": "a/C/2"}}, [("b/C", "b/C/1")]),
        (
            {"bootcheck": "each"},
            {"bootchecked": {"a/C": "a/C/1"}},
            [("a/C", "a/C/2"), ("b/C", "b/C/1")],
        ),
        ({"bootcheck": "daily"}, {"bootcheck_days": {"a/C": "2026-11-23"}}, [("b/C", "b/C/1")]),
        (
            {"bootcheck": "daily"},
            {"bootcheck_days": {"a/C": "2026-11-22"}},
            [("a/C", "a/C/2"), ("b/C", "b/C/1")],
        ),
        ({"bootcheck": "off", "bootcheck_servers": {"b": "daily"}}, {}, [("b/C", "b/C/1")]),
        ({"bootcheck": "each", "bootcheck_servers": {"a": "off"}}, {}, [("b/C", "b/C/1")]),
    ],
)
def test_due_bootchecks_takes_the_newest_point_of_each_volume_by_mode(settings, state, expected):
    points = [_p("a", "C", "1"), _p("a", "C", "2"), _p("b", "C", "1")]
    assert bootcheck.due_bootchecks(points, settings, state, "2026-11-23") == expected


def test_bad_bootcheck_settings_are_refused(tmp_path):
    from tests.support.agent_store import init_store

    store = init_store(tmp_path)
    for bad in (
        {"bootcheck": "hourly"},
        {"bootcheck_servers": {"a": "x"}},
        {"bootcheck_timeout": 1},
        {"bootcheck_servers": ["a"]},
    ):
        with pytest.raises(config.ConfigError):
            config.save_settings(store, bad)


@pytest.fixture
def booted_store(store, tmp_path, monkeypatch):
    monkeypatch.setenv("BDR_VM_ACCEL", os.environ.get("BDR_TEST_VM_ACCEL", "tcg"))
    disk = tmp_path / "srv1.img"
    write_boot_disk(disk, "MARKER-ONE", 4 << 20)
    point = backup_volume(store, "srv1", str(disk), taken_at=parse_time("2026-11-23T09:00:00"))
    config.save_server(
        store.root,
        config.ServerConfig("srv1", {"disk0": str(disk)}, config.Schedule(enabled=False)),
    )
    config.save_settings(store.root, {"rollup_hour": 23, "bootcheck_timeout": 20})
    return store, point


def _finish(store, job_ids, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [jobs.read_job(store, j) for j in job_ids]
        if all(j["state"] not in jobs.ACTIVE for j in done):
            return done
        time.sleep(0.05)
    raise AssertionError("boot check jobs did not finish")


@needs_qemu
def test_run_service_boot_verifies_each_new_point_once(booted_store):
    store, point = booted_store
    config.save_settings(store.root, {"bootcheck": "each", "bootcheck_marker": "MARKER-ONE"})
    now = dt.datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    started = [j for j in scheduler.tick(store.root, now) if j.startswith("bootcheck-")]
    assert len(started) == 1
    (job,) = _finish(store.root, started)
    assert job["state"] == "succeeded", job["error"]
    result = bootcheck.result_of(store.root, point.id)
    assert result["ok"] and 0 < result["boot_seconds"] < 20 and result["point"] == point.id
    assert bootcheck.screenshot_path(store.root, point.id).read_bytes()[:4] == b"\x89PNG"
    later = now + dt.timedelta(minutes=1)
    assert scheduler.tick(store.root, later) == []  # checked once
    disk = config.load_servers(store.root)["srv1"].volumes["disk0"]
    newer = backup_volume(store, "srv1", disk, taken_at=parse_time("2026-11-23T23:45:00"))
    (job,) = _finish(store.root, scheduler.tick(store.root, later))
    assert job["params"]["point"] == newer.id and job["state"] == "succeeded"


@needs_qemu
def test_a_point_that_does_not_boot_is_recorded_failed_with_the_reason(booted_store):
    store, point = booted_store
    config.save_settings(
        store.root,
        {"bootcheck": "daily", "bootcheck_marker": "NEVER-SEEN", "bootcheck_timeout": 5},
    )
    now = dt.datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    started = [j for j in scheduler.tick(store.root, now) if j.startswith("bootcheck-")]
    (job,) = _finish(store.root, started)
    assert job["state"] == "failed"
    assert f"point {point.id} did not boot" in job["error"] and "NEVER-SEEN" in job["error"]
    result = bootcheck.result_of(store.root, point.id)
    assert not result["ok"] and result["boot_seconds"] is None
    # daily: a newer point waits for tomorrow; a point already checked is not booted again
    disk = config.load_servers(store.root)["srv1"].volumes["disk0"]
    newer = backup_volume(store, "srv1", disk, taken_at=parse_time("2026-11-23T23:45:00"))
    assert scheduler.tick(store.root, now + dt.timedelta(minutes=20)) == []
    tomorrow = now + dt.timedelta(hours=23)  # before the rollup hour
    (job,) = _finish(store.root, scheduler.tick(store.root, tomorrow))
    assert job["params"]["point"] == newer.id
    assert scheduler.tick(store.root, tomorrow + dt.timedelta(days=1)) == []
