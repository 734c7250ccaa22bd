"""``repair --from TARGET``: fetch from a vault the chunks verify found damaged, and heal.

The chunks are those of the store's ``damaged/`` register (written by ``verify``, or by a
replication that found a chunk failing its check). Each copy fetched is checked here with
the key, as verify checks a chunk (authenticated, decompressed, its content hashing to its
id): the vault is never trusted with content. A good copy is written back (temp file,
fsync, rename) and taken off the register; since a chunk's id is the keyed hash of its
content, every point that referenced it is whole again. What no copy holds stays in the
register, so the next backup of a server whose disk still has those blocks stores them
again (the diff-gen).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from agent.errors import AgentError
from agent.store.chunkstore import fsync_dir
from agent.store.datastore import Store
from agent.store.progress import Progress
from agent.store.verify import check_blob
from agent.vault.fetch import fetch_blobs
from agent.vault.targets import Target, connect


def check_fetched(store: Store, chunk_id: bytes, blob: bytes) -> str | None:
    """Why a fetched copy is not the chunk ``chunk_id`` (None when it is): authenticated,
    decoded (a delta with its base from the store) and re-hashed, as verify checks it."""
    return check_blob(store, chunk_id, blob)


def chunk_users(store: Store, chunk_ids: set[bytes]) -> dict[bytes, list[str]]:
    """The points that need each of ``chunk_ids``."""
    users: dict[bytes, list[str]] = defaultdict(list)
    for record in store.list_points():
        try:
            needed = set(store.point_blob_ids(record.id))
        except AgentError:
            continue  # its index is damaged: verify reports that, no chunk can heal it
        for chunk_id in needed & chunk_ids:
            users[chunk_id].append(record.id)
    return users


def repair(
    store: Store,
    target: Target,
    *,
    app: str,
    known_hosts: Path,
    identity: Path,
    progress: Progress | None = None,
) -> dict:
    """Fetch every chunk in the damaged register from ``target``; what was healed."""
    progress = progress or Progress()
    damaged = store.chunks.damaged_ids()
    users = chunk_users(store, damaged)
    repaired, remaining = [], {}
    progress.start("repair", len(damaged))
    if damaged:
        with connect(target, known_hosts, identity) as conn:
            for chunk_id, blob, problem in fetch_blobs(conn, app, sorted(damaged)):
                reason = problem or check_fetched(store, chunk_id, blob)
                if reason:
                    remaining[chunk_id] = f"{conn.vault_name}: {reason}"
                else:
                    fsync_dir(store.chunks.put(chunk_id, blob))
                    store.chunks.clear_damaged(chunk_id)
                    repaired.append(chunk_id)
                progress.advance(1)
    progress.finish()
    still = {p for c in remaining for p in users.get(c, [])}
    healed = sorted({p for c in repaired for p in users.get(c, [])} - still)
    return {
        "target": target.text,
        "repaired": [c.hex() for c in repaired],
        "remaining": [
            {"chunk": c.hex(), "reason": r, "points": sorted(users.get(c, []))}
            for c, r in sorted(remaining.items())
        ],
        "points_healed": healed,
        "points_damaged": sorted(still),
    }
