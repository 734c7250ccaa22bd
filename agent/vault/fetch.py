"""Fetching blobs from a vault (``repair``, ``seed``): pipelined ``get`` requests.

A few batches of ids are asked for at once; the vault answers each blob as an item (its
bytes and digest, or ``missing``/``damaged``), read by the connection's reader thread into
a bounded queue, so memory stays a few blobs whatever the size of the request. An item
for a blob that was not asked for (or asked for once and sent twice) ends the connection;
bytes that do not match the digest the vault sent are reported as damaged in transit.
The caller still checks every blob with the key: the vault is never trusted for content.
"""

from __future__ import annotations

import queue
from collections import deque
from collections.abc import Iterator

from agent.vault.backend import sha256
from agent.vault.client import VaultConnection
from agent.vault.protocol import ProtocolError, pack_ids, parse_blob_id

BATCH = 256  # ids per get request
AHEAD = 2  # requests in flight
QUEUE = 8  # blobs held between the reader thread and the caller


def fetch_blobs(
    conn: VaultConnection, app: str, ids: list[bytes]
) -> Iterator[tuple[bytes, bytes | None, str]]:
    """(blob id, sealed bytes or None, what is wrong) for every id, in the vault's order."""
    ids = list(dict.fromkeys(ids))
    items: queue.Queue = queue.Queue(QUEUE)
    batches = deque(ids[i : i + BATCH] for i in range(0, len(ids), BATCH))
    inflight: deque = deque()
    for _ in range(len(ids)):
        while batches and len(inflight) < AHEAD:
            batch = batches.popleft()
            handler = _Items(set(batch), items)
            inflight.append(
                (conn.send("get", pack_ids(batch), on_item=handler, appliance=app), handler)
            )
        handler, item = _next_item(items, inflight)
        handler.taken += 1
        while inflight and inflight[0][1].taken == inflight[0][1].size:
            inflight.popleft()[0].result()  # the batch's closing answer (or an error)
        yield item


def _next_item(items: queue.Queue, inflight: deque):
    while True:
        try:
            return items.get(timeout=1.0)
        except queue.Empty:
            if not all(pending.done for pending, _ in inflight):
                continue
        try:  # every request answered: what they sent is in the queue by now
            return items.get_nowait()
        except queue.Empty:
            for pending, _ in inflight:
                pending.result()  # raises if the link went or the vault refused
            raise ProtocolError("the vault ended a batch without sending every blob") from None


class _Items:
    """The item handler of one ``get`` request (runs in the reader thread)."""

    def __init__(self, asked: set[bytes], items: queue.Queue):
        self.asked = asked
        self.size = len(asked)
        self.taken = 0  # items the caller has taken (its thread only)
        self.items = items

    def __call__(self, message: dict, payload: bytes | None) -> None:
        blob_id = parse_blob_id(message.get("blob"))
        if blob_id not in self.asked:
            raise ProtocolError("the vault sent a blob that was not asked for")
        self.asked.discard(blob_id)
        if payload is None:
            problem = str(message.get("damaged") or "not on the vault")[:300]
            item = (blob_id, None, problem)
        elif sha256(payload).hex() != message.get("sha256"):
            item = (blob_id, None, "arrived damaged (digest mismatch)")
        else:
            item = (blob_id, payload, "")
        self.items.put((self, item))
