"""Damage is found, named, never restored as wrong bytes, and healed by the next backup."""

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from agent.errors import DamageFound
from agent.restore.reader import restore_point
from agent.store.backup import backup_volume
from agent.store.verify import verify_points
from tests.agent.conftest import digest, mutate_volume, rewrite_chunks

T0 = datetime(2025, 4, 1, 10, 0, tzinfo=UTC)


def flip_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x04
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-100])


def delete(path):
    path.unlink()


@pytest.fixture
def two_points(store, volume):
    """Two points sharing most chunks; returns (records, digests)."""
    first = backup_volume(store, "srv1", volume, taken_at=T0)
    want = {first.id: digest(volume)}
    mutate_volume(volume, seed=5, writes=1)
    second = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    want[second.id] = digest(volume)
    return [first, second], want


def shared_chunk(store, records, offset=None):
    """A chunk both points reference (the first non-zero one they share)."""
    a, b = (store.load_index(r) for r in records)
    for i, (x, y) in enumerate(zip(a.ids, b.ids, strict=True)):
        if x == y and x != bytes(32) and (offset is None or i * a.chunk_size == offset):
            return x, i * a.chunk_size
    raise AssertionError("no shared chunk")


@pytest.mark.parametrize("damage", [flip_bit, truncate, delete])
def test_verify_finds_damage_and_names_chunk_and_points(cli, store, two_points, damage):
    records, _ = two_points
    chunk_id, offset = shared_chunk(store, records)
    damage(store.chunks.path(chunk_id))
    run = cli("verify", "--json")
    assert run.returncode == 3, run.stderr
    report = json.loads(run.stdout)
    assert not report["ok"]
    [bad] = report["damaged_chunks"]
    assert bad["chunk"] == chunk_id.hex()
    assert bad["points"] == sorted(r.id for r in records)
    assert {p["id"] for p in report["damaged_points"]} == {r.id for r in records}
    assert report["damaged_points"][0]["chunks"][0]["offset"] == offset


def test_restore_of_damaged_point_fails_naming_offset_and_writes_nothing(
    cli, store, two_points, tmp_path
):
    records, _ = two_points
    chunk_id, offset = shared_chunk(store, records)
    flip_bit(store.chunks.path(chunk_id))
    out = tmp_path / "out.img"
    run = cli("restore", records[1].id, str(out))
    assert run.returncode == 3
    assert f"offset {offset}" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.img.*"))


def test_points_not_needing_the_damaged_chunk_still_restore(store, volume, tmp_path):
    first = backup_volume(store, "srv1", volume, taken_at=T0)
    want = {first.id: digest(volume)}
    with open(volume, "r+b") as f:  # a whole chunk rewritten: stored full, not as a delta
        f.seek(5 * store.chunk_size)
        f.write(os.urandom(store.chunk_size))
    second = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    want[second.id] = digest(volume)
    needed = set(store.point_blob_ids(second.id))
    only_first = next(x for x in store.point_blob_ids(first.id) if x not in needed)
    delete(store.chunks.path(only_first))
    report = verify_points(store)
    assert [p["id"] for p in report.damaged_points] == [first.id]
    out = tmp_path / "out.img"
    restore_point(store, second.id, out)
    assert digest(out) == want[second.id]
    with pytest.raises(DamageFound):
        restore_point(store, first.id, out)


def delta_and_base(store, record) -> tuple[bytes, bytes, int]:
    """(delta id, its base id, offset) of the first delta chunk of ``record``."""
    index = store.load_index(store.get_point(record.id))
    i = next(i for i, base in enumerate(index.bases) if base != bytes(32))
    return index.ids[i], index.bases[i], i * index.chunk_size


@pytest.fixture
def delta_points(store, volume):
    """Two points, the second holding a delta of one of the first's chunks."""
    rewrite_chunks(volume, [5])
    first = backup_volume(store, "srv1", volume, taken_at=T0)
    want = {first.id: digest(volume)}
    with open(volume, "r+b") as f:
        f.seek(5 * store.chunk_size + 1000)
        f.write(os.urandom(100))
    second = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
    want[second.id] = digest(volume)
    return [first, second], want


