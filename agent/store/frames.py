"""The chunk blob of a format-2 store: a full chunk framed in blocks, or a delta.

A chunk (4 MiB by default) is cut in blocks (``block_size``, 64 KiB by default: 64 per
chunk). Each block is stored as its own frame: zstd, raw (zstd would not shrink it by
1/64) or nothing (all zeros). A small header, sealed apart from the frames, holds per
block its encoding, its frame's length and its fingerprint (a keyed GMAC of the block,
see StorageKey.fingerprints). So:

- a backup finds which blocks of a chunk changed by reading ~1.4 KiB of the chunk it
  replaces (its header), never the data;
- a reader can decode only the blocks it needs;
- a changed chunk is stored as a **delta**: the frames of the blocks that differ from a
  full chunk (its **base**) and, for every other block, "the base's block". The base is
  always a full chunk (a delta of a delta is made against the first delta's base:
  cumulative, depth 1), so a read never follows a chain.

Layout (integers big-endian)::

    BDR3 | kind (1: F full, D delta) | base id (32, deltas only)
         | header nonce (12) | header length (4) | GCM(header) + tag (16)
         | body nonce (12) | GCM(body) + tag (16)

    header = chunk length (4) | block size (4) | block count (2)
             | per block: encoding (1) | frame length (4) | fingerprint (16)
    body   = the frames, in block order

Header and body are sealed under their own random nonce with associated data
``chunk\\0 <id> <kind> <base id> \\0head`` (``\\0body``): a blob moved to another id,
relabelled full/delta or pointed at another base fails authentication.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag

from agent.errors import DamageFound
from agent.store.keys import NONCE_BYTES, StorageKey

MAGIC = b"BDR3"
FULL = b"F"
DELTA = b"D"
RAW, ZSTD, ZERO, BASE = 0, 1, 2, 3
ID_BYTES = 32
TAG_BYTES = 16
ENTRY = struct.Struct(">BI16s")
HEAD = struct.Struct(">IIH")
LENGTH = struct.Struct(">I")
MAX_BLOCKS = 1024
_PROBE = 4096  # bytes read to get a header: enough for 64 blocks (~1.4 KiB)


class BaseDamaged(DamageFound):
    """A delta cannot be read because its base is missing or damaged (the delta's own
    file is intact: verify records it damaged without moving it aside)."""


def overhead(blocks: int) -> int:
    """Bytes a blob adds to its frames: clear prefix, header, two nonces and tags."""
    sealing = 2 * (NONCE_BYTES + TAG_BYTES)
    return 5 + ID_BYTES + sealing + LENGTH.size + HEAD.size + blocks * ENTRY.size


def aad(chunk_id: bytes, kind: bytes, base: bytes, part: bytes) -> bytes:
    return b"chunk\0" + chunk_id + kind + base + b"\0" + part


@dataclass
class Header:
    """A blob's opened header, with where its body lies in the blob."""

    kind: bytes
    base: bytes  # b"" for a full chunk
    length: int
    block_size: int
    encs: bytes
    lens: list[int]
    fps: list[bytes]
    body_at: int  # offset of the body nonce in the blob

    @property
    def count(self) -> int:
        return len(self.encs)

    def offsets(self) -> list[int]:
        """Start of each block's frame within the (decrypted) body."""
        out, pos = [], 0
        for n in self.lens:
            out.append(pos)
            pos += n
        return out

    def block_len(self, j: int) -> int:
        return min(self.block_size, self.length - j * self.block_size)

    def replaced(self) -> set[int]:
        """The blocks a delta holds itself (every block, for a full chunk)."""
        return {j for j, e in enumerate(self.encs) if e != BASE}


def pack_header(length: int, block_size: int, entries: list[tuple[int, int, bytes]]) -> bytes:
    return HEAD.pack(length, block_size, len(entries)) + b"".join(ENTRY.pack(*e) for e in entries)


