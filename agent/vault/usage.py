"""What an appliance keeps on a vault: the bytes of the blobs its live points reference.

Billing charges off-site GB from this figure (``usage`` request, ``offsite.status``'s
``vault_bytes``). Each blob counts once however many points reference it (an incremental
shares almost every chunk with the point before it), index and catalog blobs included;
blobs no live point references (sent but not committed yet, or waiting in retention's
trash for their purge) are not charged.

Cheap to ask: the answer is kept in ``appliances/<app>/usage.json`` with the set of live
points it was computed for (their ids and ``ids_sha256``), and given again while that set
is unchanged. When points were only added since (every replication), the new points'
blob lists are merged into the kept union (``usage.ids``, sorted, 32 bytes an id) and only
the blobs new to it are looked up; a point gone (retention) makes it count again from the
blob lists. A blob's size is its sealed size as stored (``Backend.blob_sizes``).
"""

from __future__ import annotations

import json

from agent.vault.protocol import pack_ids, unpack_ids
from agent.vault.store import VaultStore, _dump

USAGE = "appliances/{app}/usage.json"
UNION = "appliances/{app}/usage.ids"
SIZE_BATCH = 4096


def live_blobs(vault: VaultStore, app: str, records: list[dict] | None = None) -> set[bytes]:
    """Every blob a live point of ``app`` references; DamageFound if a blob list rotted."""
    live: set[bytes] = set()
    for record in vault.points(app) if records is None else records:
        live.update(_point_blobs(vault, app, record))
    return live


def _point_blobs(vault: VaultStore, app: str, record: dict) -> list[bytes]:
    ids = vault.point_blob_ids(app, record)
    return [*ids, *(bytes.fromhex(record[k]) for k in ("index", "catalog"))]


def usage(vault: VaultStore, app: str) -> dict:
    """``{"bytes", "blobs", "points"}`` of ``app`` on this vault (see the module's docstring);
    DamageFound if a live point's blob list rotted (``vault verify`` names it)."""
    records = vault.points(app)
    # a point verify marked not whole (a blob of it quarantined) counts again once healed
    live = {r["point"]: r["ids_sha256"] + ("" if r["whole"] else " damaged") for r in records}
    kept = _kept(vault, app)
    if kept is not None and kept["points"] == live:
        return _answer(kept)
    if kept is not None and kept["points"].items() <= live.items():
        union = set(unpack_ids(vault.backend.read_record(UNION.format(app=app)) or b""))
        if len(union) == kept["blobs"]:
            new = [r for r in records if r["point"] not in kept["points"]]
            added: set[bytes] = set()
            for record in new:
                added.update(_point_blobs(vault, app, record))
            added -= union
            total = kept["bytes"] + _bytes_of(vault, app, added)
            return _keep(vault, app, live, union | added, total)
    union = live_blobs(vault, app, records)
    return _keep(vault, app, live, union, _bytes_of(vault, app, union))


def _bytes_of(vault: VaultStore, app: str, ids: set[bytes]) -> int:
    total, pending = 0, sorted(ids)
    for start in range(0, len(pending), SIZE_BATCH):
        sizes = vault.backend.blob_sizes(app, pending[start : start + SIZE_BATCH])
        total += sum(size for size in sizes.values() if size is not None)
    return total


def _kept(vault: VaultStore, app: str) -> dict | None:
    raw = vault.backend.read_record(USAGE.format(app=app))
    try:
        kept = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    if not isinstance(kept, dict) or not isinstance(kept.get("points"), dict):
        return None
    return kept


def _keep(vault: VaultStore, app: str, live: dict, union: set[bytes], total: int) -> dict:
    kept = {"points": live, "bytes": total, "blobs": len(union)}
    vault.backend.write_record(UNION.format(app=app), pack_ids(sorted(union)))
    vault.backend.write_record(USAGE.format(app=app), _dump(kept))
    return _answer(kept)


def _answer(kept: dict) -> dict:
    return {"bytes": kept["bytes"], "blobs": kept["blobs"], "points": len(kept["points"])}
