"""``manage.py console_proxy``: its server in a thread of the test process, or the command
itself as a process of its own; and a websocket client that opens a console the way the VM
page's noVNC does (the portal's Origin, the token as a subprotocol)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.urls import reverse
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from restores.console_access import PROTOCOL, TOKEN_PREFIX
from restores.console_proxy import serve_consoles
from tests.support.database import child_database_url

ROOT = Path(__file__).resolve().parents[2]
# A host in the development ALLOWED_HOSTS: what a browser on the portal's page sends.
PORTAL_ORIGIN = "http://localhost:8000"


@contextmanager
def running_console_proxy():
    """Yield the proxy's ws:// address; stop it on exit."""
    started = threading.Event()
    state: dict = {}

    async def main():
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = asyncio.Event()

        def on_start(port: int) -> None:
            state["port"] = port
            started.set()

        await serve_consoles("127.0.0.1", 0, started=on_start, stop=state["stop"])

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10), "the console proxy did not start"
    try:
        yield f"ws://127.0.0.1:{state['port']}/"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


@contextmanager
def console_proxy_process(**env: str):
    """``manage.py console_proxy --port 0`` as its own process on the test database; yield
    its ws:// address, stop it on exit. ``env`` adds settings (``BDR_CONSOLE_…``)."""
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "console_proxy", "--port", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": child_database_url(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        found = re.search(r"ws://127\.0\.0\.1:(\d+)/", line)
        assert found, f"the console proxy did not start: {line}{proc.stdout.read()}"
        # Keep reading its log so that a full pipe never blocks it.
        threading.Thread(target=proc.stdout.read, daemon=True).start()
        yield f"ws://127.0.0.1:{found.group(1)}/"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connect_console(
    url: str, token: str | None, *, origin: str | None = PORTAL_ORIGIN
) -> ClientConnection:
    """Open the console websocket as the VM page does (``token=None``: no token offered)."""
    protocols = [PROTOCOL] + ([TOKEN_PREFIX + token] if token is not None else [])
    return connect(url, origin=origin, subprotocols=protocols, open_timeout=10)


def console_token(client, vm) -> str:
    """Ask the VM page's token view, as the page does; the token noVNC will offer."""
    response = client.post(reverse("vm_console_token", args=[vm.pk]))
    assert response.status_code == 200, response.content
    first, second = json.loads(response.content)["protocols"]
    assert first == PROTOCOL and second.startswith(TOKEN_PREFIX)
    return second.removeprefix(TOKEN_PREFIX)


class Received:
    """The bytes of a websocket's binary messages as one stream (RFB ignores message edges)."""

    def __init__(self, ws):
        self.ws, self.buffer = ws, b""

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self.ws.recv(timeout=20)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


def refusal(url: str, token: str | None, origin: str = PORTAL_ORIGIN) -> str:
    """The reason the proxy gave for closing (code 1008), having sent nothing else."""
    with connect_console(url, token, origin=origin) as ws, pytest.raises(ConnectionClosed) as c:
        ws.recv(timeout=10)
    assert c.value.rcvd.code == 1008
    return c.value.rcvd.reason
