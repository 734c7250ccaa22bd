"""A vault: appliance namespaces of digest-checked sealed blobs and committed points.

Per appliance (``appliances/<app>/``): blobs (chunks, sealed indexes, sealed catalogs, all
opaque), and per committed point a record ``points/<server>/<volume>/<stamp>.json`` with
the list of blob ids it references beside it (``.ids``, 32 bytes each). A point is
committed only when every blob it references is present (each was digest-checked when it
was stored); the record is written last, atomically, so a point is on the vault whole or
not at all. ``verify`` marks points whose blobs rotted (``.damaged`` beside the record):
they are not offered as whole until a sender has stored the blobs again and recommitted.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from agent.errors import DamageFound, StoreError, UsageError
from agent.records import utc_now
from agent.store.pointindex import check_name, parse_point_id
from agent.store.retention import RetentionPolicy
from agent.vault.backend import Backend, LocalBackend, sha256
from agent.vault.protocol import VaultRefused, pack_ids, parse_blob_id, unpack_ids

VAULT_FORMAT = 1
DEFAULT_TRASH_DAYS = 14
CONFIG = "vault.json"


class MissingBlobs(VaultRefused):
    """A commit named blobs the vault does not hold (``missing``: their ids)."""

    def __init__(self, missing: list[bytes]):
        super().__init__("missing", f"{len(missing)} blob(s) of the point are not on the vault")
        self.missing = missing


def init_vault(
    root: str | os.PathLike,
    name: str | None = None,
    s3: str | None = None,
    trash_days: int = DEFAULT_TRASH_DAYS,
    lock_days: int = 0,
) -> VaultStore:
    """Create a vault at ``root`` (its blobs there, or in ``s3``); idempotent."""
    root = Path(root)
    if (root / CONFIG).exists():
        return open_vault(root)
    if root.exists() and any(root.iterdir()):
        raise StoreError(f"{root} exists and is not an empty directory")
    config = {
        "format": VAULT_FORMAT,
        "name": check_name("vault", name or socket.gethostname().split(".")[0]),
        "created": utc_now(),
        "trash_days": trash_days,
        "backend": "s3" if s3 else "local",
    }
    if s3:
        from agent.vault.s3 import S3Backend

        backend = S3Backend(s3, lock_days=lock_days or trash_days)
        backend.check_bucket()  # no Object Lock on the bucket: no lock days
        config.update(s3=s3, lock_days=backend.object_lock_days)
        if backend.read_record(CONFIG) is None:
            backend.write_record(CONFIG, json.dumps(config, indent=1).encode())
    root.mkdir(parents=True, exist_ok=True)
    (root / CONFIG).write_text(json.dumps(config, indent=1))
    return open_vault(root)


def open_vault(location: str | os.PathLike) -> VaultStore:
    """The vault at a directory made by ``init_vault`` or at ``s3://bucket/prefix``."""
    text = str(location)
    if text.startswith("s3://"):
        from agent.vault.s3 import S3Backend

        backend = S3Backend(text)
        raw = backend.read_record(CONFIG)
        if raw is None:
            raise UsageError(f"no vault at {text} (run vault init DIR --s3 {text})")
        config = _config(raw, text)
        backend.object_lock_days = int(config.get("lock_days", 0))
        return VaultStore(backend, config, None)
    root = Path(location)
    try:
        config = _config((root / CONFIG).read_bytes(), root)
    except FileNotFoundError:
        raise UsageError(f"no vault at {root} (run bdr-agent vault init {root})") from None
    if config.get("backend") == "s3":
        from agent.vault.s3 import S3Backend

        backend = S3Backend(config["s3"], lock_days=config.get("lock_days", 0), lock_dir=root)
        return VaultStore(backend, config, root)
    return VaultStore(LocalBackend(root), config, root)


def _config(raw: bytes, where) -> dict:
    try:
        config = json.loads(raw)
    except ValueError:
        raise StoreError(f"vault config at {where} is unreadable") from None
    if config.get("format") != VAULT_FORMAT:
        raise StoreError(f"vault at {where} has unknown format {config.get('format')!r}")
    return config


def point_key(app: str, point_id: str, suffix: str = ".json") -> str:
    return f"appliances/{app}/points/{point_id}{suffix}"


