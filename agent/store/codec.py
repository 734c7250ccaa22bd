"""How a chunk's plaintext becomes the sealed bytes on disk, and back.

plaintext -> zstd (kept raw when it does not shrink) -> AES-256-GCM with the chunk id
(and the encoding byte) as associated data, so a chunk file moved to another id's name,
or relabelled raw/zstd, fails authentication.

Chunk file layouts (both read; ``BDR2`` is written since it avoids three 4 MiB copies
per chunk: the encoding byte sits outside the ciphertext, so raw data is sealed in place
and the blob is built straight into the thread's page-aligned write buffer)::

    BDR1 | nonce (12) | GCM(kind (1) | payload) + tag (16)        aad = chunk_aad(id)
    BDR2 | kind (1) | nonce (12) | GCM(payload) + tag (16)         aad = chunk_aad(id) + kind
"""

from __future__ import annotations

import threading

import zstandard
from cryptography.exceptions import InvalidTag

from agent.errors import DamageFound
from agent.store.directio import ALIGN, AlignedBuffers
from agent.store.keys import NONCE_BYTES, SEAL_MAGIC, StorageKey

RAW = b"\x00"
ZSTD = b"\x01"
CHUNK_MAGIC = b"BDR2"
_HEAD = len(CHUNK_MAGIC) + 1 + NONCE_BYTES
TAG_BYTES = 16
OVERHEAD = _HEAD + TAG_BYTES


def chunk_aad(chunk_id: bytes) -> bytes:
    return b"chunk\0" + chunk_id


def blob_nonce(blob: bytes) -> bytes | None:
    """The nonce of a chunk blob of either layout (tests check nonces never repeat)."""
    if blob[:4] == CHUNK_MAGIC:
        return blob[5:_HEAD]
    if blob[:4] == SEAL_MAGIC:
        return blob[4 : 4 + NONCE_BYTES]
    return None


def _parse_bdr2(blob, chunk_id: bytes) -> tuple[bytes, bytes, memoryview, bytes] | None:
    """(kind, nonce, sealed payload, associated data) of a BDR2 blob; None for anything
    else (a BDR1 chunk, or bytes too short to be either: the caller's open fails)."""
    if len(blob) < OVERHEAD or bytes(blob[:4]) != CHUNK_MAGIC:
        return None
    kind = bytes(blob[4:5])
    return kind, bytes(blob[5:_HEAD]), memoryview(blob)[_HEAD:], chunk_aad(chunk_id) + kind


class ZstdContexts:
    """A zstd compressor (at ``level``) and decompressor per thread: contexts are reused
    (creating one costs more than compressing 64 KiB) but are not thread-safe."""

    def __init__(self, level: int):
        self.level = level
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


