"""replicate: appliance -> vault, to a directory and over SSH, keyless, never deleting."""

from __future__ import annotations

import json

import pytest

from agent.offsite.replicate import appliance_id, replicate
from agent.store.rollup import rollup
from agent.vault.backend import BLOB_HEAD
from agent.vault.store import open_vault
from agent.vault.targets import parse_target
from tests.agent.vault_world import (
    CANARY,
    T0,
    all_bytes,
    canary_volume,
    cli_json,
    points_over_days,
    store_blobs,
    vault_host,
)


@pytest.fixture
def source(tmp_path, store):
    """The store with three daily points of a volume full of canaries."""
    volume = canary_volume(tmp_path / "disk0.img", 2 << 20, seed=3)
    return store, points_over_days(store, volume, 3)


def vault_blob_bytes(vault_dir) -> set[bytes]:
    return {p.read_bytes()[BLOB_HEAD:] for p in vault_dir.rglob("blobs/*/*") if p.is_file()}


def test_replicate_to_a_directory_copies_every_point_byte_for_byte(source, tmp_path):
    store, ids = source
    vault_dir = tmp_path / "vault"
    assert cli_json("vault", "init", str(vault_dir), "--name", "dc1")[0] == 0
    code, out, err = cli_json("--store", str(store.root), "replicate", str(vault_dir))
    assert code == 0, err
    assert out["points_sent"] == 3 and out["points_on_vault"] == 3 and out["vault"] == "dc1"
    assert '"event": "progress"' in err  # progress events like a backup's
    app = appliance_id(store.root)
    vault = open_vault(vault_dir)
    assert [p["point"] for p in vault.points(app)] == ids
    # Sealed bytes, copied as they are: every blob on the vault is a file of the store.
    assert vault_blob_bytes(vault_dir) <= store_blobs(store)
    code, again, _ = cli_json("--store", str(store.root), "replicate", str(vault_dir))
    assert code == 0 and again["points_sent"] == 0 and again["blobs_sent"] == 0
    assert cli_json("vault", "verify", str(vault_dir))[0] == 0


def test_the_vault_never_sees_the_key_or_a_byte_of_plaintext(source, tmp_path, key_file):
    store, _ = source
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir))
    assert cli_json("--store", str(store.root), "replicate", str(vault_dir))[0] == 0
    everything = all_bytes(vault_dir)
    assert len(everything) > 512 << 10  # three points of 2 MiB, compressed
    key = key_file.read_bytes()
    for secret in (key, key.hex().encode(), CANARY, CANARY[:24]):
        assert secret not in everything
    assert str(key_file).encode() not in everything


def test_newest_first_by_default_and_oldest_first_on_request(source, tmp_path):
    store, ids = source
    for order, expected in (("newest", ids[::-1]), ("oldest", ids)):
        vault_dir = tmp_path / f"vault-{order}"
        cli_json("vault", "init", str(vault_dir))
        committed: list[str] = []
        replicate(
            store,
            parse_target(str(vault_dir)),
            app="nas",
            order=order,
            on_commit=lambda point, record, seen=committed: seen.append(point),
        )
        assert committed == expected


def test_an_incremental_sends_only_its_new_chunks(source, tmp_path):
    store, ids = source
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir))
    first = replicate(store, parse_target(str(vault_dir)), app="nas", servers=["srv1"])
    volume = tmp_path / "disk0.img"
    from agent.store.backup import backup_volume
    from tests.agent.conftest import mutate_volume

    mutate_volume(volume, seed=99, writes=2)
    record = backup_volume(store, "srv1", volume, "disk0", T0.replace(day=9))
    second = replicate(store, parse_target(str(vault_dir)), app="nas")
    assert second["points_sent"] == 1
    assert second["blobs_sent"] <= record.chunks_new + 2  # its new chunks, index, catalog
    assert second["bytes_sent"] < first["bytes_sent"] / 2


def test_a_gap_is_backfilled_and_a_point_deleted_locally_stays_on_the_vault(source, tmp_path):
    """RELIABILITY 16c."""
    store, ids = source
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir))
    replicate(store, parse_target(str(vault_dir)), app="nas")
    # The vault lost its record of the oldest point (a gap, as a cut newest-first run leaves).
    record = vault_dir / "appliances" / "nas" / "points" / f"{ids[0]}.json"
    record.unlink()
    again = replicate(store, parse_target(str(vault_dir)), app="nas")
    assert again["points_sent"] == 1 and record.exists()
    # Rollup deletes the two older points locally: the vault keeps them.
    store.save_policy(
        "srv1", store.load_policy("srv1").__class__(daily=1, weekly=0, monthly=0, yearly=0)
    )
    rollup(store, now=T0.replace(day=20))
    assert [p.id for p in store.list_points()] == [ids[2]]
    replicate(store, parse_target(str(vault_dir)), app="nas")
    assert [p["point"] for p in open_vault(vault_dir).points("nas")] == ids


