"""Keys, sealing, authenticated indexes and catalogs: silent corruption is caught, a chunk is
checked before it is committed, forged or replayed points are refused, nonces never repeat,
and a missing or wrong key fails closed before anything is written."""

import json
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import DamageFound, UsageError, WrongKey
from agent.restore.reader import restore_point
from agent.store.backup import backup_volume
from agent.store.codec import CHUNK_MAGIC, ChunkCodec, blob_nonce
from agent.store.datastore import Store, init_store
from agent.store.framecodec import FrameCodec
from agent.store.frames import MAGIC, blob_nonces
from agent.store.keys import NONCE_BYTES, SEAL_MAGIC
from agent.store.rollup import rollup
from agent.store.verify import verify_points
from tests.agent.conftest import CHUNK, digest, mutate_volume, store_files

T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)


def test_wrong_key_is_refused_before_anything_is_written(cli, store, volume, tmp_path):
    backup_volume(store, "srv1", volume, taken_at=T0)
    before = store_files(store.root)
    key = tmp_path / "storage.key"
    key.write_bytes(os.urandom(32))
    for args in (["backup", "srv1", str(volume)], ["gc"], ["rollup"], ["verify"], ["points"]):
        run = cli(*args)
        assert run.returncode == 1, args
        assert (
            run.stderr.strip() == f"bdr-agent: key file {key} is not the key of store {store.root}"
        )
    assert store_files(store.root) == before


def test_missing_or_short_key_file_is_refused(cli, store, tmp_path):
    key = tmp_path / "storage.key"
    key.write_bytes(b"short")
    run = cli("points")
    assert run.returncode == 1
    assert "holds 5 bytes, expected 32" in run.stderr
    key.unlink()
    run = cli("points")
    assert "key file not found" in run.stderr


def test_init_with_another_key_is_refused(store, tmp_path):
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))

    with pytest.raises(WrongKey):
        init_store(store.root, other)


def test_new_key_file_is_private(key_file, store):
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(key_file.read_bytes()) == 32


def test_plaintext_canary_never_appears_in_the_store(store, tmp_path):
    canary = b"CANARY-7f3a9c-credit-card-4111111111111111"
    vol = tmp_path / "canary.img"
    vol.write_bytes((canary + os.urandom(64)) * 4000 + canary * 20000)
    backup_volume(store, "srv-canary", vol, volume="c-drive", taken_at=T0)
    verify_points(store)
    for name, data in store_files(store.root).items():
        assert canary not in data, name
        assert b"CANARY" not in data, name


def test_nonces_are_unique_across_every_sealed_object(store, volume):
    for n in range(6):
        mutate_volume(volume, seed=n, writes=4)
        backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15 * n))
        # reopen: a restarted process must not repeat nonces either
        store = Store.open(store.root)
    nonces = []
    for data in store_files(store.root).values():
        if data.startswith(SEAL_MAGIC):
            nonces.append(data[len(SEAL_MAGIC) : len(SEAL_MAGIC) + NONCE_BYTES])
        elif data.startswith(CHUNK_MAGIC):
            nonces.append(blob_nonce(data))
        elif data.startswith(MAGIC):  # format 2: header and body sealed apart
            nonces.extend(blob_nonces(data))
    assert len(nonces) > 40
    assert len(set(nonces)) == len(nonces)


def test_forged_index_is_rejected(store, volume, tmp_path):
    record = backup_volume(store, "srv1", volume, taken_at=T0)
    path = store.index_path("srv1", "disk0", record.taken_at_dt)
    path.write_bytes(SEAL_MAGIC + os.urandom(2000))
    with pytest.raises(DamageFound, match="does not match the catalog"):
        restore_point(store, record.id, tmp_path / "out.img")


def test_index_moved_to_another_points_name_is_rejected(store, volume, tmp_path):
    first = backup_volume(store, "srv1", volume, taken_at=T0)
    mutate_volume(volume, seed=9)
    second = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    src = store.index_path("srv1", "disk0", first.taken_at_dt)
    dst = store.index_path("srv1", "disk0", second.taken_at_dt)
    shutil.copy(src, dst)
    with pytest.raises(DamageFound):
        restore_point(store, second.id, tmp_path / "out.img")


