"""Backing up a volume into a new recovery point (base image or incremental).

Per chunk, in a thread pool (pread, GMAC, zstd and file I/O release the GIL) with a bounded
number of chunks in flight, each worker reading its own chunk:

1. all zeros -> nothing stored;
2. keyed id (GMAC speed, see keys.chunk_id / keys.framed_id); a chunk of the previous
   point (and not recorded damaged, nor its base) -> reuse, nothing else to do;
3. already in the store -> touch it (gc's grace clock) and reuse;
4. else (format 2) a delta of the chunk at the same offset in the previous point when few
   of its blocks changed (deltas.DeltaPlanner), or full; compress, seal into the thread's
   aligned buffer, verify the round trip, stage (temp file written with O_DIRECT where
   the filesystem allows, else writeback started).

Then: fsync and publish the staged chunks, write the index, and under the commit interlock
check every referenced chunk still exists (storing again, from the source, any that
verify quarantined or gc swept meanwhile), check our lock, and commit the catalog.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent.errors import AgentError, DamageFound, SourceChanged, UsageError
from agent.store.catalog import PointRecord, index_digest
from agent.store.chunkstore import fsync_dir, write_atomic
from agent.store.datastore import Store
from agent.store.deltas import DeltaPlanner
from agent.store.locking import StoreLock
from agent.store.pointindex import ZERO_ID, PointIndex, check_name, make_point_id
from agent.store.progress import Progress
from agent.store.volume import SourceVolume

NEW, REUSED, ZERO = 0, 1, 2


@dataclass
class _ChunkResult:
    chunk_id: bytes
    kind: int
    stored: int = 0
    staged: Path | None = None
    base: bytes = ZERO_ID  # format 2: the full chunk this one is a delta of
    heal: bool = False  # replaces a chunk file that is damaged or whose base is


_ZERO = _ChunkResult(ZERO_ID, ZERO)


class _Backup:
    def __init__(self, store: Store, source: SourceVolume, prev: PointIndex | None, workers: int):
        self.store = store
        self.key = store.key
        self.source = source
        self.cs = store.chunk_size
        same = prev is not None and prev.chunk_size == self.cs
        prev_ids = prev.ids if same else []
        prev_bases = prev.bases if same and prev.bases else [ZERO_ID] * len(prev_ids)
        self.damaged = store.chunks.damaged_ids()
        # Chunks of the previous point are referenced by a committed point that no rollup
        # can remove while we hold the server lock: reuse them (and the base a delta
        # needs, which that point names too) without a syscall.
        self.known = {
            cid: base
            for cid, base in zip(prev_ids, prev_bases, strict=True)
            if cid not in self.damaged and base not in self.damaged
        }
        self.planner = DeltaPlanner(store, prev, self.damaged) if store.format == 2 else None
        self.workers = workers
        self._zeros = bytes(self.cs)

    def read_and_process(self, i: int, off: int, n: int) -> _ChunkResult:
        # Each worker reads its own chunk: pread releases the GIL, so reading (the
        # kernel's copy out of the page cache) runs on every core, not one thread's.
        return self.process(i, self.source.read(off, n))

    def process(self, i: int, data: bytes) -> _ChunkResult:
        if data == self._zeros[: len(data)]:
            return _ZERO
        chunk_id, fps = self.store.identify(data)
        base = self.known.get(chunk_id)
        if base is not None:
            return _ChunkResult(chunk_id, REUSED, base=base)
        return self.store_chunk(i, chunk_id, data, fps)

    def store_chunk(self, i: int, chunk_id: bytes, data: bytes, fps) -> _ChunkResult:
        chunks = self.store.chunks
        heal = chunk_id in self.damaged
        if not heal and chunks.touch(chunk_id):
            if self.planner is None:
                return _ChunkResult(chunk_id, REUSED)
            base = self.planner.base_of_existing(chunk_id)
            if base is not None:
                return _ChunkResult(chunk_id, REUSED, base=base)
            heal = True  # unreadable, or a delta of a lost base: store it full in its place
        if self.planner is None:
            codec = self.store.codec
            out = codec.out_buffer(len(data))
            n = codec.encode_into(data, chunk_id, out)
            staged = chunks.stage(chunk_id, out, n)
            chunks.sync_staged(staged)
            return _ChunkResult(chunk_id, NEW, n, staged, heal=heal)
        plan = None if heal else self.planner.plan(i, fps, len(data))
        base, changed = plan or (b"", None)
        frames = self.store.frames
        out = frames.out_buffer(len(data))
        n = frames.encode_into(data, chunk_id, fps, out, base, changed)
        staged = chunks.stage(chunk_id, out, n)
        # Durable now, while the other workers compress: a sync phase after the last
        # chunk would leave the cores idle while the disk flushes.
        chunks.sync_staged(staged)
        return _ChunkResult(chunk_id, NEW, n, staged, base or ZERO_ID, heal)

    def publish(self, results: list[_ChunkResult]) -> None:
        """Make every staged chunk (each already synced by its worker) visible under its
        name, then make the names durable.

        A chunk another writer published first (the same content) is adopted as it is:
        its header says whether it is a delta, and of which base.
        """
        staged = [r for r in results if r.staged is not None]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="bdr-sync") as pool:
            list(pool.map(self._publish_one, staged))
            fan_dirs = {self.store.chunks.path(r.chunk_id).parent for r in staged}
            list(pool.map(fsync_dir, fan_dirs))

    def _publish_one(self, r: _ChunkResult) -> None:
        chunks, tmp = self.store.chunks, r.staged
        assert tmp is not None
        if not chunks.publish(tmp, replace=r.heal or self.planner is None):
            base = self.planner.base_of_existing(r.chunk_id) if self.planner else None
            if base is None:  # what is there cannot be used as it is: ours replaces it
                chunks.publish(tmp, replace=True)
            else:
                tmp.unlink()
                r.kind, r.stored, r.base = REUSED, 0, base
        r.staged = None

    def run(self, lock: StoreLock, progress: Progress) -> list[_ChunkResult]:
        size, cs = self.source.size, self.cs
        count = (size + cs - 1) // cs
        results: list[_ChunkResult | None] = [None] * count
        inflight: deque[tuple[int, Future]] = deque()
        limit = self.workers * 2
        progress.start("backup", size)

        def collect(i: int, fut: Future) -> None:
            results[i] = fut.result()
            progress.advance(min(cs, size - i * cs))

        with ThreadPoolExecutor(self.workers, thread_name_prefix="bdr-backup") as pool:
            try:
                for i in range(count):
                    if lock.lost:
                        lock.check()
                    off = i * cs
                    n = min(cs, size - off)
                    if self.source.is_hole(off, n):
                        results[i] = _ZERO
                        progress.advance(n)
                        continue
                    while len(inflight) >= limit:
                        collect(*inflight.popleft())
                    inflight.append((i, pool.submit(self.read_and_process, i, off, n)))
                while inflight:
                    collect(*inflight.popleft())
            except BaseException:
                for _, fut in inflight:
                    fut.cancel()
                pool.shutdown(wait=True)
                self.discard([*results, *_finished(fut for _, fut in inflight)])
                raise
        progress.finish()
        return results  # type: ignore[return-value]

    def discard(self, results) -> None:
        """Remove the temp files of chunks staged by a backup that is giving up, so a
        failed backup (a full disk above all) leaves its space free at once rather than
        at the next gc."""
        for r in results:
            if r is not None and r.staged is not None:
                r.staged.unlink(missing_ok=True)

    def clear_healed(self, results: list[_ChunkResult]) -> None:
        """Stored again from intact source blocks: every point referencing them is whole."""
        for chunk_id in {r.chunk_id for r in results if r.kind == NEW} & self.damaged:
            self.store.chunks.clear_damaged(chunk_id)

    def heal_missing(self, index: PointIndex, results: list[_ChunkResult]) -> bool:
        """Store again, full, from the source, every referenced chunk that vanished since
        we saw it or whose base did; True when that changed the index (a chunk stored
        full needs no base)."""
        chunks = self.store.chunks
        present: dict[bytes, bool] = {}

        def gone(chunk_id: bytes) -> bool:
            if chunk_id not in present:
                present[chunk_id] = chunks.exists(chunk_id)
            return not present[chunk_id]

        healed: set[bytes] = set()
        changed = False
        for i, r in enumerate(results):
            if r.kind == ZERO:
                continue
            lost_base = r.base != ZERO_ID and gone(r.base)
            if r.chunk_id not in healed and (gone(r.chunk_id) or lost_base):
                self.store_full_again(i, index.chunk_len(i), r.chunk_id)
                healed.add(r.chunk_id)
            if r.chunk_id in healed and r.base != ZERO_ID:
                r.base = index.bases[i] = ZERO_ID
                changed = True
        return changed

    def store_full_again(self, i: int, length: int, chunk_id: bytes) -> None:
        data = self.source.read(i * self.cs, length)
        got, fps = self.store.identify(data)
        if got != chunk_id:
            where = f"offset {i * self.cs}"
            raise SourceChanged(f"source changed during backup at {where}; nothing committed")
        if fps is None:
            blob = self.store.codec.encode(data, chunk_id)
        else:
            blob = self.store.frames.encode(data, chunk_id, fps)
        fsync_dir(self.store.chunks.put(chunk_id, blob))


def _free_time(catalog, server: str, volume: str, when: datetime, explicit: bool) -> datetime:
    """``when``, or the next second no point of the volume has (an explicit time must be free)."""
    while catalog.find(make_point_id(server, volume, when)):
        if explicit:
            raise UsageError(f"point {make_point_id(server, volume, when)} already exists")
        when += timedelta(seconds=1)
    return when


def _previous_index(store: Store, catalog, volume: str) -> PointIndex | None:
    """The index of the volume's latest point, the base of an incremental (None: none)."""
    prev_record = catalog.latest(volume)
    if prev_record is None:
        return None
    try:
        return store.load_index(prev_record)
    except DamageFound:
        return None  # a damaged predecessor: back up from scratch


