"""Reading a source volume (image file or block device): size and data extents."""

from __future__ import annotations

import bisect
import os
import stat

from agent.errors import SourceChanged, UsageError


class SourceVolume:
    """An open source volume. ``is_hole(off, n)`` is True when no data lies in the range."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise UsageError(f"source not found: {self.path}") from None
        except IsADirectoryError:
            raise UsageError(f"source is a directory, not an image: {self.path}") from None
        except OSError as exc:
            raise UsageError(f"cannot open source {self.path}: {exc.strerror}") from None
        st = os.fstat(self.fd)
        if stat.S_ISDIR(st.st_mode):
            os.close(self.fd)
            raise UsageError(f"source is a directory, not an image: {self.path}")
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._has_map = stat.S_ISREG(st.st_mode) and self._map_extents()
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def _map_extents(self) -> bool:
        off = 0
        try:
            while off < self.size:
                start = os.lseek(self.fd, off, os.SEEK_DATA)
                end = os.lseek(self.fd, start, os.SEEK_HOLE)
                self._starts.append(start)
                self._ends.append(end)
                off = end
        except OSError:  # ENXIO: no data after off; EINVAL: no SEEK_DATA support
            pass
        return True

    def is_hole(self, off: int, n: int) -> bool:
        if not self._has_map:
            return False
        i = bisect.bisect_right(self._starts, off + n - 1) - 1
        return i < 0 or self._ends[i] <= off

    def read(self, off: int, n: int) -> bytes:
        data = os.pread(self.fd, n, off)
        if len(data) != n:
            raise SourceChanged(f"source {self.path} shrank while it was read (offset {off})")
        return data

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> SourceVolume:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
