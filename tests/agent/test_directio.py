"""Restore's writer: O_DIRECT from aligned buffers, zero runs kept sparse, odd tails."""

import os
import random
from datetime import UTC, datetime

import pytest

from agent.restore.reader import restore_point
from agent.store.backup import backup_volume
from agent.store.directio import FileWriter, nonzero_runs
from tests.agent.conftest import digest

START = datetime(2025, 2, 27, tzinfo=UTC)


def _patchwork(path, size, seed):
    """A volume whose 4 MiB chunks mix data, 64 KiB-aligned zero runs, unaligned zero
    runs and single odd bytes, with a size that is not a multiple of 4096."""
    rng = random.Random(seed)
    data = bytearray(size)
    pos = 0
    while pos < size:
        n = rng.choice([4096, 65536, 200_000, 1 << 20])
        kind = rng.random()
        if kind < 0.4:
            data[pos : pos + n] = rng.randbytes(min(n, size - pos))
        elif kind < 0.5:
            data[min(pos + n // 2, size - 1)] = 1  # one byte in a zero run
        pos += n
    data[-1] = 7
    path.write_bytes(bytes(data))
    return path


def test_nonzero_runs_finds_data_at_64k_granularity():
    z = bytes(64 << 10)
    data = z + b"x" + bytes((64 << 10) - 1) + z + z + b"y" * 10
    assert nonzero_runs(data) == [(64 << 10, 128 << 10), (256 << 10, (256 << 10) + 10)]
    assert nonzero_runs(bytes(100)) == []
    assert nonzero_runs(b"a" * 100) == [(0, 100)]


@pytest.mark.parametrize("direct", [True, False])
def test_file_writer_direct_and_buffered_write_the_same_bytes(tmp_path, direct):
    src = _patchwork(tmp_path / "src.img", (9 << 20) + 1234, seed=5).read_bytes()
    out = tmp_path / "out.img"
    writer = FileWriter(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 4 << 20, direct=direct)
    try:
        assert writer.direct is direct
        os.ftruncate(writer.fd, len(src))
        for off in range(0, len(src), 4 << 20):
            writer.write(src[off : off + (4 << 20)], off)
        writer.sync()
    finally:
        writer.close()
    assert out.read_bytes() == src


def test_restore_keeps_zero_runs_inside_chunks_sparse_and_odd_tails_exact(store, tmp_path):
    vol = tmp_path / "vol.img"
    with open(vol, "wb") as f:
        f.write(os.urandom(1 << 20))  # chunk 0: 1 MiB data, then 3 MiB of written zeros
        f.write(bytes(3 << 20))
        f.write(bytes(2 << 20) + os.urandom(4096) + bytes((2 << 20) - 4096))  # chunk 1
        f.write(os.urandom(5000))  # a tail chunk of 5,000 bytes
    record = backup_volume(store, "srv1", vol, taken_at=START)
    out = tmp_path / "out.img"
    restore_point(store, record.id, out)
    assert digest(out) == digest(vol)
    assert out.stat().st_size == (8 << 20) + 5000
    allocated = out.stat().st_blocks * 512
    assert allocated < (1 << 20) + (64 << 10) + 16384 + (64 << 10)  # the data, not the zeros


def test_restore_of_a_patchwork_volume_is_byte_identical(store, tmp_path):
    vol = _patchwork(tmp_path / "vol.img", (13 << 20) + 777, seed=11)
    record = backup_volume(store, "srv1", vol, taken_at=START)
    out = tmp_path / "out.img"
    restore_point(store, record.id, out, workers=3)
    assert digest(out) == digest(vol)
