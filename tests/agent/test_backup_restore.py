import json
from datetime import UTC, datetime, timedelta

from agent.restore.reader import PointReader, restore_point
from agent.store.backup import backup_volume
from agent.store.rollup import rollup
from agent.store.verify import verify_points
from tests.agent.conftest import digest, mutate_volume, write_volume

START = datetime(2025, 2, 27, 0, 0, tzinfo=UTC)


def test_every_point_of_three_days_of_quarter_hour_backups_restores_byte_identical(store, tmp_path):
    vol = write_volume(tmp_path / "disk.img", 1 << 20, seed=7)
    expected = {}
    for n in range(3 * 96):
        if n:
            mutate_volume(vol, seed=n, writes=2)
        record = backup_volume(store, "srv1", vol, taken_at=START + timedelta(minutes=15 * n))
        expected[record.id] = digest(vol)
    points = store.list_points("srv1")
    assert [p.id for p in points] == sorted(expected)
    out = tmp_path / "out.img"
    for point_id, want in expected.items():
        restore_point(store, point_id, out)
        assert digest(out) == want, point_id

    now = START + timedelta(days=3)
    result = rollup(store, now)
    kept = {p.id for p in store.list_points()}
    assert set(result["servers"][0]["kept"]) == kept
    assert kept == {  # no point today: the last point of each earlier day
        "srv1/disk0/20250227T234500Z",
        "srv1/disk0/20250228T234500Z",
        "srv1/disk0/20250301T234500Z",
    }
    for point_id in kept:
        restore_point(store, point_id, out)
        assert digest(out) == expected[point_id]
    assert verify_points(store).ok


def test_incremental_stores_only_changed_chunks(store, volume):
    first = backup_volume(store, "srv1", volume, taken_at=START)
    mutate_volume(volume, seed=3, writes=1)
    second = backup_volume(store, "srv1", volume, taken_at=START + timedelta(minutes=15))
    assert first.chunks_new > 0
    assert 1 <= second.chunks_new <= 2
    assert second.chunks_new + second.chunks_reused + second.chunks_zero == second.chunks_total
    assert second.stored_bytes < first.stored_bytes / 5


def test_holes_and_zero_chunks_are_not_stored_and_restore_sparse(store, tmp_path):
    vol = tmp_path / "sparse.img"
    with open(vol, "wb") as f:
        f.seek(5 << 20)
        f.write(b"x" * 4096)
        f.seek(7 << 20)
        f.write(bytes(1 << 20))  # written zeros, not a hole
        f.truncate(16 << 20)
    record = backup_volume(store, "srv1", vol, taken_at=START)
    assert record.chunks_new == 1
    assert record.chunks_zero == record.chunks_total - 1
    out = tmp_path / "out.img"
    restore_point(store, record.id, out)
    assert digest(out) == digest(vol)
    assert out.stat().st_blocks * 512 < 1 << 20  # sparse


def test_point_reader_reads_any_range(store, volume):
    record = backup_volume(store, "srv1", volume, taken_at=START)
    data = volume.read_bytes()
    with PointReader(store, record.id, cache_chunks=2) as reader:
        assert reader.size == len(data)
        for offset, n in [(0, 512), (65530, 20), (100_000, 300_000), (len(data) - 10, 100)]:
            assert reader.read(offset, n) == data[offset : offset + n]
        assert reader.read(len(data), 10) == b""


def test_cli_backup_points_restore_round_trip(cli, store, volume, tmp_path):
    run = cli("backup", "srv1", str(volume), "--at", "2025-03-01T10:15:00Z", "--json")
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["id"] == "srv1/disk0/20250301T101500Z"
    listing = json.loads(cli("points", "--json").stdout)
    assert len(listing) == 1
    point = listing[0]
    for field in ("id", "server", "volume", "taken_at", "tier", "size", "stored_bytes"):
        assert field in point
    assert point["taken_at"] == "2025-03-01T10:15:00+00:00"
    assert (
        point["chunks_new"] + point["chunks_reused"] + point["chunks_zero"] == point["chunks_total"]
    )
    out = tmp_path / "restored.img"
    run = cli("restore", point["id"], str(out), "--json")
    assert run.returncode == 0, run.stderr
    assert digest(out) == digest(volume)


def test_backup_of_an_existing_point_time_is_refused(cli, volume):
    assert cli("backup", "srv1", str(volume), "--at", "2025-03-01T10:15:00Z").returncode == 0
    run = cli("backup", "srv1", str(volume), "--at", "2025-03-01T10:15:00Z")
    assert run.returncode == 2
    assert "already exists" in run.stderr


def test_policy_can_be_set_and_read_back(cli):
    run = cli("policy", "srv1", "--daily", "3", "--intraday", "4", "--yearly", "0", "--json")
    assert run.returncode == 0, run.stderr
    policy = json.loads(cli("policy", "srv1", "--json").stdout)["policy"]
    assert policy == {"intraday": 4, "daily": 3, "weekly": 4, "monthly": 12, "yearly": 0}


def test_restore_refuses_up_front_when_the_destination_is_too_small(tmp_path):
    """A restore that cannot fit fails before writing anything, with the sizes in one line."""
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not shutil.which("mkfs.ext4"):
        assert not os.environ.get("CI"), "CI runs as root with e2fsprogs"
        return
    from tests.support.agent_store import agent, agent_json, init_store, make_volume

    store = init_store(tmp_path / "a")
    point = agent_json(store, "backup", "s", str(make_volume(tmp_path / "v.img", size_mib=8)))["id"]
    small = tmp_path / "small.img"
    subprocess.run(["truncate", "-s", "4M", str(small)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(small)], check=True, capture_output=True)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    subprocess.run(["mount", "-o", "loop", str(small), str(mnt)], check=True)
    try:
        result = agent(store, "restore", point, str(mnt / "out.img"), check=False)
        assert result.returncode == 1
        assert "not enough space" in result.stderr and "nothing was written" in result.stderr
        assert "Traceback" not in result.stderr
        assert [p.name for p in mnt.iterdir() if p.name != "lost+found"] == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_point_blob_ids_names_each_stored_chunk_once(tmp_path):
    """What gc keeps and replication copies: every chunk file a point needs, no zero ids."""
    from agent.store.backup import backup_volume
    from agent.store.datastore import Store, init_store
    from agent.store.pointindex import ZERO_ID

    chunk = 64 * 1024
    init_store(tmp_path / "s", tmp_path / "k", chunk_size=chunk)
    store = Store.open(tmp_path / "s")
    vol = tmp_path / "v.img"
    vol.write_bytes(b"a" * chunk + bytes(chunk) + b"a" * chunk + b"b" * chunk)
    record = backup_volume(store, "srv", vol)
    ids = store.point_blob_ids(record.id)
    assert len(ids) == 2 and ZERO_ID not in ids
    files = {p.name for p in (tmp_path / "s" / "chunks").glob("*/*")}
    assert {i.hex() for i in ids} == files
