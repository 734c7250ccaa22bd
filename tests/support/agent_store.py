"""Real agent stores and volumes for the tests, made through the agent's CLI contract."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path


def agent(
    store: Path, *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agent", "--store", str(store), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=check,
    )


def agent_json(store: Path, *args: str):
    out = agent(store, "--json", *args).stdout
    lines = [line for line in out.splitlines() if line.strip()]
    return json.loads(lines[-1])


def init_store(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    agent(path / "store", "init", "--key-file", str(path / "storage.key"))
    return path / "store"


def make_volume(path: Path, size_mib: int = 8, seed: int = 1) -> Path:
    """A volume image with a mix of zeros, text and random data."""
    import random

    rng = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(size_mib):
            kind = i % 3
            if kind == 0:
                f.seek(1 << 20, os.SEEK_CUR)
            elif kind == 1:
                f.write(
                    (b"invoice ledger payroll %d " % i) * ((1 << 20) // 26)
                    + b"\0" * ((1 << 20) % 26)
                )
            else:
                f.write(rng.randbytes(1 << 20))
        f.truncate(size_mib << 20)
    return path


def mutate(path: Path, seed: int) -> None:
    import random

    rng = random.Random(seed)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for _ in range(4):
            f.seek(rng.randrange(0, size - 4096))
            f.write(rng.randbytes(4096))


@contextlib.contextmanager
def rpc_session(store: Path):
    """A real ``bdr-agent rpc`` process on ``store``, greeted, as the portal's AgentClient."""
    from appliances.client import AgentClient
    from appliances.transport import Stream

    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(store), "rpc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    client = AgentClient(Stream(proc.stdout, proc.stdin, proc.stdin.close))
    client.call("hello", version=1)
    try:
        yield client
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def job_child_pid(appliance, agent_job_id: str, tries: int = 500) -> int:
    """The pid of the CLI process a running agent job runs, once its runner has started it."""
    import time

    from appliances.client import connect

    with connect(appliance) as client:
        for _ in range(tries):
            record = client.call("jobs.status", id=agent_job_id)
            if record.get("child_pid"):
                return record["child_pid"]
            time.sleep(0.02)
    raise AssertionError(f"job {agent_job_id} started no process: {record}")


def wait_for_agent_job(rpc, job_id: str, timeout: float = 60) -> dict:
    """The agent job's record once it has ended (polled through ``rpc``)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = rpc.call("jobs.status", id=job_id)
        if record["state"] not in ("queued", "running"):
            return record
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def backed_up_disk(root: Path, parts: list, server: str, volume: str, table: str = "mbr"):
    """(store, the point's record): a new store under ``root`` holding one backup of a disk
    made with ``tests.agent.fs_images.make_disk(…, parts, table)``."""
    from tests.agent.fs_images import make_disk

    store = root / "store"
    agent(store, "init", "--key-file", str(root / "key"))
    image = make_disk(root / "disk.img", parts, table)
    return store, agent_json(store, "backup", server, str(image), "--volume", volume)
