"""kill -9 of backup, rollup and gc at 20 seeded moments each: a torn write or an interrupted
maintenance run must never leave a partial point listed or lose a committed one.

After every kill: every listed point verifies and restores byte-identical, nothing
partial is listed; the next run finishes the work without any manual unlock.
"""

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.restore.reader import restore_point
from agent.store.backup import backup_volume
from agent.store.datastore import Store
from agent.store.gc import collect_garbage, referenced_chunks
from agent.store.retention import RetentionPolicy, select_points
from agent.store.rollup import rollup
from agent.store.verify import verify_points
from tests.agent.conftest import REPO, digest, mutate_volume, write_volume

pytestmark = pytest.mark.slow
T0 = datetime(2025, 12, 28, 0, 0, tzinfo=UTC)
KILLS = 20


def start(store: Store, *args: str) -> subprocess.Popen:
    env = {**os.environ, "BDR_GC_GRACE": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(store.root), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def run_to_end(store: Store, *args: str) -> float:
    began = time.monotonic()
    proc = start(store, *args)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return time.monotonic() - began


def kill_at(proc: subprocess.Popen, delay: float) -> None:
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def check_points(store: Store, expected: dict[str, str], tmp: Path, rng: random.Random):
    store = Store.open(store.root)
    listed = [p.id for p in store.list_points()]
    assert set(listed) <= set(expected), "a point nobody finished is listed"
    report = verify_points(store, quarantine=False)
    assert report.ok, report.to_json()
    for point_id in {listed[-1], rng.choice(listed)} if listed else ():
        restore_point(store, point_id, tmp / "check.img")
        assert digest(tmp / "check.img") == expected[point_id]
    return listed


def no_leftovers(store: Store) -> None:
    assert not [p for p in (store.root / "chunks").rglob(".tmp.*")]
    live, _ = referenced_chunks(store)
    on_disk = {bytes.fromhex(p.name) for p in (store.root / "chunks").glob("*/*")}
    assert on_disk == live


def restore_all(store: Store, expected: dict[str, str], tmp: Path) -> None:
    for point in store.list_points():
        restore_point(store, point.id, tmp / "final.img")
        assert digest(tmp / "final.img") == expected[point.id]


def test_kill_9_during_backup(store, tmp_path):
    rng = random.Random(4)
    vol = write_volume(tmp_path / "disk.img", 8 << 20, seed=11)
    expected = {}
    base = backup_volume(store, "srv1", vol, taken_at=T0)
    expected[base.id] = digest(vol)
    mutate_volume(vol, seed=1, writes=40)
    when = T0 + timedelta(minutes=15)
    duration = run_to_end(store, "backup", "srv1", str(vol), "--at", when.isoformat())
    expected[f"srv1/disk0/{when:%Y%m%dT%H%M%SZ}"] = digest(vol)
    unfinished = 0
    for n in range(KILLS):
        mutate_volume(vol, seed=100 + n, writes=40)
        when += timedelta(minutes=15)
        point_id = f"srv1/disk0/{when:%Y%m%dT%H%M%SZ}"
        expected[point_id] = digest(vol)
        kill_at(
            start(store, "backup", "srv1", str(vol), "--at", when.isoformat()),
            rng.uniform(0.2, 1.1) * duration,
        )
        listed = check_points(store, expected, tmp_path, rng)
        if point_id not in listed:  # the next run finishes the work
            unfinished += 1
            run_to_end(store, "backup", "srv1", str(vol), "--at", when.isoformat())
    assert unfinished >= KILLS // 4  # most kills landed inside the backup
    run_to_end(store, "gc")
    no_leftovers(store)
    restore_all(store, expected, tmp_path)


def make_history(store: Store, vol: Path, days: int, expected: dict[str, str], start: datetime):
    for n in range(days * 4):
        mutate_volume(vol, seed=n + start.day * 1000, writes=10)
        record = backup_volume(store, "srv1", vol, taken_at=start + timedelta(hours=6 * n))
        expected[record.id] = digest(vol)


def test_kill_9_during_rollup(store, tmp_path):
    rng = random.Random(5)
    vol = write_volume(tmp_path / "disk.img", 4 << 20, seed=12)
    store.save_policy("srv1", RetentionPolicy(intraday=2, daily=3, weekly=2, monthly=1, yearly=1))
    expected = {}
    now = T0
    make_history(store, vol, 3, expected, now)
    duration = run_to_end(store, "rollup", "--now", (now + timedelta(days=3)).isoformat())
    for n in range(KILLS):
        start_at = now + timedelta(days=3 + n)
        make_history(store, vol, 1, expected, start_at)
        now_arg = (start_at + timedelta(days=1)).isoformat()
        kill_at(start(store, "rollup", "--now", now_arg), rng.uniform(0.2, 1.1) * duration)
        check_points(store, expected, tmp_path, rng)
        run_to_end(store, "rollup", "--now", now_arg)
        points = store.list_points()
        policy = store.load_policy("srv1")
        assert {p.id for p in points} == set(
            select_points(
                [(p.id, p.taken_at_dt) for p in points], policy, datetime.fromisoformat(now_arg)
            )
        )
    no_leftovers(store)
    restore_all(store, expected, tmp_path)


def test_kill_9_during_gc(store, tmp_path):
    rng = random.Random(6)
    vol = write_volume(tmp_path / "disk.img", 8 << 20, seed=13)
    store.save_policy("srv1", RetentionPolicy(intraday=1, daily=1, weekly=0, monthly=0, yearly=0))
    expected = {}
    make_history(store, vol, 2, expected, T0)
    rollup(store, T0 + timedelta(days=2), gc=False)
    duration = run_to_end(store, "gc")
    for n in range(KILLS):
        start_at = T0 + timedelta(days=2 + n)
        make_history(store, vol, 1, expected, start_at)
        rollup(store, start_at + timedelta(days=1), gc=False)
        kill_at(start(store, "gc"), rng.uniform(0.2, 1.1) * duration)
        check_points(store, expected, tmp_path, rng)
    assert collect_garbage(Store.open(store.root))["chunks_kept"] > 0
    no_leftovers(store)
    restore_all(store, expected, tmp_path)
