"""A connection to ``vault serve``: over SSH, or a local child process for a directory or S3.

Requests are written without waiting for answers (pipelining); a reader thread takes the
answers, which come in request order, and resolves each request's ``Pending``. So a
sender keeps the link full whatever its latency, and never trusts an answer to a request
it did not make: an answer out of order, or a frame that does not parse, ends the
connection.
"""

from __future__ import annotations

import subprocess
import threading
from collections import deque
from collections.abc import Callable

from agent.vault.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    VaultRefused,
    read_message,
    write_message,
)


class Pending:
    """One request's answer, once the reader thread has it."""

    def __init__(self, rid: int, on_item: Callable[[dict, bytes | None], None] | None = None):
        self.rid = rid
        self.on_item = on_item  # for answers that stream items first (``get``)
        self._done = threading.Event()
        self.message: dict | None = None
        self.payload: bytes | None = None
        self.error: BaseException | None = None

    def resolve(self, message: dict, payload: bytes | None) -> None:
        self.message, self.payload = message, payload
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> tuple[dict, bytes | None]:
        """The answer; VaultRefused for an error answer, ProtocolError if the link went."""
        if not self._done.wait(timeout):
            raise ProtocolError("the vault did not answer in time")
        if self.error is not None:
            raise self.error
        assert self.message is not None
        if not self.message.get("ok"):
            error = self.message.get("error") or {}
            raise VaultRefused(str(error.get("code", "error")), str(error.get("message", ""))[:500])
        return self.message, self.payload


class VaultConnection:
    """A ``vault serve`` process reached through ``argv`` (ssh, or python -m agent)."""

    def __init__(self, argv: list[str], env: dict | None = None, label: str = ""):
        self.label = label or argv[-1]
        self.vault_name = ""  # as the vault said in hello
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        self._pending: deque[Pending] = deque()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._next = 0
        self._broken: ProtocolError | None = None
        self._stderr: deque[str] = deque(maxlen=20)
        self._threads = [
            threading.Thread(target=self._drain_stderr, daemon=True),
            threading.Thread(target=self._read_answers, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- requests ------------------------------------------------------------------------
    def send(self, op: str, payload=None, on_item=None, pace=None, **params) -> Pending:
        """Write one request now; its answer arrives later through the returned Pending.
        Threads may share a connection: each request is written whole, in order."""
        with self._write_lock:  # requests are registered in the order they are written
            with self._lock:
                if self._broken is not None:
                    raise self._broken
                self._next += 1
                pending = Pending(self._next, on_item)
                self._pending.append(pending)
            try:
                message = {"id": pending.rid, "op": op, **params}
                write_message(self.proc.stdin, message, payload, pace)
            except (BrokenPipeError, ConnectionResetError, ValueError, OSError):
                raise self._cut("the link to the vault was cut") from None
        return pending

    def call(self, op: str, payload=None, timeout: float | None = None, **params):
        """Send and wait: (answer, payload)."""
        return self.send(op, payload, **params).result(timeout)

    def hello(self) -> dict:
        message, _ = self.call("hello", version=PROTOCOL_VERSION, client="bdr-agent", timeout=60)
        self.vault_name = str(message.get("vault", ""))[:64]
        return message

    # -- the reader ----------------------------------------------------------------------
    def _read_answers(self) -> None:
        try:
            while True:
                got = read_message(self.proc.stdout)
                if got is None:
                    raise ProtocolError("the vault connection ended")
                message, payload = got
                with self._lock:
                    head = self._pending[0] if self._pending else None
                if head is None or message.get("id") != head.rid:
                    raise ProtocolError("the vault answered a request that was not made")
                if "ok" not in message:
                    if head.on_item is None:
                        raise ProtocolError("the vault sent items for a request that takes none")
                    head.on_item(message, payload)
                    continue
                with self._lock:
                    self._pending.popleft()
                head.resolve(message, payload)
        except ProtocolError as exc:
            self._cut(str(exc))
        except Exception as exc:  # noqa: BLE001 - a failing item handler ends the session
            self._cut(f"{type(exc).__name__}: {exc}")

    def _cut(self, why: str) -> ProtocolError:
        """Fail every waiting request; the connection is unusable from here on."""
        if threading.current_thread() is not self._threads[0]:
            self._threads[0].join(timeout=2)  # ssh's last words ("Host key verification...")
        with self._lock:
            if self._broken is None:
                tail = " ".join(line.strip() for line in self._stderr if line.strip())[-300:]
                self._broken = ProtocolError(f"{why} ({self.label}){': ' + tail if tail else ''}")
            waiting = list(self._pending)
            self._pending.clear()
        for pending in waiting:
            pending.fail(self._broken)
        if self.proc.poll() is None and why != "the vault connection ended":
            self.proc.kill()  # a vault that broke the protocol gets no further word
        return self._broken

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line.decode(errors="replace"))

    # -- end -----------------------------------------------------------------------------
    def end_requests(self) -> None:
        """Tell the vault no more requests come (it finishes storing, then ends);
        ``close`` waits for that."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def close(self) -> None:
        self.end_requests()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> VaultConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
