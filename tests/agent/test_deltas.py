"""Format 2's incrementals: a changed chunk is stored as a delta of its changed blocks
against the full chunk it replaces, cumulative (depth 1) over a chain, stored full again
past the re-base threshold; format-1 stores keep working."""

import os
from datetime import UTC, datetime, timedelta

from agent.restore.reader import PointReader, restore_point
from agent.store.backup import backup_volume
from agent.store.datastore import init_store
from agent.store.frames import DELTA, FULL, read_header
from agent.store.pointindex import ZERO_ID
from agent.store.rollup import rollup
from agent.store.verify import verify_points
from tests.agent.conftest import CHUNK, digest, mutate_volume, write_volume

T0 = datetime(2025, 5, 5, 8, 0, tzinfo=UTC)
BS = CHUNK // 64  # the default block size: 1 KiB for the tests' 64 KiB chunks
AT = 5 * CHUNK  # a data chunk of the fixture volume


def write_at(path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def header(store, chunk_id):
    return read_header(store.chunks.path(chunk_id), store.key, chunk_id)


def entry(store, record, offset=AT) -> tuple[bytes, bytes]:
    index = store.load_index(record)
    return index.ids[offset // CHUNK], index.base_of(offset // CHUNK)


def backups(store, volume, changes, start=0):
    """One backup before each change (a callable), and one after the last."""
    records = []
    for n, change in enumerate([None, *changes]):
        if change:
            change()
        when = T0 + timedelta(minutes=15 * (start + n))
        records.append(backup_volume(store, "srv1", volume, taken_at=when))
    return records


def test_a_small_write_is_stored_as_a_delta_of_the_chunk_it_replaces(store, volume, tmp_path):
    write_at(volume, AT, os.urandom(CHUNK))  # a chunk with no zero blocks
    first, second = backups(store, volume, [lambda: write_at(volume, AT + 3 * BS - 2, b"xyzw")])
    old_id, _ = entry(store, first)
    new_id, base = entry(store, second)
    assert base == old_id
    hdr = header(store, new_id)
    assert hdr.kind == DELTA and hdr.replaced() == {2, 3}  # the write straddles blocks 2|3
    assert second.chunks_new == 1 and second.stored_bytes < 2 * BS + 1500
    assert set(store.point_blob_ids(second.id)) >= {old_id, new_id}
    restore_point(store, second.id, tmp_path / "out.img")
    assert digest(tmp_path / "out.img") == digest(volume)


def test_deltas_are_cumulative_against_the_full_base(store, volume, tmp_path):
    write_at(volume, AT, os.urandom(CHUNK))
    writes = [lambda n=n: write_at(volume, AT + n * 7 * BS, os.urandom(100)) for n in range(5)]
    records = backups(store, volume, writes)
    base, _ = entry(store, records[0])
    for n, record in enumerate(records[1:], 1):
        chunk_id, named = entry(store, record)
        hdr = header(store, chunk_id)
        assert (hdr.kind, hdr.base, named) == (DELTA, base, base)  # never a delta of a delta
        assert hdr.replaced() == {k * 7 for k in range(n)}
        assert header(store, base).kind == FULL
    with PointReader(store, records[-1].id) as reader:
        assert reader.read(AT, CHUNK) == volume.read_bytes()[AT : AT + CHUNK]


def test_a_chunk_changed_past_the_rebase_threshold_is_stored_full(store, volume):
    most = 64 * store.rebase_percent // 100  # blocks a delta may hold (22 of 64 at 35%)
    write_at(volume, AT, os.urandom(CHUNK))
    records = backups(
        store,
        volume,
        [
            lambda: write_at(volume, AT, os.urandom(most * BS)),  # a delta
            lambda: write_at(volume, AT + 40 * BS, os.urandom(10)),  # one block more: full
            lambda: write_at(volume, AT + 50 * BS, os.urandom(10)),  # a delta of the new one
        ],
    )
    ids = [entry(store, r) for r in records]
    assert ids[1][1] == ids[0][0] and len(header(store, ids[1][0]).replaced()) == most
    assert ids[2][1] == ZERO_ID and header(store, ids[2][0]).kind == FULL
    assert ids[3][1] == ids[2][0] and header(store, ids[3][0]).replaced() == {50}


def test_a_rolled_up_point_keeps_the_bases_its_successors_need(store, volume, tmp_path):
    mutate_volume(volume, seed=3, writes=6)
    records = backups(store, volume, [lambda: mutate_volume(volume, seed=4, writes=6)])
    want = digest(volume)
    store.save_policy("srv1", store.load_policy("srv1").__class__(intraday=1))
    result = rollup(store, T0 + timedelta(hours=1))
    assert result["servers"][0]["removed"] == [records[0].id]
    assert all(store.chunks.exists(c) for c in store.point_blob_ids(records[1].id))
    assert verify_points(store).ok
    restore_point(store, records[1].id, tmp_path / "out.img")
    assert digest(tmp_path / "out.img") == want


def test_a_format_1_store_keeps_working(key_file, tmp_path):
    store = init_store(tmp_path / "v1", key_file, chunk_size=CHUNK, gc_grace=0, store_format=1)
    volume = write_volume(tmp_path / "v.img", 1 << 20, seed=9)
    want = {}
    for n in range(4):
        if n:
            mutate_volume(volume, seed=n, writes=3)
        record = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15 * n))
        want[record.id] = digest(volume)
        index = store.load_index(record)
        assert index.format == 1 and index.bases == []
    files = [p.read_bytes()[:4] for p in (store.root / "chunks").glob("*/*")]
    assert files and set(files) == {b"BDR2"}  # whole chunks, no deltas
    assert verify_points(store).ok
    for point_id, expected in want.items():
        restore_point(store, point_id, tmp_path / "out.img")
        assert digest(tmp_path / "out.img") == expected
    store.save_policy("srv1", store.load_policy("srv1").__class__(intraday=2))
    rollup(store, T0 + timedelta(hours=2))
    kept = [p.id for p in store.list_points()]
    assert len(kept) == 2
    on_disk = {bytes.fromhex(p.name) for p in (store.root / "chunks").glob("*/*")}
    assert on_disk == {c for p in kept for c in store.point_blob_ids(p)}


