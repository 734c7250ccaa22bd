"""``seed --from TARGET --key-file KEY``: rebuild a store from a vault (a new appliance after
a disaster, shipped "imaged with the latest data").

The vault's sealed catalogs are opened with the key (so a vault cannot invent a point: a
catalog or an index it forged fails authentication) and give each point's record (tier,
sizes) and the digest of its index. Newest first, per point: its sealed index is fetched
and checked against that digest, every chunk it needs that the store lacks is fetched,
authenticated with the key and written (temp, fsync, rename), the fan-out directories are
fsynced, the index is written, and the point is committed to its server's catalog, as a
backup commits. A killed seed is resumed by running it again (points already committed
and chunks already present are skipped). The store keeps the vault namespace it came from
(``appliance/offsite.json``), so replication resumes where the old appliance stopped, and
the next backup of each volume is an incremental on top of its seeded latest point.
"""

from __future__ import annotations

import json
from pathlib import Path

from agent.errors import DamageFound, UsageError
from agent.offsite.replicate import chunk_is_authentic
from agent.records import write_json_atomic
from agent.store.catalog import Catalog, PointRecord, index_digest
from agent.store.chunkstore import fsync_dir, write_atomic
from agent.store.datastore import Store, init_store
from agent.store.keys import StorageKey, load_key_file
from agent.store.pointindex import PointIndex
from agent.store.progress import Progress
from agent.vault.fetch import fetch_blobs
from agent.vault.transfer import remote_points


def pick_appliance(conn, wanted: str | None) -> str:
    """The namespace to seed from: ``wanted``, or the vault's only one."""
    message, _ = conn.call("appliances")
    apps = [a for a in message.get("appliances") or [] if isinstance(a, str)]
    if wanted:
        if wanted not in apps:
            raise UsageError(f"vault {conn.vault_name} holds no appliance {wanted!r}")
        return wanted
    if len(apps) != 1:
        named = ", ".join(apps) or "none"
        raise UsageError(
            f"vault {conn.vault_name} holds appliances {named}: pick one (--appliance)"
        )
    return apps[0]


def fetch_one(conn, app: str, blob_id: bytes) -> bytes:
    for _, blob, problem in fetch_blobs(conn, app, [blob_id]):
        if blob is None:
            raise DamageFound(f"blob {blob_id.hex()} from the vault: {problem}")
        return blob
    raise DamageFound(f"blob {blob_id.hex()}: the vault sent nothing")


def vault_records(conn, app: str, key: StorageKey, points: list[dict]) -> dict[str, PointRecord]:
    """Each point's record from the vault's sealed catalogs (opened with the key: a catalog
    the vault altered fails here); a point listed by several catalogs takes the newest."""
    catalogs = {}
    for point in points:
        catalogs.setdefault(point["catalog"], point["server"])
    found: dict[str, tuple[int, PointRecord]] = {}
    ids = [bytes.fromhex(c) for c in catalogs]
    for blob_id, blob, _ in fetch_blobs(conn, app, ids):
        try:
            catalog = Catalog.decode(key, blob or b"", catalogs[blob_id.hex()])
        except DamageFound:
            continue  # missing or not sealed by this key: its points are not seeded
        for record in catalog.points:
            if record.id not in found or found[record.id][0] < catalog.generation:
                found[record.id] = (catalog.generation, record)
    return {pid: record for pid, (_, record) in found.items()}


def open_or_init(root: Path, key_file: Path, conn, app: str, newest: dict, key: StorageKey):
    """The store to seed: opened if it exists (a resumed seed), else made with the chunk size
    of the newest point's index."""
    if (root / "config.json").exists():
        store = Store.open(root, key_file=key_file)
    else:
        index = PointIndex.decode(
            key, fetch_one(conn, app, bytes.fromhex(newest["index"])), newest["point"]
        )
        store = init_store(root, key_file, chunk_size=index.chunk_size)
    marker = root / "appliance" / "offsite.json"
    try:
        mine = json.loads(marker.read_text())["appliance"]
    except FileNotFoundError:
        write_json_atomic(marker, {"appliance": app})
        mine = app
    if mine != app:
        raise UsageError(f"store {root} replicates as appliance {mine}, not {app}")
    return store


def seed_point(conn, app: str, store: Store, point: dict, record: PointRecord, progress) -> int:
    """Fetch, check and commit one point; the bytes fetched. DamageFound if the vault's
    copy of it is incomplete or fails a check (then nothing of it is committed)."""
    blob = fetch_one(conn, app, bytes.fromhex(point["index"]))
    if index_digest(blob) != record.index_digest:
        raise DamageFound(f"index of {record.id} from the vault does not match its catalog")
    index = PointIndex.decode(store.key, blob, record.id)
    wanted = [c for c in index.blob_ids() if not store.chunks.exists(c)]
    fetched, dirs = len(blob), set()
    for chunk_id, data, problem in fetch_blobs(conn, app, wanted):
        if data is None or not chunk_is_authentic(store, chunk_id, data):
            raise DamageFound(f"chunk {chunk_id.hex()} of {record.id}: {problem or 'damaged'}")
        dirs.add(store.chunks.put(chunk_id, data))
        fetched += len(data)
        progress.advance(len(data))
    for folder in dirs:
        fsync_dir(folder)
    with store.lock_server(record.server, "seed"):
        catalog = store.load_catalog(record.server)
        if catalog.find(record.id) is None:
            path = store.index_path(record.server, record.volume, record.taken_at_dt)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, blob)
            with store.commit_interlock():
                catalog = store.load_catalog(record.server)
                catalog.points.append(record)
                store.save_catalog(catalog)
    return fetched


def seed(
    root: Path, key_file: Path, conn, *, app: str | None = None, progress: Progress | None = None
) -> dict:
    """Rebuild (or resume rebuilding) the store at ``root`` from the vault on ``conn``."""
    progress = progress or Progress()
    key = StorageKey(load_key_file(key_file))
    app = pick_appliance(conn, app)
    points = [p for p in remote_points(conn, app)["points"] if p.get("whole")]
    if not points:
        raise UsageError(f"vault {conn.vault_name} holds no whole point of {app}")
    points.sort(key=lambda p: (p["taken_at"], p["point"]), reverse=True)
    records = vault_records(conn, app, key, points)
    store = open_or_init(Path(root), Path(key_file), conn, app, points[0], key)
    have = {p.id for p in store.list_points()}
    todo = [p for p in points if p["point"] not in have]
    progress.start("seed", sum(int(p.get("bytes", 0)) for p in todo))
    seeded, skipped, fetched = [], [], 0
    for point in todo:
        record = records.get(point["point"])
        if record is None:
            skipped.append({"point": point["point"], "reason": "no catalog on the vault lists it"})
            continue
        try:
            fetched += seed_point(conn, app, store, point, record, progress)
            seeded.append(point["point"])
        except DamageFound as exc:
            skipped.append({"point": point["point"], "reason": str(exc)})
    progress.finish()
    return {
        "store": str(root),
        "appliance": app,
        "vault": conn.vault_name,
        "points_seeded": len(seeded),
        "points": seeded,
        "skipped": skipped,
        "points_in_store": len(store.list_points()),
        "bytes_fetched": fetched,
    }