@pytest.fixture
def ssh_vault(source, tmp_path):
    """Vault dc1 behind sshd on 127.0.0.1: (its directory, the host, the TARGET)."""
    store, _ = source
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir), "--name", "dc1")
    host = vault_host(tmp_path / "sshd", vault_dir, store.root)
    yield vault_dir, host, f"ssh://{host.user}@127.0.0.1:{host.port}{vault_dir}"
    host.stop()


def test_replicate_over_ssh_to_a_pinned_vault_host(source, ssh_vault):
    store, ids = source
    vault_dir, host, target = ssh_vault
    code, _, err = cli_json("--store", str(store.root), "replicate", target)
    assert code == 2 and "no host key pinned" in err  # never accepted on first use
    pin = ("--host-key", host.host_key)
    code, out, err = cli_json("--store", str(store.root), "replicate", target, *pin)
    assert code == 0, err
    assert out["points_sent"] == 3 and out["vault"] == "dc1"
    known = (store.root / "appliance" / "known_hosts").read_text()
    assert known == f"[127.0.0.1]:{host.port} {host.host_key}\n"
    new_key = host.restart_with_new_host_key()  # an impostor at the same address
    code, _, err = cli_json("--store", str(store.root), "replicate", target)
    assert code == 1 and "Host key verification failed" in err
    code, _, err = cli_json("--store", str(store.root), "replicate", target, "--host-key", new_key)
    assert code == 2 and "another pinned host key" in err


def test_several_connections_carry_the_blobs_and_the_point_is_whole(source, ssh_vault):
    """What a long link gets: blobs spread over 3 SSH connections, stored by 3 vault
    processes; each commit waits until the others have stored theirs."""
    store, ids = source
    vault_dir, host, target = ssh_vault
    pin = ("--host-key", host.host_key)
    code, out, err = cli_json(
        "--store", str(store.root), "replicate", target, *pin, "--streams", "3", "--channels", "1"
    )
    assert code == 0, err
    assert out["points_sent"] == 3
    sessions = (vault_dir / "sessions" / "log.jsonl").read_text().splitlines()
    received = [json.loads(line)["received"] for line in sessions]
    assert len(received) == 3 and sum(1 for r in received if r > 0) >= 2
    assert len({json.loads(line)["ssh_client"] for line in sessions}) == 3
    vault = open_vault(vault_dir)
    assert [p["point"] for p in vault.points(appliance_id(store.root))] == ids
    assert cli_json("vault", "verify", str(vault_dir))[0] == 0


def test_several_sessions_share_an_ssh_connection(source, ssh_vault, tmp_path, monkeypatch):
    """5 streams, 2 per SSH connection: 3 connections (ControlMaster), each session a vault
    process of its own; the control sockets' folder is gone afterwards."""
    store, ids = source
    vault_dir, host, target = ssh_vault
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    pin = ("--host-key", host.host_key)
    code, out, err = cli_json(
        "--store", str(store.root), "replicate", target, *pin, "--streams", "5", "--channels", "2"
    )
    assert code == 0, err
    assert out["points_sent"] == 3
    sessions = [json.loads(line) for line in (vault_dir / "sessions" / "log.jsonl").open()]
    assert len(sessions) == 5 and sum(1 for s in sessions if s["received"] > 0) >= 3
    assert len({s["ssh_client"] for s in sessions}) == 3
    assert list((tmp_path / "tmp").iterdir()) == []
    vault = open_vault(vault_dir)
    assert [p["point"] for p in vault.points(appliance_id(store.root))] == ids
    assert cli_json("vault", "verify", str(vault_dir))[0] == 0


def test_bad_targets_are_one_line_usage_errors(store):
    for target in (
        "ssh://root@host/../etc",
        "ssh://-oProxyCommand=x@h/v",
        "ftp://x/y",
        "ssh://u@h:99999/v",
        "s3://UPPER/x",
    ):
        code, _, err = cli_json("--store", str(store.root), "replicate", target)
        assert code == 2 and err.startswith("bdr-agent:") and len(err.splitlines()) == 1


def test_the_appliance_namespace_is_fixed_at_the_first_replication(store, tmp_path):
    assert appliance_id(store.root, "SER-1") == "SER-1"
    assert appliance_id(store.root, "SER-2") == "SER-1"
    settings = json.loads((store.root / "appliance" / "offsite.json").read_text())
    assert settings == {"appliance": "SER-1"}
