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
import sys
from pathlib import Path
from typing import BinaryIO

from agent.errors import Refused
from agent.service import appliance_config as config
from agent.service.jobs import JobError
from agent.service.rpc_appliance import ApplianceMethods
from agent.service.rpc_files import FileMethods
from agent.service.rpc_offsite import OffsiteMethods
from agent.service.rpc_protocol import MAX_LINE, PROTOCOL_VERSION, SENT, RpcError, check_params
from agent.service.rpc_vm import VmMethods

AGENT_VERSION = "0.1.0"


class Session:
    """One rpc conversation over a pair of byte streams."""

    def __init__(self, store: Path, rfile: BinaryIO, wfile: BinaryIO):
        self.store = Path(store)
        self.rfile = rfile
        self.wfile = wfile
        self.greeted = False
        self.relay_ended = False  # set once vm.console has turned the session into a relay
        self.methods = {"hello": self.hello}
        self.methods.update(ApplianceMethods(self).methods())  # status, servers, jobs, points
        self.methods.update(VmMethods(self).methods())  # vm.*, virtualize.start, bootcheck.*
        # files.*, restore.start, export.start, exports.*, baremetal.key
        self.methods.update(FileMethods(self.store, self.send).methods())
        self.methods.update(OffsiteMethods(self.store).methods())  # replicate.start, offsite.*

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
            request = _parse(line)
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
            check_params(method, handler, params)
            result = handler(req_id, **params)
            if result is not SENT:
                self.send({"id": req_id, "ok": True, "result": result})
        except Exception as exc:  # noqa: BLE001 - the caller gets a line, never a traceback
            code, message = _error_of(exc)
            self.send({"id": req_id, "ok": False, "error": {"code": code, "message": message}})

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


def _parse(line: bytes) -> dict:
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RpcError("bad_json", "request is not a JSON object on one line") from None
    if not isinstance(request, dict):
        raise RpcError("bad_request", "request must be a JSON object")
    return request


def _error_of(exc: Exception) -> tuple[str, str]:
    """The structured error a failed call answers with."""
    if isinstance(exc, (RpcError, JobError)):
        return exc.code, str(exc)
    if isinstance(exc, Refused):
        return "refused", str(exc)
    if isinstance(exc, config.ConfigError):
        return "bad_config", str(exc)
    if isinstance(exc, TypeError):
        return "bad_params", str(exc)
    return "internal", f"{type(exc).__name__}: {exc}"


def main(store: Path) -> int:
    """Serve one rpc session on this process's stdin and stdout."""
    return Session(store, sys.stdin.buffer, sys.stdout.buffer).serve()
