"""Garbage collection: delete chunks that no committed point references.

Two phases under the store's maintenance lock (a second gc refuses with exit 4):

1. mark: read every catalog and index; the union of their chunk ids, and of the bases
   their indexes name for their deltas (format 2), is live;
2. sweep, under the commit interlock (no backup commits meanwhile): read the catalogs
   again and mark any point committed since phase 1, then delete each chunk that is
   unmarked AND whose mtime is older than the grace period.

A running backup touches (utime, never relying on atime) every existing chunk it reuses,
and writes new ones with a fresh mtime, so within the grace period gc leaves its chunks
alone. Should a chunk still vanish under a backup, the backup sees it at commit (under
the same interlock) and stores it again from the source. Deleting is idempotent, so a gc
killed at any moment is finished by the next one.
"""

from __future__ import annotations

from agent.errors import DamageFound
from agent.store.chunkstore import TMP_PREFIX, pid_alive
from agent.store.datastore import Store
from agent.store.locking import break_stale_locks
from agent.store.progress import Progress


def referenced_chunks(
    store: Store, seen: set[str] | None = None, progress: Progress | None = None
) -> tuple[set[bytes], set[str]]:
    """Chunk ids referenced by committed points not in ``seen``; and those points' ids.

    A point whose index cannot be read is reported by verify; here its chunks simply
    cannot be marked, so gc refuses to run rather than delete what it may need.
    """
    seen = seen or set()
    progress = progress or Progress()
    live: set[bytes] = set()
    points: set[str] = set()
    for record in store.list_points():
        points.add(record.id)
        if record.id in seen:
            continue
        try:
            index = store.load_index(record)
        except DamageFound as exc:
            raise DamageFound(f"gc stopped, cannot mark {record.id}: {exc}") from None
        live.update(index.blob_ids())
        progress.beat()
    return live, points


def _tmp_is_stale(name: str, mtime: float, cutoff: float) -> bool:
    # .tmp.<pid>.<rand>.<name>: stale when its writer is gone (or it is very old)
    try:
        pid = int(name.split(".")[2])
    except (IndexError, ValueError):
        return mtime < cutoff
    return not pid_alive(pid) or mtime < cutoff


def collect_garbage(
    store: Store, grace: float | None = None, progress: Progress | None = None
) -> dict:
    """Run gc once; returns counts of chunks kept/deleted and bytes freed.

    On a full disk gc may spend the store's space reserve (see Store.with_reserve) and
    makes a new one once it has freed room.
    """
    result = store.with_reserve(lambda: _collect(store, grace, progress or Progress()))
    result["reserve"] = store.ensure_reserve()
    return result


def _collect(store: Store, grace: float | None, progress: Progress) -> dict:
    grace = store.gc_grace if grace is None else grace
    with store.lock_maintenance("gc") as lock:
        stale_locks = break_stale_locks(store.locks_dir)
        cutoff = store.chunks.clock() - grace
        live, points = referenced_chunks(store, progress=progress)
        deleted = kept = freed = tmp_removed = 0
        with store.commit_interlock():
            more, _ = referenced_chunks(store, seen=points, progress=progress)
            live |= more
            lock.check()
            for path, st in store.chunks.iter_chunks():
                progress.beat()
                name = path.name
                if name.startswith(TMP_PREFIX):
                    if _tmp_is_stale(name, st.st_mtime, cutoff):
                        path.unlink(missing_ok=True)
                        tmp_removed += 1
                    continue
                try:
                    chunk_id = bytes.fromhex(name)
                except ValueError:
                    continue
                if chunk_id in live or st.st_mtime >= cutoff:
                    kept += 1
                    continue
                path.unlink(missing_ok=True)
                deleted += 1
                freed += st.st_size
        for chunk_id in store.chunks.damaged_ids() - live:
            store.chunks.clear_damaged(chunk_id)  # no point needs it any more
    return {
        "chunks_kept": kept,
        "chunks_deleted": deleted,
        "bytes_freed": freed,
        "temp_files_removed": tmp_removed,
        "stale_locks_broken": stale_locks,
    }
