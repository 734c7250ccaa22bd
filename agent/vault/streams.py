"""Blobs going out over one or several connections to the same vault, each with its own
writer thread, so a full pipe on one never stalls the others.

Why several: SSH gives each channel a flow-control window (2 MiB with OpenSSH), so one
channel carries at most window / round trip (20 MB/s at 100 ms) however deep our own
pipelining is. ``connect_streams`` measures the round trip and opens enough sessions to
keep a long link full (one on a LAN), several per SSH connection (ControlMaster), and
blobs go out on the first while the others open. Lack queries and commits stay on the first
connection; blobs go to whichever connection has the least queued and unacknowledged.
Before a commit, the other connections' ``vault serve`` processes are asked to ``sync``
(store what they received), since the commit checks that every blob is there.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from agent.vault.client import Pending, VaultConnection
from agent.vault.protocol import VaultRefused

ACK_WINDOW = 64 << 20  # bytes sent and not yet acknowledged on one connection
QUEUED = 2  # blobs waiting for a connection's writer
# Streams are sessions (SSH channels), 8 per SSH connection (sshd's default MaxSessions is
# 10): each has its own 2 MiB window, the connection's ssh and sshd carry them all. Through
# the bench's 100 ms relay (bench/replicate_probe.py, 2 cores): 8 sessions ~122-131 MB/s
# steady, raw ssh the same (the windows: ~15 MB/s a session); 16 sessions ~185-225 MB/s.
MAX_STREAMS = 16
CHANNELS = 8  # sessions per SSH connection (OpenSSH ControlMaster); 1: a connection each
RTT_PER_STREAM = 0.00625  # one more session per 6.25 ms of round trip (16 at 100 ms)
OPEN_AT_ONCE = 8  # below sshd's default MaxStartups (10 unauthenticated connections)


class _Stream:
    """One connection's writer thread."""

    def __init__(self, conn: VaultConnection, app: str, paced: Callable[[int], None]):
        self.conn, self.app, self.paced = conn, app, paced
        self.queue: queue.Queue = queue.Queue(QUEUED)
        self.acks: deque[tuple[Pending, int]] = deque()
        self.lock = threading.Lock()
        self.load = 0  # bytes queued or unacknowledged
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="bdr-send", daemon=True)
        self.thread.start()

    def put(self, blob_id: bytes, data, digest: bytes | None) -> None:
        with self.lock:
            self.load += len(data)
        self.queue.put((blob_id, data, digest))

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            blob_id, data, digest = item
            try:
                if self.error is None:
                    known = {"sha256": digest.hex()} if digest is not None else {}
                    pending = self.conn.send("put", data, pace=self.paced, appliance=self.app,
                                             blob=blob_id.hex(), **known)  # fmt: skip
                    self.acks.append((pending, len(data)))
                    while self._unacked() > ACK_WINDOW:
                        self._ack_oldest()
                    # answers already here count off now: ``load`` is then what is queued
                    # or in flight, not what was ever sent (a stream that opened late
                    # would otherwise take every blob until it caught up, the others idle)
                    while self.acks and self.acks[0][0].done:
                        self._ack_oldest()
                else:
                    self._done(len(data))
            except BaseException as exc:  # noqa: BLE001 - the sending thread raises it
                self.error = exc
                self._done(len(data))
            finally:
                self.queue.task_done()

    def _unacked(self) -> int:
        return sum(size for _, size in self.acks)

    def _done(self, size: int) -> None:
        with self.lock:
            self.load -= size

    def _ack_oldest(self) -> None:
        pending, size = self.acks.popleft()
        try:
            pending.result()
        except VaultRefused:
            pass  # not stored (a digest mismatch in transit): the commit names it missing
        finally:
            self._done(size)

    def settle(self) -> None:
        """Everything queued is written and acknowledged; the writer's error, if any."""
        self.queue.join()
        while self.acks:
            self._ack_oldest()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)


class Streams:
    """The connections blobs go out on (the first also carries lacks and commits)."""

    def __init__(self, conns: list[VaultConnection], app: str, paced: Callable[[int], None]):
        self.conns = conns  # ``targets.Connections`` grows while blobs go out
        self.app, self.paced = app, paced
        self._streams = [_Stream(conn, app, paced) for conn in list(conns)]

    def put(self, blob_id: bytes, data, digest: bytes) -> None:
        while len(self._streams) < len(self.conns):  # a connection that opened meanwhile
            self._streams.append(_Stream(self.conns[len(self._streams)], self.app, self.paced))
        for stream in self._streams:
            if stream.error is not None:
                raise stream.error
        # the least loaded stream with room in its queue (else the least loaded: wait)
        free = [s for s in self._streams if not s.queue.full()] or self._streams
        min(free, key=lambda s: s.load).put(blob_id, data, digest)

    def settle(self) -> None:
        for stream in self._streams:
            stream.settle()

    def sync(self) -> None:
        """The other connections' vault processes have stored what they received."""
        for pending in [stream.conn.send("sync") for stream in self._streams[1:]]:
            pending.result()

    def close(self) -> None:
        for stream in self._streams:
            stream.close()


def round_trip(conn: VaultConnection, tries: int = 3) -> float:
    """The link's round trip in seconds (the best of a few pings)."""
    best = math.inf
    for _ in range(tries):
        began = time.monotonic()
        conn.call("ping", timeout=60)
        best = min(best, time.monotonic() - began)
    return best


def streams_for(rtt: float) -> int:
    """Connections that keep a link of this round trip full (one on a LAN)."""
    return max(1, min(MAX_STREAMS, math.ceil(rtt / RTT_PER_STREAM)))


def open_more(
    first: VaultConnection,
    opener: Callable[[int], VaultConnection],
    count: int,
    at_once: int = OPEN_AT_ONCE,
) -> list:
    """``first`` and ``count - 1`` more connections (``opener(n)`` opens the n-th), at most
    ``at_once`` at a time (new SSH connections: sshd's MaxStartups); if one fails, the
    others are closed and the error raised."""
    conns: dict[int, VaultConnection] = {0: first}
    failure = None
    todo = list(range(1, count))
    with ThreadPoolExecutor(max(1, min(at_once, len(todo)))) as pool:
        for start in range(0, len(todo), at_once):
            futures = {n: pool.submit(opener, n) for n in todo[start : start + at_once]}
            for n, future in futures.items():
                try:
                    conns[n] = future.result()
                except BaseException as exc:  # noqa: BLE001 - raised below, once all are in
                    failure = failure or exc
            if failure is not None:
                break
    ordered = [conns[n] for n in sorted(conns)]
    if failure is not None:
        for conn in reversed(ordered[1:]):  # sessions before the masters carrying them
            conn.close()
        raise failure
    return ordered
