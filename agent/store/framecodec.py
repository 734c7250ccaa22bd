"""Encoding and decoding format-2 chunk blobs (the layout is in ``frames``).

``encode_into`` seals a chunk full, or as a delta against a base when given the base id
and the blocks that differ from it; every blob is opened and decoded again and compared
with the plaintext before it is returned (verify before commit), the delta's own frames
included. ``decode_into`` rebuilds a chunk's plaintext, reading the base of a delta
through the caller's ``load_base``.
"""

from __future__ import annotations

from collections.abc import Callable

import zstandard
from cryptography.exceptions import InvalidTag

from agent.errors import DamageFound
from agent.store.codec import ZstdContexts
from agent.store.directio import ALIGN, AlignedBuffers
from agent.store.frames import (
    BASE,
    DELTA,
    FULL,
    LENGTH,
    MAGIC,
    RAW,
    TAG_BYTES,
    ZERO,
    ZSTD,
    BaseDamaged,
    Header,
    aad,
    open_header,
    overhead,
    pack_header,
)
from agent.store.keys import NONCE_BYTES, StorageKey


class FrameCodec(ZstdContexts):
    """Framed chunks of one store (its block size); zstd contexts and buffers per thread.

    ``compress_block`` and ``seal_into`` may be replaced (tests inject a faulty
    compressor and a faulty sealer): the round trip catches what they get wrong.
    """

    def __init__(
        self, key: StorageKey, block_size: int, level: int = 1, verify_before_commit: bool = True
    ):
        super().__init__(level)
        self.key = key
        self.block_size = block_size
        self.verify_before_commit = verify_before_commit
        self._out = AlignedBuffers()  # the sealed blob, written from here with O_DIRECT
        self._bodies = AlignedBuffers()  # a blob's decrypted frames
        self._bases = AlignedBuffers()  # the decrypted frames of a delta's base
        self._zeros = memoryview(bytes(block_size))

    def out_buffer(self, data_len: int) -> memoryview:
        """A page-aligned buffer for the blob of a ``data_len`` chunk, with room to pad
        it to a multiple of 4096 (what an O_DIRECT write needs)."""
        blocks = -(-data_len // self.block_size)
        return self._out.get(data_len + overhead(blocks) + ALIGN)

    # -- encoding -------------------------------------------------------------------

    def compress_block(self, block: memoryview) -> tuple[int, bytes | memoryview]:
        """(encoding, frame) of a non-zero block: zstd, or raw when it saves under 1/64."""
        packed = self._cctx().compress(block)
        if len(packed) >= len(block) - len(block) // 64:
            return RAW, block
        return ZSTD, packed

    @staticmethod
    def raw_block(block: memoryview) -> tuple[int, memoryview]:
        return RAW, block

    def seal_into(self, nonce: bytes, plain, associated: bytes, out: memoryview) -> None:
        """AES-256-GCM of ``plain`` into ``out`` (exactly ``len(plain) + 16`` bytes)."""
        self.key.seal_into(nonce, plain, associated, out)

    def encode_into(
        self,
        data: bytes,
        chunk_id: bytes,
        fps: list[bytes],
        out: memoryview,
        base: bytes = b"",
        changed: set[int] | None = None,
    ) -> int:
        """Seal ``data`` (fingerprints ``fps``) under ``chunk_id`` into ``out`` (see
        ``out_buffer``): full, or with ``base`` a delta holding the ``changed`` blocks.
        Checked by a full round trip; returns the blob's length."""
        changed = changed if base else None
        n = self._encode(data, chunk_id, fps, out, base, changed, self.compress_block)
        if self.verify_before_commit and not self._round_trip_ok(
            out[:n], chunk_id, data, fps, base, changed
        ):
            # One retry without compression: a flaky compressor must not stop backups,
            # but nothing unverified is ever returned.
            n = self._encode(data, chunk_id, fps, out, base, changed, self.raw_block)
            if not self._round_trip_ok(out[:n], chunk_id, data, fps, base, changed):
                raise DamageFound(f"chunk {chunk_id.hex()}: sealing round trip failed")
        return n

    def encode(self, data: bytes, chunk_id: bytes, fps: list[bytes]) -> bytes:
        """``encode_into`` (full) returning the blob as bytes."""
        out = self.out_buffer(len(data))
        return bytes(out[: self.encode_into(data, chunk_id, fps, out)])

    def _encode(self, data, chunk_id, fps, out, base, changed, compress) -> int:
        bs = self.block_size
        view = memoryview(data)
        entries: list[tuple[int, int, bytes]] = []
        frames: list = []
        for j, a in enumerate(range(0, len(data), bs)):
            n = min(bs, len(data) - a)
            if changed is not None and j not in changed:
                entries.append((BASE, 0, fps[j]))
            elif data.startswith(self._zeros[:n], a):
                entries.append((ZERO, 0, fps[j]))
            else:
                enc, frame = compress(view[a : a + n])
                entries.append((enc, len(frame), fps[j]))
                frames.append(frame)
        kind = DELTA if base else FULL
        header = pack_header(len(data), bs, entries)
        return self._layout(chunk_id, kind, base, header, b"".join(frames), out)

    def _layout(self, chunk_id, kind, base, header: bytes, body: bytes, out) -> int:
        out[:4] = MAGIC
        out[4:5] = kind
        pos = 5
        if base:
            out[5 : 5 + len(base)] = base
            pos += len(base)
        for part, plain in ((b"head", header), (b"body", body)):
            nonce = self.key.new_nonce()
            out[pos : pos + NONCE_BYTES] = nonce
            pos += NONCE_BYTES
            if part == b"head":
                out[pos : pos + LENGTH.size] = LENGTH.pack(len(header))
                pos += LENGTH.size
            end = pos + len(plain) + TAG_BYTES
            self.seal_into(nonce, plain, aad(chunk_id, kind, base, part), out[pos:end])
            pos = end
        return pos

    def _round_trip_ok(self, blob, chunk_id, data: bytes, fps, base, changed) -> bool:
        try:
            hdr, body = self.open(blob, chunk_id, self._bodies)
        except DamageFound:
            return False
        shape = (hdr.kind, hdr.base, hdr.length, hdr.block_size, hdr.fps)
        if shape != (DELTA if base else FULL, base, len(data), self.block_size, fps):
            return False
        offsets = hdr.offsets()
        for j in range(hdr.count):
            a, n, enc = j * self.block_size, hdr.block_len(j), hdr.encs[j]
            frame = body[offsets[j] : offsets[j] + hdr.lens[j]]
            if changed is not None and j not in changed:
                ok = enc == BASE
            elif enc == RAW:
                ok = len(frame) == n and data.startswith(frame, a)
            elif enc == ZERO:
                ok = not frame and data.startswith(self._zeros[:n], a)
            elif enc == ZSTD:
                try:
                    plain = self._dctx().decompress(frame, max_output_size=n)
                except zstandard.ZstdError:
                    return False
                ok = len(plain) == n and data.startswith(plain, a)
            else:
                ok = False
            if not ok:
                return False
        return True

    # -- decoding -------------------------------------------------------------------

    def open(self, blob, chunk_id: bytes, buffers: AlignedBuffers | None = None):
        """(header, decrypted frames) of ``blob``; the frames live in this thread's
        buffer (valid until its next ``open``). DamageFound names the chunk."""
        what = f"chunk {chunk_id.hex()}"
        hdr = open_header(self.key, blob, chunk_id)
        at = hdr.body_at
        size = len(blob) - at - NONCE_BYTES - TAG_BYTES
        if size < 0 or size != sum(hdr.lens):
            raise DamageFound(f"{what}: truncated or malformed")
        body = (buffers or self._bodies).get(size)[:size]
        nonce = bytes(blob[at : at + NONCE_BYTES])
        sealed = memoryview(blob)[at + NONCE_BYTES :]
        try:
            self.key.open_into(nonce, sealed, aad(chunk_id, hdr.kind, hdr.base, b"body"), body)
        except InvalidTag:
            raise DamageFound(f"{what}: authentication failed") from None
        return hdr, body

    def authentic(self, blob, chunk_id: bytes) -> bool:
        """Whether the blob's header and frames authenticate as ``chunk_id`` (nothing
        decompressed; a delta's base is not needed)."""
        try:
            self.open(blob, chunk_id)
        except DamageFound:
            return False
        return True

    def decode_into(
        self,
        blob,
        chunk_id: bytes,
        expected_len: int,
        out: memoryview,
        load_base: Callable[[bytes], bytes],
    ) -> Header:
        """Rebuild the chunk's plaintext into ``out[:expected_len]``; returns its header.

        A delta's base comes from ``load_base(base id)`` and must be a full chunk of the
        same shape. DamageFound on any mismatch (``out`` then holds garbage).
        """
        what = f"chunk {chunk_id.hex()}"
        hdr, body = self.open(blob, chunk_id, self._bodies)
        if hdr.length != expected_len or hdr.block_size != self.block_size:
            raise DamageFound(f"{what}: {hdr.length} bytes, expected {expected_len}")
        sources = {False: (hdr, body, hdr.offsets())}
        if hdr.kind == DELTA:
            base_blob = load_base(hdr.base)
            try:
                bhdr, bbody = self.open(base_blob, hdr.base, self._bases)
            except DamageFound as exc:
                raise BaseDamaged(f"base {exc}") from None
            if bhdr.kind != FULL or (bhdr.length, bhdr.block_size) != (hdr.length, hdr.block_size):
                raise BaseDamaged(f"base chunk {hdr.base.hex()} is not a full chunk of this size")
            sources[True] = (bhdr, bbody, bhdr.offsets())
        for j, enc in enumerate(hdr.encs):
            self._block_into(*sources[enc == BASE], j, out, what)
        return hdr

    def _block_into(self, hdr: Header, body, offsets, j: int, out: memoryview, what: str):
        a, n, enc = j * hdr.block_size, hdr.block_len(j), hdr.encs[j]
        frame = body[offsets[j] : offsets[j] + hdr.lens[j]]
        if enc == ZSTD:
            try:
                frame = self._dctx().decompress(frame, max_output_size=n)
            except zstandard.ZstdError as exc:
                raise DamageFound(f"{what}: cannot decompress block {j} ({exc})") from None
        elif enc == ZERO and not frame:
            frame = self._zeros[:n]
        elif enc != RAW:
            raise DamageFound(f"{what}: block {j} has no data")
        if len(frame) != n:
            raise DamageFound(f"{what}: block {j} holds {len(frame)} bytes, expected {n}")
        out[a : a + n] = frame

    def decode(self, blob, chunk_id: bytes, expected_len: int, load_base) -> bytearray:
        """``decode_into`` a new buffer (a bytearray: no copy into a bytes object)."""
        buf = bytearray(expected_len)
        self.decode_into(blob, chunk_id, expected_len, memoryview(buf), load_base)
        return buf
