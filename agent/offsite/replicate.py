"""``replicate TARGET``: copy the store's points to a vault, resumably.

The vault says which points it holds whole and which its retention retired; every other
point of the store is sent, newest first by default (the latest state of each server is
off-site soonest; older points then cost only the blobs they do not share, and gaps are
backfilled by the same rule: 16c), oldest first with ``order="oldest"``. A point travels
as its sealed chunk files, its sealed index and its server's sealed catalog, copied byte
for byte (never re-sealed, never decrypted on the vault). Each chunk is authenticated
with the key before it leaves, so local bit rot is never copied off-site: such a chunk is
recorded damaged (for ``repair`` and the next backup) and its points wait.

Resume needs no state of its own: the vault holds every blob that arrived whole, so the
next run asks again and sends only what is still lacking.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from cryptography.exceptions import InvalidTag

from agent.errors import AgentError, UsageError, failure_line
from agent.offsite.state import RunRecorder, record_vault_points, record_vault_usage
from agent.records import write_json_atomic
from agent.store.catalog import Catalog, PointRecord, index_digest
from agent.store.datastore import Store
from agent.store.locking import StoreLock
from agent.store.progress import Progress
from agent.vault.backend import sha256
from agent.vault.targets import Opening, Target, all_closed, ensure_identity
from agent.vault.transfer import (
    BlobUnavailable,
    KnownOnTarget,
    PointPlan,
    PointSender,
    remote_points,
    remote_usage,
)

ORDERS = ("newest", "oldest")


def appliance_id(store_root: Path, default: str = "") -> str:
    """This appliance's namespace on vaults: fixed at the first replication (from
    ``default``, the serial, else random) and kept in ``appliance/offsite.json``, so a
    serial set later, or a store seeded from a vault, keeps its namespace."""
    path = Path(store_root) / "appliance" / "offsite.json"
    try:
        return json.loads(path.read_text())["appliance"]
    except FileNotFoundError:
        pass
    app = default or f"appliance-{secrets.token_hex(6)}"
    write_json_atomic(path, {"appliance": app})
    return app


def vault_files(store_root: Path) -> tuple[Path, Path]:
    """(known_hosts pinning vault hosts, the SSH key shown to them)."""
    folder = Path(store_root) / "appliance"
    return folder / "known_hosts", ensure_identity(folder / "vault_ed25519", "bdr-appliance")


def chunk_is_authentic(store: Store, chunk_id: bytes, blob: bytes) -> bool:
    """The chunk's AES-GCM tags check out under the key, whatever its layout (nothing
    decompressed, a delta's base not needed)."""
    try:
        return store.blob_is_authentic(chunk_id, blob)
    except (InvalidTag, AgentError):
        return False


def store_reader(store: Store) -> Callable[[bytes], tuple[bytes, None]]:
    """Read a chunk file for sending: (sealed bytes, None); BlobUnavailable if it is
    missing or fails authentication (then recorded damaged, as verify would).

    No digest is sent with a chunk: its authenticity was just checked with the key, SSH's
    AEAD protects it on the wire, and the vault records the SHA-256 of what arrived (one
    pass of hashing fewer on the appliance, whose two cores also run the link's crypto)."""

    def read(chunk_id: bytes) -> tuple[bytes, bytes]:
        try:
            blob = store.chunks.get(chunk_id)
        except FileNotFoundError:
            raise BlobUnavailable(f"chunk {chunk_id.hex()} is missing from the store") from None
        if not chunk_is_authentic(store, chunk_id, blob):
            store.chunks.mark_damaged(chunk_id, "failed authentication while replicating")
            raise BlobUnavailable(f"chunk {chunk_id.hex()} is damaged in the store")
        return blob, None

    return read


def _size_of(store: Store) -> Callable[[bytes], int]:
    def size(chunk_id: bytes) -> int:
        try:
            return store.chunks.size(chunk_id)
        except FileNotFoundError:
            return 0

    return size


def local_points(store: Store, servers: list[str] | None) -> Iterator[tuple[PointRecord, tuple]]:
    """Every committed point with its server's sealed catalog as read (id, bytes)."""
    for server in servers or store.servers():
        try:
            raw = (store.server_dir(server) / "catalog").read_bytes()
        except FileNotFoundError:
            if servers:
                raise UsageError(f"no server {server!r} in this store") from None
            continue
        catalog = Catalog.decode(store.key, raw, server)
        for record in catalog.points:
            yield record, (sha256(raw), raw)


