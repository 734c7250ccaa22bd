"""How a backup stores a changed chunk in a format-2 store: a delta of the chunk it
replaces, or full.

The previous version of a chunk is the chunk at the same offset in the previous point of
the same server and volume. Its header (~1.4 KiB, read and authenticated; the data is
never read) gives the fingerprint of each block; the new chunk's fingerprints differ
where its blocks changed. The delta is made against the previous version's *base* when
that is itself a delta (cumulative: a delta's base is always a full chunk, so reads are
never more than one level deep), and holds every block that differs from the base. When
more than ``rebase_percent`` of the blocks differ, or the previous version or its base
is damaged or missing, the chunk is stored full (it becomes the base of the next ones).
"""

from __future__ import annotations

from agent.errors import DamageFound
from agent.store.datastore import Store
from agent.store.frames import DELTA, FULL, Header, read_header
from agent.store.pointindex import ZERO_ID, PointIndex


class DeltaPlanner:
    """Delta decisions for one backup, against its previous point's index."""

    def __init__(self, store: Store, prev: PointIndex | None, damaged: set[bytes]):
        self.store = store
        same = prev is not None and prev.chunk_size == store.chunk_size
        self.prev_ids = prev.ids if same else []
        self.damaged = damaged

    def header(self, chunk_id: bytes) -> Header | None:
        """The chunk's authenticated header; None when it is missing or damaged."""
        try:
            return read_header(self.store.chunks.path(chunk_id), self.store.key, chunk_id)
        except (OSError, DamageFound):
            return None

    def usable_base(self, base: bytes) -> bool:
        return base not in self.damaged and self.store.chunks.exists(base)

    def plan(self, i: int, fps: list[bytes], length: int) -> tuple[bytes, set[int]] | None:
        """(base id, blocks that differ from it) to store chunk ``i`` as a delta; None
        to store it full."""
        prev_id = self.prev_ids[i] if i < len(self.prev_ids) else ZERO_ID
        if prev_id == ZERO_ID or prev_id in self.damaged:
            return None
        hdr = self.header(prev_id)
        if hdr is None or (hdr.length, hdr.block_size) != (length, self.store.block_size):
            return None
        changed = {j for j, fp in enumerate(fps) if fp != hdr.fps[j]}
        base = prev_id
        if hdr.kind == DELTA:
            # Blocks the previous delta held may differ from the base even where the new
            # chunk equals the previous one: the new delta holds them too.
            base = hdr.base
            changed |= hdr.replaced()
        if len(changed) * 100 > len(fps) * self.store.rebase_percent:
            return None
        if not changed or not self.usable_base(base):
            return None
        return base, changed

    def base_of_existing(self, chunk_id: bytes) -> bytes | None:
        """The base of a chunk file already in the store (ZERO_ID: it is full); None
        when it cannot be used as it is (unreadable, or a delta whose base is damaged or
        missing): the caller stores the chunk again, full, in its place."""
        hdr = self.header(chunk_id)
        if hdr is None:
            return None
        if hdr.kind == FULL:
            return ZERO_ID
        return hdr.base if self.usable_base(hdr.base) else None