class ChunkCodec(ZstdContexts):
    """Compress+seal and open+decompress chunks; zstd contexts and buffers per thread.

    ``compress`` and ``seal_into`` may be replaced (tests inject a faulty compressor and
    a faulty sealer): every sealed chunk is opened and decompressed again and compared
    with its plaintext before it is written, so a compressor or sealer bug can never
    commit a corrupt chunk: a chunk stored wrong would be lost for every point that
    shares it, and nothing would notice until a restore.
    """

    def __init__(self, key: StorageKey, level: int = 1, verify_before_commit: bool = True):
        super().__init__(level)
        self.key = key
        self.verify_before_commit = verify_before_commit
        self._out = AlignedBuffers()  # the sealed blob, written from here with O_DIRECT
        self._scratch = AlignedBuffers()  # the round trip's decrypted payload

    def out_buffer(self, data_len: int) -> memoryview:
        """A page-aligned buffer for the blob of a ``data_len`` chunk, with room to pad
        the blob to a multiple of 4096 (what an O_DIRECT write needs)."""
        return self._out.get(data_len + OVERHEAD + ALIGN)

    # -- encoding -------------------------------------------------------------------

    def compress(self, data) -> tuple[bytes, bytes]:
        """(kind, payload): zstd, or the data itself when zstd saves under 1/64."""
        packed = self._cctx().compress(data)
        if len(packed) >= len(data) - len(data) // 64:
            return RAW, data
        return ZSTD, packed

    def seal_into(self, kind: bytes, payload, chunk_id: bytes, out: memoryview) -> int:
        """Write the BDR2 blob of ``payload`` into ``out``; return its length."""
        nonce = self.key.new_nonce()
        n = _HEAD + len(payload) + TAG_BYTES
        out[:4] = CHUNK_MAGIC
        out[4:5] = kind
        out[5:_HEAD] = nonce
        self.key.seal_into(nonce, payload, chunk_aad(chunk_id) + kind, out[_HEAD:n])
        return n

    def encode_into(self, data, chunk_id: bytes, out: memoryview) -> int:
        """Seal ``data`` for storage under ``chunk_id`` into ``out`` (see ``out_buffer``),
        checked by a full round trip; return the blob's length."""
        n = self.seal_into(*self.compress(data), chunk_id, out)
        if self.verify_before_commit and not self._round_trip_ok(out[:n], chunk_id, data):
            # One retry with the plain path: a flaky compressor must not stop backups,
            # but nothing unverified is ever returned.
            n = self.seal_into(RAW, data, chunk_id, out)
            if not self._round_trip_ok(out[:n], chunk_id, data):
                raise DamageFound(f"chunk {chunk_id.hex()}: sealing round trip failed")
        return n

    def encode(self, data, chunk_id: bytes) -> bytes:
        """``encode_into`` returning the blob as bytes."""
        out = self.out_buffer(len(data))
        return bytes(out[: self.encode_into(data, chunk_id, out)])

    def _round_trip_ok(self, blob: memoryview, chunk_id: bytes, data) -> bool:
        parsed = _parse_bdr2(blob, chunk_id)
        if parsed is None:
            return False
        kind, nonce, sealed, aad = parsed
        size = len(sealed) - TAG_BYTES
        plain = self._scratch.get(size)[:size]
        try:
            self.key.open_into(nonce, sealed, aad, plain)
        except InvalidTag:
            return False
        if kind == RAW:
            return size == len(data) and plain.tobytes() == data
        if kind == ZSTD:
            try:
                return self._dctx().decompress(plain, max_output_size=len(data)) == data
            except zstandard.ZstdError:
                return False
        return False

    # -- decoding -------------------------------------------------------------------

    def decode_into(self, blob: bytes, chunk_id: bytes, expected_len: int, out: memoryview):
        """``decode`` straight into ``out[:expected_len]`` (restore's aligned write
        buffer): raw chunks are decrypted there, zstd ones decompressed there, so the
        plaintext is never copied. DamageFound on any mismatch (``out`` then holds
        garbage and must not be used)."""
        what = f"chunk {chunk_id.hex()}"
        parsed = _parse_bdr2(blob, chunk_id)
        if parsed is None:
            out[:expected_len] = self.decode(blob, chunk_id, expected_len)  # BDR1
            return
        kind, nonce, sealed, aad = parsed
        target = out[:expected_len]
        try:
            if kind == RAW:
                size = len(sealed) - TAG_BYTES
                if size != expected_len:
                    raise DamageFound(f"{what}: {size} bytes, expected {expected_len}")
                self.key.open_into(nonce, sealed, aad, target)
                return
            body = self.key.open_raw(nonce, sealed, aad)
        except InvalidTag:
            raise DamageFound(f"{what}: authentication failed") from None
        if kind != ZSTD:
            raise DamageFound(f"{what}: unknown encoding")
        try:
            with self._dctx().stream_reader(body) as reader:
                done = 0
                while done < expected_len:
                    n = reader.readinto(target[done:])
                    if not n:
                        break
                    done += n
                extra = reader.read(1)
        except zstandard.ZstdError as exc:
            raise DamageFound(f"{what}: cannot decompress ({exc})") from None
        if done != expected_len or extra:
            got = f"more than {expected_len}" if extra else str(done)
            raise DamageFound(f"{what}: {got} bytes, expected {expected_len}")

    def authentic(self, blob: bytes, chunk_id: bytes) -> bool:
        """Whether the blob's AES-GCM tag checks out for ``chunk_id`` (not decompressed)."""
        parsed = _parse_bdr2(blob, chunk_id)
        try:
            if parsed is None:
                self.key.open(blob, chunk_aad(chunk_id), f"chunk {chunk_id.hex()}")
            else:
                _, nonce, sealed, aad = parsed
                self.key.open_raw(nonce, sealed, aad)
        except (InvalidTag, DamageFound):
            return False
        return True

    def decode(self, blob: bytes, chunk_id: bytes, expected_len: int | None = None) -> bytes:
        """Authenticate, decrypt and decompress one chunk; DamageFound on any mismatch."""
        what = f"chunk {chunk_id.hex()}"
        parsed = _parse_bdr2(blob, chunk_id)
        if parsed is not None:
            kind, nonce, sealed, aad = parsed
            try:
                body = self.key.open_raw(nonce, sealed, aad)
            except InvalidTag:
                raise DamageFound(f"{what}: authentication failed") from None
        else:  # BDR1, or damage (key.open names it)
            plain = self.key.open(blob, chunk_aad(chunk_id), what)
            kind, body = plain[:1], plain[1:]
        if kind == RAW:
            data = body
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
