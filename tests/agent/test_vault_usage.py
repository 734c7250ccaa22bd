"""What billing counts: the bytes an appliance's live points reference on the vault, each
blob once (``usage``), reported by ``offsite.status`` as ``vault_bytes``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.offsite.replicate import appliance_id
from agent.service import offsite
from agent.store.pointindex import parse_point_id
from agent.vault.backend import BLOB_HEAD
from agent.vault.retention import apply_retention
from agent.vault.store import open_vault
from agent.vault.usage import usage
from tests.agent.conftest import mutate_volume, write_volume
from tests.agent.vault_world import T0, cli_json, points_over_days


def vault_blob_bytes(vault, app: str) -> int:
    """The sealed bytes of every blob file in the namespace (measured on disk)."""
    blobs = (vault / "appliances" / app / "blobs").rglob("*")
    return sum(p.stat().st_size - BLOB_HEAD for p in blobs if p.is_file())


def store_bytes(store, point_ids: list[str]) -> int:
    """What the points reference, counted once, measured on the appliance's side: their
    chunk files, their index files and the server's catalog (one file: every point sent
    carried the same sealed catalog)."""
    chunks = set()
    for point_id in point_ids:
        chunks.update(store.point_blob_ids(point_id))
    total = sum(store.chunks.size(c) for c in chunks)
    total += sum(p.stat().st_size for p in (store.root / "servers").rglob("*.idx"))
    return total + (store.server_dir("srv1") / "catalog").stat().st_size


@pytest.fixture
def replicated(tmp_path, store):
    """Three daily points of srv1 (a few chunks change a day) replicated to a vault dir."""
    volume = write_volume(tmp_path / "a.img", 1 << 20, seed=1)
    ids = points_over_days(store, volume, 3)
    vault = tmp_path / "vault"
    cli_json("vault", "init", str(vault), "--name", "dc1")
    code, _, err = cli_json("--store", str(store.root), "replicate", str(vault), "--limit", "off")
    assert code == 0, err
    return store, vault, ids, volume


def test_vault_bytes_count_a_blob_shared_by_points_once(replicated):
    store, vault, ids, _ = replicated
    status = offsite.status(store.root, str(vault), now=T0 + timedelta(days=3))
    app = appliance_id(store.root)
    assert status["vault_bytes"] == store_bytes(store, ids) == vault_blob_bytes(vault, app)
    records = open_vault(vault).points(app)
    per_point = sum(r["bytes"] + r["index_bytes"] for r in records)
    assert status["vault_bytes"] < per_point / 2  # each point alone references most chunks
    assert status["vault_bytes_at"] is not None
    # kept by the appliance: the status the portal polls does not reach the vault
    (vault / "vault.json").rename(vault / "moved.json")
    assert offsite.status(store.root, now=T0)["vault_bytes"] == status["vault_bytes"]


def test_a_new_point_adds_only_its_new_blobs_and_retention_stops_charging(replicated, tmp_path):
    store, vault, ids, volume = replicated
    app = appliance_id(store.root)
    before = usage(open_vault(vault), app)
    mutate_volume(volume, seed=9, writes=4)
    cli_json("--store", str(store.root), "backup", "srv1", str(volume), "--at",
             (T0 + timedelta(days=3)).isoformat())  # fmt: skip
    code, result, err = cli_json("--store", str(store.root), "replicate", str(vault))
    assert code == 0 and result["points_sent"] == 1, err
    merged = offsite.status(store.root, str(vault), now=T0)["vault_bytes"]
    assert before["bytes"] < merged < 2 * before["bytes"]
    assert merged == vault_blob_bytes(vault, app)
    (vault / "appliances" / app / "usage.json").unlink()  # counted again from the lists
    assert usage(open_vault(vault), app)["bytes"] == merged

    opened = open_vault(vault)
    opened.set_policy(app, "srv1", {"daily": 1, "weekly": 0, "monthly": 0, "yearly": 0})
    apply_retention(opened, T0 + timedelta(days=3, hours=12))
    kept = opened.points(app)
    assert 0 < len(kept) < 4
    after = usage(opened, app)
    assert after == {"bytes": kept_bytes(store, vault, app, kept), "blobs": after["blobs"],
                     "points": len(kept)}  # fmt: skip
    assert after["bytes"] < merged <= vault_blob_bytes(vault, app)  # the trash: not charged


def kept_bytes(store, vault, app: str, records: list[dict]) -> int:
    """Chunks and indexes measured in the store, catalogs as the vault holds them."""
    chunks, total = set(), 0
    for record in records:
        server, volume, taken_at = parse_point_id(record["point"])
        chunks.update(store.point_blob_ids(record["point"]))
        total += store.index_path(server, volume, taken_at).stat().st_size
    for catalog in {r["catalog"] for r in records}:
        path = vault / "appliances" / app / "blobs" / catalog[:2] / catalog
        total += path.stat().st_size - BLOB_HEAD
    return total + sum(store.chunks.size(c) for c in chunks)
