"""Sealed chunks on disk, content-addressed: chunks/ab/abcdef... (64 hex digits).

The chunk store knows files, not points: put (temp file, fsync, rename), get, touch,
quarantine, the damaged-chunk register and sweeping. Which chunks are referenced is the
business of gc, which reads point indexes.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

from agent.store.directio import ALIGN, open_direct, write_all
from agent.store.memory import start_writeback

TMP_PREFIX = ".tmp."


def fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, sync_dir: bool = True) -> None:
    """Write ``data`` to ``path`` whole or not at all: temp file, fsync, rename, fsync dir."""
    tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}.{secrets.token_hex(4)}.{path.name}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        write_all(fd, memoryview(data), 0)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        fsync_dir(path.parent)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ChunkStore:
    """The chunks/ tree of a store, plus quarantine/ and damaged/ beside it."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.chunks = self.root / "chunks"
        self.quarantine_dir = self.root / "quarantine"
        self.damaged_dir = self.root / "damaged"

    def clock(self) -> float:
        """Now, by the clock that stamps chunk mtimes: the filesystem's.

        gc compares chunk mtimes with "now minus the grace period"; taking now from a stamp
        file on the same filesystem (touched, then read back) keeps that comparison honest
        when the process clock differs from the one that wrote the mtimes (a network
        filesystem's server, a clock moved by hand). The process clock is the fallback.
        """
        stamp = self.root / ".clock"
        try:
            stamp.touch()
            return stamp.stat().st_mtime
        except OSError:  # a full or read-only disk: the process clock will do
            return time.time()

    def path(self, chunk_id: bytes) -> Path:
        name = chunk_id.hex()
        return self.chunks / name[:2] / name

    def exists(self, chunk_id: bytes) -> bool:
        return os.path.exists(self.path(chunk_id))

    def touch(self, chunk_id: bytes) -> bool:
        """Set the chunk's mtime to now (gc's grace clock); False if it is missing.

        An explicit utime, never atime: storage mounted noatime must not fool gc.
        """
        try:
            os.utime(self.path(chunk_id))
        except FileNotFoundError:
            return False
        return True

    def put(self, chunk_id: bytes, blob: bytes) -> Path:
        """Store a sealed chunk durably (file fsynced; caller fsyncs the fan-out dir)."""
        path = self.path(chunk_id)
        write_atomic(path, blob, sync_dir=False)
        return path.parent

    def stage(self, chunk_id: bytes, buf: memoryview, n: int) -> Path:
        """Write a sealed chunk (``buf[:n]``) to a temp file beside its final name.

        Not yet visible as a chunk: ``publish`` makes staged chunks durable, then
        renames them, so no process ever sees (and dedups against) a chunk file whose
        bytes a power cut could still lose.

        ``buf`` is page-aligned with room to pad ``n`` up to 4096 (ChunkCodec.out_buffer):
        the file is written with O_DIRECT, padded, then truncated to ``n``, so its pages
        never pass through the page cache (see agent.directio for why that matters).
        Where O_DIRECT is refused the bytes are written normally and writeback started.
        """
        path = self.path(chunk_id)
        tmp = path.parent / f"{TMP_PREFIX}{os.getpid()}.{secrets.token_hex(4)}.{path.name}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        padded = -(-n // ALIGN) * ALIGN
        fd = open_direct(tmp, flags) if padded <= len(buf) else None
        try:
            if fd is not None:
                try:
                    write_all(fd, buf[:padded], 0)
                    os.ftruncate(fd, n)
                    return tmp
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    os.close(fd)
                    fd = None  # refused after all: rewrite it buffered below
            fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC, 0o600)
            write_all(fd, buf[:n], 0)
            start_writeback(fd)
            return tmp
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if fd is not None:
                os.close(fd)

    @staticmethod
    def sync_staged(tmp: Path) -> None:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def publish(self, tmp: Path, replace: bool = True) -> bool:
        """Give a synced staged chunk its name (caller fsyncs the fan-out dir); True if
        it took the name.

        ``replace=False`` never replaces a chunk file already there (another backup's,
        or this one's for the same content at another offset): it returns False and
        leaves the staged file for the caller to delete or publish with ``replace``.
        A delta is only ever created this way, so the base that points' indexes name
        for a chunk stays the base its file needs (healing replaces a chunk, always
        with a full one).
        """
        final = tmp.parent / tmp.name.rsplit(".", 1)[-1]
        if replace:
            os.replace(tmp, final)
            return True
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            if final.exists():  # a filesystem without hard links: check, then rename
                return False
            os.replace(tmp, final)
            return True
        tmp.unlink()
        return True

    def get(self, chunk_id: bytes) -> bytes:
        with open(self.path(chunk_id), "rb") as f:
            return f.read()

    def size(self, chunk_id: bytes) -> int:
        return os.stat(self.path(chunk_id)).st_size

    def remove_staged_of(self, pid: int) -> int:
        """Delete the staged (never published) chunks process ``pid`` left; how many."""
        removed = 0
        for path, _ in self.iter_chunks():
            if path.name.startswith(f"{TMP_PREFIX}{pid}."):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def iter_chunks(self) -> Iterator[tuple[Path, os.stat_result]]:
        """Every chunk file and temp file with its stat (for the sweep)."""
        for sub in sorted(os.scandir(self.chunks), key=lambda e: e.name):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                try:
                    yield Path(entry.path), entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue

    # -- damage ---------------------------------------------------------------------

    def quarantine(self, chunk_id: bytes, reason: str) -> None:
        """Record the chunk as damaged, then move its file (if any) out of the way.

        The record comes first: once it exists the next backup stores the block again,
        whatever happens to the file.
        """
        self.mark_damaged(chunk_id, reason)
        src = self.path(chunk_id)
        dst = self.quarantine_dir / f"{chunk_id.hex()}.{int(time.time())}"
        try:
            os.replace(src, dst)
        except FileNotFoundError:
            pass

    def mark_damaged(self, chunk_id: bytes, reason: str) -> None:
        record = {"chunk": chunk_id.hex(), "reason": reason, "found_at": time.time()}
        write_atomic(self.damaged_dir / chunk_id.hex(), json.dumps(record).encode())

    def damaged_ids(self) -> set[bytes]:
        try:
            names = os.listdir(self.damaged_dir)
        except FileNotFoundError:
            return set()
        return {bytes.fromhex(n) for n in names if len(n) == 64}

    def clear_damaged(self, chunk_id: bytes) -> None:
        (self.damaged_dir / chunk_id.hex()).unlink(missing_ok=True)