def plan_point(store: Store, record: PointRecord, catalog: tuple, known: set[bytes]) -> PointPlan:
    """What sending ``record`` takes; BlobUnavailable if the point is gone or its index
    no longer matches its catalog."""
    server, volume, _ = record.id.split("/")
    try:
        raw = store.index_path(server, volume, record.taken_at_dt).read_bytes()
        ids = store.point_blob_ids(record.id)
    except (FileNotFoundError, AgentError) as exc:
        raise BlobUnavailable(f"point {record.id} cannot be read: {exc}") from None
    if index_digest(raw) != record.index_digest:
        raise BlobUnavailable(f"index of {record.id} does not match its catalog")
    return PointPlan(record.id, ids, (sha256(raw), raw), catalog, known)


def replicate(
    store: Store,
    target: Target,
    *,
    app: str,
    servers: list[str] | None = None,
    order: str = "newest",
    pace: Callable[[int], None] | None = None,
    progress: Progress | None = None,
    on_commit: Callable[[str, dict], None] | None = None,
    policies: dict[str, dict] | None = None,
    streams: int | None = None,
    channels: int | None = None,
) -> dict:
    """Send every point the vault does not hold whole (and did not retire); a summary.
    ``policies`` (server -> off-site retention policy) go to the vault first. ``streams``
    connections carry the blobs (None: as many as the round trip needs), ``channels`` of them
    per SSH connection (``targets.connect_streams``). The run's
    progress and each commit are kept in the off-site state as it goes."""
    if order not in ORDERS:
        raise UsageError(f"order must be one of {', '.join(ORDERS)}")
    known_hosts, identity = vault_files(store.root)
    # the handshake runs meanwhile
    opening = Opening(target, known_hosts, identity, streams, channels)
    lock_name = "replicate-" + hashlib.sha256(target.text.encode()).hexdigest()[:16]
    try:
        with StoreLock(store.locks_dir, lock_name, "replicate"):
            result = _locked_run(store, target, opening, app, servers, order, pace, progress,
                                 on_commit, policies)  # fmt: skip
    finally:
        opening.discard()  # if the lock or the store failed first; closing twice is harmless
    return {"target": target.text, "order": order, **result}


def _locked_run(store, target, opening, app, servers, order, pace, progress, on_commit, policies):
    recorder = RunRecorder(store.root, target.text)
    try:
        points = list(local_points(store, servers))  # while the connections open
        with all_closed(opening.result()) as conns:
            for server, policy in (policies or {}).items():
                conns[0].call("policy", appliance=app, server=server, policy=policy)
            run = _Run(store, conns, app, recorder, on_commit)
            result = run.send_all(points, order, pace, progress or Progress())
    except BaseException as exc:
        recorder.finish(error=(failure_line(exc) or (repr(exc), 1))[0])
        raise
    recorder.finish()
    return result


class _Run:
    """One replication over an open connection."""

    def __init__(self, store: Store, conns: list, app: str, recorder: RunRecorder, on_commit):
        self.store, self.conns, self.conn, self.app = store, conns, conns[0], app
        self.recorder = recorder
        self.on_commit = on_commit

    def send_all(self, points: list, order: str, pace, progress: Progress) -> dict:
        store, conn = self.store, self.conn
        remote = remote_points(conn, self.app)
        record_vault_points(
            store.root, self.recorder.target, conn.vault_name, remote["points"], remote["retired"]
        )
        whole = {p["point"] for p in remote["points"] if p.get("whole")}
        retired = set(remote["retired"])
        todo = [(r, c) for r, c in points if r.id not in whole and r.id not in retired]
        todo.sort(key=lambda rc: (rc[0].taken_at_dt, rc[0].id), reverse=order == "newest")
        known = KnownOnTarget([r.id for r, _ in points], whole, store.point_blob_ids)

        def paced(n: int) -> None:
            if pace is not None:
                pace(n)
            self.recorder.sent(n)

        sender = PointSender(
            self.conns, self.app, store_reader(store), progress, paced, _size_of(store)
        )
        progress.start("replicate", 0)
        try:
            for record, catalog in todo:
                self._send_one(sender, record, catalog, known, whole)
        finally:
            sender.close()
        record_vault_usage(store.root, self.recorder.target, remote_usage(conn, self.app))
        progress.finish()
        on_vault = len(whole & {r.id for r, _ in points})
        return {
            "appliance": self.app,
            "vault": conn.vault_name,
            **sender.stats.to_json(),
            "points_local": len(points),
            "points_on_vault": on_vault,
        }

    def _send_one(self, sender, record, catalog, known, whole) -> None:
        try:
            plan = plan_point(self.store, record, catalog, known.for_point(record.id))
        except BlobUnavailable as exc:
            sender.stats.skipped.append({"point": record.id, "reason": str(exc)})
            return
        vault_record = sender.send(plan)
        if vault_record is not None:
            whole.add(record.id)
            self.recorder.committed(record.id, [self.conn.vault_name])
            if self.on_commit is not None:
                self.on_commit(record.id, vault_record)
