"""A store on disk: its config, key, chunk store, catalogs, indexes, policies and locks.

<store>/config.json                          format, chunk/block size, key file, key check
<store>/chunks/ab/ab...(64 hex)               sealed chunks
<store>/servers/<server>/catalog              sealed list of the server's points
<store>/servers/<server>/policy.json          retention policy (plain JSON)
<store>/servers/<server>/points/<volume>/<YYYYMMDDTHHMMSSZ>.idx   sealed indexes
<store>/damaged/<chunk id>                    chunks found damaged, to store again
<store>/quarantine/<chunk id>.<time>          damaged chunk files moved aside
<store>/locks/                                server-<name>.lock, gc.lock, commit.flock
"""

from __future__ import annotations

import contextlib
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
from agent.store.directio import AlignedBuffers
from agent.store.framecodec import FrameCodec
from agent.store.frames import BaseDamaged, is_framed
from agent.store.keys import StorageKey, load_key_file
from agent.store.locking import StoreLock, commit_interlock
from agent.store.pointindex import PointIndex, check_name, parse_point_id, stamp
from agent.store.retention import RetentionPolicy

STORE_FORMAT = 2  # new stores; format 1 (whole 4 MiB chunks, no deltas) is still served
FORMATS = (1, 2)
DEFAULT_CHUNK_SIZE = 4 << 20
BLOCKS_PER_CHUNK = 64  # default block size: chunk size / 64 (64 KiB for 4 MiB chunks)
# zstd level 3 for 64 KiB frames: they decode as fast as whole 4 MiB chunks at level 1
# (level 1 frames that small decode ~25% slower), see agent/README.md
DEFAULT_LEVEL = {1: 1, 2: 3}
DEFAULT_REBASE_PERCENT = 35  # see agent/README.md, Store format 2
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
    compression_level: int | None = None,
    store_format: int = STORE_FORMAT,
    block_size: int | None = None,
    rebase_percent: int = DEFAULT_REBASE_PERCENT,
) -> Store:
    """Create a store at ``root`` keyed by ``key_file`` (made, 0600, if absent).

    An existing store is accepted only with its own key (init is idempotent). Format 2
    (the default) stores changed chunks as deltas of ``block_size`` blocks (default
    chunk size / 64); format 1 stores every changed chunk whole.
    """
    root = Path(root)
    if chunk_size < 4096 or chunk_size & (chunk_size - 1) or chunk_size > 64 << 20:
        raise UsageError("chunk size must be a power of two between 4 KiB and 64 MiB")
    block_size = block_size or chunk_size // BLOCKS_PER_CHUNK
    if compression_level is None:
        compression_level = DEFAULT_LEVEL.get(store_format, 1)
    _check_layout(store_format, chunk_size, block_size, rebase_percent)
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
        "format": store_format,
        "chunk_size": chunk_size,
        "key_file": str(key_path),
        "key_check": key.check_value,
        "gc_grace": gc_grace,
        "compression_level": compression_level,
        "created": time.time(),
    }
    if store_format == 2:
        config.update(block_size=block_size, rebase_percent=rebase_percent)
    write_atomic(root / "config.json", json.dumps(config, indent=2).encode())
    store = Store.open(root)
    store.ensure_reserve()
    return store


def _check_layout(store_format: int, chunk_size: int, block_size: int, rebase: int) -> None:
    if store_format not in FORMATS:
        raise UsageError(f"store format must be one of {', '.join(map(str, FORMATS))}")
    blocks = chunk_size // block_size
    if block_size < 256 or chunk_size % block_size or blocks > 1024:
        raise UsageError("block size must divide the chunk size, be >= 256, and <= 1024 a chunk")
    if not 0 <= rebase <= 100:
        raise UsageError("rebase percent must be between 0 and 100")


@contextlib.contextmanager
def _chunk_file_errors(chunk_id: bytes, base: bool):
    """A chunk file that cannot be read as DamageFound (BaseDamaged for a base)."""
    error = BaseDamaged if base else DamageFound
    what = f"{'base ' if base else ''}chunk {chunk_id.hex()}"
    try:
        yield
    except FileNotFoundError:
        raise error(f"{what} is missing") from None
    except OSError as exc:
        raise error(f"{what} is unreadable: {exc.strerror}") from None


