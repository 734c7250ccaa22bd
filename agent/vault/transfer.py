"""Sending points to a vault: what both ``replicate`` (appliance -> vault) and
``vault replicate`` (vault -> vault) do once they know which points to send.

Per point: ask the target which of the point's blobs it lacks (batches of ids, all sent
before the first answer is read), stream those blobs (several in flight, never a round
trip per blob), then commit the point with its full list of blob ids. The sender decides
everything: it sends only blobs of the point in hand, read from its own copy, and an
answer naming anything else (a "lack" or "missing" id the point does not reference) ends
the run. Nothing here deletes anything on the target.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.errors import AgentError
from agent.store.pointindex import parse_point_id
from agent.store.progress import Progress
from agent.vault.backend import sha256
from agent.vault.client import VaultConnection
from agent.vault.protocol import ProtocolError, VaultRefused, pack_ids, unpack_ids
from agent.vault.streams import Streams

LACK_BATCH = 8192  # ids per "which do you lack" request (256 KiB)
READ_AHEAD = 6  # blobs read (and checked) ahead of the one being sent


class BlobUnavailable(AgentError):
    """The sender's own copy of a blob is gone or damaged: the point cannot go this run."""


@dataclass
class PointPlan:
    """One point to send: its id, the chunk blobs it references, its index and catalog
    (sealed, opaque) and the blobs the target is known to hold (no need to ask)."""

    point: str
    blob_ids: list[bytes]
    index: tuple[bytes, bytes]  # (blob id, sealed bytes)
    catalog: tuple[bytes, bytes]
    known: set[bytes] = field(default_factory=set)

    def extras(self) -> dict[bytes, bytes]:
        return dict([self.index, self.catalog])


@dataclass
class SendStats:
    points_sent: int = 0
    blobs_sent: int = 0
    bytes_sent: int = 0
    skipped: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "points_sent": self.points_sent,
            "blobs_sent": self.blobs_sent,
            "bytes_sent": self.bytes_sent,
            "skipped": self.skipped,
        }


# id -> (sealed bytes, their SHA-256 if the sender knows it); BlobUnavailable
ReadBlob = Callable[[bytes], tuple[bytes, bytes | None]]


class KnownOnTarget:
    """Blobs the target surely holds for a point: those of the nearest point of the same
    server and volume it holds whole (so an incremental asks about its new blobs only)."""

    def __init__(self, point_ids: list[str], whole: set[str], ids_of: Callable[[str], list]):
        self.times = {pid: parse_point_id(pid)[2] for pid in point_ids}
        self.whole = whole  # grows as points are committed
        self.ids_of = ids_of
        self._cached: tuple[str, set[bytes]] = ("", set())

    def for_point(self, point_id: str) -> set[bytes]:
        volume, when = point_id.rsplit("/", 1)[0], self.times[point_id]
        same = [p for p in self.times if p in self.whole and p.rsplit("/", 1)[0] == volume]
        if not same:
            return set()
        nearest = min(same, key=lambda p: abs((self.times[p] - when).total_seconds()))
        if self._cached[0] != nearest:
            try:
                self._cached = (nearest, set(self.ids_of(nearest)))
            except AgentError:
                return set()  # gone meanwhile: ask about every blob
        return self._cached[1]


