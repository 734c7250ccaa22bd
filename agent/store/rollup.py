"""Rollup: apply each server's retention policy to its points, then collect garbage.

Collapsing points is deleting indexes, never rewriting data: the catalog is replaced by
one listing only the kept points (with their new tiers), then the dropped index files
are deleted. A rollup killed at any moment leaves either the old or the new catalog;
leftover index files are removed by the next rollup or backup of that server.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent.store.datastore import Store
from agent.store.gc import collect_garbage
from agent.store.progress import Progress
from agent.store.retention import select_points


def rollup_server(store: Store, server: str, now: datetime) -> dict:
    """Apply ``server``'s policy at ``now``; returns the kept and removed point ids."""
    with store.lock_server(server, "rollup") as lock:
        catalog = store.load_catalog(server)
        policy = store.load_policy(server)
        keep = select_points([(p.id, p.taken_at_dt) for p in catalog.points], policy, now)
        removed = [p.id for p in catalog.points if p.id not in keep]
        for point in catalog.points:
            point.tier = keep.get(point.id, point.tier)
        catalog.points = [p for p in catalog.points if p.id in keep]
        lock.check()
        store.save_catalog(catalog)
        store.remove_orphan_indexes(catalog)
    return {"server": server, "kept": sorted(keep), "removed": removed}


def rollup(
    store: Store, now: datetime | None = None, gc: bool = True, progress: Progress | None = None
) -> dict:
    """Roll up every server at ``now`` (default: now), then run gc."""
    progress = progress or Progress()
    now = (now or datetime.now(UTC)).astimezone(UTC)
    servers = []
    for name in store.servers():
        servers.append(store.with_reserve(lambda name=name: rollup_server(store, name, now)))
        progress.beat()
    result: dict = {"now": now.isoformat(), "servers": servers}
    if gc:
        result["gc"] = collect_garbage(store, progress=progress)
    return result
