"""File restore from a recovery point: open, stream a file, stream a zip, put files back.

Everything streams: a file is read in ``READ_PIECE`` pieces, a zip is written as it is read
(zipfile in streaming mode, data descriptors instead of seeking back), so memory stays
bounded whatever the size. Putting files back writes under a restore root the caller names
and never outside it: names come from the point's filesystem, each component is checked,
files are created with O_NOFOLLOW|O_EXCL (or replaced only when ``overwrite`` is asked).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from agent.errors import UsageError
from agent.restore.filesystems import PathRefused, PointFilesystem, _refuse, clean_path
from agent.restore.reader import PointReader
from agent.store.datastore import Store
from agent.store.progress import Progress

ZIP_BUFFER = 1 << 20


class ReadAheadReader:
    """A PointReader that, on sequential reads, decodes the next chunks in other threads.

    Decoding (AES-GCM + zstd, both releasing the GIL) is what bounds one file's throughput;
    ``depth`` chunks ahead keep that many cores busy while the caller consumes the current one.
    Memory: at most ``depth`` extra chunks.
    """

    def __init__(self, reader: PointReader, depth: int = 4):
        self.reader = reader
        self.size = reader.size
        self.chunk_size = reader.chunk_size
        self.depth = depth
        self._pending: dict[int, Future] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._next_offset = -1
        self._lock = threading.Lock()

    @property
    def point_id(self) -> str:
        return self.reader.point_id

    def _chunk(self, i: int) -> bytes:
        with self._lock:
            fut = self._pending.pop(i, None)
        return fut.result() if fut is not None else self.reader.chunk(i)

    def _prefetch(self, first: int) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.depth, thread_name_prefix="bdr-readahead")
        last_chunk = (self.size - 1) // self.chunk_size
        with self._lock:
            for stale in [i for i in self._pending if i < first - 1]:
                self._pending.pop(stale).cancel()
            for i in range(first, min(first + self.depth, last_chunk + 1)):
                if i not in self._pending and not self.reader.is_zero(i):
                    self._pending[i] = self._pool.submit(self.reader.chunk, i)

    def read(self, offset: int, n: int) -> bytes:
        end = min(offset + n, self.size)
        if offset >= end:
            return b""
        sequential = offset == self._next_offset
        self._next_offset = end
        if sequential:
            self._prefetch((end - 1) // self.chunk_size + 1)
        parts, pos = [], offset
        while pos < end:
            i, within = divmod(pos, self.chunk_size)
            take = min(end - pos, self.chunk_size - within)
            parts.append(self._chunk(i)[within : within + take])
            pos += take
        return b"".join(parts)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self.reader.close()


def open_point_filesystem(
    store: Store, point_id: str, partition: int | None = None, cache_chunks: int = 16
) -> PointFilesystem:
    """The filesystem of ``point_id`` (its first readable partition unless one is named)."""
    reader = PointReader(store, point_id, cache_chunks=cache_chunks)
    return PointFilesystem(ReadAheadReader(reader), partition)


def copy_file(fs: PointFilesystem, path: str, out: BinaryIO) -> int:
    """Write the file at ``path`` to ``out``; returns the number of bytes written."""
    n = 0
    for piece in fs.read_file(path):
        out.write(piece)
        n += len(piece)
    return n


class _Spool:
    """A write-only sink for zipfile that hands out what was written so far."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.size = 0
        self.offset = 0

    def write(self, data) -> int:
        data = bytes(data)
        self.parts.append(data)
        self.size += len(data)
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:  # zipfile asks; a non-seekable stream still knows its offset
        return self.offset

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        self.size = 0
        return data


def _zip_entries(fs: PointFilesystem, paths: list[str]) -> Iterator[tuple[dict, str]]:
    """(entry, name in the zip) for each selected path, folders expanded."""
    for raw in paths:
        path = clean_path(raw)
        top = fs.stat(path)
        base = path.rsplit("/", 1)[0]
        if top["type"] == "dir":
            yield top, path[len(base) :].lstrip("/") + "/"
            for entry in fs.walk(path):
                yield entry, entry["path"][len(base) :].lstrip("/")
        else:
            yield top, path[len(base) :].lstrip("/")


class _ZipInfo(zipfile.ZipInfo):
    """A zip entry whose name is written as the filesystem's exact bytes: a name that is not
    UTF-8 (lone surrogates, see filesystems.py) is stored as its raw bytes without the UTF-8
    flag, as Info-ZIP does on Linux, instead of failing to encode."""

    def _encodeFilenameFlags(self):  # noqa: N802  (zipfile's name)
        try:
            return super()._encodeFilenameFlags()
        except UnicodeEncodeError:
            return os.fsencode(self.filename), self.flag_bits & ~0x800