class PointSender:
    """Sends plans over one connection or several (``agent.vault.streams``), counting what
    it sends. ``conn`` is the connection, or the list of them; the first carries lack
    queries and commits."""

    def __init__(
        self,
        conn: VaultConnection | list[VaultConnection],
        app: str,
        read_blob: ReadBlob,
        progress: Progress | None = None,
        pace: Callable[[int], None] | None = None,
        size_of: Callable[[bytes], int] | None = None,
    ):
        conns = conn if isinstance(conn, list) else [conn]
        self.conn = conns[0]
        self.size_of = size_of  # a blob's size before it is read (the progress total)
        self.app = app
        self.read_blob = read_blob
        self.progress = progress or Progress()
        self.pace = pace
        self.stats = SendStats()
        self._count = threading.Lock()
        self._streams = Streams(conns, app, self._paced)
        self._pool = ThreadPoolExecutor(3, thread_name_prefix="bdr-send-read")

    def close(self) -> None:
        self._streams.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def send(self, plan: PointPlan) -> dict | None:
        """Send and commit one point; its vault record, or None if it was skipped."""
        try:
            lacking = self._lacking(plan)
            self._count_total(plan, lacking)
            self._send_blobs(plan, lacking)
            record = self._commit(plan)
        except BlobUnavailable as exc:
            self._settle()
            self.stats.skipped.append({"point": plan.point, "reason": str(exc)})
            return None
        self.stats.points_sent += 1
        return record

    def _lacking(self, plan: PointPlan) -> list[bytes]:
        asked = [i for i in plan.blob_ids if i not in plan.known]
        asked += [plan.index[0], plan.catalog[0]]
        batches = [asked[i : i + LACK_BATCH] for i in range(0, len(asked), LACK_BATCH)]
        pendings = [self.conn.send("lack", pack_ids(b), appliance=self.app) for b in batches]
        lacking: list[bytes] = []
        for batch, pending in zip(batches, pendings, strict=True):
            _, payload = pending.result()
            answer = unpack_ids(payload)
            if not set(answer) <= set(batch):
                raise ProtocolError("the vault claims to lack blobs it was not asked about")
            lacking.extend(dict.fromkeys(answer))
        return lacking

    def _count_total(self, plan: PointPlan, lacking: list[bytes]) -> None:
        extras = plan.extras()
        total = 0
        for blob_id in lacking:
            if blob_id in extras:
                total += len(extras[blob_id])
            elif self.size_of is not None:
                total += self.size_of(blob_id)
        self.progress.total += total

    def _send_blobs(self, plan: PointPlan, ids: list[bytes]) -> None:
        extras = plan.extras()
        reads: deque[tuple[bytes, Future]] = deque()
        todo = iter(ids)

        def read(blob_id: bytes) -> tuple[bytes, bytes]:
            if blob_id in extras:
                return extras[blob_id], sha256(extras[blob_id])
            return self.read_blob(blob_id)

        for blob_id in todo:
            reads.append((blob_id, self._pool.submit(read, blob_id)))
            if len(reads) >= READ_AHEAD:
                break
        while reads:
            blob_id, future = reads.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                reads.append((nxt, self._pool.submit(read, nxt)))
            data, digest = future.result()
            self._put(blob_id, data, digest)

    def _put(self, blob_id: bytes, data: bytes, digest: bytes) -> None:
        self._streams.put(blob_id, data, digest)
        self.stats.blobs_sent += 1
        self.progress.advance(len(data))

    def _paced(self, n: int) -> None:
        """Before each piece a connection's writer sends (from its thread)."""
        if self.pace is not None:
            self.pace(n)
        with self._count:
            self.stats.bytes_sent += n

    def _settle(self) -> None:
        self._streams.settle()

    def _commit(self, plan: PointPlan) -> dict:
        point = {
            "point": plan.point,
            "index": plan.index[0].hex(),
            "catalog": plan.catalog[0].hex(),
        }
        for attempt in (1, 2):
            self._settle()
            self._streams.sync()  # the other connections' vault processes stored theirs
            pending = self.conn.send(
                "commit", pack_ids(plan.blob_ids), appliance=self.app, point=point
            )
            try:
                message, _ = pending.result()
                return message.get("record") or {}
            except VaultRefused as exc:
                if exc.code == "conflict":
                    raise BlobUnavailable(f"the vault refused it: {exc}") from None
                if exc.code != "missing" or attempt == 2:
                    why = f"the vault did not commit {plan.point}: {exc}"
                    raise VaultRefused(exc.code, why) from None
            self._send_blobs(plan, self._missing_of(plan))
        raise AssertionError("unreachable")

    def _missing_of(self, plan: PointPlan) -> list[bytes]:
        """What a commit refused as missing: every blob of the point asked again (none
        taken as known), and only those of this point are ever sent."""
        plan.known = set()
        return self._lacking(plan)


def remote_points(conn, app: str) -> dict:
    """The vault's points of ``app`` and the ids its retention retired."""
    _, payload = conn.call("points", appliance=app)
    try:
        body = json.loads(payload or b"")
        points, retired = body["points"], body["retired"]
    except (ValueError, KeyError, TypeError):
        points = retired = None
    if (
        not isinstance(points, list)
        or not isinstance(retired, list)
        or not all(isinstance(p, dict) and isinstance(p.get("point"), str) for p in points)
    ):
        raise ProtocolError("the vault's list of points is malformed")
    return body


def remote_usage(conn, app: str) -> int | None:
    """The bytes ``app``'s live points reference on the vault (each blob once), or None
    when the vault cannot say (an older vault, a blob list verify has to look at)."""
    try:
        message, _ = conn.call("usage", appliance=app)
    except VaultRefused:
        return None
    value = message.get("bytes")
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 62:
        raise ProtocolError("the vault's usage answer is malformed")
    return value
