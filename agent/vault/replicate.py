"""``vault replicate DIR TARGET``: a vault sends its points on to a second vault, keyless.

Per appliance namespace, every point this vault holds whole and the target neither holds
whole nor retired is sent (newest first), with its sealed index and catalog, by the same
``PointSender`` the appliance uses. Each blob is read back and checked against the digest
recorded when it was stored before it leaves: a blob that rotted here is quarantined (the
vault then lacks it, and the appliance's next replication stores it again) and its point
is not sent, so damage is never propagated. Off-site policies go along, and this vault
records which of its points the target holds (``replicas/<target>.json``), so the
appliance sees every copy (local, vault 1, vault 2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from agent.errors import DamageFound, UsageError
from agent.store.locking import StoreLock
from agent.store.progress import Progress
from agent.vault.store import VaultStore
from agent.vault.targets import Target, all_closed, connect_streams, ensure_identity
from agent.vault.transfer import (
    BlobUnavailable,
    KnownOnTarget,
    PointPlan,
    PointSender,
    remote_points,
)


class VaultReader:
    """Reads blobs to send on: digest-checked, or BlobUnavailable. A rotten one is
    quarantined (as ``vault verify`` would) and remembered, so its points can be marked."""

    def __init__(self, vault: VaultStore, app: str):
        self.vault, self.app = vault, app
        self.bad: set[bytes] = set()

    def __call__(self, blob_id: bytes) -> tuple[bytes, bytes]:
        try:
            return self.vault.read_blob(self.app, blob_id)
        except FileNotFoundError:
            self.bad.add(blob_id)
            raise BlobUnavailable(f"blob {blob_id.hex()} is missing on this vault") from None
        except DamageFound as exc:
            self.bad.add(blob_id)
            self.vault.mark_damaged(self.app, blob_id, str(exc))
            raise BlobUnavailable(f"{exc} on this vault; not sent on") from None


def _plan(vault: VaultStore, app: str, record: dict, read, known: set[bytes]) -> PointPlan:
    try:
        ids = vault.point_blob_ids(app, record)
    except DamageFound as exc:
        raise BlobUnavailable(str(exc)) from None
    index_id, catalog_id = bytes.fromhex(record["index"]), bytes.fromhex(record["catalog"])
    index, catalog = read(index_id)[0], read(catalog_id)[0]
    return PointPlan(record["point"], ids, (index_id, index), (catalog_id, catalog), known)


def replicate_vault(
    vault: VaultStore,
    target: Target,
    *,
    pace: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    streams: int | None = None,
    channels: int | None = None,
) -> dict:
    """Send every appliance's points on to ``target``; a summary per appliance. ``streams``
    connections carry the blobs (None: as many as the round trip needs), ``channels`` of
    them per SSH connection (``targets.connect_streams``)."""
    if vault.root is None:
        raise UsageError("vault replicate needs the vault's directory (its pins and key)")
    root = Path(vault.root)
    identity = ensure_identity(root / "vault_ed25519", f"bdr-vault-{vault.name}")
    lock = "replicate-" + hashlib.sha256(target.text.encode()).hexdigest()[:16]
    progress = progress or Progress()
    (root / "locks").mkdir(exist_ok=True)
    with (
        StoreLock(root / "locks", lock, "vault replicate"),
        all_closed(
            connect_streams(target, root / "known_hosts", identity, streams, channels)
        ) as conns,
    ):
        progress.start("vault replicate", 0)
        results = [_replicate_app(vault, conns, a, pace, progress) for a in vault.appliances()]
        progress.finish()
    conn = conns[0]
    skipped = [s for r in results for s in r["skipped"]]
    return {
        "vault": vault.name,
        "target": target.text,
        "target_vault": conn.vault_name,
        "appliances": results,
        "points_sent": sum(r["points_sent"] for r in results),
        "bytes_sent": sum(r["bytes_sent"] for r in results),
        "skipped": skipped,
    }


def _replicate_app(vault: VaultStore, conns: list, app: str, pace, progress: Progress) -> dict:
    conn = conns[0]
    remote = remote_points(conn, app)
    there = {p["point"] for p in remote["points"] if p.get("whole")}
    records = [r for r in vault.points(app) if r["whole"]]
    for server in sorted({r["server"] for r in records}):
        policy = vault.policy(app, server)
        if policy is not None:
            conn.call("policy", appliance=app, server=server, policy=asdict(policy))
    todo = [r for r in records if r["point"] not in there | set(remote["retired"])]
    todo.sort(key=lambda r: (r["taken_at"], r["point"]), reverse=True)
    by_id = {r["point"]: r for r in records}
    known = KnownOnTarget(list(by_id), there, lambda pid: vault.point_blob_ids(app, by_id[pid]))
    read = VaultReader(vault, app)
    sender = PointSender(
        conns, app, read, progress, pace, lambda blob_id: vault.backend.blob_size(app, blob_id) or 0
    )
    try:
        for record in todo:
            if _send_on(vault, app, record, read, known, sender):
                there.add(record["point"])
    finally:
        sender.close()
        vault.record_copies(app, conn.vault_name, there & set(by_id))
    return {"appliance": app, **sender.stats.to_json(), "points_there": len(there & set(by_id))}


def _send_on(vault: VaultStore, app: str, record: dict, read: VaultReader, known, sender) -> bool:
    """Send one point; a point that needs a blob rotten or missing here is marked not whole
    (the appliance's next replication repairs it) and skipped."""
    try:
        plan = _plan(vault, app, record, read, known.for_point(record["point"]))
    except BlobUnavailable as exc:
        sender.stats.skipped.append({"point": record["point"], "reason": str(exc)})
        vault.mark_point(app, record["point"], [str(exc)])
        return False
    if sender.send(plan) is not None:
        return True
    needed = {*plan.blob_ids, plan.index[0], plan.catalog[0]}
    if read.bad & needed:
        problems = [f"blob {b.hex()}: damaged or missing" for b in sorted(read.bad & needed)]
        vault.mark_point(app, record["point"], problems)
    return False
