"""repair --from TARGET: damaged local chunks fetched from a vault, checked with the key, put
back; every point that needed them heals; what no copy holds stays for the diff-gen."""

from __future__ import annotations

import json

import pytest

from agent.store.backup import backup_volume
from agent.vault.backend import BLOB_HEAD, sha256
from tests.agent.conftest import digest, run_cli
from tests.agent.vault_world import (
    T0,
    canary_volume,
    cli_json,
    points_over_days,
    ssh_target,
    vault_host,
)


@pytest.fixture
def replicated(tmp_path, store):
    """Three points, replicated to dc1 and on to dc2 (dc2 behind sshd)."""
    volume = canary_volume(tmp_path / "disk0.img", 2 << 20, seed=9)
    ids = points_over_days(store, volume, 3)
    v1, v2 = tmp_path / "dc1", tmp_path / "dc2"
    cli_json("vault", "init", str(v1), "--name", "dc1")
    cli_json("vault", "init", str(v2), "--name", "dc2")
    assert cli_json("--store", str(store.root), "replicate", str(v1))[0] == 0
    assert cli_json("vault", "replicate", str(v1), str(v2))[0] == 0
    host = vault_host(tmp_path / "sshd2", v2, store.root)
    yield store, ids, volume, (v1, v2), host
    host.stop()


def restored(store, point: str, dest) -> str:
    run = run_cli("--store", str(store.root), "restore", point, str(dest))
    assert run.returncode == 0, run.stderr
    return digest(dest)


def chunk_file(store, point: str):
    chunk_id = store.point_blob_ids(point)[0]
    return chunk_id, store.chunks.path(chunk_id)


def test_a_damaged_chunk_is_repaired_from_the_second_vault(replicated, tmp_path):
    store, ids, _, (v1, v2), host = replicated
    before = {pid: restored(store, pid, tmp_path / f"r{i}.img") for i, pid in enumerate(ids)}
    chunk_id, path = chunk_file(store, ids[0])
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))
    code, report, _ = cli_json("--store", str(store.root), "verify")
    assert code == 3 and report["damaged_chunks"][0]["chunk"] == chunk_id.hex()

    code, out, err = cli_json(
        "--store",
        str(store.root),
        "repair",
        "--from",
        ssh_target(host, v2),
        "--host-key",
        host.host_key,
    )
    assert code == 0, err
    assert out["repaired"] == [chunk_id.hex()] and out["remaining"] == []
    assert set(out["points_healed"]) == set(report["damaged_chunks"][0]["points"])
    assert cli_json("--store", str(store.root), "verify")[0] == 0
    assert not (store.root / "damaged" / chunk_id.hex()).exists()
    for i, pid in enumerate(ids):
        assert restored(store, pid, tmp_path / f"after{i}.img") == before[pid]


def test_a_chunk_no_copy_holds_stays_marked_for_the_diff_gen(replicated, tmp_path):
    store, ids, volume, (v1, _), _ = replicated
    record = backup_volume(
        store,
        "srv1",
        canary_volume(tmp_path / "new.img", 1 << 20, seed=77),
        "disk1",
        T0.replace(day=20),
    )
    chunk_id = store.point_blob_ids(record.id)[0]
    store.chunks.path(chunk_id).write_bytes(b"rot")
    assert cli_json("--store", str(store.root), "verify")[0] == 3
    code, out, _ = cli_json("--store", str(store.root), "repair", "--from", str(v1))
    assert code == 3
    assert out["remaining"][0]["chunk"] == chunk_id.hex()
    assert out["remaining"][0]["points"] == [record.id]
    assert out["points_damaged"] == [record.id]
    assert "not on the vault" in out["remaining"][0]["reason"]
    assert (store.root / "damaged" / chunk_id.hex()).exists()  # the next backup stores it
    backup_volume(store, "srv1", tmp_path / "new.img", "disk1", T0.replace(day=21))
    assert cli_json("--store", str(store.root), "verify")[0] == 0


def test_a_vault_copy_that_is_not_the_chunk_is_refused(replicated):
    """The vault's digest is good (it recorded the bytes it got) but the bytes are another
    chunk's: only the key can tell, and repair checks with it."""
    store, ids, _, (v1, _), _ = replicated
    chunk_id, path = chunk_file(store, ids[0])
    other_id = next(c for c in store.point_blob_ids(ids[0]) if c != chunk_id)
    app = json.loads((store.root / "appliance" / "offsite.json").read_text())["appliance"]
    blobs = v1 / "appliances" / app / "blobs"
    swapped = (blobs / other_id.hex()[:2] / other_id.hex()).read_bytes()[BLOB_HEAD:]
    (blobs / chunk_id.hex()[:2] / chunk_id.hex()).write_bytes(b"BDRV" + sha256(swapped) + swapped)
    path.unlink()
    store.chunks.mark_damaged(chunk_id, "missing")
    code, out, _ = cli_json("--store", str(store.root), "repair", "--from", str(v1))
    assert code == 3 and out["repaired"] == []
    assert "authentication failed" in out["remaining"][0]["reason"]
    assert not path.exists()  # nothing was written under the chunk's name
