"""A recovery point's index: volume size, chunk size, and the chunk id of every offset.

Sealed with the storage key, the point id as associated data, so an index cannot be
edited, forged without the key, or moved to another point's name. Every index is
complete: restoring a point reads exactly one index.

Format 2 (stores of format 2) adds, per offset, the base a delta chunk there is stored
against (or none), so every chunk file a point needs is known from its index alone
(gc marking, ``Store.point_blob_ids``, replication): the ids, then one 4-byte slot per
offset (0xFFFFFFFF: no base), then the distinct base ids the slots point at.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from agent.errors import DamageFound, UsageError

if TYPE_CHECKING:  # the vault reads point ids with this module and never loads a cipher
    from agent.store.keys import StorageKey

ZERO_ID = bytes(32)  # an all-zero (or hole) chunk: nothing stored
ID_BYTES = 32
FORMATS = (1, 2)
NO_BASE = 0xFFFFFFFF
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
STAMP = "%Y%m%dT%H%M%SZ"


def check_name(kind: str, name: str) -> str:
    """Server and volume names become path parts: keep them plain."""
    if not NAME_RE.match(name or ""):
        raise UsageError(f"bad {kind} name {name!r}: use letters, digits, '.', '_', '-'")
    return name


def stamp(taken_at: datetime) -> str:
    return taken_at.astimezone(UTC).strftime(STAMP)


def make_point_id(server: str, volume: str, taken_at: datetime) -> str:
    """``<server>/<volume>/<YYYYMMDDTHHMMSSZ>``: stable, readable, sorts by time."""
    return f"{server}/{volume}/{stamp(taken_at)}"


def parse_point_id(point_id: str) -> tuple[str, str, datetime]:
    """Split a point id into server, volume and UTC time; UsageError when malformed."""
    parts = point_id.split("/")
    if len(parts) != 3:
        raise UsageError(f"bad point id {point_id!r}: expected SERVER/VOLUME/YYYYMMDDTHHMMSSZ")
    server, volume, when = parts
    check_name("server", server)
    check_name("volume", volume)
    try:
        taken_at = datetime.strptime(when, STAMP).replace(tzinfo=UTC)
    except ValueError:
        raise UsageError(f"bad point id {point_id!r}: bad time {when!r}") from None
    return server, volume, taken_at


def index_aad(point_id: str) -> bytes:
    return b"index\0" + point_id.encode()


@dataclass
class PointIndex:
    """The chunk map of one point. ``ids[i]`` covers bytes [i*chunk_size, ...)."""

    server: str
    volume: str
    taken_at: datetime
    size: int
    chunk_size: int
    ids: list[bytes] = field(default_factory=list)
    bases: list[bytes] = field(default_factory=list)  # format 2: base of ids[i], or ZERO_ID
    format: int = 1

    @property
    def point_id(self) -> str:
        return make_point_id(self.server, self.volume, self.taken_at)

    @property
    def chunk_count(self) -> int:
        return (self.size + self.chunk_size - 1) // self.chunk_size

    def chunk_len(self, i: int) -> int:
        return min(self.chunk_size, self.size - i * self.chunk_size)

    def blob_ids(self) -> list[bytes]:
        """Every chunk file this point needs to be read, each once, in index order.

        The unit gc keeps and replication copies; zero/hole entries need no file.
        """
        return [i for i in dict.fromkeys([*self.ids, *self.bases]) if i != ZERO_ID]

    def base_of(self, i: int) -> bytes:
        """The base chunk the chunk at ``i`` is a delta of (ZERO_ID: none)."""
        return self.bases[i] if self.bases else ZERO_ID

    def _base_section(self) -> tuple[int, bytes]:
        slots: dict[bytes, int] = {}
        refs = []
        for base in self.bases or [ZERO_ID] * len(self.ids):
            refs.append(NO_BASE if base == ZERO_ID else slots.setdefault(base, len(slots)))
        return len(slots), struct.pack(f">{len(refs)}I", *refs) + b"".join(slots)

    def _read_bases(self, rest: bytes, count: int, point_id: str) -> None:
        n = len(self.ids)
        refs = struct.unpack_from(f">{n}I", rest)
        table = rest[4 * n :]
        if len(table) != count * ID_BYTES:
            raise DamageFound(f"index of {point_id}: malformed")
        slots = [table[i : i + ID_BYTES] for i in range(0, len(table), ID_BYTES)]
        if any(r != NO_BASE and r >= count for r in refs):
            raise DamageFound(f"index of {point_id}: malformed")
        self.bases = [ZERO_ID if r == NO_BASE else slots[r] for r in refs]

    def encode(self, key: StorageKey) -> bytes:
        """The sealed bytes of this index."""
        head = {
            "format": self.format,
            "server": self.server,
            "volume": self.volume,
            "taken_at": self.taken_at.astimezone(UTC).isoformat(),
            "size": self.size,
            "chunk_size": self.chunk_size,
        }
        tail = b""
        if self.format == 2:
            head["bases"], tail = self._base_section()
        body = json.dumps(head).encode() + b"\n" + b"".join(self.ids) + tail
        return key.seal(body, index_aad(self.point_id))

    @classmethod
    def decode(cls, key: StorageKey, blob: bytes, point_id: str) -> PointIndex:
        """Open a sealed index; DamageFound unless it is exactly ``point_id``'s index."""
        plain = key.open(blob, index_aad(point_id), f"index of {point_id}")
        line, _, rest = plain.partition(b"\n")
        head = json.loads(line)
        index = cls(
            server=head["server"],
            volume=head["volume"],
            taken_at=datetime.fromisoformat(head["taken_at"]),
            size=head["size"],
            chunk_size=head["chunk_size"],
            format=head.get("format"),
        )
        n = index.chunk_count
        tail = 4 * n + ID_BYTES * head.get("bases", 0) if index.format == 2 else 0
        if index.format not in FORMATS or len(rest) != n * ID_BYTES + tail:
            raise DamageFound(f"index of {point_id}: malformed")
        if index.point_id != point_id:
            raise DamageFound(f"index of {point_id}: names another point")
        index.ids = [rest[i : i + ID_BYTES] for i in range(0, n * ID_BYTES, ID_BYTES)]
        if index.format == 2:
            index._read_bases(rest[n * ID_BYTES :], head.get("bases", 0), point_id)
        return index
