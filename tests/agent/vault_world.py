"""What the vault tests share: stores with points, vault hosts behind sshd, canaries."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.offsite.replicate import vault_files
from agent.store.backup import backup_volume
from agent.store.datastore import Store
from tests.agent.conftest import REPO, mutate_volume, run_cli, write_volume
from tests.support.sshd import SshServer, authorize, start_sshd, vault_forced_command

CANARY = b"CANARY-plaintext-7f3e9a-the-vault-must-never-see-this"
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def canary_volume(path: Path, size: int, seed: int) -> Path:
    """A volume (holes, text, random) with the canary written every 256 KiB."""
    write_volume(path, size, seed)
    with open(path, "r+b") as f:
        for offset in range(4096, size - len(CANARY), 256 << 10):
            f.seek(offset)
            f.write(CANARY)
    return path


def points_over_days(store: Store, volume: Path, days: int, server: str = "srv1") -> list[str]:
    """One backup a day (the volume changes a little between them); the point ids."""
    ids = []
    for day in range(days):
        if day:
            mutate_volume(volume, seed=day, writes=4)
        ids.append(backup_volume(store, server, volume, "disk0", T0 + timedelta(days=day)).id)
    return ids


def cli_json(*args: str) -> tuple[int, dict | None, str]:
    run = run_cli("--json", *args, timeout=300)
    try:
        out = json.loads(run.stdout) if run.stdout.strip() else None
    except ValueError:
        out = None
    return run.returncode, out, run.stderr


def vault_host(workdir: Path, vault: Path, store_root: Path, command: str = "") -> SshServer:
    """sshd on 127.0.0.1 whose key for this appliance runs ``vault serve VAULT``."""
    server = start_sshd(workdir, vault, command=command or vault_forced_command(vault))
    identity = vault_files(store_root)[1]
    authorize(server, Path(f"{identity}.pub").read_text(), command or vault_forced_command(vault))
    return server


def ssh_target(server: SshServer, vault: Path) -> str:
    return f"ssh://{server.user}@127.0.0.1:{server.port}{vault}"


def lying_command(logdir: Path, mode: str) -> str:
    return f"cd {REPO} && {sys.executable} -m tests.support.lying_vault {logdir} {mode}"


def all_bytes(folder: Path) -> bytes:
    """Every file under ``folder`` concatenated (for searching it)."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def store_blobs(store: Store) -> set[bytes]:
    """Every sealed file a store could legitimately send: chunks, indexes, catalogs."""
    files = [p for p in (store.root / "chunks").rglob("*") if p.is_file()]
    files += list((store.root / "servers").rglob("*.idx"))
    files += list((store.root / "servers").rglob("catalog"))
    return {p.read_bytes() for p in files}


def received_bytes(vault: Path) -> int:
    """Payload bytes every ``vault serve`` session on ``vault`` received (killed ones too)."""
    folder = vault / "sessions"
    total = 0
    log = folder / "log.jsonl"
    if log.exists():
        total += sum(json.loads(line)["received"] for line in log.read_text().splitlines())
    for counter in folder.glob("*.received"):
        total += int.from_bytes(counter.read_bytes()[:8] or b"\0", "big")
    return total


def child_pid(pid: int, name: str) -> int | None:
    """The pid of ``pid``'s child whose command line contains ``name``, if any."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return None
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except FileNotFoundError:
            continue
        if name.encode() in cmdline:
            return int(child)
    return None


def start_cli(*args: str) -> subprocess.Popen:
    import os

    env = {**os.environ, "BDR_GC_GRACE": "0"}
    return subprocess.Popen(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
