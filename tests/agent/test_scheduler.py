"""The appliance's scheduler: which backups are due, daily rollups, and restarts."""

import datetime as dt
import json
import signal
import subprocess
import sys
import time

import pytest

from agent.service import appliance_config as config
from agent.service import jobs, scheduler
from tests.support.agent_store import agent_json, init_store, make_volume

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "now", "slot"),
    [
        (config.Schedule(), "2026-11-23 00:00", "2026-11-23#0"),
        (config.Schedule(), "2026-11-23 00:14", "2026-11-23#0"),
        (config.Schedule(), "2026-11-23 00:15", "2026-11-23#1"),
        (config.Schedule(), "2026-11-23 23:59", "2026-11-23#95"),
        (config.Schedule(interval_minutes=60, start_hour=8, end_hour=18), "2026-11-23 07:59", None),
        (
            config.Schedule(interval_minutes=60, start_hour=8, end_hour=18),
            "2026-11-23 08:00",
            "2026-11-23#0",
        ),
        (
            config.Schedule(interval_minutes=60, start_hour=8, end_hour=18),
            "2026-11-23 17:59",
            "2026-11-23#9",
        ),
        (config.Schedule(interval_minutes=60, start_hour=8, end_hour=18), "2026-11-23 18:00", None),
        # 2026-11-28 is a Saturday
        (config.Schedule(weekdays=[0, 1, 2, 3, 4]), "2026-11-28 12:00", None),
        (config.Schedule(weekdays=[5]), "2026-11-28 12:00", "2026-11-28#48"),
        (config.Schedule(enabled=False), "2026-11-23 12:00", None),
    ],
)
def test_slot_of(schedule, now, slot):
    assert scheduler.slot_of(schedule, at(now)) == slot


def test_due_backups_skips_slots_already_started():
    servers = {"dc01": config.ServerConfig("dc01", {"C": "/c", "D": "/d"})}
    now = at("2026-11-23 10:20")
    assert scheduler.due_backups(servers, {}, now) == [
        ("dc01", "C", "2026-11-23#41"),
        ("dc01", "D", "2026-11-23#41"),
    ]
    done = {"dc01/C": "2026-11-23#41"}
    assert scheduler.due_backups(servers, done, now) == [("dc01", "D", "2026-11-23#41")]
    assert scheduler.due_backups(servers, done, at("2026-11-23 10:30")) == [
        ("dc01", "C", "2026-11-23#42"),
        ("dc01", "D", "2026-11-23#42"),
    ]


@pytest.mark.parametrize(
    ("hour", "last", "now", "due"),
    [
        (0, None, "2026-11-23 00:05", True),
        (0, "2026-11-23", "2026-11-23 13:00", False),
        (0, "2026-11-22", "2026-11-23 00:00", True),
        (2, "2026-11-22", "2026-11-23 01:59", False),
        (2, "2026-11-22", "2026-11-23 02:00", True),
    ],
)
def test_rollup_due_once_a_day_after_the_rollup_hour(hour, last, now, due):
    assert scheduler.rollup_due({"rollup_hour": hour}, last, at(now)) is due


def _wait_jobs(store, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not jobs.list_jobs(store, active_only=True):
            return jobs.list_jobs(store)
        time.sleep(0.1)
    raise AssertionError("jobs did not finish")


def test_tick_starts_due_backups_once_per_slot_and_remembers_across_restarts(tmp_path):
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=4)
    config.save_server(store, config.ServerConfig("dc01", {"C": str(image)}))
    config.save_settings(store, {"rollup_hour": 23})
    started = scheduler.tick(store, at("2026-11-23 10:20"))
    assert len(started) == 1
    _wait_jobs(store)
    # Same slot again (as after a restart: the state is read from disk): nothing new.
    assert scheduler.tick(store, at("2026-11-23 10:29")) == []
    assert scheduler.tick(store, at("2026-11-23 10:30")) != []
    finished = _wait_jobs(store)
    assert [j["state"] for j in finished] == ["succeeded", "succeeded"]
    assert len(agent_json(store, "points")) == 2


def test_tick_starts_one_rollup_a_day(tmp_path):
    store = init_store(tmp_path)
    config.save_settings(store, {"rollup_hour": 1})
    assert scheduler.tick(store, at("2026-11-23 00:30")) == []
    first = scheduler.tick(store, at("2026-11-23 01:00"))
    assert len(first) == 1 and first[0].startswith("rollup-")
    _wait_jobs(store)
    assert scheduler.tick(store, at("2026-11-23 22:00")) == []
    assert len(scheduler.tick(store, at("2026-11-24 01:10"))) == 1
    assert {j["state"] for j in _wait_jobs(store)} == {"succeeded"}


def test_busy_server_skips_the_slot_instead_of_queueing(tmp_path):
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=256)
    config.save_server(store, config.ServerConfig("dc01", {"C": str(image)}))
    config.save_settings(store, {"rollup_hour": 23})
    assert len(scheduler.tick(store, at("2026-11-23 10:00"))) == 1
    assert scheduler.tick(store, at("2026-11-23 10:15")) == []  # the 10:00 backup still runs
    _wait_jobs(store)
    assert json.loads((store / "appliance" / "scheduler.json").read_text())["done_slots"] == {
        "dc01/C": "2026-11-23#41"
    }


@pytest.mark.slow
def test_run_service_backs_up_and_survives_kill_and_restart(tmp_path):
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=4)
    config.save_server(store, config.ServerConfig("dc01", {"C": str(image)}))
    cmd = [sys.executable, "-m", "agent", "--store", str(store), "run", "--tick", "0.2"]
    service = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not _points(store):
            time.sleep(0.2)
        assert len(_points(store)) == 1
        service.send_signal(signal.SIGKILL)
        service.wait()
        service = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        assert service.poll() is None, "the service did not keep running after a restart"
    finally:
        service.terminate()
        assert service.wait(timeout=10) == 0
    _wait_jobs(store)
    slots = json.loads((store / "appliance" / "scheduler.json").read_text())["done_slots"]
    # one backup per slot: a restart within the slot starts nothing new
    assert len(_points(store)) <= 1 + (
        slots["dc01/C"] != scheduler.slot_of(config.Schedule(), dt.datetime.now(UTC))
    )


def _points(store):
    return agent_json(store, "points")


def test_cancel_stops_a_running_backup_without_a_point(tmp_path):
    store = init_store(tmp_path)
    image = make_volume(tmp_path / "c.img", size_mib=512)
    config.save_server(store, config.ServerConfig("dc01", {"C": str(image)}))
    from agent.service.servers import start_backup

    job = start_backup(store, "dc01")
    for _ in range(100):
        if jobs.read_job(store, job["id"])["state"] == "running":
            break
        time.sleep(0.02)
    cancelled = jobs.cancel_job(store, job["id"])
    assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled on request"
    assert _points(store) == []
