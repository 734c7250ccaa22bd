"""``bdr-agent rpc``: the portal's protocol on stdin/stdout (the SSH forced command).

Framing: one JSON object per line, UTF-8. A request is
``{"id": 7, "method": "jobs.status", "params": {...}}``; its answer is
``{"id": 7, "ok": true, "result": ...}`` or
``{"id": 7, "ok": false, "error": {"code": ..., "message": ...}}``.
A long call may send events first: ``{"id": 7, "event": {...}}``. An answer that carries bytes
says ``"binary": N`` and is followed by exactly N raw bytes. The first call must be ``hello``;
the protocol version is agreed there. Anything malformed gets a structured error and the
session goes on; nothing a caller sends can make the agent print a traceback.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, BinaryIO

from agent import appliance_config as config
from agent import jobs
from agent.rpc_files import FileMethods

PROTOCOL_VERSION = 1
MAX_LINE = 1 << 20
AGENT_VERSION = "0.1.0"


class RpcError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _cli(store: Path, *args: str, timeout: float = 300) -> Any:
    """Run one agent CLI command with --json and return what it printed last."""
    proc = subprocess.run(
        [sys.executable, "-m", "agent", "--store", str(store), "--json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode not in (0, 3):
        message = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        raise RpcError("agent_error", message)
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    return json.loads(lines[-1]) if lines else None


class Session:
    """One rpc conversation over a pair of byte streams."""

    def __init__(self, store: Path, rfile: BinaryIO, wfile: BinaryIO):
        self.store = Path(store)
        self.rfile = rfile
        self.wfile = wfile
        self.greeted = False
        self.relay_ended = False  # set once vm.console has turned the session into a relay
        self.methods = {
            "hello": self.hello,
            "status": self.status,
            "servers.list": self.servers_list,
            "servers.configure": self.servers_configure,
            "servers.remove": self.servers_remove,
            "backup.start": self.backup_start,
            "verify.start": self.verify_start,
            "rollup.start": self.rollup_start,
            "jobs.list": self.jobs_list,
            "jobs.status": self.jobs_status,
            "jobs.follow": self.jobs_follow,
            "jobs.cancel": self.jobs_cancel,
            "jobs.log": self.jobs_log,
            "points.list": self.points_list,
            "settings.get": self.settings_get,
            "settings.set": self.settings_set,
        }
        self.methods.update(vm_methods(self))
        # files.*, restore.start, export.start, baremetal.key: agent/rpc_files.py
        self.methods.update(FileMethods(self.store, self.send, RpcError, _SENT).methods())

    # framing -------------------------------------------------------------------------------
    def send(self, message: dict, payload: bytes | None = None) -> None:
        if payload is not None:
            message = {**message, "binary": len(payload)}
        self.wfile.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        if payload is not None:
            self.wfile.write(payload)
        self.wfile.flush()

    def serve(self) -> int:
        while not self.relay_ended:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line:
                return 0
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                while line and not line.endswith(b"\n"):  # drain the rest of the long line
                    line = self.rfile.readline(MAX_LINE)
                self.send(
                    {
                        "id": None,
                        "ok": False,
                        "error": {"code": "too_large", "message": "request line over 1 MiB"},
                    }
                )
                continue
            if not line.strip():
                continue
            self.handle_line(line)
        return 0  # after vm.console's relay the session is over

    def handle_line(self, line: bytes) -> None:
        req_id = None
        try:
            try:
                request = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise RpcError("bad_json", "request is not a JSON object on one line") from None
            if not isinstance(request, dict):
                raise RpcError("bad_request", "request must be a JSON object")
            req_id = request.get("id")
            if not isinstance(req_id, (int, str, type(None))):
                req_id = None
                raise RpcError("bad_request", "id must be a number or a string")
            method = request.get("method")
            params = request.get("params") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise RpcError("bad_request", "method must be a string and params an object")
            handler = self.methods.get(method)
            if handler is None:
                raise RpcError("unknown_method", f"unknown method {method!r}")
            if not self.greeted and method != "hello":
                raise RpcError("no_hello", "say hello first")
            result = handler(req_id, **params)
            if result is not _SENT:
                self.send({"id": req_id, "ok": True, "result": result})
        except RpcError as exc:
            self.send({"id": req_id, "ok": False, "error": {"code": exc.code, "message": str(exc)}})
        except jobs.JobError as exc:
            self.send({"id": req_id, "ok": False, "error": {"code": exc.code, "message": str(exc)}})
        except config.ConfigError as exc:
            self.send(
                {"id": req_id, "ok": False, "error": {"code": "bad_config", "message": str(exc)}}
            )
        except TypeError as exc:
            self.send(
                {"id": req_id, "ok": False, "error": {"code": "bad_params", "message": str(exc)}}
            )
        except Exception as exc:  # noqa: BLE001 - the caller gets a line, never a traceback
            self.send(
                {
                    "id": req_id,
                    "ok": False,
                    "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"},
                }
            )

    # methods -------------------------------------------------------------------------------
    def hello(self, req_id, version: int = PROTOCOL_VERSION, client: str = "") -> dict:
        if version != PROTOCOL_VERSION:
            raise RpcError(
                "unsupported_version",
                f"protocol version {version} not supported; this agent speaks {PROTOCOL_VERSION}",
            )
        self.greeted = True
        return {
            "protocol": PROTOCOL_VERSION,
            "agent_version": AGENT_VERSION,
            "capabilities": sorted(self.methods),
            "serial": config.load_settings(self.store)["serial"],
        }

    def status(self, req_id) -> dict:
        usage = shutil.disk_usage(self.store)
        return {
            "time": jobs._now(),
            "capacity_bytes": usage.total,
            "used_bytes": usage.total - usage.free,
            "free_bytes": usage.free,
            "servers": sorted(config.load_servers(self.store)),
            "active_jobs": [j["id"] for j in jobs.list_jobs(self.store, active_only=True)],
        }

    def servers_list(self, req_id) -> list[dict]:
        return [asdict(s) for s in config.load_servers(self.store).values()]

    def servers_configure(
        self,
        req_id,
        name: str,
        volumes: dict,
        schedule: dict | None = None,
        retention: dict | None = None,
    ) -> dict:
        server = config.server_from_dict(
            {"name": name, "volumes": volumes, "schedule": schedule or {}}
        )
        if retention is not None:
            set_retention(self.store, name, retention)
        config.save_server(self.store, server)
        return asdict(server)

    def servers_remove(self, req_id, name: str) -> dict:
        return {"removed": config.remove_server(self.store, name)}

    def backup_start(
        self, req_id, server: str, volume: str | None = None, ref: str = "", at: str | None = None
    ) -> dict:
        return start_backup(self.store, server, volume, ref=ref, at=at)

    def verify_start(self, req_id, points: list | None = None, ref: str = "") -> dict:
        if points is not None and not all(isinstance(p, str) for p in points):
            raise RpcError("bad_params", "points must be a list of point ids")
        return jobs.start_job(self.store, "verify", {"points": points or []}, ref=ref)

    def rollup_start(self, req_id, ref: str = "", now: str | None = None) -> dict:
        return jobs.start_job(self.store, "rollup", {"now": now} if now else {}, ref=ref)

    def jobs_list(self, req_id, active: bool = False, limit: int = 100) -> list[dict]:
        return jobs.list_jobs(self.store, active_only=bool(active), limit=int(limit))

    def jobs_status(self, req_id, id: str) -> dict:  # noqa: A002 - the protocol's name
        return jobs.read_job(self.store, str(id))

    def jobs_follow(self, req_id, id: str, timeout: float = 3600, interval: float = 0.5):  # noqa: A002
        """Send the record as an event whenever it changes, then the final record."""
        deadline = time.monotonic() + float(timeout)
        last = None
        while True:
            job = jobs.read_job(self.store, str(id))
            if job != last:
                self.send({"id": req_id, "event": job})
                last = job
            if job["state"] not in jobs.ACTIVE or time.monotonic() > deadline:
                self.send({"id": req_id, "ok": True, "result": job})
                return _SENT
            time.sleep(max(0.05, float(interval)))

    def jobs_cancel(self, req_id, id: str) -> dict:  # noqa: A002
        return jobs.cancel_job(self.store, str(id))

    def jobs_log(self, req_id, id: str) -> dict:  # noqa: A002
        return {"log": jobs.read_log(self.store, str(id))}

    def points_list(self, req_id, server: str | None = None) -> list:
        args = ["points"] + ([server] if server else [])
        return _cli(self.store, *args) or []

    def settings_get(self, req_id) -> dict:
        return config.load_settings(self.store)

    def settings_set(self, req_id, **changes) -> dict:
        return config.save_settings(self.store, changes)


_SENT = object()


def start_backup(
    store: Path,
    server_name: str,
    volume: str | None = None,
    *,
    ref: str = "",
    at: str | None = None,
) -> dict:
    """Start a detached backup of one configured server's volume (the first if none named)."""
    servers = config.load_servers(store)
    server = servers.get(server_name)
    if server is None:
        raise RpcError("not_found", f"no server {server_name!r} is configured on this appliance")
    volume = volume or next(iter(server.volumes))
    if volume not in server.volumes:
        raise RpcError("not_found", f"server {server_name!r} has no volume {volume!r}")
    params = {"server": server_name, "volume": volume, "source": server.volumes[volume]}
    from agent.vm import running_vm_of

    running = running_vm_of(store, server_name, volume)
    if running:  # the server runs as a VM here: back up the VM's disk, keep the chain going
        params.update(source=f"vm:{running['id']}", vm=running["id"])
    if at:
        params["at"] = at
    return jobs.start_job(store, "backup", params, ref=ref)


