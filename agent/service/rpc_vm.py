"""The rpc's VM and boot-verification methods (mirroring ``bdr-agent vm`` / ``bootcheck``).

``vm.console`` turns the session into a byte relay to the VM's VNC socket: the appliance's
SSH key is ``restrict``ed (no port forwarding), so the console travels inside the rpc.
"""

from __future__ import annotations

import os
import select
import socket
from pathlib import Path
from typing import BinaryIO

from agent.errors import AgentError
from agent.service import jobs
from agent.service.rpc_protocol import SENT, RpcError
from agent.service.vms import start_vm, stop_vm
from agent.store.datastore import Store
from agent.vm import bootcheck
from agent.vm import machines as vm


class VmMethods:
    """The rpc's VM and boot-check handlers of one session."""

    def __init__(self, session):
        self.session = session
        self.store = session.store

    def vm_start(
        self,
        req_id,
        point: str,
        net: str = "isolated",
        cpus: int | None = None,
        memory_mib: int | None = None,
        mac: str = "",
        ref: str = "",
        server: str = "",
    ) -> dict:
        record = start_vm(
            self.store, point, net=net, cpus=cpus, memory_mib=memory_mib, mac=mac, ref=ref, wait=30
        )
        # The portal follows the VM as a job: answer with the job's record, the VM inside.
        job = jobs.read_job(self.store, record["job_id"]) if record.get("job_id") else {}
        return {**job, "vm": record}

    def vm_list(self, req_id, server: str | None = None, active: bool = False) -> list:
        return vm.list_vms(self.store, server, active_only=bool(active))

    def vm_status(self, req_id, vm_id: str) -> dict:
        return {
            **vm.read_vm(self.store, vm_id),
            "serial": vm.serial_output(self.store, vm_id, 4096),
        }

    def vm_stop(self, req_id, vm_id: str, force: bool = False) -> dict:
        return stop_vm(self.store, vm_id, force=bool(force), wait=10 if force else 0)

    def vm_screenshot(self, req_id, vm_id: str):
        png = vm.screenshot(self.store, vm_id)
        self.session.send({"id": req_id, "ok": True, "result": {"type": "image/png"}}, png)
        return SENT

    def vm_console(self, req_id, vm_id: str):
        """Answer ok, then relay raw bytes between this session and the VM's VNC socket
        until either side closes; the session ends with the relay. The appliance's SSH key
        is ``restrict``ed (no port forwarding), so the console travels inside the rpc."""
        record = vm.read_vm(self.store, vm_id)
        if record["state"] not in ("running", "stopping"):
            raise RpcError("not_running", f"VM {vm_id} is {record['state']}")
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console.connect(str(vm.sockets(vm.vm_dir(self.store, vm_id)) / "vnc.sock"))
        except OSError as exc:
            console.close()
            raise RpcError("no_console", f"VM {vm_id} has no console: {exc}") from None
        self.session.send({"id": req_id, "ok": True, "result": {"relay": "rfb"}})
        self.session.relay_ended = True
        _relay(self.session.rfile, self.session.wfile, console)
        return SENT

    def bootcheck_start(
        self,
        req_id,
        point: str,
        marker: str = "",
        timeout: float = 300,
        ref: str = "",
        server: str = "",
    ) -> dict:
        record = _point(self.store, point)
        params = {"server": record.server, "volume": record.volume, "source": record.id}
        params.update(point=record.id, marker=marker, timeout=float(timeout))
        return jobs.start_job(self.store, "bootcheck", params, ref=ref)

    def bootcheck_results(self, req_id, server: str | None = None) -> list:
        return bootcheck.list_results(self.store, server)

    def bootcheck_screenshot(self, req_id, point: str):
        path = bootcheck.screenshot_path(self.store, _point(self.store, point).id)
        if not path.exists():
            raise RpcError("not_found", f"no boot screenshot of {point}")
        self.session.send(
            {"id": req_id, "ok": True, "result": {"type": "image/png"}}, path.read_bytes()
        )
        return SENT

    def methods(self) -> dict:
        """Method name -> handler."""
        return {
            "vm.start": self.vm_start,
            # what the portal's Job(kind="virtualize") dispatches
            "virtualize.start": self.vm_start,
            "vm.list": self.vm_list,
            "vm.status": self.vm_status,
            "vm.stop": self.vm_stop,
            "vm.screenshot": self.vm_screenshot,
            "vm.console": self.vm_console,
            "bootcheck.start": self.bootcheck_start,
            "bootcheck.results": self.bootcheck_results,
            "bootcheck.screenshot": self.bootcheck_screenshot,
        }


def _relay(rfile: BinaryIO, wfile: BinaryIO, console: socket.socket) -> None:
    """Copy bytes both ways until one side closes. RFB's server speaks first, so the caller
    has sent nothing after its request line and reading the raw fd skips no buffered bytes."""
    fd = rfile.fileno()
    try:
        while True:
            ready, _, _ = select.select([fd, console], [], [], 5.0)
            if console in ready:
                data = console.recv(65536)
                if not data:
                    return
                wfile.write(data)
                wfile.flush()
            if fd in ready:
                data = os.read(fd, 65536)
                if not data:
                    return
                console.sendall(data)
    except OSError:
        return
    finally:
        console.close()


def _point(store: Path, point_id: str):
    try:
        return Store.open(store).get_point(str(point_id))
    except AgentError as exc:
        raise RpcError("not_found", str(exc)) from None
