"""Locks, gc and their races with backups: gc deleting a chunk a running backup reuses, a
maintenance run overlapping another, a paused process outliving its lock."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import LockHeld
from agent.store.backup import backup_volume
from agent.store.gc import collect_garbage
from agent.store.locking import StoreLock
from agent.store.retention import RetentionPolicy
from agent.store.rollup import rollup
from agent.store.verify import verify_points
from tests.agent.conftest import REPO, digest, mutate_volume, rewrite_chunks, write_volume

T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)


def test_gc_deletes_only_chunks_of_rolled_up_points(store, volume, tmp_path):
    first = backup_volume(store, "srv1", volume, taken_at=T0)
    first_ids = set(store.point_blob_ids(first.id))
    mutate_volume(volume, seed=1, writes=8)  # small writes: deltas of the first's chunks
    rewrite_chunks(volume, [3, 7])  # whole chunks rewritten: stored full
    second = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    store.save_policy("srv1", RetentionPolicy(intraday=1))
    result = rollup(store, T0 + timedelta(hours=1))
    assert result["servers"][0]["removed"] == [first.id]
    kept = set(store.point_blob_ids(second.id))
    assert kept & first_ids  # the bases of the second point's deltas stay
    gone = first_ids - kept
    assert gone and result["gc"]["chunks_deleted"] == len(gone)
    assert not any(store.chunks.exists(c) for c in gone)
    assert all(store.chunks.exists(c) for c in kept)
    assert verify_points(store).ok


def test_gc_keeps_unreferenced_chunks_younger_than_the_grace_period(store, volume):
    backup_volume(store, "srv1", volume, taken_at=T0)
    mutate_volume(volume, seed=1, writes=8)
    rewrite_chunks(volume, [3])
    backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    store.save_policy("srv1", RetentionPolicy(intraday=1))
    result = rollup(store, T0 + timedelta(hours=1), gc=False)
    assert result["servers"][0]["removed"]
    assert collect_garbage(store, grace=3600)["chunks_deleted"] == 0
    assert collect_garbage(store, grace=0)["chunks_deleted"] > 0


def test_backup_reusing_chunks_that_gc_deletes_before_commit_stores_them_again(store, tmp_path):
    """The PBS/restic race: dedup against a chunk of a pruned point, gc sweeps it."""
    vol = write_volume(tmp_path / "a.img", 1 << 20, seed=3)
    old = backup_volume(store, "srv1", vol, taken_at=T0)
    mutate_volume(vol, seed=4, writes=4)
    rewrite_chunks(vol, [2, 9])  # stored full: the old versions are no delta's base
    backup_volume(store, "srv1", vol, taken_at=T0 + timedelta(minutes=15))
    store.save_policy("srv1", RetentionPolicy(intraday=1))
    rollup(store, T0 + timedelta(hours=1), gc=False)  # old's chunks now unreferenced
    # srv2 holds exactly the old image: it dedups against the unreferenced chunks
    old_image = tmp_path / "old.img"
    from agent.restore.reader import restore_point

    assert old.id not in {p.id for p in store.list_points()}
    write_volume(old_image, 1 << 20, seed=3)
    swept = {}
    record = backup_volume(
        store,
        "srv2",
        old_image,
        taken_at=T0,
        before_commit=lambda: swept.update(collect_garbage(store, grace=0)),
    )
    assert swept["chunks_deleted"] > 0
    assert verify_points(store).ok
    restore_point(store, record.id, tmp_path / "out.img")
    assert digest(tmp_path / "out.img") == digest(old_image)


def test_second_concurrent_gc_refuses_with_exit_4(cli, store):
    with StoreLock(store.locks_dir, "gc", "gc"):
        run = cli("gc")
    assert run.returncode == 4
    assert run.stderr.startswith("bdr-agent: gc is locked by gc (pid ")
    assert cli("gc").returncode == 0  # released


def test_backup_refuses_while_the_server_is_locked(cli, store, volume):
    with store.lock_server("srv1", "backup"):
        run = cli("backup", "srv1", str(volume))
        assert run.returncode == 4
        with pytest.raises(LockHeld):
            backup_volume(store, "srv1", volume)


def test_lock_of_a_dead_process_is_broken_without_manual_unlock(store, volume):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file = store.locks_dir / "server-srv1.lock"
    info = {"token": "x", "host": os.uname().nodename, "pid": dead.pid, "expires": 4e9}
    lock_file.write_text(json.dumps(info))
    backup_volume(store, "srv1", volume, taken_at=T0)
    assert not lock_file.exists()


def test_backup_paused_past_its_lock_lifetime_aborts_without_committing(store, tmp_path):
    """restic #2715: SIGSTOP a backup, its lock expires, gc breaks it, SIGCONT."""
    vol = tmp_path / "big.img"
    vol.write_bytes(os.urandom(48 << 20))
    env = {**os.environ, "BDR_LOCK_LIFETIME": "1.2", "BDR_GC_GRACE": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(store.root), "backup", "srv1", str(vol)],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock_file = store.locks_dir / "server-srv1.lock"
    deadline = time.monotonic() + 20
    while not lock_file.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(2.0)
        gc = subprocess.run(
            [sys.executable, "-m", "agent", "--store", str(store.root), "gc", "--json"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        assert gc.returncode == 0, gc.stderr
        assert "server-srv1" in json.loads(gc.stdout)["stale_locks_broken"]
    finally:
        proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 4
    assert "lock" in stderr and "nothing committed" in stderr
    assert store.list_points() == []
    assert not list((store.root / "servers").glob("*/points/*/*.idx"))
