"""An S3 endpoint for the tests: ``moto_server`` (moto[server]) on a free 127.0.0.1 port.
No S3 server can be installed here; moto plays the S3 API, Object Lock included."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.sshd import free_port, wait_listening


def start_moto(log: Path) -> tuple[subprocess.Popen, str]:
    """(the server process, its endpoint URL)."""
    binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )  # noqa: SIM115
    return wait_listening(proc, port, log, timeout=30), f"http://127.0.0.1:{port}"
