"""Filesystems inside a recovery point, read in place: nothing is written out.

The point's bytes reach The Sleuth Kit (pytsk3) through ``PointImage``, an ``Img_Info`` whose
``read`` is ``PointReader.read``; TSK finds the partitions (MBR, GPT) and reads NTFS,
FAT12/16/32, exFAT and ext2/3/4 from there. Only allocated entries are shown.

Paths are absolute within the filesystem (``/Users/ann/report.xlsx``). A path with ``..`` or
``.`` components or NUL is refused (``PathRefused``) and the attempt is logged; symlinks are
listed, never followed, so nothing can lead outside the filesystem. Every other byte a
filesystem allows in a name is a name: a backslash (legal on ext4) is an ordinary character,
not a separator, and so are newlines.

Names are ``str`` decoded from the filesystem's bytes as UTF-8 with ``surrogateescape`` (what
``os.fsdecode`` does on Linux): a name that is not valid UTF-8 keeps its exact bytes as lone
surrogates (``b"bad\xff"`` is ``"bad\udcff"``), travels through JSON as the escape
``"\udcff"``, and addresses the same file when it comes back. TSK's path lookup takes UTF-8
only, so such a path is resolved here, one directory at a time, by comparing bytes.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import pytsk3

from agent.errors import AgentError, UsageError
from agent.restore.reader import PointReader

log = logging.getLogger("agent.files")
log.addHandler(logging.NullHandler())  # the CLI and rpc record refusals in the store's log
SECTOR = 512
READ_PIECE = 4 << 20  # bytes per read of a file: memory stays bounded whatever its size

# TSK's virtual entries and the filesystems' own metadata files: not the customer's files.
_HIDDEN_ROOT = {
    "$MBR", "$FAT1", "$FAT2", "$OrphanFiles", "$ALLOC_BITMAP", "$UPCASE_TABLE",
    "$VOLUME_GUID", "$MFT", "$MFTMirr", "$LogFile", "$Volume", "$AttrDef", "$Bitmap",
    "$Boot", "$BadClus", "$Secure", "$UpCase", "$Extend",
}  # fmt: skip


class PathRefused(UsageError):
    """A path that tries to leave the filesystem's root, or is not a plain absolute path."""


class NotFound(UsageError):
    """No such file or directory in the point."""


class NoFilesystem(AgentError):
    """The point (or the partition asked for) holds no filesystem the agent can read."""


def clean_path(path: str) -> str:
    """``path`` normalised to ``/a/b``; anything that could climb out raises PathRefused."""
    if not isinstance(path, str) or not path.startswith("/"):
        _refuse(path, "is not absolute")
    if "\0" in path:
        _refuse(path, "contains NUL")
    parts = [p for p in path.split("/") if p != ""]
    if any(p in (".", "..") for p in parts):
        _refuse(path, "contains . or ..")
    return "/" + "/".join(parts)


def _refuse(path, why: str) -> None:
    log.warning("file restore refused path %r: %s", path, why)
    raise PathRefused(f"path refused: {path!r} {why}")


def join(parent: str, name: str) -> str:
    return parent.rstrip("/") + "/" + name


def decode_name(raw: bytes) -> str:
    """A name's bytes as str: UTF-8, undecodable bytes kept as lone surrogates."""
    return raw.decode("utf-8", errors="surrogateescape")


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class PointImage(pytsk3.Img_Info):
    """The point as a read-only disk for TSK, read on demand through a PointReader."""

    def __init__(self, reader: PointReader):
        self._reader = reader
        super().__init__(url="", type=pytsk3.TSK_IMG_TYPE_EXTERNAL)

    def close(self) -> None:  # the reader belongs to the caller
        pass

    def read(self, offset: int, size: int) -> bytes:
        return self._reader.read(offset, size)

    def get_size(self) -> int:
        return self._reader.size


@dataclass
class Partition:
    number: int  # 1.. in table order; 0 = a disk without a partition table
    start: int  # bytes
    length: int  # bytes
    description: str
    filesystem: str  # "ext4", "ntfs", "fat32", "exfat", ... or "" when unreadable

    def to_json(self) -> dict:
        return asdict(self)


_FS_NAMES = {
    int(getattr(pytsk3, f"TSK_FS_TYPE_{name.upper()}")): name
    for name in ("ext2", "ext3", "ext4", "fat12", "fat16", "fat32", "exfat", "ntfs", "hfs",
                 "iso9660", "apfs", "ffs1", "ffs2")
}  # fmt: skip


