"""``offsite [TARGET]``: per recovery point its copies; the backlog, the rate and the ETA.

Everything comes from the store and the off-site state (``agent.offsite.state``), which a
replication keeps up to date as it runs; ``offsite TARGET`` asks the vault first.

- copies: ``local`` if the store holds the point, then the vault's name if the vault
  holds it whole, then the vaults that one has replicated it to;
- backlog: the bytes still to send: the chunks of every point not yet off-site that the
  nearest off-site point of its volume does not hold, counted once, with their indexes;
- rate: the running replication's rate over its last half minute; with none running, the
  last run's average, capped by the limit in force now;
- ETA: backlog / rate; lag: how long the oldest point waiting to go off-site has waited;
- vault_bytes: the bytes of the blobs this appliance's points reference on the vault,
  each counted once, as the vault said at the end of the last replication or refresh
  (None before it ever did): what billing charges as off-site GB.
"""

from __future__ import annotations

import os
from datetime import datetime

from agent.errors import AgentError
from agent.offsite.state import load_state
from agent.records import process_alive
from agent.store.catalog import PointRecord
from agent.store.datastore import Store
from agent.vault.transfer import KnownOnTarget


def backlog(store: Store, pending: list[PointRecord], records, offsite: set[str]) -> int:
    """Bytes the pending points still need to send (see the module's docstring)."""
    known = KnownOnTarget([r.id for r in records], offsite, store.point_blob_ids)
    todo: set[bytes] = set()
    total = 0
    for record in pending:
        try:
            ids = store.point_blob_ids(record.id)
            index = store.index_path(record.server, record.volume, record.taken_at_dt)
            total += os.stat(index).st_size
        except (OSError, AgentError):  # rolled up meanwhile: nothing to send
            continue
        todo.update(set(ids) - known.for_point(record.id))
    for chunk_id in todo:
        try:
            total += store.chunks.size(chunk_id)
        except FileNotFoundError:
            continue
    return total


def _run_rate(run: dict, limit: float | None) -> tuple[float | None, bool]:
    """(bytes/s to expect, whether a replication is running now)."""
    running = run.get("state") == "running" and process_alive(run.get("pid"))
    if running:
        return run.get("rate"), True
    rate = run.get("average_rate") or None
    if limit is not None and (rate is None or limit < rate):
        rate = limit or None
    return rate, False


def offsite_status(
    store: Store, target: str, *, now: datetime, limit: float | None = None, app: str = ""
) -> dict:
    """The off-site status of every point for ``target``; ``limit`` is the throttle's rate
    in force (bytes/s, None unlimited), ``now`` the time the lag is measured at."""
    entry = load_state(store.root).get(target, {})
    vault_points: dict[str, list[str]] = entry.get("points", {})
    retired = set(entry.get("retired", []))
    records = store.list_points()
    local = {r.id: r for r in records}
    pending = [r for r in records if r.id not in vault_points and r.id not in retired]
    points = [
        _point_entry(pid, local.get(pid), vault_points.get(pid, []))
        for pid in sorted(set(local) | set(vault_points))
    ]
    run = entry.get("run", {})
    rate, running = _run_rate(run, limit)
    remaining = backlog(store, pending, records, set(vault_points))
    eta = 0.0 if remaining == 0 else (round(remaining / rate, 1) if rate else None)
    offsite = [p for p in points if len(p["copies"]) > ("local" in p["copies"])]
    newest = max(offsite, key=lambda p: p["taken_at"], default=None)
    oldest_pending = min((r.taken_at_dt for r in pending), default=None)
    lag = 0 if oldest_pending is None else max(0, round((now - oldest_pending).total_seconds()))
    return {
        "target": target,
        "appliance": app,
        "vault": entry.get("vault"),
        "checked_at": entry.get("checked_at"),
        "points": points,
        "pending_points": len(pending),
        "backlog_bytes": remaining,
        "rate": rate,
        "limit": limit,
        "eta_seconds": eta,
        "running": run if running else None,
        "last_run": None if running else (run or None),
        "newest_offsite": newest and {"id": newest["id"], "taken_at": newest["taken_at"]},
        "lag_seconds": lag,
        "vault_bytes": entry.get("vault_bytes"),
        "vault_bytes_at": entry.get("vault_bytes_at"),
    }


def _point_entry(point_id: str, record: PointRecord | None, copies: list[str]) -> dict:
    server, volume, stamp = point_id.split("/")
    taken_at = record.taken_at if record else _stamp_iso(stamp)
    return {
        "id": point_id,
        "server": server,
        "volume": volume,
        "taken_at": taken_at,
        "copies": (["local"] if record else []) + list(copies),
    }


def _stamp_iso(stamp: str) -> str:
    from agent.store.pointindex import parse_point_id

    return parse_point_id(f"s/v/{stamp}")[2].isoformat()
