"""How a chunk's plaintext becomes the sealed bytes on disk, and back.

plaintext -> zstd (kept raw when it does not shrink) -> AES-256-GCM with the chunk id as
associated data, so a chunk file moved to another id's name fails authentication.
"""

from __future__ import annotations

import threading

import zstandard

from agent.errors import DamageFound
from agent.keys import StorageKey

RAW = b"\x00"
ZSTD = b"\x01"


def chunk_aad(chunk_id: bytes) -> bytes:
    return b"chunk\0" + chunk_id


class ChunkCodec:
    """Compress+seal and open+decompress chunks; one zstd context per thread.

    ``compress`` may be replaced (tests inject a faulty compressor): every sealed chunk is
    opened and decompressed again and compared with its plaintext before it is written,
    so a compressor or sealer bug can never commit a corrupt chunk (RELIABILITY #6).
    """

    def __init__(self, key: StorageKey, level: int = -3, verify_before_commit: bool = True):
        self.key = key
        self.level = level
        self.verify_before_commit = verify_before_commit
        self._local = threading.local()

    def _cctx(self) -> zstandard.ZstdCompressor:
        cctx = getattr(self._local, "cctx", None)
        if cctx is None:
            cctx = self._local.cctx = zstandard.ZstdCompressor(level=self.level)
        return cctx

    def _dctx(self) -> zstandard.ZstdDecompressor:
        dctx = getattr(self._local, "dctx", None)
        if dctx is None:
            dctx = self._local.dctx = zstandard.ZstdDecompressor()
        return dctx

    def compress(self, data) -> bytes:
        packed = self._cctx().compress(data)
        if len(packed) >= len(data) - len(data) // 64:
            return RAW + bytes(data)
        return ZSTD + packed

    def encode(self, data, chunk_id: bytes) -> bytes:
        """Seal ``data`` for storage under ``chunk_id``, checked by a full round trip."""
        blob = self.key.seal(self.compress(data), chunk_aad(chunk_id))
        if self.verify_before_commit:
            try:
                ok = self.decode(blob, chunk_id, len(data)) == data
            except DamageFound:
                ok = False
            if not ok:
                # One retry with the plain path: a flaky compressor must not stop backups,
                # but nothing unverified is ever returned.
                blob = self.key.seal(RAW + bytes(data), chunk_aad(chunk_id))
                if self.decode(blob, chunk_id, len(data)) != data:
                    raise DamageFound(f"chunk {chunk_id.hex()}: sealing round trip failed")
        return blob

    def decode(
        self, blob: bytes, chunk_id: bytes, expected_len: int | None = None, copy: bool = True
    ):
        """Authenticate, decrypt and decompress one chunk; DamageFound on any mismatch.

        ``copy=False`` may return a memoryview (no copy of raw chunks; restore uses it).
        """
        what = f"chunk {chunk_id.hex()}"
        plain = self.key.open(blob, chunk_aad(chunk_id), what)
        kind, body = plain[:1], memoryview(plain)[1:]
        if kind == RAW:
            data = bytes(body) if copy else body
        elif kind == ZSTD:
            try:
                data = self._dctx().decompress(body, max_output_size=expected_len or 0)
            except zstandard.ZstdError as exc:
                raise DamageFound(f"{what}: cannot decompress ({exc})") from None
        else:
            raise DamageFound(f"{what}: unknown encoding")
        if expected_len is not None and len(data) != expected_len:
            raise DamageFound(f"{what}: {len(data)} bytes, expected {expected_len}")
        return data
