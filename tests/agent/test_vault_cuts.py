"""RELIABILITY 14: cut the link 20 times at seeded random moments of a first replication.

The cuts rotate between killing the SSH connection (the sender's ssh client), SIGKILL of
the sender (``bdr-agent replicate``) and SIGKILL of the vault's ``vault serve``. Each
moment is a seeded random count of bytes the vault has received in that run. Afterwards
one clean run finishes; the vault holds every point whole, verifies, and what it received
over all runs exceeds what it keeps by at most one blob (the one in flight) per cut.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from agent.offsite.replicate import vault_files
from agent.records import process_alive
from agent.store.backup import backup_volume
from agent.store.datastore import init_store
from agent.vault.store import open_vault
from tests.agent.vault_world import (
    T0,
    child_pid,
    cli_json,
    received_bytes,
    ssh_target,
    start_cli,
    vault_host,
)

CUTS = 20
CHUNK = 1 << 20


def serve_pids(vault_dir) -> list[int]:
    """The live ``vault serve`` sessions (a killed one's record stays until the next)."""
    pids = [int(p.stem) for p in (vault_dir / "sessions").glob("*.json") if p.stem.isdigit()]
    return [pid for pid in pids if process_alive(pid)]


def session_received(vault_dir, pid: int) -> int:
    try:
        return int.from_bytes((vault_dir / "sessions" / f"{pid}.received").read_bytes(), "big")
    except FileNotFoundError:
        return 0


def cut_at(proc, vault_dir, threshold: int, how: str, before: set[int]) -> bool:
    """Wait until this run's vault session (not one in ``before``) has received
    ``threshold`` bytes, then cut; False if the run ended first."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        pids = [pid for pid in serve_pids(vault_dir) if pid not in before]
        if pids and session_received(vault_dir, pids[0]) >= threshold:
            if how == "ssh":
                victim = child_pid(proc.pid, "ssh")
            elif how == "sender":
                victim = proc.pid
            else:
                victim = pids[0]
            if victim:
                os.kill(victim, signal.SIGKILL)
                return True
        time.sleep(0.001)
    return False


@pytest.mark.slow
def test_twenty_cuts_resend_at_most_the_blob_in_flight(tmp_path):
    store = init_store(tmp_path / "store", tmp_path / "key", chunk_size=CHUNK)
    volume = tmp_path / "disk0.img"
    volume.write_bytes(random.Random(7).randbytes(40 * CHUNK))  # 40 incompressible chunks
    for day in range(2):
        with open(volume, "r+b") as f:
            f.seek(day * 5 * CHUNK)
            f.write(random.Random(day).randbytes(3 * CHUNK))
        backup_volume(store, "srv1", volume, "disk0", T0.replace(day=1 + day))
    vault_dir = tmp_path / "vault"
    cli_json("vault", "init", str(vault_dir))
    vault_files(store.root)
    host = vault_host(tmp_path / "sshd", vault_dir, store.root)
    rng = random.Random(20250301)
    target = ssh_target(host, vault_dir)
    args = ("--store", str(store.root), "--json", "replicate", target, "--host-key", host.host_key)
    cuts = 0
    try:
        for i in range(CUTS):
            before = set(serve_pids(vault_dir))
            proc = start_cli(*args)
            how = ("ssh", "sender", "vault")[i % 3]
            cuts += cut_at(proc, vault_dir, rng.randrange(16 << 10, 3 * CHUNK), how, before)
            proc.communicate(timeout=60)
        code, out, err = cli_json(*args[:2], *args[3:])
        assert code == 0, err
    finally:
        host.stop()
    assert cuts >= 15  # most moments fell inside a run (a few runs finished a point first)
    vault = open_vault(vault_dir)
    app = json.loads((store.root / "appliance" / "offsite.json").read_text())["appliance"]
    assert [p["point"] for p in vault.points(app)] == [p.id for p in store.list_points()]
    assert all(p["whole"] for p in vault.points(app))
    assert cli_json("vault", "verify", str(vault_dir))[0] == 0
    kept = sum(size for _, size in vault.backend.iter_blobs(app))
    largest = max(size for _, size in vault.backend.iter_blobs(app))
    resent = received_bytes(vault_dir) - kept
    assert 0 <= resent <= cuts * largest, (resent, cuts, largest)
