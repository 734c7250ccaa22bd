"""vault replicate: the first vault sends on to a second, keyless, over SSH; three copies;
a flipped byte on the first vault is found by its digest and never propagated."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.vault.backend import BLOB_HEAD
from agent.vault.store import open_vault
from tests.agent.vault_world import (
    canary_volume,
    cli_json,
    points_over_days,
    ssh_target,
    store_blobs,
    vault_host,
)
from tests.support.sshd import authorize, vault_forced_command


@pytest.fixture
def three_copies(tmp_path, store):
    """A store with three points; vault dc1 and vault dc2, each behind its own sshd; the
    store replicated to dc1."""
    volume = canary_volume(tmp_path / "disk0.img", 2 << 20, seed=8)
    ids = points_over_days(store, volume, 3)
    v1, v2 = tmp_path / "dc1", tmp_path / "dc2"
    cli_json("vault", "init", str(v1), "--name", "dc1")
    cli_json("vault", "init", str(v2), "--name", "dc2")
    host1 = vault_host(tmp_path / "sshd1", v1, store.root)
    host2 = vault_host(tmp_path / "sshd2", v2, store.root)
    code, _, err = cli_json("vault", "replicate", str(v1), str(v2))  # makes dc1's key
    assert code == 0, err
    authorize(host2, (v1 / "vault_ed25519.pub").read_text(), vault_forced_command(v2))
    code, _, err = cli_json(
        "--store", str(store.root), "replicate", ssh_target(host1, v1), "--host-key", host1.host_key
    )
    assert code == 0, err
    yield store, ids, (v1, host1), (v2, host2)
    host1.stop()
    host2.stop()


def send_on(v1: Path, host2) -> tuple[int, dict, str]:
    return cli_json(
        "vault",
        "replicate",
        str(v1),
        ssh_target(host2, v1.parent / "dc2"),
        "--host-key",
        host2.host_key,
    )


def app_of(vault_dir: Path) -> str:
    return open_vault(vault_dir).appliances()[0]


def test_the_second_vault_gets_every_point_and_the_appliance_sees_three_copies(three_copies):
    store, ids, (v1, host1), (v2, host2) = three_copies
    code, out, err = send_on(v1, host2)
    assert code == 0, err
    assert out["points_sent"] == 3 and out["target_vault"] == "dc2"
    app = app_of(v1)
    assert [p["point"] for p in open_vault(v2).points(app)] == ids
    assert cli_json("vault", "verify", str(v2))[0] == 0
    second = {p.read_bytes()[BLOB_HEAD:] for p in v2.rglob("blobs/*/*")}
    assert second <= store_blobs(store)  # the same sealed bytes, three copies of them
    code, status, err = cli_json("--store", str(store.root), "offsite", ssh_target(host1, v1))
    assert code == 0, err
    assert {tuple(p["copies"]) for p in status["points"]} == {("local", "dc1", "dc2")}
    assert send_on(v1, host2)[1]["points_sent"] == 0


def flip_a_byte(vault_dir: Path, app: str, blob_id: str) -> None:
    path = vault_dir / "appliances" / app / "blobs" / blob_id[:2] / blob_id
    raw = bytearray(path.read_bytes())
    raw[BLOB_HEAD + len(raw) // 3] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_on_the_first_vault_is_not_propagated_and_is_repaired(three_copies):
    store, ids, (v1, host1), (v2, host2) = three_copies
    app = app_of(v1)
    vault1 = open_vault(v1)
    newest = vault1.point_record(app, ids[2])
    # a chunk only the newest point has: the older points must still go
    older = set(vault1.point_blob_ids(app, vault1.point_record(app, ids[1])))
    victim = next(b for b in vault1.point_blob_ids(app, newest) if b not in older).hex()
    flip_a_byte(v1, app, victim)

    code, out, _ = send_on(v1, host2)
    assert code == 3
    assert [s["point"] for s in out["skipped"]] == [ids[2]]
    assert "does not match its recorded digest" in out["skipped"][0]["reason"]
    vault2 = open_vault(v2)
    assert [p["point"] for p in vault2.points(app)] == ids[:2]
    assert vault2.lacking(app, [bytes.fromhex(victim)]) == [bytes.fromhex(victim)]
    assert cli_json("vault", "verify", str(v2))[0] == 0  # nothing rotten reached dc2
    assert not vault1.points(app)[2]["whole"]  # dc1 knows its copy is broken

    # The appliance's next run stores the blob again on dc1; then it goes on to dc2.
    code, again, err = cli_json("--store", str(store.root), "replicate", ssh_target(host1, v1))
    assert code == 0 and again["blobs_sent"] == 1 and again["points_sent"] == 1, err
    assert cli_json("vault", "verify", str(v1))[0] == 0
    code, out, err = send_on(v1, host2)
    assert code == 0 and out["points_sent"] == 1, err
    assert [p["point"] for p in open_vault(v2).points(app)] == ids


def test_a_rotten_blob_found_by_verify_is_repaired_from_the_other_vault(three_copies, tmp_path):
    """RELIABILITY 13: found by the vault's own keyless verify, repaired from another copy."""
    store, ids, (v1, host1), (v2, host2) = three_copies
    assert send_on(v1, host2)[0] == 0
    app = app_of(v1)
    victim = open_vault(v1).point_blob_ids(app, open_vault(v1).point_record(app, ids[0]))[0]
    flip_a_byte(v1, app, victim.hex())
    code, report, _ = cli_json("vault", "verify", str(v1))
    assert code == 3 and report["damaged_blobs"][0]["blob"] == victim.hex()
    code, out, err = cli_json("vault", "replicate", str(v2), str(v1))  # dc2 -> dc1
    assert code == 0, err
    assert cli_json("vault", "verify", str(v1))[0] == 0
    assert all(p["whole"] for p in open_vault(v1).points(app))
