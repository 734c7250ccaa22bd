"""A minimal QMP client (qemu's JSON control protocol) over a Unix socket.

qemu serves one QMP client at a time; callers hold a connection only for a few commands
and take ``<vm dir>/qmp.lock`` so the supervisor, ``vm stop``, screenshots and backups
never wait on each other's half-open sessions.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path


class QmpError(Exception):
    """qemu refused a command, or its control socket is gone."""


class Qmp:
    """``with Qmp(path) as q: q.execute("query-status")``."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0):
        self.path = Path(path)
        self.timeout = timeout
        self._lock_file = open(self.path.with_name("qmp.lock"), "w")  # noqa: SIM115
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(self.path))
            self._file = self._sock.makefile("rb")
            self._read()  # the greeting
            self.execute("qmp_capabilities")
        except OSError as exc:
            self.close()
            raise QmpError(f"qemu's control socket is not answering: {exc}") from None

    def _read(self) -> dict:
        line = self._file.readline()
        if not line:
            raise QmpError("qemu closed its control socket")
        return json.loads(line)

    def execute(self, command: str, **arguments) -> object:
        """Run one command; its ``return`` value. Events arriving meanwhile are skipped."""
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
            while True:
                reply = self._read()
                if "return" in reply:
                    return reply["return"]
                if "error" in reply:
                    raise QmpError(f"{command}: {reply['error'].get('desc', reply['error'])}")
        except OSError as exc:
            if command == "quit":
                return {}  # qemu may close the socket before answering
            raise QmpError(f"{command}: {exc}") from None

    def close(self) -> None:
        try:
            self._sock.close()
        finally:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()

    def __enter__(self) -> Qmp:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for_socket(path: Path, timeout: float, alive=lambda: True) -> None:
    """Wait until a Unix socket at ``path`` accepts connections (or ``alive()`` turns False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                return
            except OSError:
                pass
            finally:
                probe.close()
        if not alive():
            raise QmpError("qemu exited while starting")
        time.sleep(0.02)
    raise QmpError(f"{path.name} did not appear within {timeout:.0f} s")
