"""Recovery points booted as VMs on the appliance, converting nothing.

A VM is the point served read-only over NBD (``agent.restore.nbd``, in the supervisor's
process), a qcow2 overlay on top of it that takes every write, and qemu-system-x86_64 on the
overlay (KVM when /dev/kvm is usable, TCG otherwise), controlled through QMP. Starting costs the
same whatever the point's size: nothing is copied.

Each VM has a directory ``<store>/appliance/vms/<id>/`` holding its record (``vm.json``,
written atomically), the overlay, qemu's sockets (QMP, VNC) and logs, so a VM outlives an
SSH drop or a portal restart, and the ``run`` service knows its VMs after its own restart.
A VM runs as a detached job of kind ``virtualize`` whose work, ``supervise``, is the
supervisor: it serves NBD, starts qemu, waits for it, and records how it ended. A VM that
ends without being asked to (qemu killed, crashed) fails its job with the reason.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import shutil
import signal
import time
from pathlib import Path

from agent.errors import AgentError, UsageError
from agent.records import process_alive, text_tail, utc_now, write_json_atomic
from agent.store.datastore import Store
from agent.vm.qemu import (  # noqa: F401  (sockets, launch, ... are part of this module's API)
    Launched,
    _check_mac,
    _qemu_log_tail,
    choose_accel,
    default_mac,
    fit_to_host,
    host_capacity,
    kvm_usable,
    launch,
    qemu_command,
    sockets,
)
from agent.vm.qmp import Qmp, QmpError

NETS = ("none", "isolated", "bridge")
ACTIVE = ("starting", "running", "stopping")


def vms_dir(store: Path) -> Path:
    path = Path(store) / "appliance" / "vms"
    path.mkdir(parents=True, exist_ok=True)
    return path


def vm_dir(store: Path, vm_id: str) -> Path:
    if not vm_id or "/" in vm_id or vm_id.startswith("."):
        raise UsageError(f"no VM {vm_id!r}")
    return vms_dir(store) / vm_id


def _write(store: Path, vm: dict) -> None:
    write_json_atomic(vm_dir(store, vm["id"]) / "vm.json", vm)


def _load(store: Path, vm_id: str) -> dict:
    try:
        return json.loads((vm_dir(store, vm_id) / "vm.json").read_text())
    except FileNotFoundError:
        raise UsageError(f"no VM {vm_id!r}") from None


def _pid_alive(pid: int | None, tag: str = "") -> bool:
    if not process_alive(pid):
        return False
    if not tag:
        return True
    try:  # pids are reused: check it is still our process
        return tag.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def read_vm(store: Path, vm_id: str) -> dict:
    """The VM's record; one whose supervisor died unrecorded is failed (and its qemu ended)."""
    vm = _load(store, vm_id)
    if vm["state"] in ACTIVE and not _pid_alive(vm.get("supervisor_pid")):
        if vm["state"] == "starting" and time.time() - vm.get("created_ts", 0) < 30:
            return vm
        if _pid_alive(vm.get("qemu_pid"), vm_id):  # its disk's NBD server is gone with it
            os.kill(vm["qemu_pid"], signal.SIGKILL)
        vm.update(
            state="failed",
            stopped_at=utc_now(),
            error="the VM's supervisor ended unexpectedly (killed or appliance restarted)",
        )
        _write(store, vm)
    return _with_uptime(vm)


def _with_uptime(vm: dict) -> dict:
    if vm["state"] == "running" and vm.get("started_ts"):
        vm["uptime_seconds"] = int(time.time() - vm["started_ts"])
    return vm


def list_vms(store: Path, server: str | None = None, active_only: bool = False) -> list[dict]:
    """Every VM on the appliance, newest first."""
    out = []
    for path in sorted(
        vms_dir(store).glob("*/vm.json"), key=lambda p: p.stat().st_mtime, reverse=True
    ):
        try:
            vm = read_vm(store, path.parent.name)
        except (UsageError, json.JSONDecodeError):
            continue
        if server and vm["server"] != server:
            continue
        if active_only and vm["state"] not in ACTIVE:
            continue
        out.append(vm)
    return out


