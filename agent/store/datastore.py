"""A store on disk: its config, key, chunk store, catalogs, indexes, policies and locks.

<store>/config.json                          format, chunk size, key file, key check
<store>/chunks/ab/ab...(64 hex)               sealed chunks
<store>/servers/<server>/catalog              sealed list of the server's points
<store>/servers/<server>/policy.json          retention policy (plain JSON)
<store>/servers/<server>/points/<volume>/<YYYYMMDDTHHMMSSZ>.idx   sealed indexes
<store>/damaged/<chunk id>                    chunks found damaged, to store again
<store>/quarantine/<chunk id>.<time>          damaged chunk files moved aside
<store>/locks/                                server-<name>.lock, gc.lock, commit.flock
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TypeVar

from agent.errors import DamageFound, StoreError, UsageError, WrongKey
from agent.store.catalog import Catalog, PointRecord, index_digest
from agent.store.chunkstore import ChunkStore, write_atomic
from agent.store.codec import ChunkCodec
from agent.store.keys import StorageKey, load_key_file
from agent.store.locking import StoreLock, commit_interlock
from agent.store.pointindex import PointIndex, check_name, parse_point_id, stamp
from agent.store.retention import RetentionPolicy

STORE_FORMAT = 1
DEFAULT_CHUNK_SIZE = 4 << 20
DEFAULT_GC_GRACE = 6 * 3600
SUBDIRS = ("chunks", "servers", "damaged", "quarantine", "locks")
RESERVE_BYTES = 4 << 20
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
T = TypeVar("T")


def init_store(
    root: str | os.PathLike,
    key_file: str | os.PathLike,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    gc_grace: int = DEFAULT_GC_GRACE,
    compression_level: int = 1,
) -> Store:
    """Create a store at ``root`` keyed by ``key_file`` (made, 0600, if absent).

    An existing store is accepted only with its own key (init is idempotent).
    """
    root = Path(root)
    if chunk_size < 4096 or chunk_size & (chunk_size - 1) or chunk_size > 64 << 20:
        raise UsageError("chunk size must be a power of two between 4 KiB and 64 MiB")
    key_path = Path(key_file).resolve()
    if (root / "config.json").exists():
        store = Store.open(root, key_file=key_path)
        return store
    if root.exists() and any(root.iterdir()):
        raise StoreError(f"{root} exists and is not an empty directory")
    key = StorageKey(load_key_file(key_path, create=True))
    root.mkdir(parents=True, exist_ok=True)
    for sub in SUBDIRS:
        (root / sub).mkdir(exist_ok=True)
    for i in range(256):
        (root / "chunks" / f"{i:02x}").mkdir(exist_ok=True)
    config = {
        "format": STORE_FORMAT,
        "chunk_size": chunk_size,
        "key_file": str(key_path),
        "key_check": key.check_value,
        "gc_grace": gc_grace,
        "compression_level": compression_level,
        "created": time.time(),
    }
    write_atomic(root / "config.json", json.dumps(config, indent=2).encode())
    store = Store.open(root)
    store.ensure_reserve()
    return store


class Store:
    """An open store. Opening checks the key before anything is written."""

    def __init__(self, root: Path, config: dict, key: StorageKey):
        self.root = root
        self.config = config
        self.key = key
        self.chunk_size: int = config["chunk_size"]
        self.chunks = ChunkStore(root)
        self.codec = ChunkCodec(key, level=config.get("compression_level", 1))
        self.locks_dir = root / "locks"

    @classmethod
    def open(cls, root: str | os.PathLike, key_file: str | os.PathLike | None = None) -> Store:
        """Open the store at ``root``; WrongKey unless the key file is the store's key.

        ``key_file`` overrides the path recorded at init (env BDR_KEY_FILE does too).
        """
        root = Path(root)
        try:
            config = json.loads((root / "config.json").read_bytes())
        except FileNotFoundError:
            raise UsageError(f"no bdr-agent store at {root} (run init first)") from None
        except (OSError, ValueError) as exc:
            raise StoreError(f"store config {root / 'config.json'} is unreadable: {exc}") from None
        if config.get("format") != STORE_FORMAT:
            raise StoreError(f"store {root} has unknown format {config.get('format')!r}")
        key_path = key_file or os.environ.get("BDR_KEY_FILE") or config["key_file"]
        key = StorageKey(load_key_file(key_path))
        if not key.matches(config["key_check"]):
            raise WrongKey(f"key file {key_path} is not the key of store {root}")
        return cls(root, config, key)

    @property
    def gc_grace(self) -> float:
        return float(os.environ.get("BDR_GC_GRACE", self.config.get("gc_grace", DEFAULT_GC_GRACE)))

    # -- servers and catalogs ---------------------------------------------------------

    def server_dir(self, server: str) -> Path:
        return self.root / "servers" / check_name("server", server)

    def servers(self) -> list[str]:
        return sorted(p.name for p in (self.root / "servers").iterdir() if p.is_dir())

    def load_catalog(self, server: str) -> Catalog:
        """The server's catalog (empty if it has none yet); DamageFound if tampered."""
        path = self.server_dir(server) / "catalog"
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return Catalog(server=server)
        return Catalog.decode(self.key, blob, server)

    def save_catalog(self, catalog: Catalog) -> None:
        """Commit: the catalog replaces the old one atomically and durably."""
        catalog.generation += 1
        sdir = self.server_dir(catalog.server)
        sdir.mkdir(exist_ok=True)
        write_atomic(sdir / "catalog", catalog.encode(self.key))

    def lock_server(self, server: str, purpose: str) -> StoreLock:
        return StoreLock(self.locks_dir, f"server-{check_name('server', server)}", purpose)

    # -- the space reserve ------------------------------------------------------------
    # A full disk must not stop the commands that free space: rollup and gc need a few
    # KiB for their lock and the new catalog. The store keeps a 4 MiB reserve file;
    # when one of them hits ENOSPC it gives the reserve back and tries once more, and gc
    # makes a new reserve when there is room again. Backups never use it.

    @property
    def reserve_path(self) -> Path:
        return self.root / "reserve"

    def ensure_reserve(self) -> bool:
        """Make the reserve file if it is missing; False when there is no room for it."""
        path = self.reserve_path
        try:
            if path.stat().st_size == RESERVE_BYTES:
                return True
        except FileNotFoundError:
            pass
        try:
            write_atomic(path, bytes(RESERVE_BYTES))
        except OSError as exc:
            if exc.errno in DISK_FULL:
                return False
            raise
        return True

    def with_reserve(self, fn: Callable[[], T]) -> T:
        """``fn()``; if it runs out of space and the reserve exists, free the reserve and
        run ``fn()`` again (``fn`` must be safe to repeat: rollup and gc are)."""
        try:
            return fn()
        except OSError as exc:
            if exc.errno not in DISK_FULL or not self.reserve_path.exists():
                raise
        self.reserve_path.unlink(missing_ok=True)
        return fn()

    def lock_maintenance(self, purpose: str) -> StoreLock:
        return StoreLock(self.locks_dir, "gc", purpose)

    def commit_interlock(self):
        return commit_interlock(self.locks_dir)

    # -- points --------------------------------------------------------------------------

    def index_path(self, server: str, volume: str, taken_at) -> Path:
        return self.server_dir(server) / "points" / volume / f"{stamp(taken_at)}.idx"

    def list_points(self, server: str | None = None) -> list[PointRecord]:
        """Every committed point (of ``server``), oldest first."""
        servers = [check_name("server", server)] if server else self.servers()
        points: list[PointRecord] = []
        for name in servers:
            points.extend(self.load_catalog(name).points)
        points.sort(key=lambda p: (p.taken_at_dt, p.id))
        return points

    def get_point(self, point_id: str) -> PointRecord:
        """The committed point ``point_id``; UsageError if there is none."""
        server, _, _ = parse_point_id(point_id)
        if not self.server_dir(server).is_dir():
            raise UsageError(f"no such point: {point_id}")
        record = self.load_catalog(server).find(point_id)
        if record is None:
            raise UsageError(f"no such point: {point_id}")
        return record

    def load_index(self, record: PointRecord) -> PointIndex:
        """The point's index, checked against the digest its catalog recorded."""
        server, volume, taken_at = parse_point_id(record.id)
        try:
            blob = self.index_path(server, volume, taken_at).read_bytes()
        except FileNotFoundError:
            raise DamageFound(f"index of {record.id}: missing") from None
        if index_digest(blob) != record.index_digest:
            raise DamageFound(f"index of {record.id}: does not match the catalog")
        return PointIndex.decode(self.key, blob, record.id)

    def point_blob_ids(self, point_id: str) -> list[bytes]:
        """Every chunk id ``point_id`` needs (from its index alone; no chunk is opened)."""
        return self.load_index(self.get_point(point_id)).blob_ids()

    def remove_orphan_indexes(self, catalog: Catalog) -> int:
        """Delete index files the catalog does not name (crash leftovers); hold the lock."""
        listed = {p.id for p in catalog.points}
        removed = 0
        points_dir = self.server_dir(catalog.server) / "points"
        for path in points_dir.glob("*/*"):
            point_id = f"{catalog.server}/{path.parent.name}/{path.name.removesuffix('.idx')}"
            if point_id not in listed:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    # -- retention policies ------------------------------------------------------------

    def load_policy(self, server: str) -> RetentionPolicy:
        """The server's retention policy, or the defaults when none was set."""
        try:
            data = json.loads((self.server_dir(server) / "policy.json").read_bytes())
        except FileNotFoundError:
            return RetentionPolicy()
        return RetentionPolicy(**data)

    def save_policy(self, server: str, policy: RetentionPolicy) -> None:
        """Store the server's retention policy (what the portal pushes)."""
        sdir = self.server_dir(server)
        sdir.mkdir(exist_ok=True)
        write_atomic(sdir / "policy.json", json.dumps(asdict(policy)).encode())
