"""Where a vault keeps its bytes: a local directory (this module) or S3 (``vault.s3``).

A backend knows two things: blobs (sealed bytes under a 32-byte id, each with the
SHA-256 of those bytes recorded when it was stored) per appliance namespace, and small
records (JSON and id lists) under relative keys such as
``appliances/<app>/points/<server>/<volume>/<stamp>.json``. It never interprets a blob.

Local layout: a blob is the file ``appliances/<app>/blobs/ab/<64 hex>`` holding
``b"BDRV" | sha256 (32) | sealed bytes``: the digest travels with the bytes, so a file
damaged anywhere (header included) fails its check, and the write is one atomic rename.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from agent.store.chunkstore import TMP_PREFIX, fsync_dir, pid_alive, write_atomic

BLOB_MAGIC = b"BDRV"
DIGEST_BYTES = 32
BLOB_HEAD = len(BLOB_MAGIC) + DIGEST_BYTES


def sha256(data) -> bytes:
    return hashlib.sha256(data).digest()


class Backend:
    """The operations a vault needs from its storage (see ``LocalBackend``)."""

    description = ""
    object_lock_days = 0  # S3 only: days each blob is locked against deletion

    def blob_size(self, app: str, blob_id: bytes) -> int | None:
        """The sealed size of a stored blob, None when it is absent."""
        raise NotImplementedError

    def blob_sizes(self, app: str, ids: list[bytes]) -> dict[bytes, int | None]:
        """``blob_size`` of each id (S3 asks in parallel)."""
        return {blob_id: self.blob_size(app, blob_id) for blob_id in ids}

    def put_blob(self, app: str, blob_id: bytes, data, digest: bytes) -> None:
        """Store ``data`` durably under ``blob_id`` with its recorded ``digest``."""
        raise NotImplementedError

    def get_blob(self, app: str, blob_id: bytes) -> tuple[bytes, bytes | None]:
        """(sealed bytes, recorded digest or None if unreadable); FileNotFoundError."""
        raise NotImplementedError

    def iter_blobs(self, app: str) -> Iterator[tuple[bytes, int]]:
        """Every stored blob of ``app``: (id, sealed size)."""
        raise NotImplementedError

    def remove_blob(self, app: str, blob_id: bytes, quarantine: bool = False) -> bool:
        """Delete a blob, or with ``quarantine`` move it aside as evidence; False when the
        storage refused for now (an S3 Object Lock not yet expired)."""
        raise NotImplementedError

    def namespaces(self) -> list[str]:
        """The appliance namespaces that hold anything."""
        raise NotImplementedError

    def read_record(self, key: str) -> bytes | None:
        raise NotImplementedError

    def write_record(self, key: str, data: bytes) -> None:
        """Replace the record atomically and durably."""
        raise NotImplementedError

    def delete_record(self, key: str) -> None:
        raise NotImplementedError

    def list_records(self, prefix: str) -> list[str]:
        """Keys of the records under ``prefix`` (recursively), sorted."""
        raise NotImplementedError

    def sync(self) -> None:
        """Make every blob stored so far durable under its name."""

    @contextlib.contextmanager
    def lock(self, app: str, exclusive: bool):
        """Commits (shared) against retention's purge (exclusive) of one namespace."""
        yield


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad record key {key!r}")
    return key


class LocalBackend(Backend):
    """A vault in a local directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.description = str(self.root)
        self._unsynced_dirs: set[Path] = set()

    def _blob_path(self, app: str, blob_id: bytes) -> Path:
        name = blob_id.hex()
        return self.root / "appliances" / app / "blobs" / name[:2] / name

    def blob_size(self, app: str, blob_id: bytes) -> int | None:
        try:
            return os.stat(self._blob_path(app, blob_id)).st_size - BLOB_HEAD
        except FileNotFoundError:
            return None

    def put_blob(self, app: str, blob_id: bytes, data, digest: bytes) -> None:
        # Temp file, fsync, rename: a killed receiver leaves only a temp file, a stored
        # blob is whole. The directory is fsynced by sync() before any commit relies on it.
        path = self._blob_path(app, blob_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, BLOB_MAGIC + digest + data, sync_dir=False)
        self._unsynced_dirs.add(path.parent)

    def get_blob(self, app: str, blob_id: bytes) -> tuple[bytes, bytes | None]:
        with open(self._blob_path(app, blob_id), "rb") as f:
            raw = f.read()
        if len(raw) < BLOB_HEAD or raw[: len(BLOB_MAGIC)] != BLOB_MAGIC:
            return raw[BLOB_HEAD:], None
        return raw[BLOB_HEAD:], raw[len(BLOB_MAGIC) : BLOB_HEAD]

    def iter_blobs(self, app: str) -> Iterator[tuple[bytes, int]]:
        top = self.root / "appliances" / app / "blobs"
        if not top.is_dir():
            return
        for sub in sorted(os.scandir(top), key=lambda e: e.name):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                if len(entry.name) != 64 or entry.name.startswith("."):
                    continue
                try:
                    size = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    continue
                yield bytes.fromhex(entry.name), size - BLOB_HEAD

    def remove_blob(self, app: str, blob_id: bytes, quarantine: bool = False) -> bool:
        path = self._blob_path(app, blob_id)
        try:
            if quarantine:
                aside = self.root / "appliances" / app / "quarantine"
                aside.mkdir(parents=True, exist_ok=True)
                os.replace(path, aside / f"{blob_id.hex()}.{int(time.time())}")
            else:
                path.unlink()
        except FileNotFoundError:
            return True
        self._unsynced_dirs.add(path.parent)
        return True

    def remove_stale_temps(self, app: str) -> int:
        """Delete temp files of receivers that died mid-blob; how many."""
        removed = 0
        top = self.root / "appliances" / app / "blobs"
        for tmp in top.glob(f"*/{TMP_PREFIX}*"):
            try:
                pid = int(tmp.name.split(".")[2])
            except (IndexError, ValueError):
                pid = 0
            if not pid_alive(pid):
                tmp.unlink(missing_ok=True)
                removed += 1
        return removed

    def namespaces(self) -> list[str]:
        top = self.root / "appliances"
        return sorted(p.name for p in top.iterdir() if p.is_dir()) if top.is_dir() else []

    def read_record(self, key: str) -> bytes | None:
        try:
            return (self.root / _check_key(key)).read_bytes()
        except FileNotFoundError:
            return None

    def write_record(self, key: str, data: bytes) -> None:
        path = self.root / _check_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)

    def delete_record(self, key: str) -> None:
        path = self.root / _check_key(key)
        path.unlink(missing_ok=True)

    def list_records(self, prefix: str) -> list[str]:
        top = self.root / _check_key(prefix)
        if not top.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in top.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )

    def sync(self) -> None:
        for folder in sorted(self._unsynced_dirs):
            fsync_dir(folder)
        self._unsynced_dirs.clear()

    @contextlib.contextmanager
    def lock(self, app: str, exclusive: bool):
        folder = self.root / "appliances" / app
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