def running_vm_of(store: Path, server: str, volume: str | None = None) -> dict | None:
    """The running VM of ``server`` (booted from ``volume`` when given), if any."""
    for vm in list_vms(store, server, active_only=True):
        if vm["state"] == "running" and (volume is None or vm["volume"] == volume):
            return vm
    return None


# -- starting ------------------------------------------------------------------------------------
def find_vm_by_ref(store: Path, ref: str) -> dict | None:
    """The VM an earlier start with idempotency key ``ref`` created, if any."""
    if ref:
        for vm in list_vms(store):
            if vm.get("ref") == ref:
                return vm
    return None


def create_vm(
    store: Path,
    point_id: str,
    *,
    net: str = "isolated",
    cpus: int | None = None,
    memory_mib: int | None = None,
    mac: str = "",
    ref: str = "",
) -> dict:
    """Write the record of a new VM of ``point_id`` (state "starting"); ``supervise`` runs it.

    Starting it as a detached job is the service's part (``agent.service.vms.start_vm``)."""
    if net not in NETS:
        raise UsageError(f"--net must be one of {', '.join(NETS)}")
    record = Store.open(store).get_point(point_id)
    cpus, memory_mib = fit_to_host(cpus, memory_mib)
    vm_id = f"{record.server}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(2)}"
    vm = {
        "id": vm_id, "ref": ref, "server": record.server, "volume": record.volume,
        "point": record.id, "size": record.size, "net": net, "cpus": cpus,
        "memory_mib": memory_mib,
        "mac": _check_mac(mac) if mac else default_mac(record.server),
        "state": "starting", "created_at": utc_now(), "created_ts": time.time(),
        "started_at": None, "started_ts": None, "stopped_at": None, "error": "",
        "accel": None, "job_id": None, "supervisor_pid": None, "qemu_pid": None,
        "seconds_to_running": None,
    }  # fmt: skip
    vm_dir(store, vm_id).mkdir(mode=0o700)
    _write(store, vm)
    return vm


def discard_vm(store: Path, vm_id: str) -> None:
    """Remove a VM that never started (its job was refused)."""
    shutil.rmtree(vm_dir(store, vm_id), ignore_errors=True)


def wait_until_started(store: Path, vm_id: str, wait: float) -> dict:
    """The VM's record once it left "starting" (or ``wait`` seconds passed)."""
    deadline = time.monotonic() + wait
    vm = read_vm(store, vm_id)
    while vm["state"] == "starting" and time.monotonic() < deadline:
        time.sleep(0.05)
        vm = read_vm(store, vm_id)
    return vm


class _record_lock:
    """Serialises read-modify-write of one VM's record between processes."""

    def __init__(self, store: Path, vm_id: str):
        self.path = vm_dir(store, vm_id) / "record.lock"

    def __enter__(self):
        self.f = open(self.path, "w")  # noqa: SIM115
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        self.f.close()


def update_vm(store: Path, vm_id: str, **changes) -> dict:
    """Change fields of a VM's record under its lock."""
    with _record_lock(store, vm_id):
        vm = _load(store, vm_id)
        vm.update(changes)
        _write(store, vm)
        return vm