def test_replayed_index_of_a_rolled_up_point_is_never_listed_or_counted(
    cli, store, volume, tmp_path
):
    old = backup_volume(store, "srv1", volume, taken_at=T0)
    saved = store.index_path("srv1", "disk0", old.taken_at_dt).read_bytes()
    mutate_volume(volume, seed=2)
    new = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    rollup(store, T0 + timedelta(hours=1))  # today's points: both kept
    store.save_policy("srv1", store.load_policy("srv1").__class__(intraday=1))
    rollup(store, T0 + timedelta(hours=1))
    assert [p.id for p in store.list_points()] == [new.id]
    store.index_path("srv1", "disk0", old.taken_at_dt).write_bytes(saved)  # replay
    assert [p["id"] for p in json.loads(cli("points", "--json").stdout)] == [new.id]
    with pytest.raises(UsageError, match="no such point"):
        restore_point(store, old.id, tmp_path / "out.img")
    backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=30))
    assert not store.index_path("srv1", "disk0", old.taken_at_dt).exists()  # cleaned


def test_catalog_copied_from_another_server_is_rejected(cli, store, volume):
    backup_volume(store, "srv1", volume, taken_at=T0)
    backup_volume(store, "srv2", volume, taken_at=T0)
    shutil.copy(store.server_dir("srv1") / "catalog", store.server_dir("srv2") / "catalog")
    run = cli("points", "srv2")
    assert run.returncode == 3
    assert "catalog of server srv2: authentication failed" in run.stderr


class FlakyCodec(ChunkCodec):
    """A compressor that corrupts one output in ten (restic #4523's failure mode)."""

    calls = 0

    def compress(self, data):
        kind, out = super().compress(data)
        FlakyCodec.calls += 1
        if FlakyCodec.calls % 10 == 0:
            return kind, bytes(out[:-7]) + b"garbage"
        return kind, out


class FlakySealer(ChunkCodec):
    """A sealer that, one call in ten, flips a ciphertext bit (caught by the tag) and,
    another one in ten, seals other bytes than it was given under a valid tag (caught
    only by comparing the opened plaintext)."""

    calls = 0

    def seal_into(self, kind, payload, chunk_id, out):
        FlakySealer.calls += 1
        if FlakySealer.calls % 10 == 5:
            wrong = bytearray(payload)
            wrong[len(wrong) // 2] ^= 0x40
            return super().seal_into(kind, bytes(wrong), chunk_id, out)
        n = super().seal_into(kind, payload, chunk_id, out)
        if FlakySealer.calls % 10 == 0:
            out[n - 40] ^= 0x01
        return n


class FlakyFrameCompressor(FrameCodec):
    """Format 2: one block in ten compressed wrong (or, when raw, handed over altered)."""

    calls = 0

    def compress_block(self, block):
        enc, frame = super().compress_block(block)
        FlakyFrameCompressor.calls += 1
        if FlakyFrameCompressor.calls % 10 == 0:
            wrong = bytearray(frame)
            wrong[len(wrong) // 2] ^= 0x10
            return enc, bytes(wrong)
        return enc, frame


class FlakyFrameSealer(FrameCodec):
    """Format 2: one header or body in ten sealed from other bytes, one in ten flipped
    (counted per thread: a blob's header and body, and its retry, are one thread's)."""

    calls = 0
    mine = threading.local()

    def seal_into(self, nonce, plain, associated, out):
        FlakyFrameSealer.calls += 1
        n = self.mine.n = getattr(self.mine, "n", 0) + 1
        if n % 10 == 3 and len(plain):
            wrong = bytearray(plain)
            wrong[len(wrong) // 2] ^= 0x40
            plain = bytes(wrong)
        super().seal_into(nonce, plain, associated, out)
        if n % 10 == 8:
            out[len(out) // 2] ^= 0x01


@pytest.mark.parametrize(
    ("store_format", "faulty"),
    [(1, FlakyCodec), (1, FlakySealer), (2, FlakyFrameCompressor), (2, FlakyFrameSealer)],
)
def test_a_corrupting_compressor_or_sealer_never_commits_a_corrupt_chunk(
    store_format, faulty, key_file, volume, tmp_path
):
    store = init_store(tmp_path / "s", key_file, chunk_size=CHUNK, store_format=store_format)
    if store_format == 1:
        store.codec = faulty(store.key)
    else:
        store.frames = faulty(store.key, store.block_size)
    faulty.calls = 0
    want = {}
    for n in range(4):
        mutate_volume(volume, seed=n, writes=6)
        record = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15 * n))
        want[record.id] = digest(volume)
    assert faulty.calls >= 30
    assert verify_points(Store.open(store.root)).ok
    for point_id, expected in want.items():
        restore_point(store, point_id, tmp_path / "out.img")
        assert digest(tmp_path / "out.img") == expected
