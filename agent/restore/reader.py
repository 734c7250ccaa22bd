"""Reading recovery points: random access (PointReader) and whole-image restore.

Every chunk is authenticated (AES-GCM, its id as associated data) before a byte of it is
used; a chunk that fails raises DamageFound naming the chunk and the offset, and restore
then removes its partial output, so wrong bytes are never left behind.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from agent.errors import AgentError, DamageFound, UsageError
from agent.store.catalog import PointRecord
from agent.store.datastore import Store
from agent.store.directio import FileWriter
from agent.store.pointindex import ZERO_ID, PointIndex
from agent.store.progress import Progress


def _where(index: PointIndex, i: int) -> str:
    return f"{index.point_id}: chunk {index.ids[i].hex()} at offset {i * index.chunk_size}"


def read_chunk(store: Store, index: PointIndex, i: int) -> bytes | bytearray:
    """Plaintext of chunk ``i`` of ``index``; DamageFound names the chunk and offset."""
    n = index.chunk_len(i)
    if index.ids[i] == ZERO_ID:
        return bytes(n)
    try:
        return store.decode_chunk(index.ids[i], n)
    except DamageFound as exc:
        raise DamageFound(_damage(index, i, exc)) from None


def read_chunk_into(store: Store, index: PointIndex, i: int, out: memoryview) -> None:
    """``read_chunk`` into ``out[:chunk_len(i)]`` (a data chunk, not a hole)."""
    try:
        store.decode_chunk_into(index.ids[i], index.chunk_len(i), out)
    except DamageFound as exc:
        raise DamageFound(_damage(index, i, exc)) from None


def _damage(index: PointIndex, i: int, exc: DamageFound) -> str:
    reason = str(exc).removeprefix(f"chunk {index.ids[i].hex()}")
    if reason.startswith(" is "):  # "is missing", "is unreadable: ..."
        return f"{_where(index, i)}{reason}"
    return f"{_where(index, i)} is damaged ({reason.removeprefix(': ')})"


class PointReader:
    """Random access to a point's bytes: ``read(offset, n)``, with an LRU chunk cache.

    Thread-safe. The base of file browse, NBD export and VM boot::

        with PointReader(store, "srv1/disk0/20250101T101500Z") as r:
            mbr = r.read(0, 512)
    """

    def __init__(self, store: Store, point_id: str, cache_chunks: int = 8):
        self.store = store
        self.record: PointRecord = store.get_point(point_id)
        self.index: PointIndex = store.load_index(self.record)
        self.size = self.index.size
        self.chunk_size = self.index.chunk_size
        self.cache_chunks = max(1, cache_chunks)
        self._cache: OrderedDict[int, bytes | bytearray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def point_id(self) -> str:
        return self.record.id

    def chunk(self, i: int) -> bytes | bytearray:
        """Plaintext of chunk ``i`` (cached; never modify it)."""
        with self._lock:
            data = self._cache.get(i)
            if data is not None:
                self._cache.move_to_end(i)
                return data
        data = read_chunk(self.store, self.index, i)
        with self._lock:
            self._cache[i] = data
            while len(self._cache) > self.cache_chunks:
                self._cache.popitem(last=False)
        return data

    def read(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer at the end of the volume)."""
        if offset < 0 or n < 0:
            raise ValueError("offset and length must be >= 0")
        end = min(offset + n, self.size)
        parts = []
        pos = offset
        while pos < end:
            i, within = divmod(pos, self.chunk_size)
            take = min(end - pos, self.chunk_size - within)
            parts.append(self.chunk(i)[within : within + take])
            pos += take
        return b"".join(parts)

    def is_zero(self, i: int) -> bool:
        """True when chunk ``i`` is a hole / all zeros (nothing stored)."""
        return self.index.ids[i] == ZERO_ID

    def close(self) -> None:
        with self._lock:
            self._cache.clear()

    def __enter__(self) -> PointReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _check_room(directory: Path, index: PointIndex) -> None:
    """Refuse before writing anything when the destination's filesystem cannot hold the
    point's data (holes stay holes, so only data chunks count).

    This replaced preallocating the data ranges with posix_fallocate: on ext4 the unwritten
    extents cost more kernel time when written than they saved (4 GiB point: 3.7 s -> 3.3 s).
    """
    needed = sum(index.chunk_len(i) for i in range(index.chunk_count) if index.ids[i] != ZERO_ID)
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    if needed > free:
        raise AgentError(
            f"not enough space in {directory}: the point needs {needed:,} bytes, "
            f"{free:,} are free; nothing was written"
        )