# -- the supervisor (the ``virtualize`` job; ``vm run`` in the CLI) ---------------------------
def supervise(store_root: Path, vm_id: str, progress=None) -> dict:
    """Run the VM until it ends: what the ``virtualize`` job executes. Raises on a failure."""
    store_root = Path(store_root)
    vm = update_vm(store_root, vm_id, supervisor_pid=os.getpid())
    directory = vm_dir(store_root, vm_id)
    t0 = time.monotonic()
    try:
        launched = launch(
            Store.open(store_root),
            vm["point"],
            directory,
            net=vm["net"],
            cpus=vm["cpus"],
            memory_mib=vm["memory_mib"],
            mac=vm["mac"],
        )
    except AgentError as exc:
        update_vm(store_root, vm_id, state="failed", error=str(exc), stopped_at=utc_now())
        raise
    quitting = False

    def on_term(signum, frame):  # the job was cancelled: power the VM off
        nonlocal quitting
        quitting = True
        (directory / "stop").write_text("poweroff")
        launched.proc.terminate()

    signal.signal(signal.SIGTERM, on_term)
    update_vm(
        store_root,
        vm_id,
        state="running",
        qemu_pid=launched.proc.pid,
        accel=launched.accel,
        started_at=utc_now(),
        started_ts=time.time(),
        seconds_to_running=round(time.monotonic() - t0, 3),
    )
    if progress is not None:  # a "running" phase event for the job's record
        progress.start("running", 0)
        progress.finish()
    code = launched.proc.wait()
    launched.nbd.shutdown()
    requested = (directory / "stop").exists()
    log_tail = _qemu_log_tail(directory)
    if code == 0 and (requested or "terminating on signal" not in log_tail):
        how = "powered off" if requested else "the guest shut itself down"
        return update_vm(
            store_root, vm_id, state="stopped", stopped_at=utc_now(), error="", how=how
        )
    if code < 0:
        reason = f"qemu was killed by signal {-code}"
    elif "terminating on signal" in log_tail:
        reason = f"qemu was stopped from outside ({log_tail.strip()})"
    else:
        reason = f"qemu exited with code {code}: {log_tail}"
    reason += f"; the VM is gone, recovery point {vm['point']} is untouched"
    update_vm(store_root, vm_id, state="failed", stopped_at=utc_now(), error=reason)
    raise AgentError(reason)


# -- control ------------------------------------------------------------------------------------
def stop_vm(store: Path, vm_id: str, *, force: bool = False, wait: float = 60.0) -> dict:
    """Graceful stop (ACPI power button) or, with ``force``, power off; wait up to ``wait`` s."""
    vm = read_vm(store, vm_id)
    if vm["state"] not in ACTIVE:
        return vm
    directory = vm_dir(store, vm_id)
    (directory / "stop").write_text("poweroff" if force else "shutdown")
    try:
        with Qmp(sockets(directory) / "qmp.sock", timeout=5) as q:
            q.execute("quit" if force else "system_powerdown")
    except QmpError:
        if force and _pid_alive(vm.get("qemu_pid"), vm_id):
            os.kill(vm["qemu_pid"], signal.SIGKILL)
    if not force:
        vm = update_vm(store, vm_id, state="stopping") if vm["state"] == "running" else vm
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        vm = read_vm(store, vm_id)
        if vm["state"] not in ACTIVE:
            return vm
        time.sleep(0.1)
    if wait > 0 and not force:
        raise AgentError(
            f"VM {vm_id} did not shut down within {wait:.0f} s (the guest ignored the power "
            "button); power it off with --force"
        )
    return read_vm(store, vm_id)


def screenshot(store: Path, vm_id: str) -> bytes:
    """The VM's screen now, as PNG bytes."""
    vm = read_vm(store, vm_id)
    if vm["state"] not in ("running", "stopping"):
        raise UsageError(f"VM {vm_id} is {vm['state']}")
    directory = vm_dir(store, vm_id)
    target = directory / f"screen.{secrets.token_hex(3)}.png"
    try:
        with Qmp(sockets(directory) / "qmp.sock", timeout=10) as q:
            q.execute("screendump", filename=str(target), format="png")
        return target.read_bytes()
    except QmpError as exc:
        raise AgentError(f"no screenshot of {vm_id}: {exc}") from None
    finally:
        target.unlink(missing_ok=True)


def serial_output(store: Path, vm_id: str, max_bytes: int = 64 * 1024) -> str:
    """The tail of what the VM wrote to its first serial port."""
    return text_tail(vm_dir(store, vm_id) / "serial.log", max_bytes)