def _clear(blob, chunk_id: bytes, what: str) -> tuple[bytes, bytes, int]:
    """(kind, base, offset of the header nonce) from the blob's clear prefix."""
    if len(blob) < 5 or bytes(blob[:4]) != MAGIC:
        raise DamageFound(f"{what}: truncated or not a chunk")
    kind = bytes(blob[4:5])
    if kind == FULL:
        return kind, b"", 5
    if kind == DELTA and len(blob) >= 5 + ID_BYTES:
        return kind, bytes(blob[5 : 5 + ID_BYTES]), 5 + ID_BYTES
    raise DamageFound(f"{what}: truncated or unknown kind")


def _entries(plain: bytes, what: str) -> tuple[int, int, bytes, list[int], list[bytes]]:
    if len(plain) < HEAD.size:
        raise DamageFound(f"{what}: malformed header")
    length, block_size, count = HEAD.unpack_from(plain)
    if len(plain) != HEAD.size + count * ENTRY.size or not 0 < count <= MAX_BLOCKS:
        raise DamageFound(f"{what}: malformed header")
    rows = list(ENTRY.iter_unpack(memoryview(plain)[HEAD.size :]))
    if block_size <= 0 or (length + block_size - 1) // block_size != count:
        raise DamageFound(f"{what}: malformed header")
    return length, block_size, bytes(r[0] for r in rows), [r[1] for r in rows], [r[2] for r in rows]


def open_header(key: StorageKey, blob, chunk_id: bytes) -> Header:
    """Authenticate and parse the header of ``blob`` (at least up to the body nonce)."""
    what = f"chunk {chunk_id.hex()}"
    kind, base, at = _clear(blob, chunk_id, what)
    if len(blob) < at + NONCE_BYTES + LENGTH.size:
        raise DamageFound(f"{what}: truncated")
    nonce = bytes(blob[at : at + NONCE_BYTES])
    (hlen,) = LENGTH.unpack_from(blob, at + NONCE_BYTES)
    start = at + NONCE_BYTES + LENGTH.size
    end = start + hlen + TAG_BYTES
    if hlen > HEAD.size + MAX_BLOCKS * ENTRY.size or len(blob) < end:
        raise DamageFound(f"{what}: truncated")
    try:
        plain = key.open_raw(nonce, memoryview(blob)[start:end], aad(chunk_id, kind, base, b"head"))
    except InvalidTag:
        raise DamageFound(f"{what}: authentication failed") from None
    length, block_size, encs, lens, fps = _entries(plain, what)
    if any(e > BASE or (e == BASE and kind != DELTA) for e in encs):
        raise DamageFound(f"{what}: malformed header")
    return Header(kind, base, length, block_size, encs, lens, fps, end)


def read_header(path: os.PathLike | str, key: StorageKey, chunk_id: bytes) -> Header:
    """The authenticated header of the chunk file at ``path``, reading ~4 KiB of it.

    FileNotFoundError when the file is gone; DamageFound when it is damaged.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        blob = os.pread(fd, _PROBE, 0)
        need = len(blob)
        if len(blob) == _PROBE:
            try:
                return open_header(key, blob, chunk_id)
            except DamageFound:
                need = os.fstat(fd).st_size  # a header longer than the probe: read it all
        if need > len(blob):
            blob = os.pread(fd, need, 0)
        return open_header(key, blob, chunk_id)
    finally:
        os.close(fd)


def is_framed(blob) -> bool:
    return bytes(blob[:4]) == MAGIC


def blob_nonces(blob) -> list[bytes]:
    """The two nonces of a blob (tests check nonces never repeat)."""
    _, _, at = _clear(blob, b"", "blob")
    (hlen,) = LENGTH.unpack_from(blob, at + NONCE_BYTES)
    body_at = at + NONCE_BYTES + LENGTH.size + hlen + TAG_BYTES
    return [bytes(blob[at : at + NONCE_BYTES]), bytes(blob[body_at : body_at + NONCE_BYTES])]