def test_a_base_that_vanishes_before_commit_is_healed_by_storing_the_chunk_full(
    store, volume, tmp_path
):
    """verify quarantines (or someone deletes) the base a new delta needs while the
    backup runs: the commit-time check stores that chunk full from the source."""
    write_at(volume, AT, os.urandom(CHUNK))
    first = backup_volume(store, "srv1", volume, taken_at=T0)
    base, _ = entry(store, first)
    write_at(volume, AT + 9 * BS, b"changed")
    second = backup_volume(
        store,
        "srv1",
        volume,
        taken_at=T0 + timedelta(minutes=15),
        before_commit=lambda: store.chunks.path(base).unlink(),
    )
    chunk_id, named = entry(store, second)
    assert named == ZERO_ID and header(store, chunk_id).kind == FULL
    assert base not in store.point_blob_ids(second.id)
    restore_point(store, second.id, tmp_path / "out.img")
    assert digest(tmp_path / "out.img") == digest(volume)
    report = verify_points(store)
    assert [p["id"] for p in report.damaged_points] == [first.id]  # it lost its chunk


def test_blob_checks_for_copies_from_a_vault_know_both_formats(key_file, volume, tmp_path):
    """What replication and repair check a blob with: authenticity alone (no base
    needed), and the full check (decoded with its base, re-hashed)."""
    from agent.store.verify import check_blob

    for store_format in (1, 2):
        store = init_store(tmp_path / f"s{store_format}", key_file, chunk_size=CHUNK,
                           store_format=store_format)  # fmt: skip
        write_at(volume, AT, os.urandom(CHUNK))
        first = backup_volume(store, "srv1", volume, taken_at=T0)
        write_at(volume, AT + 2 * BS, b"more")
        second = backup_volume(store, "srv1", volume, taken_at=T0 + timedelta(minutes=15))
        for record in (first, second):
            chunk_id, _ = entry(store, record)
            blob = store.chunks.get(chunk_id)
            assert store.blob_is_authentic(chunk_id, blob)
            assert check_blob(store, chunk_id, blob) is None
            flipped = blob[:-30] + bytes([blob[-30] ^ 1]) + blob[-29:]
            assert not store.blob_is_authentic(chunk_id, flipped)
            assert "authentication failed" in check_blob(store, chunk_id, flipped)
            other = entry(store, first if record is second else second)[0]
            assert not store.blob_is_authentic(other, blob)
