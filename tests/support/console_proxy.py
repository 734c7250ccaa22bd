"""``manage.py console_proxy``'s server in a thread of the test process, on a free port."""

from __future__ import annotations

import asyncio
import threading
from contextlib import contextmanager

from restores.console_proxy import serve_consoles


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