class Store:
    """An open store. Opening checks the key before anything is written."""

    def __init__(self, root: Path, config: dict, key: StorageKey):
        self.root = root
        self.config = config
        self.key = key
        self.format: int = config["format"]
        self.chunk_size: int = config["chunk_size"]
        self.block_size: int = config.get("block_size", self.chunk_size // BLOCKS_PER_CHUNK)
        self.rebase_percent: int = config.get("rebase_percent", DEFAULT_REBASE_PERCENT)
        self.chunks = ChunkStore(root)
        level = config.get("compression_level", 1)
        self.codec = ChunkCodec(key, level=level)  # format 1
        self.frames = FrameCodec(key, self.block_size, level=level)  # format 2
        self.locks_dir = root / "locks"
        # Per-thread buffers chunk files are read into when decoding (a blob, a delta's
        # base): reused, so a read costs the copy, not a new mapping's page faults.
        self._blob_reads = AlignedBuffers()
        self._base_reads = AlignedBuffers()

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
        if config.get("format") not in FORMATS:
            raise StoreError(f"store {root} has unknown format {config.get('format')!r}")
        key_path = key_file or os.environ.get("BDR_KEY_FILE") or config["key_file"]
        key = StorageKey(load_key_file(key_path))
        if not key.matches(config["key_check"]):
            raise WrongKey(f"key file {key_path} is not the key of store {root}")
        return cls(root, config, key)

    # -- chunks ----------------------------------------------------------------------

    def identify(self, data: bytes) -> tuple[bytes, list[bytes] | None]:
        """(chunk id, block fingerprints) of a chunk's plaintext (no fingerprints in a
        format-1 store, whose ids hash the chunk whole)."""
        if self.format == 1:
            return self.key.chunk_id(data), None
        fps = self.key.fingerprints(data, self.block_size)
        return self.key.framed_id(fps, len(data), self.block_size), fps

    def load_blob(self, chunk_id: bytes, base: bool = False) -> bytes:
        """A chunk file's bytes; DamageFound (BaseDamaged for a base) if missing/unreadable."""
        with _chunk_file_errors(chunk_id, base):
            return self.chunks.get(chunk_id)

    def load_base(self, chunk_id: bytes) -> bytes:
        """A delta's base chunk file (BaseDamaged if missing or unreadable)."""
        return self.load_blob(chunk_id, base=True)

    def _read_blob(self, chunk_id: bytes, buffers: AlignedBuffers, base: bool = False):
        """``load_blob`` into this thread's buffer from ``buffers``: a view valid until the
        thread's next read into the same buffers (decoding only; nothing may keep it)."""
        with _chunk_file_errors(chunk_id, base), open(self.chunks.path(chunk_id), "rb", 0) as f:
            size = os.fstat(f.fileno()).st_size
            view = buffers.get(size)
            got = 0
            while got < size and (n := f.readinto(view[got:size])):
                got += n
        return view[:got]  # shorter than the file said: its authentication fails

    def _read_base(self, chunk_id: bytes):
        return self._read_blob(chunk_id, self._base_reads, base=True)

    def blob_is_authentic(self, chunk_id: bytes, blob: bytes) -> bool:
        """Whether ``blob`` is chunk ``chunk_id`` sealed under this store's key, of any
        layout: every AES-GCM tag checks out (nothing decompressed, a delta's base not
        needed). What a blob sent to or fetched from a vault can be checked with."""
        if is_framed(blob):
            return self.frames.authentic(blob, chunk_id)
        return self.codec.authentic(blob, chunk_id)

    def decode_chunk_into(self, chunk_id: bytes, length: int, out: memoryview) -> None:
        """The plaintext of chunk ``chunk_id`` into ``out[:length]`` (a delta's base read
        too); DamageFound (or BaseDamaged) names what is wrong."""
        blob = self._read_blob(chunk_id, self._blob_reads)
        if is_framed(blob):
            self.frames.decode_into(blob, chunk_id, length, out, self._read_base)
        else:
            self.codec.decode_into(bytes(blob), chunk_id, length, out)

    def decode_chunk(self, chunk_id: bytes, length: int) -> bytes | bytearray:
        """``decode_chunk_into`` a new buffer."""
        blob = self._read_blob(chunk_id, self._blob_reads)
        if is_framed(blob):
            return self.frames.decode(blob, chunk_id, length, self._read_base)
        return self.codec.decode(bytes(blob), chunk_id, length)

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
        """Every chunk id ``point_id`` needs (from its index alone; no chunk is opened):
        its chunks and the bases its deltas are stored against, each once."""
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
