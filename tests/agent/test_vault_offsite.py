"""Off-site status (copies, backlog, rate, ETA, lag), and replication as an rpc job."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from agent.service import offsite
from agent.service.appliance_config import save_settings
from agent.store.backup import backup_volume
from tests.agent.conftest import write_volume
from tests.agent.vault_world import T0, cli_json
from tests.support.agent_store import rpc_session, wait_for_agent_job


@pytest.fixture
def two_servers(tmp_path, store):
    """srv1 with two points, srv2 with one; a vault directory."""
    vol1 = write_volume(tmp_path / "a.img", 1 << 20, seed=1)
    vol2 = write_volume(tmp_path / "b.img", 1 << 20, seed=2)
    ids = [backup_volume(store, "srv1", vol1, "disk0", T0).id]
    write_volume(vol1, 1 << 20, seed=3)
    ids.append(backup_volume(store, "srv1", vol1, "disk0", T0 + timedelta(hours=1)).id)
    ids.append(backup_volume(store, "srv2", vol2, "disk0", T0 + timedelta(hours=2)).id)
    vault = tmp_path / "vault"
    cli_json("vault", "init", str(vault), "--name", "dc1")
    return store, vault, ids


def test_status_names_copies_backlog_eta_and_lag(two_servers):
    store, vault, ids = two_servers
    save_settings(store.root, {"offsite_target": str(vault), "offsite_limit": "100K"})
    code, _, err = cli_json(
        "--store", str(store.root), "replicate", str(vault), "--server", "srv1", "--limit", "off"
    )
    assert code == 0, err
    now = T0 + timedelta(hours=5)
    status = offsite.status(store.root, now=now)
    copies = {p["id"]: p["copies"] for p in status["points"]}
    assert copies == {ids[0]: ["local", "dc1"], ids[1]: ["local", "dc1"], ids[2]: ["local"]}
    srv2_chunks = sum(p.stat().st_size for p in (store.root / "chunks").rglob("*") if p.is_file())
    assert 0 < status["backlog_bytes"] <= srv2_chunks
    assert status["pending_points"] == 1 and status["limit"] == 100 << 10
    assert status["rate"] == 100 << 10  # nothing running: the limit caps the last run's rate
    assert status["eta_seconds"] == pytest.approx(status["backlog_bytes"] / (100 << 10), 0.01)
    assert status["lag_seconds"] == 3 * 3600  # srv2's point has waited since 10:00
    assert status["newest_offsite"]["id"] == ids[1]
    assert status["last_run"]["state"] == "finished" and status["running"] is None

    assert cli_json("--store", str(store.root), "replicate", str(vault))[0] == 0
    code, done, _ = cli_json("--store", str(store.root), "offsite", str(vault))
    assert code == 0 and done["backlog_bytes"] == 0 and done["eta_seconds"] == 0
    assert done["pending_points"] == 0 and all("dc1" in p["copies"] for p in done["points"])


def test_a_point_rolled_up_locally_is_still_listed_with_its_off_site_copy(two_servers):
    store, vault, ids = two_servers
    cli_json("--store", str(store.root), "replicate", str(vault))
    catalog = store.load_catalog("srv1")
    catalog.points = [p for p in catalog.points if p.id != ids[0]]
    store.save_catalog(catalog)  # as a rollup does
    code, status, _ = cli_json("--store", str(store.root), "offsite", str(vault))
    assert code == 0
    assert {p["id"]: p["copies"] for p in status["points"]}[ids[0]] == ["dc1"]


def test_replication_runs_as_an_rpc_job_with_progress_and_status(two_servers):
    store, vault, ids = two_servers
    with rpc_session(store.root) as rpc:
        with pytest.raises(Exception, match="no vault given"):
            rpc.call("replicate.start")
        rpc.call("settings.set", offsite_target=str(vault), offsite_windows="* * 4M")
        with pytest.raises(Exception, match="bad rate"):
            rpc.call("replicate.start", limit="fast")
        job = rpc.call("replicate.start", ref="portal-job-1")
        assert job["kind"] == "replicate"
        record = wait_for_agent_job(rpc, job["id"])
        assert record["state"] == "succeeded", record
        assert record["result"]["points_sent"] == 3 and record["bytes_done"] > 0
        assert rpc.call("replicate.start", ref="portal-job-1")["id"] == job["id"]
        log = rpc.call("jobs.log", id=job["id"])["log"]
        assert "3/3 points off-site" in log
        status = rpc.call("offsite.status")
        assert status["vault"] == "dc1" and status["backlog_bytes"] == 0
        assert status["limit"] == 4 << 20
        assert {tuple(p["copies"]) for p in status["points"]} == {("local", "dc1")}
        key = rpc.call("offsite.key")["public_key"]
        assert re.match(r"^ssh-ed25519 AAAA\S+ bdr-appliance$", key)
        with pytest.raises(Exception, match="offsite_order"):
            rpc.call("settings.set", offsite_order="random")
