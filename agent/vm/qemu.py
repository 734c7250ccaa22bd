"""qemu on the appliance: acceleration, host capacity, MAC addresses, the command line, and
launching a VM on a qcow2 overlay of a point's NBD export. ``agent.vm.machines`` keeps the records
and the life cycle; this module only knows how to start and end one qemu.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError, UsageError
from agent.restore.nbd import NbdServer, nbd_uri
from agent.store.datastore import Store
from agent.vm.qmp import Qmp, QmpError, wait_for_socket

QEMU = os.environ.get("BDR_QEMU", "qemu-system-x86_64")
BRIDGE = os.environ.get("BDR_VM_BRIDGE", "br0")


def sockets(directory: Path) -> Path:
    """A short directory for a VM's Unix sockets (paths are limited to 107 bytes)."""
    # Per-uid, 0700; BDR_RUN_DIR (e.g. /run/bdr-agent under systemd) overrides.
    default = f"/tmp/bdr-agent-{os.getuid()}"  # noqa: S108
    base = Path(os.environ.get("BDR_RUN_DIR") or default)
    name = hashlib.blake2b(str(Path(directory).resolve()).encode(), digest_size=8).hexdigest()
    path = base / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def kvm_usable() -> bool:
    """True when /dev/kvm opens read-write and answers KVM_GET_API_VERSION."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return fcntl.ioctl(fd, 0xAE00) == 12
    except OSError:
        return False
    finally:
        os.close(fd)


def choose_accel() -> str:
    """``kvm`` when /dev/kvm is usable, else ``tcg``; env BDR_VM_ACCEL=kvm|tcg overrides."""
    forced = os.environ.get("BDR_VM_ACCEL", "auto")
    if forced in ("kvm", "tcg"):
        return forced
    return "kvm" if kvm_usable() else "tcg"


def host_capacity() -> tuple[int, int]:
    """(CPUs, MiB of memory) a VM may take on this appliance: all CPUs, 3/4 of available RAM."""
    mem_kib = 1 << 20
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    mem_kib = int(line.split()[1])
    except OSError:
        pass
    return os.cpu_count() or 1, max(64, mem_kib * 3 // 4 // 1024)


def fit_to_host(cpus: int | None, memory_mib: int | None) -> tuple[int, int]:
    """The server's profile cut down to what the appliance has (the portal cuts by model)."""
    max_cpus, max_mem = host_capacity()
    cpus = max(1, min(int(cpus or 2), max_cpus))
    return cpus, max(32, min(int(memory_mib or 2048), max_mem))


def default_mac(server: str) -> str:
    """A stable, locally administered MAC for a server whose real one is unknown."""
    h = hashlib.blake2b(server.encode(), digest_size=3).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in h)


def _check_mac(mac: str) -> str:
    parts = mac.lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(
        len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts
    ):
        raise UsageError(f"bad MAC address {mac!r}")
    return ":".join(parts)


# -- the record ----------------------------------------------------------------------------------
@dataclass
class Launched:
    """A qemu running on an overlay of a point's NBD export (see ``launch``)."""

    directory: Path
    nbd: NbdServer
    proc: subprocess.Popen
    accel: str

    def alive(self) -> bool:
        return self.proc.poll() is None

    def qmp(self, timeout: float = 10.0) -> Qmp:
        return Qmp(sockets(self.directory) / "qmp.sock", timeout=timeout)

    def end(self, timeout: float = 10.0) -> int:
        """Power off (QMP quit, then SIGKILL) and stop serving the point."""
        if self.alive():
            try:
                with self.qmp(timeout=2) as q:
                    q.execute("quit")
            except (QmpError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        self.nbd.shutdown()
        return code


def qemu_command(
    directory: Path, *, net: str, cpus: int, memory_mib: int, mac: str, accel: str
) -> list[str]:
    """qemu's command line for a VM whose files live in ``directory``."""
    esc = lambda p: str(p).replace(",", ",,")  # noqa: E731 - qemu's option escaping
    cmd = [QEMU, "-name", f"bdr-{directory.name}", "-machine", "pc", "-nodefaults"]
    cmd += (
        ["-no-user-config", "-accel", "kvm", "-accel", "tcg"]
        if accel == "kvm"
        else ["-accel", "tcg"]
    )
    cmd += ["-smp", str(cpus), "-m", str(memory_mib), "-vga", "std"]
    cmd += [
        "-blockdev",
        f"driver=file,filename={esc(directory / 'overlay.qcow2')},node-name=overlay-file",
        "-blockdev",
        "driver=qcow2,file=overlay-file,node-name=disk0",
        "-device",
        "ide-hd,drive=disk0,bus=ide.0,unit=0,bootindex=0",
        "-serial",
        f"file:{esc(directory / 'serial.log')}",
        "-display",
        "none",
        "-vnc",
        f"unix:{esc(sockets(directory) / 'vnc.sock')}",
        "-qmp",
        f"unix:{esc(sockets(directory) / 'qmp.sock')},server=on,wait=off",
    ]
    # e1000: every guest has its driver. romfile= drops iPXE's option ROM: we boot the disk.
    if net == "isolated":  # user-mode network with no way out: the guest sees a LAN, nothing else
        cmd += ["-netdev", "user,id=net0,restrict=on"]
    elif net == "bridge":
        cmd += ["-netdev", f"bridge,id=net0,br={BRIDGE}"]
    if net != "none":
        cmd += ["-device", f"e1000,netdev=net0,mac={mac},romfile="]
    return cmd


def launch(
    store: Store,
    point_id: str,
    directory: Path,
    *,
    net: str = "none",
    cpus: int = 1,
    memory_mib: int = 512,
    mac: str = "",
) -> Launched:
    """Serve the point over NBD, put an overlay on it and start qemu; return once QMP answers."""
    directory = Path(directory)
    sock = sockets(directory) / "nbd.sock"
    server = NbdServer(store, point_id, sock)
    server.start()
    try:
        _create_overlay(directory / "overlay.qcow2", nbd_uri(sock))
        accel = choose_accel()
        cmd = qemu_command(
            directory,
            net=net,
            cpus=cpus,
            memory_mib=memory_mib,
            mac=mac or default_mac("vm"),
            accel=accel,
        )
        with open(directory / "qemu.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        launched = Launched(directory, server, proc, accel)
        try:
            wait_for_socket(sockets(directory) / "qmp.sock", 30, alive=launched.alive)
            with launched.qmp() as q:
                if not q.execute("query-kvm").get("enabled"):
                    launched.accel = "tcg"
        except QmpError:
            launched.end()
            raise AgentError(f"qemu did not start: {_qemu_log_tail(directory)}") from None
        return launched
    except subprocess.CalledProcessError as exc:
        server.shutdown()
        raise AgentError(
            f"qemu-img could not create the overlay: {exc.stderr.decode().strip()}"
        ) from None
    except BaseException:
        server.shutdown()
        raise


def _create_overlay(overlay: Path, backing_uri: str) -> None:
    """The qcow2 that takes the VM's writes, over the point's read-only NBD export."""
    if not overlay.exists():
        cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing_uri, "-F", "raw"]
        subprocess.run([*cmd, str(overlay)], check=True, capture_output=True, timeout=60)


def _qemu_log_tail(directory: Path) -> str:
    try:
        lines = (directory / "qemu.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