def zip_stream(fs: PointFilesystem, paths: list[str]) -> Iterator[bytes]:
    """A zip of ``paths`` (files and whole folders), yielded in pieces as it is made.

    Symlinks are left out (never followed). Times are the files' modification times.
    """
    spool = _Spool()
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for entry, name in _zip_entries(fs, paths):
            if entry["type"] not in ("file", "dir"):
                continue
            when = dt.datetime.fromtimestamp(max(entry["mtime"] or 0, 315532800), dt.UTC)
            info = _ZipInfo(
                name if entry["type"] == "file" else name.rstrip("/") + "/",
                when.timetuple()[:6],
            )
            if entry["type"] == "dir":
                info.external_attr = 0o40755 << 16 | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = 0o644 << 16
                info.file_size = entry["size"]
                with zf.open(info, "w", force_zip64=entry["size"] > 0x7FFFFFFF) as dest:
                    for piece in fs.read_file(entry["path"]):
                        dest.write(piece)
                        if spool.size >= ZIP_BUFFER:
                            yield spool.take()
            if spool.size >= ZIP_BUFFER:
                yield spool.take()
    if spool.size:
        yield spool.take()


# -- putting files back --------------------------------------------------------------------


PARTIAL_MARK = ".bdr-partial."


def _safe_target(root: Path, relative: str) -> Path:
    """``root/relative`` where no component is a symlink or climbs out; else PathRefused."""
    target = root
    for part in relative.split("/"):
        if part in ("", ".", "..") or "\0" in part:
            _refuse(relative, "has an unsafe component")
        target = target / part
    real_root = os.path.realpath(root)
    parent_real = os.path.realpath(target.parent)
    if parent_real != real_root and not parent_real.startswith(real_root + os.sep):
        _refuse(str(target), "leaves the restore folder through a symlink")
    if target.is_symlink():
        _refuse(str(target), "is a symlink in the restore folder")
    return target


def _write_file(fs: PointFilesystem, source: str, target: Path, overwrite: bool, progress) -> str:
    if target.exists() and not overwrite:
        return "skipped"
    # The writer's pid in the name lets a supervisor remove exactly what a killed run left.
    # The target's name is cut to 200 bytes so a 255-byte name still leaves room for the mark.
    head = os.fsdecode(os.fsencode(target.name)[:200])
    temp = target.with_name(f".{head}{PARTIAL_MARK}{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in fs.read_file(source):
                out.write(piece)
                progress.advance(len(piece))
            out.flush()
            os.fsync(out.fileno())
        if target.exists() and not overwrite:  # appeared while we were writing
            temp.unlink()
            return "skipped"
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return "written"


def remove_partial_files(dest: str | os.PathLike, pid: int) -> list[str]:
    """Delete the temp files that process ``pid``, a killed file restore, left in ``dest``."""
    removed = []
    root = Path(dest)
    for path in root.rglob(f".*{PARTIAL_MARK}{pid}.*") if root.is_dir() else []:
        try:
            if path.is_file() and not path.is_symlink():
                path.unlink()
                removed.append(str(path))
        except OSError:
            continue
    return removed


def restore_files(
    fs: PointFilesystem,
    paths: list[str],
    dest: str | os.PathLike,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Copy ``paths`` (files and folders) from the point into folder ``dest``.

    Each selection lands under ``dest`` by its own name (``/Users/ann`` -> ``dest/ann``).
    An existing file is kept (and counted as skipped) unless ``overwrite`` is true.
    """
    progress = progress or Progress()
    root = Path(dest)
    if not root.is_absolute():
        raise UsageError(f"the restore folder must be an absolute path: {dest}")
    root.mkdir(parents=True, exist_ok=True)
    plan = [(e, n) for e, n in _zip_entries(fs, list(paths)) if e["type"] in ("file", "dir")]
    progress.start("restore", sum(e["size"] for e, _ in plan if e["type"] == "file"))
    counts = {"written": 0, "skipped": 0, "folders": 0, "bytes": 0}
    for entry, name in plan:
        target = _safe_target(root, name.rstrip("/"))
        if entry["type"] == "dir":
            if not target.is_dir():
                target.mkdir()
                counts["folders"] += 1
            continue
        outcome = _write_file(fs, entry["path"], target, overwrite, progress)
        counts[outcome] += 1
        if outcome == "written":
            counts["bytes"] += entry["size"]
            if entry["mtime"]:
                os.utime(target, (entry["atime"] or entry["mtime"], entry["mtime"]))
    progress.finish()
    return {"dest": str(root), **counts}


__all__ = [
    "PathRefused",
    "copy_file",
    "open_point_filesystem",
    "remove_partial_files",
    "restore_files",
    "zip_stream",
]