def _open_target(dest: Path, index: PointIndex) -> tuple[bool, Path, FileWriter]:
    """(is a device, the file written, its writer): a device in place, else a partial file."""
    is_device = dest.exists() and stat.S_ISBLK(dest.stat().st_mode)
    if dest.is_dir():
        raise UsageError(f"destination is a directory: {dest}")
    if not dest.parent.is_dir():
        raise UsageError(f"destination directory does not exist: {dest.parent}")
    if is_device:
        return True, dest, FileWriter(dest, os.O_WRONLY, index.chunk_size)
    _check_room(dest.parent, index)
    target = dest.with_name(f".{dest.name}.bdr-partial.{secrets.token_hex(4)}")
    writer = FileWriter(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, index.chunk_size)
    os.ftruncate(writer.fd, index.size)
    return False, target, writer


def _write_chunks(index: PointIndex, write_chunk, workers: int, progress, skip_zero: bool):
    """Run ``write_chunk(i)`` for every chunk on a bounded pool (holes skipped if asked)."""
    inflight: deque[Future] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="bdr-restore") as pool:
        try:
            for i in range(index.chunk_count):
                if index.ids[i] == ZERO_ID and skip_zero:
                    progress.advance(index.chunk_len(i))
                    continue
                while len(inflight) >= workers * 2:
                    inflight.popleft().result()
                inflight.append(pool.submit(write_chunk, i))
            while inflight:
                inflight.popleft().result()
        except BaseException:
            for fut in inflight:
                fut.cancel()
            raise


def restore_point(
    store: Store,
    point_id: str,
    dest: str | os.PathLike,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict:
    """Write the point's image to ``dest`` byte-identical, holes kept sparse.

    A regular file is built beside ``dest`` and renamed over it only when complete; a
    block device is written in place (zero chunks written as zeros).
    """
    progress = progress or Progress()
    # Two more threads than cores: with O_DIRECT a writer waits on the device, not the CPU
    # (4 GiB point on 2 cores: 3.4 s with 2 workers, 2.45 s with 4).
    workers = workers or (os.cpu_count() or 2) + 2
    record = store.get_point(point_id)
    index = store.load_index(record)
    dest = Path(dest)
    is_device, target, writer = _open_target(dest, index)
    progress.start("restore", index.size)

    def write_chunk(i: int) -> None:
        # A file keeps the zero runs inside a chunk as holes too; a device gets them.
        off, sparse = i * index.chunk_size, not is_device
        buf = writer.buffer()
        if buf is not None and index.ids[i] != ZERO_ID:
            n = index.chunk_len(i)
            read_chunk_into(store, index, i, buf)
            writer.write(buf[:n], off, sparse=sparse, in_buffer=True)
        elif index.ids[i] != ZERO_ID or is_device:
            writer.write(read_chunk(store, index, i), off, sparse=sparse)
        progress.advance(index.chunk_len(i))

    ok = False
    try:
        _write_chunks(index, write_chunk, workers, progress, skip_zero=not is_device)
        writer.sync()  # durable before it takes the destination's name
        ok = True
    finally:
        writer.close()
        if not is_device:
            if ok:
                os.replace(target, dest)
            else:
                target.unlink(missing_ok=True)
    progress.finish()
    return {"point": record.id, "dest": str(dest), "size": index.size}
