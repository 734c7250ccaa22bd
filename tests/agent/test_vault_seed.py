"""seed: a new store rebuilt from a vault; the disaster drill (RELIABILITY 15)."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from agent.store.backup import backup_volume
from agent.store.datastore import Store
from agent.vault.backend import BLOB_HEAD, sha256
from agent.vault.store import open_vault
from tests.agent.conftest import digest, mutate_volume, run_cli
from tests.agent.vault_world import (
    T0,
    canary_volume,
    cli_json,
    points_over_days,
    ssh_target,
    start_cli,
    vault_host,
)


def restore_digests(store_root, ids, folder) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    out = {}
    for i, pid in enumerate(ids):
        run = run_cli("--store", str(store_root), "restore", pid, str(folder / f"{i}.img"))
        assert run.returncode == 0, run.stderr
        out[pid] = digest(folder / f"{i}.img")
    return out


@pytest.fixture
def off_site(tmp_path, store, key_file):
    """Two servers' points, replicated to dc1 and on to dc2."""
    vol1 = canary_volume(tmp_path / "srv1.img", 2 << 20, seed=21)
    vol2 = canary_volume(tmp_path / "srv2.img", 1 << 20, seed=22)
    ids = points_over_days(store, vol1, 3) + points_over_days(store, vol2, 2, server="srv2")
    v1, v2 = tmp_path / "dc1", tmp_path / "dc2"
    cli_json("vault", "init", str(v1), "--name", "dc1")
    cli_json("vault", "init", str(v2), "--name", "dc2")
    assert cli_json("--store", str(store.root), "replicate", str(v1))[0] == 0
    assert cli_json("vault", "replicate", str(v1), str(v2))[0] == 0
    return store, ids, (vol1, vol2), (v1, v2)


def test_disaster_drill_seed_from_the_second_vault_restore_and_carry_on(off_site, tmp_path):
    store, ids, (vol1, _), (v1, v2) = off_site
    key = store_key(store)
    expected = restore_digests(store.root, ids, tmp_path / "before")
    tiers = {p.id: p.tier for p in store.list_points()}
    app = json.loads((store.root / "appliance" / "offsite.json").read_text())["appliance"]
    shutil.rmtree(store.root)  # the fire

    new = tmp_path / "new-store"
    code, _, err = cli_json(
        "--store", str(new), "seed", "--from", "ssh://root@127.0.0.1/x", "--key-file", str(key)
    )
    assert code == 2 and "needs the store first" in err
    assert (
        cli_json(
            "--store", str(new), "init", "--key-file", str(key), "--chunk-size", str(64 << 10)
        )[0]
        == 0
    )
    host = vault_host(tmp_path / "sshd2", v2, Store.open(new).root)
    try:
        code, out, err = cli_json(
            "--store",
            str(new),
            "seed",
            "--from",
            ssh_target(host, v2),
            "--key-file",
            str(key),
            "--host-key",
            host.host_key,
        )
    finally:
        host.stop()
    assert code == 0, err
    assert out["points_seeded"] == len(ids) and out["appliance"] == app
    seeded = Store.open(new)
    assert {p.id: p.tier for p in seeded.list_points()} == tiers
    assert cli_json("--store", str(new), "verify")[0] == 0
    assert restore_digests(new, ids, tmp_path / "after") == expected

    mutate_volume(vol1, seed=500, writes=2)
    record = backup_volume(seeded, "srv1", vol1, "disk0", T0.replace(day=10))
    assert record.chunks_reused > 10 * record.chunks_new  # an incremental, not a new base
    code, again, err = cli_json("--store", str(new), "replicate", str(v1))
    assert code == 0, err
    assert again["points_sent"] == 1 and again["appliance"] == app  # the same namespace


def store_key(store: Store):
    return store.config["key_file"]


def test_seed_makes_the_store_and_resumes_after_a_kill(off_site, tmp_path):
    store, ids, _, (v1, _) = off_site
    key = store_key(store)
    expected = restore_digests(store.root, ids, tmp_path / "before")
    new = tmp_path / "seeded"
    proc = start_cli("--store", str(new), "--json", "seed", "--from", str(v1), "--key-file", key)
    deadline = time.monotonic() + 30
    while not list(new.glob("servers/*/catalog")) and time.monotonic() < deadline:
        time.sleep(0.001)  # killed once the first point is committed, mid-seed
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < len(Store.open(new, key_file=key).list_points()) < len(ids)
    code, out, err = cli_json("--store", str(new), "seed", "--from", str(v1), "--key-file", key)
    assert code == 0, err
    assert out["points_in_store"] == len(ids)
    assert Store.open(new).chunk_size == store.chunk_size
    assert cli_json("--store", str(new), "verify")[0] == 0
    assert restore_digests(new, ids, tmp_path / "after") == expected


def test_a_point_whose_index_the_vault_altered_is_not_seeded(off_site, tmp_path):
    store, ids, _, (v1, _) = off_site
    vault = open_vault(v1)
    app = vault.appliances()[0]
    record = vault.point_record(app, ids[1])
    path = v1 / "appliances" / app / "blobs" / record["index"][:2] / record["index"]
    body = bytearray(path.read_bytes()[BLOB_HEAD:])
    body[-5] ^= 0xFF
    path.write_bytes(b"BDRV" + sha256(bytes(body)) + bytes(body))  # digest fixed up: keyless
    new = tmp_path / "seeded"
    code, out, _ = cli_json(
        "--store", str(new), "seed", "--from", str(v1), "--key-file", store_key(store)
    )
    assert code == 3
    assert [s["point"] for s in out["skipped"]] == [ids[1]]
    assert "does not match its catalog" in out["skipped"][0]["reason"]
    assert out["points_seeded"] == len(ids) - 1


def test_the_appliance_must_be_named_when_a_vault_holds_several(off_site, tmp_path):
    store, _, _, (v1, _) = off_site
    other = tmp_path / "other"
    shutil.copytree(store.root, other)
    (other / "appliance" / "offsite.json").write_text('{"appliance": "SER-2"}')
    assert cli_json("--store", str(other), "replicate", str(v1))[0] == 0
    code, _, err = cli_json(
        "--store", str(tmp_path / "n"), "seed", "--from", str(v1), "--key-file", store_key(store)
    )
    assert code == 2 and "pick one (--appliance)" in err
    code, out, _ = cli_json(
        "--store",
        str(tmp_path / "n"),
        "seed",
        "--from",
        str(v1),
        "--key-file",
        store_key(store),
        "--appliance",
        "SER-2",
    )
    assert code == 0 and out["appliance"] == "SER-2"