def set_retention(store: Path, server: str, retention: dict) -> None:
    """Store a server's retention counts with the store's policy."""
    tiers = ("intraday", "daily", "weekly", "monthly", "yearly")
    unknown = set(retention) - set(tiers)
    if unknown:
        raise RpcError("bad_params", f"unknown retention tier(s): {', '.join(sorted(unknown))}")
    for tier, count in retention.items():
        if not isinstance(count, int) or count < 0:
            raise RpcError("bad_params", f"retention {tier} must be a whole number >= 0")
    from dataclasses import replace

    from agent.store import Store

    opened = Store.open(store)
    opened.save_policy(server, replace(opened.load_policy(server), **retention))


def vm_methods(session: Session) -> dict:
    """The rpc's VM and boot-verification methods (mirroring ``bdr-agent vm`` / ``bootcheck``)."""
    from agent import bootcheck, vm

    store = session.store

    def vm_start(
        req_id,
        point: str,
        net: str = "isolated",
        cpus: int | None = None,
        memory_mib: int | None = None,
        mac: str = "",
        ref: str = "",
        server: str = "",
    ) -> dict:
        record = vm.start_vm(
            store, point, net=net, cpus=cpus, memory_mib=memory_mib, mac=mac, ref=ref, wait=30
        )
        # The portal follows the VM as a job: answer with the job's record, the VM inside.
        job = jobs.read_job(store, record["job_id"]) if record.get("job_id") else {}
        return {**job, "vm": record}

    def vm_list(req_id, server: str | None = None, active: bool = False) -> list:
        return vm.list_vms(store, server, active_only=bool(active))

    def vm_status(req_id, vm_id: str) -> dict:
        return {**vm.read_vm(store, vm_id), "serial": vm.serial_output(store, vm_id, 4096)}

    def vm_stop(req_id, vm_id: str, force: bool = False) -> dict:
        return vm.stop_vm(store, vm_id, force=bool(force), wait=10 if force else 0)

    def vm_screenshot(req_id, vm_id: str):
        png = vm.screenshot(store, vm_id)
        session.send({"id": req_id, "ok": True, "result": {"type": "image/png"}}, png)
        return _SENT

    def vm_console(req_id, vm_id: str):
        """Answer ok, then relay raw bytes between this session and the VM's VNC socket
        until either side closes; the session ends with the relay. The appliance's SSH key
        is ``restrict``ed (no port forwarding), so the console travels inside the rpc."""
        record = vm.read_vm(store, vm_id)
        if record["state"] not in ("running", "stopping"):
            raise RpcError("not_running", f"VM {vm_id} is {record['state']}")
        console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            console.connect(str(vm.sockets(vm.vm_dir(store, vm_id)) / "vnc.sock"))
        except OSError as exc:
            console.close()
            raise RpcError("no_console", f"VM {vm_id} has no console: {exc}") from None
        session.send({"id": req_id, "ok": True, "result": {"relay": "rfb"}})
        session.relay_ended = True
        _relay(session.rfile, session.wfile, console)
        return _SENT

    def bootcheck_start(
        req_id, point: str, marker: str = "", timeout: float = 300, ref: str = "", server: str = ""
    ) -> dict:
        record = _point(store, point)
        params = {"server": record.server, "volume": record.volume, "source": record.id}
        params.update(point=record.id, marker=marker, timeout=float(timeout))
        return jobs.start_job(store, "bootcheck", params, ref=ref)

    def bootcheck_results(req_id, server: str | None = None) -> list:
        return bootcheck.list_results(store, server)

    def bootcheck_screenshot(req_id, point: str):
        path = bootcheck.screenshot_path(store, _point(store, point).id)
        if not path.exists():
            raise RpcError("not_found", f"no boot screenshot of {point}")
        session.send({"id": req_id, "ok": True, "result": {"type": "image/png"}}, path.read_bytes())
        return _SENT

    return {
        "vm.start": vm_start,
        "virtualize.start": vm_start,  # what the portal's Job(kind="virtualize") dispatches
        "vm.list": vm_list,
        "vm.status": vm_status,
        "vm.stop": vm_stop,
        "vm.screenshot": vm_screenshot,
        "vm.console": vm_console,
        "bootcheck.start": bootcheck_start,
        "bootcheck.results": bootcheck_results,
        "bootcheck.screenshot": bootcheck_screenshot,
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
    from agent.errors import AgentError
    from agent.store import Store

    try:
        return Store.open(store).get_point(str(point_id))
    except AgentError as exc:
        raise RpcError("not_found", str(exc)) from None


def main(store: Path) -> int:
    """Serve one rpc session on this process's stdin and stdout."""
    return Session(store, sys.stdin.buffer, sys.stdout.buffer).serve()
