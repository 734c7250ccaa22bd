"""Fixtures for the agent: real stores on disk, real volumes, the real CLI."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agent.store.datastore import Store, init_store

CHUNK = 64 << 10
REPO = Path(__file__).resolve().parents[2]


def write_volume(path: Path, size: int, seed: int) -> Path:
    """A volume of 16 KiB regions: ~30% holes, ~40% text, ~30% random (like mkvol.py)."""
    rng = random.Random(seed)
    region = 16 << 10
    with open(path, "wb") as f:
        for off in range(0, size, region):
            r = rng.random()
            if r < 0.3:
                continue
            f.seek(off)
            if r < 0.7:
                words = [b"invoice", b"ledger", b"mailbox", b"server", b"payroll", b"row"]
                f.write(b" ".join(rng.choice(words) for _ in range(region // 6))[:region])
            else:
                f.write(rng.randbytes(region))
        f.truncate(size)
    return path


def mutate_volume(path: Path, seed: int, writes: int = 3) -> None:
    """Overwrite a few random 4 KiB-aligned runs, like a quarter hour of server writes."""
    rng = random.Random(seed)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for _ in range(writes):
            run = rng.choice([1, 2, 8]) * 4096
            f.seek(rng.randrange(0, size - run) // 4096 * 4096)
            f.write(rng.randbytes(run))


def rewrite_chunks(path: Path, chunks: list[int], chunk_size: int = CHUNK) -> None:
    """Overwrite whole chunks with random bytes: stored full, not as deltas."""
    with open(path, "r+b") as f:
        for i in chunks:
            f.seek(i * chunk_size)
            f.write(os.urandom(chunk_size))


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def key_file(tmp_path) -> Path:
    return tmp_path / "storage.key"


@pytest.fixture
def store(tmp_path, key_file, monkeypatch) -> Store:
    """An empty store with 64 KiB chunks and no gc grace (tests decide what gc sees)."""
    monkeypatch.delenv("BDR_STORE", raising=False)
    monkeypatch.delenv("BDR_KEY_FILE", raising=False)
    monkeypatch.setenv("BDR_GC_GRACE", "0")
    return init_store(tmp_path / "store", key_file, chunk_size=CHUNK, gc_grace=0)


@pytest.fixture
def volume(tmp_path) -> Path:
    return write_volume(tmp_path / "disk0.img", 2 << 20, seed=1)


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``python -m agent ARGS`` as a real process."""
    full_env = {**os.environ, "BDR_GC_GRACE": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=REPO,
        timeout=timeout,
    )


@pytest.fixture
def cli(store):
    """``cli("points", "--json")`` runs bdr-agent against the fixture's store."""

    def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return run_cli("--store", str(store.root), *args, env=env)

    return run


def store_files(root: Path) -> dict[str, bytes]:
    """Every file in a store (except lock files) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file() and "locks" not in p.parts
    }
