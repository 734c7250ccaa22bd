"""A full disk under backup, rollup, gc and verify: each fails cleanly or frees space, and no
earlier point is lost.

The store lives on a real 24 MiB tmpfs mounted for the test. Each command, run as the
real CLI with the disk full, fails with one clear line (or, for gc, frees space), every
earlier point still verifies and restores byte-identical, and once space is back the
same command succeeds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.restore.reader import restore_point
from agent.store.backup import backup_volume
from agent.store.datastore import RESERVE_BYTES, Store, init_store
from agent.store.verify import verify_points
from tests.agent.conftest import CHUNK, digest, run_cli, write_volume

T0 = datetime(2025, 6, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    why = None
    if os.geteuid() != 0 or shutil.which("mount") is None:
        why = "mounting a tmpfs needs root"
    else:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        why = done.stderr.strip() if done.returncode else None
    if why:
        assert not os.environ.get("CI"), f"CI runs as root and can mount a tmpfs: {why}"
        pytest.skip(why)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int = 0) -> Path:
    """Fill ``mnt`` until ``leave`` bytes (rounded to 4 KiB) are free."""
    filler = mnt / "filler"
    with open(filler, "ab") as f:
        block = b"\xaa" * (1 << 20)
        while True:
            free = free_bytes(mnt)
            want = free - leave
            if want <= 0:
                break
            try:
                f.write(block[: min(len(block), want)])
                f.flush()
            except OSError:
                break
    return filler


def free_bytes(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return st.f_bavail * st.f_frsize


def agent(store: Store, *args: str):
    return run_cli("--store", str(store.root), *args)


def assert_one_clear_line(run, fragment: str) -> None:
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], run.stderr


def assert_points_whole(store: Store, expected: dict[str, str], tmp: Path) -> None:
    store = Store.open(store.root)
    assert sorted(p.id for p in store.list_points()) == sorted(expected)
    assert verify_points(store, quarantine=False).ok
    for point_id, want in expected.items():
        restore_point(store, point_id, tmp / "check.img")
        assert digest(tmp / "check.img") == want, point_id


def test_backup_on_a_full_disk_fails_cleanly_and_works_once_space_returns(small_fs, tmp_path):
    store = init_store(small_fs / "store", tmp_path / "k.key", chunk_size=CHUNK, gc_grace=0)
    small = write_volume(tmp_path / "small.img", 1 << 20, seed=1)
    first = backup_volume(store, "srv1", small, taken_at=T0)
    expected = {first.id: digest(small)}

    big = tmp_path / "big.img"
    big.write_bytes(os.urandom(12 << 20))  # incompressible: needs ~12 MiB of chunks
    filler = fill(small_fs, leave=4 << 20)
    free_before = free_bytes(small_fs)
    run = agent(store, "backup", "srv1", str(big))
    assert_one_clear_line(run, "disk full")
    assert "nothing was committed" in run.stderr
    assert free_bytes(small_fs) >= free_before - (256 << 10)  # its staged chunks are gone
    assert_points_whole(store, expected, tmp_path)

    filler.unlink()
    run = agent(store, "--json", "backup", "srv1", str(big))
    assert run.returncode == 0, run.stderr
    second = json.loads(run.stdout.strip().splitlines()[-1])
    expected[second["id"]] = digest(big)
    assert_points_whole(store, expected, tmp_path)


def test_rollup_gc_and_verify_on_a_full_disk(small_fs, tmp_path):
    store = init_store(small_fs / "store", tmp_path / "k.key", chunk_size=CHUNK, gc_grace=0)
    assert store.reserve_path.stat().st_size == RESERVE_BYTES
    vol = write_volume(tmp_path / "vol.img", 2 << 20, seed=3)
    expected = {}
    for n in range(3):  # three points on one day; the next day's rollup keeps the last
        vol.write_bytes(os.urandom(1 << 20) + vol.read_bytes()[1 << 20 :])
        record = backup_volume(store, "srv1", vol, taken_at=T0 + timedelta(hours=n))
        expected[record.id] = digest(vol)
    latest = max(expected)
    next_day = (T0 + timedelta(days=1)).isoformat()
    filler = fill(small_fs)

    # gc on a full disk: it spends the reserve for its lock, then makes it again.
    run = agent(store, "--json", "gc")
    assert run.returncode == 0, run.stderr
    assert_points_whole(store, expected, tmp_path)

    # verify still reports damage when it cannot write the quarantine record.
    store = Store.open(store.root)
    damaged = store.load_index(store.get_point(latest)).ids[0]
    path = store.chunks.path(damaged)
    blob = bytearray(path.read_bytes())
    blob[40] ^= 0x01
    path.write_bytes(bytes(blob))  # same size: fits on the full disk
    run = agent(store, "--json", "verify")
    assert run.returncode == 3, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert [c["chunk"] for c in report["damaged_chunks"]] == [damaged.hex()]
    assert "not quarantined" in report["damaged_chunks"][0]["reason"]
    assert latest in report["damaged_chunks"][0]["points"]
    blob[40] ^= 0x01
    path.write_bytes(bytes(blob))  # put right by hand: the rest must work as before

    # With the reserve already spent, rollup cannot write its catalog: one clear line.
    store.reserve_path.unlink(missing_ok=True)
    fill(small_fs)
    run = agent(store, "rollup", "--now", next_day)
    assert_one_clear_line(run, "disk full")
    assert_points_whole(store, expected, tmp_path)

    # With a reserve, rollup on a full disk goes through and its gc frees the space.
    filler.unlink()
    assert store.ensure_reserve()
    fill(small_fs)
    run = agent(store, "--json", "rollup", "--now", next_day)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["gc"]["bytes_freed"] > 1 << 20
    assert result["gc"]["reserve"] is True
    kept = {latest: expected[latest]}
    assert_points_whole(store, kept, tmp_path)
    run = agent(store, "gc")
    assert run.returncode == 0, run.stderr
    assert_points_whole(store, kept, tmp_path)