def _record(index: PointIndex, blob: bytes, results: list[_ChunkResult]) -> PointRecord:
    return PointRecord(
        id=index.point_id,
        server=index.server,
        volume=index.volume,
        taken_at=index.taken_at.isoformat(),
        tier="intraday",
        size=index.size,
        chunk_size=index.chunk_size,
        stored_bytes=sum(r.stored for r in results),
        chunks_total=len(results),
        chunks_new=sum(1 for r in results if r.kind == NEW),
        chunks_reused=sum(1 for r in results if r.kind == REUSED),
        chunks_zero=sum(1 for r in results if r.kind == ZERO),
        index_digest=index_digest(blob),
    )


def _write_index(store: Store, index: PointIndex) -> tuple[Path, bytes]:
    blob = index.encode(store.key)
    path = store.index_path(index.server, index.volume, index.taken_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, blob)
    return path, blob


def _finished(futures) -> list[_ChunkResult]:
    return [f.result() for f in futures if f.done() and not f.cancelled() and not f.exception()]


def parse_time(text: str) -> datetime:
    """An ISO-8601 time; naive times are UTC. UsageError when malformed."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise UsageError(f"bad time {text!r}: use ISO-8601, e.g. 2025-01-31T10:15:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def backup_volume(
    store: Store,
    server: str,
    source: str | os.PathLike,
    volume: str = "disk0",
    taken_at: datetime | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    before_commit: Callable[[], None] | None = None,
) -> PointRecord:
    """Back up ``source`` as a new point of ``server``/``volume`` and return its record.

    ``before_commit`` runs after every chunk is stored and the index written, just before
    the commit (tests use it to force a gc or verify into that window).

    ``taken_at`` (default now) names the point; an explicit time that already has a
    point is refused. Raises LockHeld if the server is busy, LockLost if our lock was
    broken (nothing committed), SourceChanged if the source moved under us.
    """
    check_name("server", server)
    check_name("volume", volume)
    progress = progress or Progress()
    workers = workers or (os.cpu_count() or 2) + 2
    explicit = taken_at is not None
    when = (taken_at or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    with SourceVolume(source) as src, store.lock_server(server, "backup") as lock:
        catalog = store.load_catalog(server)
        store.remove_orphan_indexes(catalog)
        when = _free_time(catalog, server, volume, when, explicit)
        job = _Backup(store, src, _previous_index(store, catalog, volume), workers)
        results = job.run(lock, progress)
        try:
            lock.check()
            job.publish(results)
        except BaseException:
            job.discard(results)
            raise
        index = PointIndex(server=server, volume=volume, taken_at=when, size=src.size,
                           chunk_size=store.chunk_size, ids=[r.chunk_id for r in results],
                           format=store.format)  # fmt: skip
        if store.format == 2:
            index.bases = [r.base for r in results]
        idx_path, blob = _write_index(store, index)
        record = _record(index, blob, results)
        if before_commit is not None:
            before_commit()
        try:
            with store.commit_interlock():
                if job.heal_missing(index, results):
                    record.index_digest = index_digest(_write_index(store, index)[1])
                lock.check()
                catalog = store.load_catalog(server)
                catalog.points.append(record)
                store.save_catalog(catalog)
        except AgentError:
            idx_path.unlink(missing_ok=True)
            raise
        job.clear_healed(results)
        return record
