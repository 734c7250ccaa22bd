"""Format 2's chunk blobs: full chunks framed in blocks and deltas of changed blocks
against a full base. Round trips, the header a backup reads instead of the data, and
tampering (id, kind, base, header, body) refused."""

import os
import secrets

import pytest

from agent.errors import DamageFound
from agent.store.framecodec import FrameCodec
from agent.store.frames import (
    BASE,
    DELTA,
    FULL,
    MAGIC,
    RAW,
    ZERO,
    ZSTD,
    BaseDamaged,
    open_header,
    read_header,
)
from agent.store.keys import StorageKey

KEY = StorageKey(secrets.token_bytes(32))
BS = 1024
TEXT = (b"ledger invoice payroll " * 4000)[: 48 * BS]
CHUNK = TEXT[: 20 * BS] + bytes(3 * BS) + os.urandom(10 * BS) + TEXT[33 * BS :] + b"tail"


def sealed(codec, data, base=b"", changed=None):
    fps = KEY.fingerprints(data, BS)
    chunk_id = KEY.framed_id(fps, len(data), BS)
    out = codec.out_buffer(len(data))
    n = codec.encode_into(data, chunk_id, fps, out, base, changed)
    return chunk_id, bytes(out[:n])


def changed_copy(data: bytes, *spans: tuple[int, int]) -> bytes:
    new = bytearray(data)
    for at, n in spans:
        new[at : at + n] = os.urandom(n)
    return bytes(new)


def test_a_full_chunk_is_framed_per_block_and_round_trips():
    codec = FrameCodec(KEY, BS)
    chunk_id, blob = sealed(codec, CHUNK)
    assert blob[:4] == MAGIC and blob[4:5] == FULL
    hdr = open_header(KEY, blob, chunk_id)
    assert hdr.count == 49 and hdr.length == len(CHUNK)  # 48 blocks and a 4-byte tail
    assert hdr.encs[:20] == bytes([ZSTD]) * 20
    assert hdr.encs[20:23] == bytes([ZERO]) * 3
    assert hdr.encs[23:33] == bytes([RAW]) * 10
    assert hdr.fps == KEY.fingerprints(CHUNK, BS)
    assert len(blob) < len(CHUNK) / 3
    assert codec.decode(blob, chunk_id, len(CHUNK), load_base=None) == CHUNK


def test_a_delta_holds_only_the_changed_blocks_and_rebuilds_the_chunk():
    codec = FrameCodec(KEY, BS)
    base_id, base_blob = sealed(codec, CHUNK)
    new = changed_copy(CHUNK, (5 * BS + 100, 10), (30 * BS - 5, 10))  # straddles 29|30
    changed = {5, 29, 30}
    chunk_id, blob = sealed(codec, new, base_id, changed)
    hdr = open_header(KEY, blob, chunk_id)
    assert (hdr.kind, hdr.base) == (DELTA, base_id)
    assert hdr.replaced() == changed
    assert all(e == BASE for j, e in enumerate(hdr.encs) if j not in changed)
    assert len(blob) < 2 * BS + 1200  # three blocks (one random) and the header
    loads = []

    def load_base(base: bytes) -> bytes:
        loads.append(base)
        return base_blob

    assert codec.decode(blob, chunk_id, len(new), load_base) == new
    assert loads == [base_id]


def test_read_header_reads_the_header_not_the_data(tmp_path):
    codec = FrameCodec(KEY, BS)
    chunk_id, blob = sealed(codec, CHUNK)
    path = tmp_path / chunk_id.hex()
    path.write_bytes(blob)
    hdr = read_header(path, KEY, chunk_id)
    assert hdr.fps == KEY.fingerprints(CHUNK, BS)
    assert hdr.body_at < 4096 < len(blob)
    path.write_bytes(blob[: hdr.body_at])  # the frames are not needed
    assert read_header(path, KEY, chunk_id).fps == hdr.fps


def test_a_delta_against_the_wrong_base_or_a_lost_one_is_refused():
    codec = FrameCodec(KEY, BS)
    base_id, base_blob = sealed(codec, CHUNK)
    _, other_blob = sealed(codec, TEXT)
    new = changed_copy(CHUNK, (0, 10))
    chunk_id, blob = sealed(codec, new, base_id, {0})
    with pytest.raises(BaseDamaged, match="authentication failed"):
        codec.decode(blob, chunk_id, len(new), lambda b: other_blob)
    with pytest.raises(BaseDamaged, match="is missing"):
        codec.decode(blob, chunk_id, len(new), missing)
    deeper = changed_copy(new, (BS, 10))  # a delta of a delta is refused: depth 1 only
    deeper_id, deeper_blob = sealed(codec, deeper, chunk_id, {1})
    with pytest.raises(BaseDamaged, match="not a full chunk"):
        codec.decode(deeper_blob, deeper_id, len(deeper), lambda b: blob)


def missing(base: bytes) -> bytes:
    raise BaseDamaged(f"base chunk {base.hex()} is missing")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda blob: blob[:4] + DELTA + blob[5:],  # relabelled full -> delta
        lambda blob: blob[:30] + bytes([blob[30] ^ 1]) + blob[31:],  # header bit
        lambda blob: blob[:-20] + bytes([blob[-20] ^ 1]) + blob[-19:],  # body bit
        lambda blob: blob[:-100],  # truncated
        lambda blob: b"BDR2" + blob[4:],
    ],
    ids=["kind", "header", "body", "truncated", "magic"],
)
def test_tampered_full_chunks_fail(tamper):
    codec = FrameCodec(KEY, BS)
    chunk_id, blob = sealed(codec, CHUNK)
    with pytest.raises(DamageFound):
        codec.decode(tamper(blob), chunk_id, len(CHUNK), load_base=lambda b: blob)


def test_a_delta_moved_to_another_base_or_id_fails():
    codec = FrameCodec(KEY, BS)
    base_id, base_blob = sealed(codec, CHUNK)
    other_id, other_blob = sealed(codec, changed_copy(CHUNK, (7 * BS, 3)))
    new = changed_copy(CHUNK, (2 * BS, 10))
    chunk_id, blob = sealed(codec, new, base_id, {2})
    moved = blob[:5] + other_id + blob[37:]
    with pytest.raises(DamageFound, match="authentication failed"):
        codec.decode(moved, chunk_id, len(new), lambda b: other_blob)
    with pytest.raises(DamageFound, match="authentication failed"):
        codec.decode(blob, other_id, len(new), lambda b: base_blob)
    with pytest.raises(DamageFound, match="expected"):
        codec.decode(blob, chunk_id, len(new) - 1, lambda b: base_blob)


def test_block_fingerprints_and_ids_are_keyed_and_positional():
    other = StorageKey(secrets.token_bytes(32))
    fps = KEY.fingerprints(CHUNK, BS)
    assert fps != other.fingerprints(CHUNK, BS)
    assert KEY.framed_id(fps, len(CHUNK), BS) != other.framed_id(fps, len(CHUNK), BS)
    swapped = [fps[1], fps[0], *fps[2:]]
    assert KEY.framed_id(swapped, len(CHUNK), BS) != KEY.framed_id(fps, len(CHUNK), BS)
    assert KEY.framed_id(fps, len(CHUNK), BS) != KEY.chunk_id(CHUNK)  # not format 1's id
