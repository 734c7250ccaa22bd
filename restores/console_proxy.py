"""The websocket end of the VM console: ``manage.py console_proxy`` serves this.

Each websocket carries one console. The handshake is refused (HTTP 403, audited) unless its
Origin is the portal's own; the one-time token arrives as a subprotocol
(``bdr-token.<token>``, restores/console_access.py) and is used up; the appliance's rpc is
opened and switched to the VM's VNC relay, and binary frames go both ways until either side
closes, the console reaches ``BDR_CONSOLE_MAX_SECONDS``, or a check every
``BDR_CONSOLE_CHECK_SECONDS`` finds the user deactivated, signed out or without access
(then it is cut and audited). Blocking work (the ORM, paramiko) runs in threads; the event
loop only moves frames.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from django import db
from django.conf import settings
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidHeader
from websockets.headers import parse_subprotocol
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from portal import audit
from restores import console, console_access
from restores.console_access import ConsoleGrant, ConsoleRefused

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


def _in_thread_with_db(func: Callable, *args, **kwargs):
    """Run ``func`` in a worker thread that closes its database connection when done, so a
    long-running proxy keeps no stale connections."""

    def run():
        try:
            return func(*args, **kwargs)
        finally:
            db.connections.close_all()  # this thread's connections only

    return asyncio.to_thread(run)


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return str(address[0]) if address else "?"


@dataclass(frozen=True)
class Ending:
    """How a console ended; ``cut`` when the proxy closed it because access ended."""

    reason: str
    cut: bool = False


def _audit(action: str, reason: str, peer: str, user=None, vm=None, **detail) -> None:
    detail = {"reason": reason, **detail, **({"vm": vm.pk} if vm is not None else {})}
    server = vm.server if vm is not None else None
    audit.record(user, action, server, detail=detail, address=peer)


async def check_origin(ws: ServerConnection, request: Request) -> Response | None:
    """Refuse the handshake (HTTP 403) unless the Origin is the portal's own: a page of
    another site cannot open a console, whatever token it holds."""
    origins = request.headers.get_all("Origin")
    reason = console_access.origin_refusal(origins)
    if reason is None:
        return None
    peer = _peer(ws)
    log.warning("console refused for %s: %s", peer, reason)
    origin = origins[0][:200] if origins else ""
    await _in_thread_with_db(_audit, "vm.console_refused", reason, peer, origin=origin)
    return ws.respond(HTTPStatus.FORBIDDEN, f"Console refused: {reason}.\n")


def select_protocol(ws: ServerConnection, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Answer with ``bdr-console``, never with the protocol that carries the token."""
    return Subprotocol(console_access.PROTOCOL) if console_access.PROTOCOL in offered else None


def _offered_protocols(ws: ServerConnection) -> list[str]:
    try:
        values = ws.request.headers.get_all("Sec-WebSocket-Protocol") if ws.request else []
        return [p for value in values for p in parse_subprotocol(value)]
    except InvalidHeader:
        return []


async def handle(ws: ServerConnection) -> None:
    """One browser's console, from token to the end of the relay."""
    peer = _peer(ws)
    token = console_access.token_from_protocols(_offered_protocols(ws))
    try:
        grant = await _in_thread_with_db(console_access.redeem_token, token)
    except ConsoleRefused as exc:
        log.warning("console refused for %s: %s", peer, exc)
        await _in_thread_with_db(_audit, "vm.console_refused", str(exc), peer, exc.user, exc.vm)
        await ws.close(POLICY_VIOLATION, str(exc)[:120])
        return
    user, vm = grant.user, grant.vm
    try:
        session = await _in_thread_with_db(console.open_console, vm)
    except ConsoleRefused as exc:
        log.warning("console of VM %s for %s failed: %s", vm.pk, user.get_username(), exc)
        await ws.close(INTERNAL_ERROR, str(exc)[:120])
        return
    log.info("console of VM %s opened by %s from %s", vm.pk, user.get_username(), peer)
    try:
        ending = await relay(ws, session, watch(grant, time.monotonic()))
    finally:
        await asyncio.to_thread(session.close)
    if ending.cut:
        log.warning("console of VM %s of %s cut: %s", vm.pk, user.get_username(), ending.reason)
        await _in_thread_with_db(_audit, "vm.console_cut", ending.reason, peer, user, vm)
        await ws.close(POLICY_VIOLATION, ending.reason[:120])
        return
    log.info("console of VM %s closed (%s)", vm.pk, ending.reason)
    await ws.close(1000, ending.reason[:120])


def _length(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


async def watch(grant: ConsoleGrant, opened: float) -> Ending:
    """Return (ending the console) at its maximum length, or as soon as a check every
    ``BDR_CONSOLE_CHECK_SECONDS`` finds the user's access gone. Fails closed: a check that
    cannot run (database down) ends the console too."""
    limit = float(settings.BDR_CONSOLE_MAX_SECONDS)
    every = float(settings.BDR_CONSOLE_CHECK_SECONDS)
    while True:
        left = opened + limit - time.monotonic()
        if left <= 0:
            return Ending(f"the console reached its maximum length ({_length(limit)})", cut=True)
        await asyncio.sleep(min(every, left))
        if time.monotonic() >= opened + limit:
            continue
        try:
            reason = await _in_thread_with_db(
                console_access.still_allowed, grant.user.pk, grant.vm.pk, grant.session_key
            )
        except db.Error as exc:
            reason = f"the user's access could not be checked: {exc}".splitlines()[0]
        if reason is not None:
            return Ending(reason, cut=True)


async def relay(
    ws: ServerConnection, session: console.ConsoleSession, watcher: Coroutine[Any, Any, Ending]
) -> Ending:
    """Move bytes both ways until one side ends or ``watcher`` cuts the console."""
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

    async def vm_to_browser() -> Ending:
        while data := await from_vm.get():
            await ws.send(data)
        return Ending("the VM's console ended")

    async def browser_to_vm() -> Ending:
        async for message in ws:
            data = message.encode() if isinstance(message, str) else message
            await asyncio.to_thread(session.write, data)
        return Ending("the browser closed the console")

    tasks = [asyncio.create_task(c) for c in (vm_to_browser(), browser_to_vm(), watcher)]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    try:
        return done.pop().result()
    except ConnectionClosed:
        return Ending("the browser went away")
    except OSError as exc:
        return Ending(f"the appliance connection broke: {exc}")


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
        handle,
        host,
        port,
        compression=None,
        max_size=1 << 20,
        logger=ws_log,
        process_request=check_origin,
        select_subprotocol=select_protocol,
    ) as server:
        bound = server.sockets[0].getsockname()[1] if server.sockets else port
        if started is not None:
            started(bound)
        await (stop or asyncio.Event()).wait()
