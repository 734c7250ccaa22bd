"""The vault's store: digest-checked blobs, whole-or-nothing point commits, keyless verify."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.errors import UsageError
from agent.vault.backend import BLOB_HEAD, sha256
from agent.vault.protocol import VaultRefused
from agent.vault.store import MissingBlobs, init_vault, open_vault
from tests.agent.conftest import run_cli

APP = "nas-1"
POINT = "srv1/disk0/20250102T030405Z"


def blob(n: int) -> tuple[bytes, bytes]:
    data = os.urandom(1000 + n)
    return sha256(b"id" + data), data


@pytest.fixture
def vault(tmp_path):
    return init_vault(tmp_path / "vault", name="vault-a")


def put_all(vault, blobs):
    for blob_id, data in blobs:
        vault.put_blob(APP, blob_id, data, sha256(data))


def point_of(blobs, index, catalog) -> tuple[dict, list[bytes]]:
    return {"point": POINT, "index": index[0].hex(), "catalog": catalog[0].hex()}, [
        b for b, _ in blobs
    ]


def test_a_point_is_committed_only_when_all_its_blobs_are_there(vault):
    chunks = [blob(i) for i in range(5)]
    index, catalog = blob(10), blob(11)
    put_all(vault, [*chunks[:4], index, catalog])
    point, ids = point_of(chunks, index, catalog)
    with pytest.raises(MissingBlobs) as missing:
        vault.commit(APP, point, ids)
    assert missing.value.missing == [chunks[4][0]]
    assert vault.points(APP) == []
    put_all(vault, chunks[4:])
    record = vault.commit(APP, point, ids)
    assert record["blobs"] == 5 and record["bytes"] == sum(len(d) for _, d in chunks)
    assert [p["point"] for p in vault.points(APP)] == [POINT]
    assert vault.points(APP)[0]["whole"] is True
    assert vault.point_blob_ids(APP, record) == ids
    assert vault.lacking(APP, [*ids, b"\1" * 32]) == [b"\1" * 32]


def test_a_commit_is_idempotent_and_never_replaces_a_point(vault):
    chunks, index, catalog, other = [blob(1)], blob(2), blob(3), blob(4)
    put_all(vault, [*chunks, index, catalog, other])
    point, ids = point_of(chunks, index, catalog)
    first = vault.commit(APP, point, ids)
    assert vault.commit(APP, point, ids) == first
    with pytest.raises(VaultRefused) as refused:
        vault.commit(APP, {**point, "index": other[0].hex()}, ids)
    assert refused.value.code == "conflict"


def test_a_blob_whose_bytes_do_not_match_the_senders_digest_is_refused(vault):
    blob_id, data = blob(1)
    with pytest.raises(VaultRefused) as refused:
        vault.put_blob(APP, blob_id, data, sha256(data + b"x"))
    assert refused.value.code == "digest"
    assert vault.lacking(APP, [blob_id]) == [blob_id]


def test_bad_point_ids_and_names_are_refused(vault):
    with pytest.raises(UsageError):
        vault.commit(APP, {"point": "../etc/x", "index": "00" * 32, "catalog": "00" * 32}, [])
    with pytest.raises(UsageError):
        vault.lacking("../other", [])


def blob_file(vault_root: Path, blob_id: bytes) -> Path:
    name = blob_id.hex()
    return vault_root / "appliances" / APP / "blobs" / name[:2] / name


def test_vault_verify_finds_a_flipped_byte_names_blob_and_point_and_exits_3(vault, tmp_path):
    chunks, index, catalog = [blob(i) for i in range(3)], blob(10), blob(11)
    put_all(vault, [*chunks, index, catalog])
    vault.commit(APP, *point_of(chunks, index, catalog))
    assert run_cli("vault", "verify", str(vault.root)).returncode == 0
    path = blob_file(vault.root, chunks[1][0])
    raw = bytearray(path.read_bytes())
    raw[BLOB_HEAD + 100] ^= 0x04
    path.write_bytes(bytes(raw))

    run = run_cli("--json", "vault", "verify", str(vault.root))
    assert run.returncode == 3, run.stderr
    report = json.loads(run.stdout)
    assert [b["blob"] for b in report["damaged_blobs"]] == [chunks[1][0].hex()]
    assert report["damaged_blobs"][0]["points"] == [POINT]
    assert [p["point"] for p in report["damaged_points"]] == [POINT]
    assert not path.exists()  # quarantined: the vault lacks it, a sender will store it again
    assert vault.lacking(APP, [chunks[1][0]]) == [chunks[1][0]]
    assert vault.points(APP)[0]["whole"] is False
    text = run_cli("vault", "verify", str(vault.root))
    assert text.returncode == 3 and POINT in text.stdout

    put_all(vault, [chunks[1]])  # a good copy arrives and the point is committed again
    vault.commit(APP, *point_of(chunks, index, catalog))
    assert vault.points(APP)[0]["whole"] is True
    assert run_cli("vault", "verify", str(vault.root)).returncode == 0


def test_vault_verify_finds_a_truncated_blob_list_and_a_deleted_blob(vault):
    chunks, index, catalog = [blob(i) for i in range(2)], blob(10), blob(11)
    put_all(vault, [*chunks, index, catalog])
    vault.commit(APP, *point_of(chunks, index, catalog))
    blob_file(vault.root, index[0]).unlink()
    report = json.loads(run_cli("--json", "vault", "verify", str(vault.root)).stdout)
    assert report["damaged_points"][0]["problems"] == [f"blob {index[0].hex()}: missing"]
    ids_file = vault.root / "appliances" / APP / "points" / f"{POINT}.ids"
    ids_file.write_bytes(ids_file.read_bytes()[:-1])
    report = json.loads(run_cli("--json", "vault", "verify", str(vault.root)).stdout)
    assert "blob list is missing or damaged" in report["damaged_points"][0]["problems"][0]


def test_vault_init_is_idempotent_and_refuses_a_non_empty_directory(tmp_path):
    assert run_cli("vault", "init", str(tmp_path / "v"), "--name", "v1").returncode == 0
    assert open_vault(tmp_path / "v").name == "v1"
    assert run_cli("vault", "init", str(tmp_path / "v")).returncode == 0
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file").write_text("x")
    run = run_cli("vault", "init", str(tmp_path / "junk"))
    assert run.returncode == 1 and run.stderr.startswith("bdr-agent:")
    run = run_cli("vault", "verify", str(tmp_path / "nothing"))
    assert run.returncode == 2 and "no vault at" in run.stderr


def test_a_killed_receivers_whole_temp_files_are_adopted_and_torn_ones_deleted(vault):
    """What a vault serve killed between writing a blob and renaming it leaves behind."""
    whole_id, whole = blob(1)
    torn_id, torn = blob(2)
    backend = vault.backend
    for blob_id, data in ((whole_id, whole), (torn_id, torn)):
        tmp = backend.stage_blob(APP, blob_id, data, sha256(data))
        dead = tmp.with_name(tmp.name.replace(f".tmp.{os.getpid()}.", ".tmp.999999999."))
        tmp.rename(dead)
        if blob_id == torn_id:
            dead.write_bytes(dead.read_bytes()[:-10])
    assert vault.lacking(APP, [whole_id, torn_id]) == [whole_id, torn_id]
    assert backend.adopt_temps(APP) == (1, 1)
    assert vault.lacking(APP, [whole_id, torn_id]) == [torn_id]
    assert vault.read_blob(APP, whole_id) == (whole, sha256(whole))
    assert not list((vault.root / "appliances" / APP / "blobs").glob("*/.tmp.*"))
