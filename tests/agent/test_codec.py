"""The chunk blob layouts: BDR2 written, BDR1 (earlier stores) still read; tampering
with the id, the encoding byte or the bytes is refused."""

import os
import secrets

import pytest
import zstandard

from agent.errors import DamageFound
from agent.store.codec import CHUNK_MAGIC, RAW, ZSTD, ChunkCodec, chunk_aad
from agent.store.keys import StorageKey

KEY = StorageKey(secrets.token_bytes(32))
TEXT = b"ledger invoice payroll " * 20000
NOISE = os.urandom(300_000)


@pytest.mark.parametrize("data", [TEXT, NOISE], ids=["compressible", "random"])
def test_bdr2_round_trip_and_layout(data):
    codec = ChunkCodec(KEY)
    chunk_id = KEY.chunk_id(data)
    blob = codec.encode(data, chunk_id)
    assert blob[:4] == CHUNK_MAGIC
    assert blob[4:5] == (ZSTD if data is TEXT else RAW)
    assert len(blob) < len(data) / 10 if data is TEXT else len(blob) == len(data) + 33
    assert codec.decode(blob, chunk_id, len(data)) == data


@pytest.mark.parametrize("kind", [RAW, ZSTD])
def test_chunks_of_the_earlier_bdr1_layout_still_decode(kind):
    chunk_id = KEY.chunk_id(TEXT)
    payload = TEXT if kind == RAW else zstandard.ZstdCompressor(level=-3).compress(TEXT)
    blob = KEY.seal(kind + payload, chunk_aad(chunk_id))  # how BDR1 chunks were sealed
    assert blob[:4] == b"BDR1"
    assert ChunkCodec(KEY).decode(blob, chunk_id, len(TEXT)) == TEXT


def test_relabelled_moved_or_flipped_chunks_fail_authentication():
    codec = ChunkCodec(KEY)
    chunk_id = KEY.chunk_id(NOISE)
    blob = bytearray(codec.encode(NOISE, chunk_id))
    other_id = KEY.chunk_id(TEXT)
    with pytest.raises(DamageFound, match="authentication failed"):
        codec.decode(bytes(blob), other_id, len(NOISE))
    relabelled = bytearray(blob)
    relabelled[4:5] = ZSTD
    with pytest.raises(DamageFound, match="authentication failed"):
        codec.decode(bytes(relabelled), chunk_id, len(NOISE))
    blob[-20] ^= 0x80
    with pytest.raises(DamageFound, match="authentication failed"):
        codec.decode(bytes(blob), chunk_id, len(NOISE))
    with pytest.raises(DamageFound):
        codec.decode(b"BDR2\x00short", chunk_id, len(NOISE))


@pytest.mark.parametrize("data", [TEXT, NOISE], ids=["compressible", "random"])
def test_decode_into_fills_the_buffer_and_refuses_wrong_lengths(data):
    codec = ChunkCodec(KEY)
    chunk_id = KEY.chunk_id(data)
    blob = codec.encode(data, chunk_id)
    out = memoryview(bytearray(len(data) + 100))
    codec.decode_into(blob, chunk_id, len(data), out)
    assert out[: len(data)].tobytes() == data
    with pytest.raises(DamageFound, match="expected"):
        codec.decode_into(blob, chunk_id, len(data) - 1, out)
    with pytest.raises(DamageFound, match="expected"):
        codec.decode_into(blob, chunk_id, len(data) + 1, out)


def test_decode_into_reads_bdr1_chunks_too():
    chunk_id = KEY.chunk_id(TEXT)
    blob = KEY.seal(ZSTD + zstandard.ZstdCompressor().compress(TEXT), chunk_aad(chunk_id))
    out = memoryview(bytearray(len(TEXT)))
    ChunkCodec(KEY).decode_into(blob, chunk_id, len(TEXT), out)
    assert out.tobytes() == TEXT