def _fs_name(fs: pytsk3.FS_Info) -> str:
    return _FS_NAMES.get(int(fs.info.ftype), "other")


def _probe(img: PointImage, start: int) -> tuple[pytsk3.FS_Info | None, str]:
    for _attempt in range(2):
        try:
            fs = pytsk3.FS_Info(img, offset=start)
            break
        except OSError:
            return None, ""
        except RuntimeError:
            continue
    else:
        return None, ""
    return fs, _fs_name(fs)


def list_partitions(img: PointImage) -> list[Partition]:
    """The disk's partitions with the filesystem found in each (MBR or GPT; else partition 0)."""
    volume = None
    for _attempt in range(2):  # TSK's error state can leak into one call as a RuntimeError
        try:
            volume = pytsk3.Volume_Info(img)
            break
        except OSError:
            break
        except RuntimeError:
            continue
    parts: list[Partition] = []
    if volume is not None:
        block = volume.info.block_size or SECTOR
        for part in volume:
            if not part.flags & pytsk3.TSK_VS_PART_FLAG_ALLOC:
                continue
            start, length = part.start * block, part.len * block
            _, fs_name = _probe(img, start)
            desc = part.desc.decode(errors="replace") if isinstance(part.desc, bytes) else ""
            parts.append(Partition(len(parts) + 1, start, length, desc, fs_name))
    if not parts:
        _, fs_name = _probe(img, 0)
        parts.append(Partition(0, 0, img.get_size(), "whole disk", fs_name))
    return parts


