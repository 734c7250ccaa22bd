"""Storing arriving blobs without holding up the stream (``vault serve``'s ``put``).

The receiving thread checks a blob against the sender's digest and, on a local vault,
writes it under a temp name; a small pool then fsyncs and renames it (on S3 the pool
uploads it, several at once). The receiver goes straight back to the link, so an fsync (or
an S3 round trip) per blob does not set the pace. A blob in the pool counts as held for
"lack" answers; a commit, a ``get`` and the end of the session wait for the pool first. A
receiver killed meanwhile leaves whole temp files, which the next session adopts
(``LocalBackend.adopt_temps``): nothing that arrived is lost.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from agent.vault.backend import LocalBackend
from agent.vault.protocol import VaultRefused
from agent.vault.store import VaultStore

LOCAL_WORKERS = 2  # fsync + rename
REMOTE_WORKERS = 8  # S3 uploads in flight
MAX_PENDING = 16  # blobs handed to the pool and not yet stored (S3: held in memory)


class BlobWriter:
    """A vault's blob writes for one session."""

    def __init__(self, vault: VaultStore):
        self.vault = vault
        self.local = isinstance(vault.backend, LocalBackend)
        workers = LOCAL_WORKERS if self.local else REMOTE_WORKERS
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="bdr-vault-store")
        self._room = threading.BoundedSemaphore(MAX_PENDING)
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, bytes], Future] = {}
        self._errors: list[BaseException] = []

    def put(self, app: str, blob_id: bytes, data: bytes, digest: bytes | None) -> None:
        """Check the blob against the sender's digest (VaultRefused if it does not match;
        none given: the digest of what arrived is recorded) and hand it to the pool; it is
        durable once ``drain`` returns."""
        digest = self.vault.check_blob(app, blob_id, data, digest)
        self._room.acquire()
        try:
            if self.local:
                tmp = self.vault.backend.stage_blob(app, blob_id, data, digest)
                future = self._pool.submit(self.vault.backend.publish_blob, tmp)
            else:
                future = self._pool.submit(self.vault.backend.put_blob, app, blob_id, data, digest)
        except BaseException:
            self._room.release()
            raise
        with self._lock:
            self._pending[(app, blob_id)] = future
        future.add_done_callback(lambda f, key=(app, blob_id): self._done(key, f))

    def _done(self, key: tuple[str, bytes], future: Future) -> None:
        with self._lock:
            if self._pending.get(key) is future:
                del self._pending[key]
            if future.exception() is not None:
                self._errors.append(future.exception())
        self._room.release()

    def pending(self, app: str) -> set[bytes]:
        """Blobs of ``app`` received and not yet stored (they count as held)."""
        with self._lock:
            return {blob_id for a, blob_id in self._pending if a == app}

    def drain(self) -> None:
        """Wait until every blob handed over is stored; the first failure, if any."""
        while True:
            with self._lock:
                futures = list(self._pending.values())
            if not futures:
                break
            for future in futures:
                future.exception()
        with self._lock:
            errors, self._errors = self._errors, []
        if errors:
            error = errors[0]
            raise VaultRefused("io", f"storing a blob failed: {error}") from error

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)
