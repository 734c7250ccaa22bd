"""Booting a recovery point as a VM, as a detached ``virtualize`` job (the VM's whole life)."""

from __future__ import annotations

import time
from pathlib import Path

from agent.errors import AgentError
from agent.service.jobs import ACTIVE, JobError, read_job, start_job
from agent.vm import machines


def start_vm(
    store: Path,
    point_id: str,
    *,
    net: str = "isolated",
    cpus: int | None = None,
    memory_mib: int | None = None,
    mac: str = "",
    ref: str = "",
    wait: float = 60.0,
) -> dict:
    """Boot ``point_id`` as a VM; return its record once qemu runs (or failed, or ``wait``
    seconds passed). Idempotent for a given ``ref``."""
    store = Path(store)
    earlier = machines.find_vm_by_ref(store, ref)
    if earlier:
        return earlier
    vm = machines.create_vm(
        store, point_id, net=net, cpus=cpus, memory_mib=memory_mib, mac=mac, ref=ref
    )
    params = {"server": vm["server"], "volume": vm["volume"], "source": vm["point"],
              "point": vm["point"], "vm": vm["id"]}  # fmt: skip
    try:
        job = start_job(store, "virtualize", params, ref=ref or f"vm:{vm['id']}")
    except JobError as exc:
        machines.discard_vm(store, vm["id"])
        raise AgentError(str(exc)) from None
    machines.update_vm(store, vm["id"], job_id=job["id"])
    return machines.wait_until_started(store, vm["id"], wait)


def stop_vm(store: Path, vm_id: str, *, force: bool = False, wait: float = 60.0) -> dict:
    """Stop the VM and, once it is down, wait out the rest of ``wait`` for its job to record
    its end: the supervisor writes it a moment after qemu exits, and a caller that sees the
    VM stopped must not find its job still running."""
    deadline = time.monotonic() + wait
    vm = machines.stop_vm(store, vm_id, force=force, wait=wait)
    if vm["state"] in machines.ACTIVE or not vm.get("job_id"):
        return vm
    while time.monotonic() < deadline:
        try:
            if read_job(store, vm["job_id"])["state"] not in ACTIVE:
                break
        except JobError:
            break
        time.sleep(0.1)
    return vm