class PointFilesystem:
    """One filesystem of a point: ls, stat, walk, find and reading files in pieces."""

    def __init__(self, reader: PointReader, partition: int | None = None):
        self.reader = reader
        self.img = PointImage(reader)
        self.partitions = list_partitions(self.img)
        self.partition = self._choose(partition)
        fs, _ = _probe(self.img, self.partition.start)
        if fs is None:
            raise NoFilesystem(f"partition {self.partition.number} holds no readable filesystem")
        self.fs = fs
        self.kind = self.partition.filesystem

    def _choose(self, number: int | None) -> Partition:
        if number is None:
            for part in self.partitions:
                if part.filesystem:
                    return part
            raise NoFilesystem(f"{self.reader.point_id}: no readable filesystem in any partition")
        for part in self.partitions:
            if part.number == number:
                return part
        numbers = ", ".join(str(p.number) for p in self.partitions)
        raise UsageError(f"no partition {number} (this point has: {numbers})")

    # -- entries ---------------------------------------------------------------------------
    def _open(self, path: str):
        if not _is_utf8(path):
            return self._open_by_bytes(path)
        try:
            return self.fs.open(path)
        except OSError:
            raise NotFound(f"no such file or directory: {path!r}") from None

    def _open_by_bytes(self, path: str):
        """The entry at ``path`` found by comparing each component's bytes with the names in
        its parent directory (for names that are not UTF-8, which TSK's lookup cannot take)."""
        entry = None
        inode = self.fs.info.root_inum
        for part in path.strip("/").split("/"):
            wanted = os.fsencode(part)
            directory = self._dir_at(inode, path)
            entry = next((f for f in directory if _allocated(f) and f.info.name.name == wanted),
                         None)  # fmt: skip
            if entry is None or entry.info.meta is None:
                raise NotFound(f"no such file or directory: {path!r}")
            inode = entry.info.meta.addr
        return entry if entry is not None else self.fs.open_meta(inode=inode)

    def _dir_at(self, inode: int, path: str):
        try:
            return self.fs.open_dir(inode=inode)
        except OSError:
            raise NotFound(f"no such file or directory: {path!r}") from None

    def _open_dir(self, path: str):
        if _is_utf8(path):
            return self.fs.open_dir(path=path)
        f = self._open(path)
        if _kind(f) != "dir":
            raise OSError(f"not a directory: {path!r}")
        return self._dir_at(f.info.meta.addr, path)

    def _entry(self, f, path: str) -> dict:
        meta = f.info.meta
        kind = _kind(f)
        entry = {
            "name": path.rsplit("/", 1)[-1] or "/",
            "path": path,
            "type": kind,
            "size": int(meta.size) if meta is not None and kind == "file" else 0,
            "mtime": int(meta.mtime) if meta is not None else None,
            "atime": int(meta.atime) if meta is not None else None,
            "ctime": int(meta.ctime) if meta is not None else None,
            "crtime": int(meta.crtime) if meta is not None and meta.crtime else None,
        }
        if kind == "symlink" and meta is not None:
            link = meta.link
            entry["target"] = decode_name(link) if isinstance(link, bytes) else link
        return entry

    def stat(self, path: str) -> dict:
        """One entry: name, path, type (file, dir, symlink, other), size, times (epoch s)."""
        path = clean_path(path)
        return self._entry(self._open(path), path)

    def ls(self, path: str = "/") -> list[dict]:
        """The entries of directory ``path``, directories first, then by name."""
        path = clean_path(path)
        entries = [self._entry(f, join(path, name)) for name, f in self._children(path)]
        entries.sort(key=lambda e: (e["type"] != "dir", e["name"].lower()))
        return entries

    def _children(self, path: str) -> Iterator[tuple[str, object]]:
        try:
            directory = self._open_dir(path)
        except OSError:
            if self._open(path) is not None:
                raise UsageError(f"not a directory: {path!r}") from None
            raise
        hide_meta = self.kind not in ("ext2", "ext3", "ext4")
        for f in directory:
            if not _allocated(f):
                continue
            name = decode_name(f.info.name.name)
            if name in (".", "..") or name == "$OrphanFiles":
                continue
            if path == "/" and hide_meta and name in _HIDDEN_ROOT:
                continue
            yield name, f

    def walk(self, path: str = "/") -> Iterator[dict]:
        """Every entry under ``path`` (depth first); each directory is visited once."""
        path = clean_path(path)
        seen: set[int] = set()
        stack = [path]
        while stack:
            current = stack.pop()
            for name, f in self._children(current):
                entry = self._entry(f, join(current, name))
                yield entry
                if entry["type"] == "dir":
                    addr = f.info.meta.addr if f.info.meta is not None else None
                    if addr is None or addr in seen:
                        continue
                    seen.add(addr)
                    stack.append(entry["path"])

    def find(self, pattern: str, limit: int = 1000) -> Iterator[dict]:
        """Entries whose name (or, for a pattern with ``/``, whole path) matches, any case."""
        pattern = pattern.lower()
        on_path = "/" in pattern
        found = 0
        for entry in self.walk("/"):
            subject = entry["path"] if on_path else entry["name"]
            if fnmatch.fnmatchcase(subject.lower(), pattern):
                yield entry
                found += 1
                if found >= limit:
                    return

    # -- reading ---------------------------------------------------------------------------
    def open_file(self, path: str):
        """A regular file's TSK handle and size; a directory or symlink is refused."""
        path = clean_path(path)
        f = self._open(path)
        kind = _kind(f)
        if kind == "symlink":
            _refuse(path, "is a symlink (symlinks are not followed)")
        if kind != "file":
            raise UsageError(f"not a file: {path}")
        return f, int(f.info.meta.size)

    def read_file(self, path: str, offset: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The file's bytes from ``offset`` (``length`` of them, or to the end), in pieces."""
        f, size = self.open_file(path)
        end = size if length is None else min(size, offset + length)
        pos = max(0, offset)
        while pos < end:
            n = min(READ_PIECE, end - pos)
            data = f.read_random(pos, n)
            if not data:
                raise AgentError(f"{path}: the filesystem ended the file early at byte {pos}")
            yield data
            pos += len(data)


def _allocated(f) -> bool:
    return bool(f.info.name.flags & pytsk3.TSK_FS_NAME_FLAG_ALLOC)


def _kind(f) -> str:
    meta = f.info.meta
    if meta is not None:
        t = meta.type
        if t == pytsk3.TSK_FS_META_TYPE_DIR:
            return "dir"
        if t == pytsk3.TSK_FS_META_TYPE_REG:
            return "file"
        if t == pytsk3.TSK_FS_META_TYPE_LNK:
            return "symlink"
        return "other"
    t = f.info.name.type
    if t == pytsk3.TSK_FS_NAME_TYPE_DIR:
        return "dir"
    if t == pytsk3.TSK_FS_NAME_TYPE_REG:
        return "file"
    if t == pytsk3.TSK_FS_NAME_TYPE_LNK:
        return "symlink"
    return "other"


def point_partitions(reader: PointReader) -> list[Partition]:
    """The partitions of a point and the filesystem found in each."""
    return list_partitions(PointImage(reader))
