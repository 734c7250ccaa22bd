"""Verify: re-read and authenticate every chunk the named points need.

Each unique chunk is read, authenticated, decompressed (a delta together with its base)
and re-hashed to its id; the base of every delta is checked on its own too, and its
damage names every point whose deltas need it. Damaged chunks are quarantined and
recorded (chunkstore.quarantine), so the next backup of any server holding those blocks
stores them again; because a chunk's id is the keyed hash of its content, storing it
again repairs every point that references it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from agent.errors import DamageFound
from agent.store.catalog import PointRecord
from agent.store.datastore import Store
from agent.store.frames import DELTA, BaseDamaged, is_framed, open_header
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


@dataclass
class _Outcome:
    chunk_id: bytes
    reason: str | None = None
    base_fault: bool = False  # its own file is intact: the base it needs is not
    base: bytes | None = None  # a delta's base, as its file says


def _check_chunk(store: Store, chunk_id: bytes, length: int, named: set[bytes]) -> _Outcome:
    """Read, authenticate, decode and re-hash one chunk (a delta with its base).

    ``named``: the bases the points' indexes name for this chunk; a delta of another
    base is reported (gc keeps only named bases), to be stored full by the next backup.
    """
    try:
        blob = store.chunks.get(chunk_id)
    except FileNotFoundError:
        return _Outcome(chunk_id, "missing")
    except OSError as exc:
        return _Outcome(chunk_id, f"unreadable: {exc.strerror}")
    return _examine(store, chunk_id, blob, length, named)


def check_blob(store: Store, chunk_id: bytes, blob: bytes) -> str | None:
    """Why ``blob`` is not chunk ``chunk_id`` of ``store`` (None when it is): every
    layout is authenticated, decoded (a delta with its base, read from the store) and
    re-hashed to its id. What a copy fetched from a vault is checked with."""
    return _examine(store, chunk_id, blob, None, None).reason


def _examine(store, chunk_id: bytes, blob: bytes, length: int | None, named) -> _Outcome:
    out = _Outcome(chunk_id)
    try:
        if is_framed(blob):
            hdr = open_header(store.key, blob, chunk_id)
            out.base = hdr.base if hdr.kind == DELTA else None
            data = store.frames.decode(blob, chunk_id, length or hdr.length, store.load_base)
        else:
            data = store.codec.decode(blob, chunk_id, length)
    except BaseDamaged as exc:
        out.reason, out.base_fault = str(exc), True
        return out
    except DamageFound as exc:
        out.reason = str(exc).removeprefix(f"chunk {chunk_id.hex()}: ")
        return out
    if store.identify(data)[0] != chunk_id:
        out.reason = "content does not hash to its id"
    elif out.base is not None and named is not None and out.base not in named:
        out.reason = f"a delta of base chunk {out.base.hex()}, which its points do not name"
        out.base_fault = True
    return out


class _Needs:
    """Which chunks the points need, for how many bytes, and where (point, offset)."""

    def __init__(self):
        self.users: dict[bytes, list[tuple[str, int]]] = defaultdict(list)
        self.lengths: dict[bytes, int] = {}
        self.named: dict[bytes, set[bytes]] = defaultdict(set)

    def add(self, index) -> None:
        for i, chunk_id in enumerate(index.ids):
            if chunk_id != ZERO_ID:
                self.users[chunk_id].append((index.point_id, i * index.chunk_size))
                self.lengths[chunk_id] = index.chunk_len(i)
                self.named[chunk_id].add(index.base_of(i))


def _check_all(store: Store, needs: _Needs, progress: Progress) -> list[_Outcome]:
    """Check every chunk the points need, then the bases their deltas need (each once);
    a base's users are the users of every delta that needs it."""
    progress.start("verify", sum(needs.lengths.values()))

    def check(chunk_id: bytes) -> _Outcome:
        outcome = _check_chunk(store, chunk_id, needs.lengths[chunk_id], needs.named[chunk_id])
        progress.advance(needs.lengths[chunk_id])
        return outcome

    workers = max(2, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers, thread_name_prefix="bdr-verify") as pool:
        outcomes = list(pool.map(check, list(needs.users)))
        deltas = [o for o in outcomes if o.base is not None]
        for o in deltas:
            assert o.base is not None
            needs.lengths.setdefault(o.base, needs.lengths[o.chunk_id])
        extra = list(dict.fromkeys(o.base for o in deltas if o.base not in needs.users))
        for o in deltas:
            needs.users[o.base].extend(needs.users[o.chunk_id])  # type: ignore[index]
        outcomes += pool.map(check, extra)
    progress.finish()
    return outcomes


def verify_points(
    store: Store,
    point_ids: list[str] | None = None,
    progress: Progress | None = None,
    quarantine: bool = True,
) -> VerifyReport:
    """Check the named points (default all); UsageError for an unknown point id.

    A damaged chunk is quarantined (moved aside and recorded); a delta whose base is
    damaged is recorded only (its file is intact): either way the next backup whose
    source still holds the data stores it again, full.
    """
    progress = progress or Progress()
    records: list[PointRecord] = (
        [store.get_point(pid) for pid in point_ids] if point_ids else store.list_points()
    )
    report = VerifyReport(points_checked=len(records))
    needs = _Needs()
    bad_points: dict[str, dict] = {}
    for record in records:
        try:
            needs.add(store.load_index(record))
        except DamageFound as exc:
            bad_points[record.id] = {"id": record.id, "index": str(exc), "chunks": []}
    outcomes = _check_all(store, needs, progress)
    report.chunks_checked = len(outcomes)
    for o in outcomes:
        if o.reason is not None:
            reason = _record_damage(store, o, quarantine)
            _report(report, bad_points, o.chunk_id, reason, needs.users[o.chunk_id])
    for entry in bad_points.values():
        entry["chunks"].sort(key=lambda c: (c["offset"], c["chunk"]))
    report.damaged_points = sorted(bad_points.values(), key=lambda e: e["id"])
    return report


def _record_damage(store: Store, o: _Outcome, quarantine: bool) -> str:
    assert o.reason is not None
    if not quarantine:
        return o.reason
    try:
        if o.base_fault:
            store.chunks.mark_damaged(o.chunk_id, o.reason)
        else:
            store.chunks.quarantine(o.chunk_id, o.reason)
    except OSError as exc:
        # A full or failing disk must not hide the damage: report it anyway. The
        # next verify finds the chunk again and records it then.
        return f"{o.reason}; not quarantined ({exc.strerror or exc})"
    return o.reason


def _report(report, bad_points, chunk_id: bytes, reason: str, where) -> None:
    report.damaged_chunks.append(
        {"chunk": chunk_id.hex(), "reason": reason, "points": sorted({p for p, _ in where})}
    )
    for pid, offset in where:
        entry = bad_points.setdefault(pid, {"id": pid, "index": None, "chunks": []})
        entry["chunks"].append({"chunk": chunk_id.hex(), "offset": offset, "reason": reason})
