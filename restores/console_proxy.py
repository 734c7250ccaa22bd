"""The websocket end of the VM console: ``manage.py console_proxy`` serves this.

Each websocket carries one console: ``ws(s)://<proxy>/?token=<one-time token>``. The token is
checked and used up (restores/console.py), the appliance's rpc is opened and switched to the
VM's VNC relay, and binary frames go both ways until either side closes. Blocking work (the
ORM, paramiko) runs in threads; the event loop only moves frames.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from django import db
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from restores import console

log = logging.getLogger(__name__)


class _OneLineHandshakeFailures(logging.Filter):
    """websockets logs each failed opening handshake (scanners, health checks, plain HTTP) as
    an error with a traceback; one warning line says all there is to say."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "opening handshake failed" and record.exc_info:
            record.msg, record.args = "opening handshake failed: %s", (record.exc_info[1],)
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


# websockets' own messages (every connection opened at INFO) go here, warnings and up.
ws_log = logging.getLogger(f"{__name__}.websockets")
ws_log.setLevel(logging.WARNING)
ws_log.addFilter(_OneLineHandshakeFailures())

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011


def _in_thread_with_db(func: Callable, *args):
    """Run ``func`` in a worker thread that closes its database connection when done, so a
    long-running proxy keeps no stale connections."""

    def run():
        try:
            return func(*args)
        finally:
            db.connections.close_all()  # this thread's connections only

    return asyncio.to_thread(run)


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if address else "?"


async def handle(ws: ServerConnection) -> None:
    """One browser's console, from token to the end of the relay."""
    query = parse_qs(urlsplit(ws.request.path).query)
    token = (query.get("token") or [""])[0]
    try:
        user, vm = await _in_thread_with_db(console.redeem_token, token)
    except console.ConsoleRefused as exc:
        log.warning("console refused for %s: %s", _peer(ws), exc)
        await ws.close(POLICY_VIOLATION, str(exc)[:120])
        return
    try:
        session = await _in_thread_with_db(console.open_console, vm)
    except console.ConsoleRefused as exc:
        log.warning("console of VM %s for %s failed: %s", vm.pk, user.get_username(), exc)
        await ws.close(INTERNAL_ERROR, str(exc)[:120])
        return
    log.info("console of VM %s opened by %s from %s", vm.pk, user.get_username(), _peer(ws))
    try:
        reason = await relay(ws, session)
    finally:
        await asyncio.to_thread(session.close)
    log.info("console of VM %s closed (%s)", vm.pk, reason)
    await ws.close(1000, reason[:120])


async def relay(ws: ServerConnection, session: console.ConsoleSession) -> str:
    """Move bytes both ways until one side ends; returns which side ended and how."""
    loop = asyncio.get_running_loop()
    from_vm: asyncio.Queue[bytes] = asyncio.Queue()

    def read_vm() -> None:
        # A thread of its own per console: a blocking read can wait for minutes on an idle
        # screen and must not hold a worker of the shared pool the ORM calls use.
        while True:
            data = session.read()
            loop.call_soon_threadsafe(from_vm.put_nowait, data)
            if not data:
                return

    threading.Thread(target=read_vm, name="console-reader", daemon=True).start()

    async def vm_to_browser() -> str:
        while data := await from_vm.get():
            await ws.send(data)
        return "the VM's console ended"

    async def browser_to_vm() -> str:
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            await asyncio.to_thread(session.write, data)
        return "the browser closed the console"

    tasks = [asyncio.create_task(vm_to_browser()), asyncio.create_task(browser_to_vm())]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    try:
        return done.pop().result()
    except ConnectionClosed:
        return "the browser went away"
    except OSError as exc:
        return f"the appliance connection broke: {exc}"


async def serve_consoles(
    host: str,
    port: int,
    *,
    started: Callable[[int], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve consoles on ``host:port`` until ``stop`` is set (or forever); ``started`` gets
    the port actually bound (useful with port 0)."""
    # RFB has its own compression (tight, zrle); deflating it again costs CPU for nothing.
    async with serve(
        handle, host, port, compression=None, max_size=1 << 20, logger=ws_log
    ) as server:
        bound = server.sockets[0].getsockname()[1] if server.sockets else port
        if started is not None:
            started(bound)
        await (stop or asyncio.Event()).wait()
