"""``vault retention DIR [--now ISO]``: the off-site policies, applied by the vault itself.

Per appliance and server, the policy the appliance pushed (``policy`` request; it may keep
more than the appliance does, e.g. 7 yearly points) selects the points to keep with the
store's own ``select_points``; a server without a policy keeps everything. A point that
goes is moved to the trash (``trash/<stamp>/<point>.json`` and ``.ids``, then its live
record is deleted) and added to the retired list, so senders do not send it again; its
blobs stay. A later run purges trash batches older than the vault's ``trash_days``
(default 14): their blobs that no live point references are deleted. So neither a
compromised appliance (pushing a policy that keeps nothing) nor the portal can destroy
the off-site copies at once: for two weeks every blob is still there, and an operator
can move the records back. Purging holds the namespace's lock exclusively, commits hold
it shared, so a blob a new commit references is never purged under it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agent.errors import DamageFound
from agent.store.pointindex import STAMP, parse_point_id
from agent.store.retention import select_points
from agent.vault.store import VaultStore, point_key
from agent.vault.usage import live_blobs


def apply_retention(vault: VaultStore, now: datetime, apps: list[str] | None = None) -> dict:
    """Trash what the policies drop, purge what has been in the trash long enough."""
    report = {
        "vault": vault.name,
        "now": now.isoformat(),
        "trash_days": vault.trash_days,
        "appliances": [],
    }
    for app in apps or vault.appliances():
        with vault.backend.lock(app, exclusive=True):
            trashed = _trash(vault, app, now)
            purged = _purge(vault, app, now)
        report["appliances"].append({"appliance": app, **trashed, **purged})
    return report


def _trash(vault: VaultStore, app: str, now: datetime) -> dict:
    records = vault.points(app)
    kept: dict[str, str] = {}
    drop = []
    for server in sorted({r["server"] for r in records}):
        mine = [r for r in records if r["server"] == server]
        policy = vault.policy(app, server)
        if policy is None:
            kept.update({r["point"]: "no policy" for r in mine})
            continue
        chosen = select_points(
            [(r["point"], parse_point_id(r["point"])[2]) for r in mine], policy, now
        )
        kept.update(chosen)
        drop += [r for r in mine if r["point"] not in chosen]
    batch = f"appliances/{app}/trash/{now.astimezone(UTC).strftime(STAMP)}"
    for record in drop:
        for suffix in (".ids", ".json"):  # copies first, then the live record goes
            raw = vault.backend.read_record(point_key(app, record["point"], suffix))
            if raw is not None:
                vault.backend.write_record(f"{batch}/{record['point']}{suffix}", raw)
        for suffix in (".json", ".ids", ".damaged"):
            vault.backend.delete_record(point_key(app, record["point"], suffix))
    if drop:
        vault.add_retired(app, [r["point"] for r in drop])
    return {"kept": kept, "trashed": sorted(r["point"] for r in drop)}


def _purge(vault: VaultStore, app: str, now: datetime) -> dict:
    """Delete the blobs of trash batches older than ``trash_days`` that no live point needs."""
    cutoff = now - timedelta(days=vault.trash_days)
    batches: dict[str, list[str]] = {}
    for key in vault.backend.list_records(f"appliances/{app}/trash"):
        stamp = key.split("/")[3]
        if datetime.strptime(stamp, STAMP).replace(tzinfo=UTC) <= cutoff:
            batches.setdefault(stamp, []).append(key)
    if not batches:
        return {"purged_points": [], "blobs_deleted": 0, "bytes_freed": 0}
    try:
        live = live_blobs(vault, app)
    except DamageFound as exc:  # what a live point needs is unknown: delete nothing
        return {
            "purged_points": [],
            "blobs_deleted": 0,
            "bytes_freed": 0,
            "purge_postponed": f"{exc}; run vault verify",
        }
    candidates: set[bytes] = set()
    purged = []
    for keys in batches.values():
        for key in keys:
            raw = vault.backend.read_record(key) or b""
            if key.endswith(".ids"):
                candidates.update(raw[i : i + 32] for i in range(0, len(raw), 32))
            elif key.endswith(".json"):
                record = json.loads(raw)
                purged.append(record["point"])
                candidates.update(bytes.fromhex(record[k]) for k in ("index", "catalog"))
    deleted = freed = refused = 0
    for blob_id in candidates - live:
        size = vault.backend.blob_size(app, blob_id)
        if size is None:
            continue
        if vault.backend.remove_blob(app, blob_id):
            deleted, freed = deleted + 1, freed + size
        else:
            refused += 1
    vault.backend.sync()
    if not refused:  # else the batches stay, and a later run deletes what the lock kept
        for keys in batches.values():
            for key in keys:
                vault.backend.delete_record(key)
    return {
        "purged_points": sorted(purged),
        "blobs_deleted": deleted,
        "bytes_freed": freed,
        "blobs_locked": refused,
    }
