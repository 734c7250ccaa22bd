"""The vault protocol's framing, shared by ``vault serve`` and its clients.

One JSON object per line (UTF-8). A message that carries bytes says ``"binary": N`` and
is followed by exactly N raw bytes (a sealed blob, or a list of 32-byte blob ids). A
request is ``{"id": 7, "op": "lack", ...}``; its answer ``{"id": 7, "ok": true, ...}`` or
``{"id": 7, "ok": false, "error": {"code": ..., "message": ...}}``. The client does not
wait for one answer before sending the next request (pipelining): the server answers in
order, so a 100 ms link still carries a full window of blobs. The first request is
``hello``, where the version is agreed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import BinaryIO

from agent.errors import AgentError

PROTOCOL_VERSION = 1
MAX_LINE = 1 << 20
MAX_PAYLOAD = 256 << 20  # a 64 MiB chunk, or the ids of an 8M-chunk point
ID_BYTES = 32
SLICE = 64 << 10  # payloads are written (and paced by the throttle) in slices this big


class ProtocolError(AgentError):
    """The other side broke the protocol, or the link went away."""


class VaultRefused(AgentError):
    """A structured error answer from the vault (``code`` says which)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def write_message(
    wfile: BinaryIO,
    message: dict,
    payload: bytes | memoryview | None = None,
    pace: Callable[[int], None] | None = None,
) -> int:
    """Write one message (and its payload); return the bytes written. ``pace(n)`` is
    called before each slice of the payload (the throttle's token bucket)."""
    if payload is not None:
        message = {**message, "binary": len(payload)}
    line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if pace is not None:
        pace(len(line))
    wfile.write(line)
    if payload is not None:
        view = memoryview(payload)
        for start in range(0, len(view), SLICE):
            piece = view[start : start + SLICE]
            if pace is not None:
                pace(len(piece))
            wfile.write(piece)
    wfile.flush()
    return len(line) + (len(payload) if payload is not None else 0)


def read_message(
    rfile: BinaryIO, on_bytes: Callable[[int], None] | None = None
) -> tuple[dict, bytes | None] | None:
    """The next message and its payload; None at a clean end of stream. ``on_bytes(n)``
    hears of every piece of payload as it arrives (the vault's count of bytes received)."""
    line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise ProtocolError("message line too long or cut off")
    try:
        message = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError("a message is not a JSON object on one line") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    size = message.get("binary")
    if size is None:
        return message, None
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_PAYLOAD:
        raise ProtocolError(f"bad payload length {size!r}")
    payload = _read_exact(rfile, size, on_bytes)
    return message, payload


def _read_exact(rfile: BinaryIO, size: int, on_bytes=None) -> bytearray:
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    while done < size:
        n = rfile.readinto(view[done : done + SLICE])
        if not n:
            raise ProtocolError(f"stream ended inside a {size}-byte payload")
        done += n
        if on_bytes is not None:
            on_bytes(n)
    return buffer


def pack_ids(ids: Iterable[bytes]) -> bytes:
    """32-byte blob ids as one payload."""
    return b"".join(ids)


def unpack_ids(payload: bytes | bytearray | None) -> list[bytes]:
    """The blob ids of a payload; ProtocolError unless it is a whole number of ids."""
    if payload is None or len(payload) % ID_BYTES:
        raise ProtocolError("a list of blob ids must be a multiple of 32 bytes")
    return [bytes(payload[i : i + ID_BYTES]) for i in range(0, len(payload), ID_BYTES)]


def parse_blob_id(text) -> bytes:
    """A blob id from its 64 hex digits; ProtocolError otherwise."""
    if not isinstance(text, str) or len(text) != 2 * ID_BYTES:
        raise ProtocolError(f"bad blob id {str(text)[:80]!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ProtocolError(f"bad blob id {text[:80]!r}") from None
