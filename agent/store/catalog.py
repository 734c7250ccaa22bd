"""The per-server catalog: the authenticated list of a server's recovery points.

A point exists when, and only when, the catalog lists it with the digest of its sealed
index. Committing a point is replacing the catalog (temp file, fsync, rename), so a point
exists whole or not at all, and an index file that the catalog does not name (left by a
crash, forged, or replayed from an old copy) is never shown, counted or restored.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime

from agent.errors import DamageFound
from agent.store.keys import StorageKey


@dataclass
class PointRecord:
    """What the portal sees of a recovery point (``points --json`` prints these)."""

    id: str
    server: str
    volume: str
    taken_at: str  # ISO-8601 UTC
    tier: str
    size: int
    chunk_size: int
    stored_bytes: int  # sealed bytes this point added to the store
    chunks_total: int
    chunks_new: int
    chunks_reused: int
    chunks_zero: int
    index_digest: str = field(repr=False, default="")

    @property
    def taken_at_dt(self) -> datetime:
        return datetime.fromisoformat(self.taken_at)

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("index_digest")
        return data


def index_digest(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def catalog_aad(server: str) -> bytes:
    return b"catalog\0" + server.encode()


@dataclass
class Catalog:
    server: str
    generation: int = 0
    points: list[PointRecord] = field(default_factory=list)

    def find(self, point_id: str) -> PointRecord | None:
        return next((p for p in self.points if p.id == point_id), None)

    def latest(self, volume: str) -> PointRecord | None:
        same = [p for p in self.points if p.volume == volume]
        return max(same, key=lambda p: p.taken_at_dt, default=None)

    def encode(self, key: StorageKey) -> bytes:
        body = {
            "server": self.server,
            "generation": self.generation,
            "points": [asdict(p) for p in self.points],
        }
        return key.seal(json.dumps(body).encode(), catalog_aad(self.server))

    @classmethod
    def decode(cls, key: StorageKey, blob: bytes, server: str) -> Catalog:
        body = json.loads(key.open(blob, catalog_aad(server), f"catalog of server {server}"))
        if body.get("server") != server:
            raise DamageFound(f"catalog of server {server}: names another server")
        points = [PointRecord(**p) for p in body["points"]]
        points.sort(key=lambda p: (p.taken_at_dt, p.id))
        return cls(server=server, generation=body["generation"], points=points)