class VaultStore:
    """An open vault (keyless: nothing here can read a blob's content)."""

    def __init__(self, backend: Backend, config: dict, root: Path | None):
        self.backend = backend
        self.config = config
        self.root = root  # the local directory (config, pins, locks); None for bare s3://
        self.name: str = config["name"]
        self.trash_days: int = int(config.get("trash_days", DEFAULT_TRASH_DAYS))
        self._damaged: dict[str, set[bytes]] = {}  # the damaged register, read once

    # -- namespaces and blobs ----------------------------------------------------------

    def appliances(self) -> list[str]:
        """The appliance namespaces on this vault."""
        return sorted(self.backend.namespaces())

    def lacking(self, app: str, ids: list[bytes]) -> list[bytes]:
        """The ids among ``ids`` that this vault does not hold."""
        check_name("appliance", app)
        return [i for i, size in self.backend.blob_sizes(app, ids).items() if size is None]

    def check_blob(self, app: str, blob_id: bytes, data, digest: bytes | None) -> bytes:
        """The digest to record: VaultRefused unless the bytes that arrived match the
        sender's digest (given none, the digest of what arrived). A blob that comes back
        after ``verify`` found it damaged leaves the damaged register."""
        check_name("appliance", app)
        actual = sha256(data)
        if digest is not None and actual != digest:
            raise VaultRefused("digest", f"blob {blob_id.hex()}: bytes do not match their digest")
        if app not in self._damaged:
            self._damaged[app] = set(self.damaged_blobs(app))
        if blob_id in self._damaged[app]:
            self.backend.delete_record(f"appliances/{app}/damaged/{blob_id.hex()}")
            self._damaged[app].discard(blob_id)
        return actual

    def put_blob(self, app: str, blob_id: bytes, data: bytes, digest: bytes) -> None:
        """Store a blob after checking the bytes that arrived against the sender's digest."""
        self.backend.put_blob(app, blob_id, data, self.check_blob(app, blob_id, data, digest))

    def read_blob(self, app: str, blob_id: bytes) -> tuple[bytes, bytes]:
        """(sealed bytes, digest) of a stored blob checked against its recorded digest;
        DamageFound if they differ, FileNotFoundError if it is not here."""
        data, digest = self.backend.get_blob(app, blob_id)
        if digest is None or sha256(data) != digest:
            raise DamageFound(f"blob {blob_id.hex()}: does not match its recorded digest")
        return data, digest

    # -- points ------------------------------------------------------------------------

    def points(self, app: str) -> list[dict]:
        """Committed point records of ``app``, oldest first; ``whole`` is False for those
        verify found blobs missing or damaged for."""
        check_name("appliance", app)
        keys = set(self.backend.list_records(f"appliances/{app}/points"))
        records = []
        for key in sorted(k for k in keys if k.endswith(".json")):
            raw = self.backend.read_record(key)
            if raw is None:
                continue
            record = json.loads(raw)
            record["whole"] = key.removesuffix(".json") + ".damaged" not in keys
            records.append(record)
        records.sort(key=lambda r: (r["taken_at"], r["point"]))
        return records

    def point_record(self, app: str, point_id: str) -> dict | None:
        raw = self.backend.read_record(point_key(app, point_id))
        return json.loads(raw) if raw is not None else None

    def point_blob_ids(self, app: str, record: dict) -> list[bytes]:
        """The chunk blob ids a committed point references; DamageFound if the list rotted."""
        raw = self.backend.read_record(point_key(app, record["point"], ".ids"))
        if raw is None or sha256(raw).hex() != record["ids_sha256"]:
            raise DamageFound(f"point {record['point']}: its blob list is missing or damaged")
        return unpack_ids(raw)

    def commit(self, app: str, point: dict, ids: list[bytes]) -> dict:
        """Commit ``point`` (its id, index and catalog blob ids) referencing ``ids``;
        MissingBlobs unless every blob is here. Idempotent for the same index."""
        check_name("appliance", app)
        point_id = str(point.get("point"))
        server, volume, taken_at = parse_point_id(point_id)
        index_id = parse_blob_id(point.get("index"))
        catalog_id = parse_blob_id(point.get("catalog"))
        existing = self.point_record(app, point_id)
        if existing is not None and existing["index"] != index_id.hex():
            raise VaultRefused("conflict", f"point {point_id} is on the vault with another index")
        ids = list(dict.fromkeys(ids))
        with self.backend.lock(app, exclusive=False):
            sizes = self.backend.blob_sizes(app, [*ids, index_id, catalog_id])
            missing = [i for i, size in sizes.items() if size is None]
            if missing:
                raise MissingBlobs(missing)
            self.backend.sync()
            record = existing or self._new_record(app, point_id, server, volume, taken_at)
            if existing is None:
                ids_blob = pack_ids(ids)
                record.update(
                    index=index_id.hex(),
                    catalog=catalog_id.hex(),
                    blobs=len(ids),
                    bytes=sum(sizes[i] for i in ids),
                    ids_sha256=sha256(ids_blob).hex(),
                    index_bytes=sizes[index_id],
                )
                self.backend.write_record(point_key(app, point_id, ".ids"), ids_blob)
                self.backend.write_record(point_key(app, point_id), _dump(record))
            self.backend.delete_record(point_key(app, point_id, ".damaged"))
        return record

    def _new_record(self, app, point_id, server, volume, taken_at) -> dict:
        return {
            "format": VAULT_FORMAT,
            "point": point_id,
            "appliance": app,
            "server": server,
            "volume": volume,
            "taken_at": taken_at.isoformat(),
            "committed_at": utc_now(),
        }

    # -- damage ------------------------------------------------------------------------

    def mark_damaged(self, app: str, blob_id: bytes, reason: str) -> None:
        """Record a damaged blob and move it aside, so senders see it as lacking."""
        entry = {"blob": blob_id.hex(), "reason": reason, "found_at": utc_now()}
        self.backend.write_record(f"appliances/{app}/damaged/{blob_id.hex()}", _dump(entry))
        self.backend.remove_blob(app, blob_id, quarantine=True)

    def damaged_blobs(self, app: str) -> dict[bytes, dict]:
        found = {}
        for key in self.backend.list_records(f"appliances/{app}/damaged"):
            raw = self.backend.read_record(key)
            if raw is not None:
                found[bytes.fromhex(key.rsplit("/", 1)[1])] = json.loads(raw)
        return found

    def mark_point(self, app: str, point_id: str, problems: list[str] | None) -> None:
        """Mark a point not whole (``problems``), or clear the mark (None)."""
        key = point_key(app, point_id, ".damaged")
        if problems:
            self.backend.write_record(key, _dump({"problems": problems, "found_at": utc_now()}))
        else:
            self.backend.delete_record(key)

    # -- policies, retired points, copies elsewhere ------------------------------------

    def set_policy(self, app: str, server: str, policy: dict) -> dict:
        """Store a server's off-site retention policy (what ``vault retention`` applies)."""
        check_name("appliance", app)
        check_name("server", server)
        try:
            RetentionPolicy(**policy)
        except (TypeError, ValueError) as exc:
            raise VaultRefused("bad_policy", f"bad off-site policy: {exc}") from None
        self.backend.write_record(f"appliances/{app}/policies/{server}.json", _dump(policy))
        return policy

    def policy(self, app: str, server: str) -> RetentionPolicy | None:
        raw = self.backend.read_record(f"appliances/{app}/policies/{server}.json")
        return RetentionPolicy(**json.loads(raw)) if raw is not None else None

    def retired(self, app: str) -> list[str]:
        """Points this vault's retention removed: senders do not send them again."""
        raw = self.backend.read_record(f"appliances/{app}/retired.json")
        return json.loads(raw) if raw is not None else []

    def add_retired(self, app: str, point_ids: list[str]) -> None:
        merged = sorted(set(self.retired(app)) | set(point_ids))
        self.backend.write_record(f"appliances/{app}/retired.json", _dump(merged))

    def copies(self, app: str) -> dict[str, set[str]]:
        """Point ids committed on each vault this one replicates to, by that vault's name."""
        found = {}
        for key in self.backend.list_records(f"appliances/{app}/replicas"):
            raw = self.backend.read_record(key)
            if raw is not None:
                found[key.rsplit("/", 1)[1].removesuffix(".json")] = set(json.loads(raw))
        return found

    def record_copies(self, app: str, target: str, point_ids: set[str]) -> None:
        key = f"appliances/{app}/replicas/{check_name('vault', target)}.json"
        self.backend.write_record(key, _dump(sorted(point_ids)))


def _dump(data) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode()
