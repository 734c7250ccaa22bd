"""Verify: re-read and authenticate every chunk the named points need.

Each unique chunk is read, authenticated, decompressed and re-hashed to its id. Damaged
chunks are quarantined and recorded (chunkstore.quarantine), so the next backup of any
server holding those blocks stores them again; because a chunk's id is the keyed hash of
its content, storing it again repairs every point that references it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.errors import DamageFound
from agent.store.catalog import PointRecord
from agent.store.datastore import Store
from agent.store.pointindex import ZERO_ID
from agent.store.progress import Progress


@dataclass
class VerifyReport:
    points_checked: int = 0
    chunks_checked: int = 0
    damaged_chunks: list[dict] = field(default_factory=list)
    damaged_points: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged_points

    def to_json(self) -> dict:
        return {
            "ok": self.ok,
            "points_checked": self.points_checked,
            "chunks_checked": self.chunks_checked,
            "damaged_chunks": self.damaged_chunks,
            "damaged_points": self.damaged_points,
        }


def _check_chunk(store: Store, chunk_id: bytes, length: int) -> str | None:
    try:
        blob = store.chunks.get(chunk_id)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    try:
        data = store.codec.decode(blob, chunk_id, length)
    except DamageFound as exc:
        return str(exc).removeprefix(f"chunk {chunk_id.hex()}: ")
    if store.key.chunk_id(data) != chunk_id:
        return "content does not hash to its id"
    return None


def verify_points(
    store: Store,
    point_ids: list[str] | None = None,
    progress: Progress | None = None,
    quarantine: bool = True,
) -> VerifyReport:
    """Check the named points (default all); UsageError for an unknown point id."""
    progress = progress or Progress()
    records: list[PointRecord] = (
        [store.get_point(pid) for pid in point_ids] if point_ids else store.list_points()
    )
    report = VerifyReport(points_checked=len(records))
    users: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
    lengths: dict[bytes, int] = {}
    bad_points: dict[str, dict] = {}
    for record in records:
        try:
            index = store.load_index(record)
        except DamageFound as exc:
            bad_points[record.id] = {"id": record.id, "index": str(exc), "chunks": []}
            continue
        for i, chunk_id in enumerate(index.ids):
            if chunk_id != ZERO_ID:
                users[chunk_id].append((record.id, i * index.chunk_size))
                lengths[chunk_id] = index.chunk_len(i)
    progress.start("verify", sum(lengths.values()))

    def check(chunk_id: bytes) -> tuple[bytes, str | None]:
        reason = _check_chunk(store, chunk_id, lengths[chunk_id])
        progress.advance(lengths[chunk_id])
        return chunk_id, reason

    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers, thread_name_prefix="bdr-verify") as pool:
        outcomes = list(pool.map(check, list(users)))
    progress.finish()
    report.chunks_checked = len(outcomes)
    for chunk_id, reason in outcomes:
        if reason is None:
            continue
        if quarantine:
            try:
                store.chunks.quarantine(chunk_id, reason)
            except OSError as exc:
                # A full or failing disk must not hide the damage: report it anyway. The
                # next verify finds the chunk again and records it then.
                reason = f"{reason}; not quarantined ({exc.strerror or exc})"
        where = users[chunk_id]
        report.damaged_chunks.append(
            {"chunk": chunk_id.hex(), "reason": reason, "points": sorted({p for p, _ in where})}
        )
        for pid, offset in where:
            entry = bad_points.setdefault(pid, {"id": pid, "index": None, "chunks": []})
            entry["chunks"].append({"chunk": chunk_id.hex(), "offset": offset, "reason": reason})
    for entry in bad_points.values():
        entry["chunks"].sort(key=lambda c: c["offset"])
    report.damaged_points = sorted(bad_points.values(), key=lambda e: e["id"])
    return report
