"""vault retention: the off-site policies, applied by the vault; deletions wait in a trash."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest

from agent.service.appliance_config import save_settings
from agent.store.backup import backup_volume
from agent.store.retention import RetentionPolicy
from agent.store.rollup import rollup
from agent.vault.backend import sha256
from agent.vault.retention import apply_retention
from agent.vault.store import init_vault
from tests.agent.conftest import mutate_volume, write_volume
from tests.agent.vault_world import cli_json

APP = "nas-1"
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
YEARLY = [f"srv1/disk0/{year}0101T080000Z" for year in range(2017, 2026)]
DAILY = [f"srv1/disk0/202503{day:02d}T080000Z" for day in range(1, 11)]
# daily=3, yearly=7 at NOW (written out by hand): today's point (intraday), the three days
# before, and the newest point of each of the 7 years before 2025 (2025 is covered by March).
KEPT = DAILY[6:] + YEARLY[1:8]
DROPPED = YEARLY[:1] + YEARLY[8:] + DAILY[:6]


def put(vault, data: bytes) -> bytes:
    blob_id = sha256(b"id" + data)
    vault.put_blob(APP, blob_id, data, sha256(data))
    return blob_id


@pytest.fixture
def vault(tmp_path):
    """19 points of srv1 (one blob of their own each, one shared) and 1 point of srv2."""
    vault = init_vault(tmp_path / "vault", name="dc1")
    shared = put(vault, b"shared" * 100)
    catalog = put(vault, b"catalog")
    for pid in [*YEARLY, *DAILY, "srv2/disk0/20170101T080000Z"]:
        own = put(vault, os.urandom(500))
        index = put(vault, b"index of " + pid.encode())
        vault.commit(
            APP, {"point": pid, "index": index.hex(), "catalog": catalog.hex()}, [own, shared]
        )
    vault.set_policy(APP, "srv1", {"daily": 3, "weekly": 0, "monthly": 0, "yearly": 7})
    return vault


def own_blob(vault, pid: str) -> bytes:
    return vault.point_blob_ids(APP, vault.point_record(APP, pid))[0]


def test_retention_keeps_what_the_policy_says_and_trashes_the_rest(vault):
    owns = {pid: own_blob(vault, pid) for pid in DROPPED}
    report = apply_retention(vault, NOW)["appliances"][0]
    assert sorted(report["trashed"]) == sorted(DROPPED)
    live = [p["point"] for p in vault.points(APP)]
    assert sorted(live) == sorted([*KEPT, "srv2/disk0/20170101T080000Z"])  # srv2: no policy
    assert report["kept"]["srv2/disk0/20170101T080000Z"] == "no policy"
    assert set(vault.retired(APP)) == set(DROPPED)  # senders will not send them again
    assert vault.lacking(APP, list(owns.values())) == []  # the blobs wait in the trash
    assert report["purged_points"] == []


def test_the_trash_is_purged_after_its_days_and_only_of_unreferenced_blobs(vault):
    owns = {pid: own_blob(vault, pid) for pid in DROPPED}
    shared = vault.point_blob_ids(APP, vault.point_record(APP, KEPT[0]))[1]
    apply_retention(vault, NOW)
    # A point committed meanwhile references one trashed blob again: it must survive.
    reused = owns[DROPPED[0]]
    index = put(vault, b"a new point")
    catalog = vault.point_record(APP, KEPT[0])["catalog"]
    vault.commit(
        APP,
        {"point": "srv3/disk0/20250311T080000Z", "index": index.hex(), "catalog": catalog},
        [reused],
    )
    early = apply_retention(vault, NOW + timedelta(days=13, hours=23))["appliances"][0]
    assert early["purged_points"] == [] and vault.lacking(APP, list(owns.values())) == []
    late = apply_retention(vault, NOW + timedelta(days=14))["appliances"][0]
    assert sorted(late["purged_points"]) == sorted(DROPPED)
    gone = set(vault.lacking(APP, list(owns.values())))
    assert gone == set(owns.values()) - {reused}
    assert late["blobs_deleted"] == len(gone) + len(DROPPED)  # and their indexes
    assert vault.lacking(APP, [shared, reused]) == []
    assert cli_json("vault", "verify", str(vault.root))[0] == 0


def test_a_policy_that_keeps_nothing_still_leaves_every_blob_for_the_trash_days(vault):
    """What a compromised appliance or portal can do: push a policy that keeps nothing."""
    vault.set_policy(
        APP, "srv1", {"intraday": 0, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 0}
    )
    every_blob = {b for b, _ in vault.backend.iter_blobs(APP)}
    report = apply_retention(vault, NOW)["appliances"][0]
    assert [p["point"] for p in vault.points(APP) if p["server"] == "srv1"] == [DAILY[-1]]
    assert len(report["trashed"]) == len(YEARLY) + len(DAILY) - 1
    assert {b for b, _ in vault.backend.iter_blobs(APP)} == every_blob
    trash = vault.root / "appliances" / APP / "trash"
    assert len(list(trash.rglob("*.json"))) == len(report["trashed"])  # records to put back


def test_off_site_keeps_seven_yearly_points_where_the_appliance_keeps_three(tmp_path, store):
    volume = write_volume(tmp_path / "disk0.img", 1 << 20, seed=4)
    for year in range(2018, 2026):
        mutate_volume(volume, seed=year, writes=2)
        backup_volume(store, "srv1", volume, "disk0", datetime(year, 1, 1, 8, tzinfo=UTC))
    local = RetentionPolicy(intraday=0, daily=0, weekly=0, monthly=0, yearly=3)
    store.save_policy("srv1", local)
    offsite = {"intraday": 0, "daily": 0, "weekly": 0, "monthly": 0, "yearly": 7}
    save_settings(store.root, {"offsite_policies": {"srv1": offsite}})
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir), "--name", "dc1")
    assert cli_json("--store", str(store.root), "replicate", str(vault_dir))[0] == 0
    rollup(store, now=datetime(2025, 6, 1, tzinfo=UTC))
    assert [p.taken_at[:4] for p in store.list_points()] == ["2023", "2024", "2025"]

    code, report, err = cli_json("vault", "retention", str(vault_dir), "--now", "2025-06-01")
    assert code == 0, err
    assert [p[11:15] for p in report["appliances"][0]["trashed"]] == ["2018"]
    code, status, _ = cli_json("--store", str(store.root), "offsite", str(vault_dir))
    copies = {p["taken_at"][:4]: p["copies"] for p in status["points"]}
    assert copies == {
        **{str(y): ["dc1"] for y in range(2019, 2023)},
        **{str(y): ["local", "dc1"] for y in range(2023, 2026)},
    }
    again = cli_json("--store", str(store.root), "replicate", str(vault_dir))[1]
    assert again["points_sent"] == 0
    (policy_file,) = (vault_dir / "appliances").glob("*/policies/srv1.json")
    assert json.loads(policy_file.read_text()) == offsite