def test_a_damaged_base_names_every_point_whose_deltas_need_it(cli, store, delta_points, volume):
    records, want = delta_points
    delta, base, offset = delta_and_base(store, records[1])
    assert base in store.load_index(records[0]).ids  # the first point's chunk there
    flip_bit(store.chunks.path(base))
    run = cli("verify", "--json")
    assert run.returncode == 3, run.stderr
    report = json.loads(run.stdout)
    bad = {c["chunk"]: c for c in report["damaged_chunks"]}
    assert bad[base.hex()]["points"] == sorted(r.id for r in records)
    assert bad[delta.hex()]["points"] == [records[1].id]
    assert f"base chunk {base.hex()}" in bad[delta.hex()]["reason"]
    assert {p["id"] for p in report["damaged_points"]} == {r.id for r in records}
    assert store.chunks.exists(delta)  # intact itself: recorded, not moved aside
    assert {base, delta} <= store.chunks.damaged_ids()
    run = cli("restore", records[1].id, str(volume.with_suffix(".out")))
    assert run.returncode == 3 and f"offset {offset}" in run.stderr
    assert f"base chunk {base.hex()}" in run.stderr


def test_the_next_backup_stores_a_delta_of_a_lost_base_full(store, delta_points, volume, tmp_path):
    records, want = delta_points
    delta, base, offset = delta_and_base(store, records[1])
    delete(store.chunks.path(base))
    verify_points(store)
    healed = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=30))
    assert healed.chunks_new == 1
    index = store.load_index(healed)
    assert index.ids[offset // index.chunk_size] == delta
    assert index.bases[offset // index.chunk_size] == bytes(32)  # full now
    out = tmp_path / "out.img"
    for record in (records[1], healed):  # the old point's delta was replaced, same id
        restore_point(store, record.id, out)
        assert digest(out) == want[records[1].id]
    report = verify_points(store)  # the first point still lacks its chunk there
    assert [p["id"] for p in report.damaged_points] == [records[0].id]


def test_next_backup_after_damage_makes_every_point_whole_again(
    store, two_points, volume, tmp_path
):
    records, want = two_points
    chunk_id, _ = shared_chunk(store, records)
    flip_bit(store.chunks.path(chunk_id))
    assert not verify_points(store).ok  # quarantines and records the chunk
    assert chunk_id in store.chunks.damaged_ids()
    # the source did not change: the block is stored again all the same ("diff-gen")
    healed = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=30))
    assert healed.chunks_new >= 1
    assert verify_points(store).ok
    assert store.chunks.damaged_ids() == set()
    out = tmp_path / "out.img"
    for record in records:  # the old points are whole again too: same id, same chunk
        restore_point(store, record.id, out)
        assert digest(out) == want[record.id]


def test_a_deleted_chunk_is_stored_again_even_without_verify(store, two_points, volume):
    records, _ = two_points
    chunk_id, _ = shared_chunk(store, records)
    delete(store.chunks.path(chunk_id))
    backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=30))
    assert store.chunks.exists(chunk_id)
    assert verify_points(store).ok


def test_damaged_index_is_reported(cli, store, two_points):
    records, _ = two_points
    path = store.index_path("srv1", "disk0", records[0].taken_at_dt)
    flip_bit(path)
    report = json.loads(cli("verify", "--json").stdout)
    assert [p["id"] for p in report["damaged_points"]] == [records[0].id]
    assert "does not match the catalog" in report["damaged_points"][0]["index"]


def test_verify_of_named_points_and_unknown_point(cli, two_points):
    records, _ = two_points
    run = cli("verify", records[0].id, "--json")
    assert run.returncode == 0
    assert json.loads(run.stdout)["points_checked"] == 1
    run = cli("verify", "srv1/disk0/20990101T000000Z")
    assert run.returncode == 2
    assert "no such point" in run.stderr
