"""``bdr-agent vault serve DIR``: the vault's side of the protocol on stdin/stdout.

It is the SSH forced command on a vault host (``command="bdr-agent vault serve DIR"``);
``replicate`` to a local directory or to ``s3://`` runs the same code as a local child
process, so every target speaks one protocol. Requests (see ``agent.vault.protocol``):

``hello`` {version}                       -> {vault, version, appliance}
``appliances``                            -> {appliances: [...]}
``points`` {appliance}                    -> {points: [record + whole, copies], retired}
``lack`` {appliance} + ids                -> + the ids among them the vault lacks
``put`` {appliance, blob, sha256?} + bytes -> {} once stored (digest checked if given)
``commit`` {appliance, point} + ids       -> {record}; error ``missing`` + the missing ids
``get`` {appliance} + ids                 -> one message per blob (``binary``: its bytes, or
                                             ``missing``/``damaged``), then {done: true}
``policy`` {appliance, server, policy}    -> {policy}
``usage`` {appliance}                     -> {bytes, blobs, points}: what its live points
                                             reference, each blob once (``vault.usage``)
``ping``                                  -> {} (the sender measures the round trip)
``sync``                                  -> {} once every blob received here is stored

With ``--appliance ID`` (one authorized_keys line per appliance) a session may only name
that appliance's namespace. Errors are answers, never a traceback; a broken frame ends
the session (the stream can no longer be trusted).
"""

from __future__ import annotations

import json
import mmap
import os
import resource
import sys
from pathlib import Path
from typing import BinaryIO

from agent.errors import AgentError, DamageFound
from agent.records import process_alive, utc_now, write_json_atomic
from agent.store.pointindex import check_name
from agent.vault.backend import LocalBackend
from agent.vault.protocol import (
    PROTOCOL_VERSION,
    ProtocolError,
    VaultRefused,
    pack_ids,
    parse_blob_id,
    read_message,
    unpack_ids,
    write_message,
)
from agent.vault.store import MissingBlobs, VaultStore
from agent.vault.usage import usage
from agent.vault.writer import BlobWriter


class VaultSession:
    """One connection: requests in, answers out, in order."""

    def __init__(self, vault: VaultStore, rfile: BinaryIO, wfile: BinaryIO, only: str = ""):
        self.vault = vault
        self.rfile = rfile
        self.wfile = wfile
        self.only = only
        self.greeted = False
        self.on_bytes = None  # hears of payload bytes as they arrive
        self.writer = BlobWriter(vault)
        self.cleaned: set[str] = set()
        self.ops = {
            "hello": self.hello,
            "appliances": self.appliances,
            "points": self.points,
            "lack": self.lack,
            "put": self.put,
            "commit": self.commit,
            "get": self.get,
            "policy": self.policy,
            "ping": self.ping,
            "usage": self.usage,
            "sync": self.sync,
        }

    def serve(self) -> int:
        try:
            while True:
                try:
                    message = read_message(self.rfile, self.on_bytes)
                except ProtocolError as exc:
                    error = {"code": "protocol", "message": str(exc)}
                    self._answer(None, ok=False, error=error)
                    return 1
                if message is None:
                    return 0
                self.handle(*message)
        finally:
            self.writer.close()  # what arrived is stored, even if the link went

    def handle(self, request: dict, payload: bytes | None) -> None:
        rid = request.get("id")
        if not isinstance(rid, (int, str, type(None))):
            rid = None
        try:
            op = request.get("op")
            handler = self.ops.get(op) if isinstance(op, str) else None
            if handler is None:
                raise VaultRefused("unknown_op", f"unknown op {str(op)[:40]!r}")
            if not self.greeted and op != "hello":
                raise VaultRefused("no_hello", "say hello first")
            params = {k: v for k, v in request.items() if k not in ("id", "op", "binary")}
            handler(rid, payload, **params)
        except MissingBlobs as exc:
            error = {"code": exc.code, "message": str(exc)}
            self._answer(rid, pack_ids(exc.missing), ok=False, error=error)
        except Exception as exc:  # noqa: BLE001 - the client gets an answer, never a traceback
            self._answer(rid, ok=False, error=_error_of(exc))

    def _answer(self, rid, payload: bytes | None = None, **fields) -> None:
        write_message(self.wfile, {"id": rid, **fields}, payload)

    def _app(self, appliance) -> str:
        app = check_name("appliance", appliance if isinstance(appliance, str) else "")
        if self.only and app != self.only:
            raise VaultRefused("refused", f"this key may only reach appliance {self.only}")
        if app not in self.cleaned and isinstance(self.vault.backend, LocalBackend):
            self.vault.backend.adopt_temps(app)  # what a killed session staged
            self.cleaned.add(app)
        return app

    # -- ops -----------------------------------------------------------------------------
    def hello(self, rid, payload, version=PROTOCOL_VERSION, client: str = "") -> None:
        if version != PROTOCOL_VERSION:
            raise VaultRefused("unsupported_version", f"this vault speaks {PROTOCOL_VERSION}")
        self.greeted = True
        self._answer(
            rid,
            ok=True,
            vault=self.vault.name,
            version=PROTOCOL_VERSION,
            appliance=self.only or None,
        )

    def appliances(self, rid, payload) -> None:
        apps = [self.only] if self.only else self.vault.appliances()
        self._answer(rid, ok=True, appliances=apps)

    def points(self, rid, payload, appliance=None) -> None:
        app = self._app(appliance)
        copies = self.vault.copies(app)
        records = self.vault.points(app)
        for record in records:
            record["copies"] = [self.vault.name] + sorted(
                name for name, ids in copies.items() if record["point"] in ids
            )
        body = {"points": records, "retired": self.vault.retired(app)}
        self._answer(rid, json.dumps(body).encode(), ok=True)  # may pass the line limit

    def lack(self, rid, payload, appliance=None) -> None:
        app = self._app(appliance)
        asked, storing = unpack_ids(payload), self.writer.pending(app)
        lacking = self.vault.lacking(app, [i for i in asked if i not in storing])
        self._answer(rid, pack_ids(lacking), ok=True)

    def put(self, rid, payload, appliance=None, blob=None, sha256=None) -> None:
        app = self._app(appliance)
        if payload is None:
            raise VaultRefused("bad_request", "put needs the blob's bytes")
        digest = parse_blob_id(sha256) if sha256 is not None else None  # 32 bytes too
        self.writer.put(app, parse_blob_id(blob), payload, digest)
        self._answer(rid, ok=True)

    def commit(self, rid, payload, appliance=None, point=None) -> None:
        app = self._app(appliance)
        if not isinstance(point, dict):
            raise VaultRefused("bad_request", "commit needs the point")
        self.writer.drain()  # every blob received is stored before the commit checks
        record = self.vault.commit(app, point, unpack_ids(payload))
        self._answer(rid, ok=True, record=record)

    def get(self, rid, payload, appliance=None) -> None:
        app = self._app(appliance)
        self.writer.drain()
        for blob_id in unpack_ids(payload):
            try:
                data, digest = self.vault.read_blob(app, blob_id)
            except FileNotFoundError:
                self._answer(rid, blob=blob_id.hex(), missing=True)
                continue
            except DamageFound as exc:  # never sent on: the reader gets a good copy elsewhere
                self.vault.mark_damaged(app, blob_id, str(exc))
                self._answer(rid, blob=blob_id.hex(), damaged=str(exc))
                continue
            self._answer(rid, data, blob=blob_id.hex(), sha256=digest.hex())
        self._answer(rid, ok=True, done=True)

    def usage(self, rid, payload, appliance=None) -> None:
        app = self._app(appliance)
        self.writer.drain()
        self._answer(rid, ok=True, **usage(self.vault, app))

    def ping(self, rid, payload) -> None:
        self._answer(rid, ok=True)

    def sync(self, rid, payload) -> None:
        self.writer.drain()  # what this connection received is stored...
        self.vault.backend.sync()  # ...and its names are durable, before another commits
        self._answer(rid, ok=True)

    def policy(self, rid, payload, appliance=None, server=None, policy=None) -> None:
        app = self._app(appliance)
        if not isinstance(policy, dict) or not isinstance(server, str):
            raise VaultRefused("bad_request", "policy needs a server and a policy object")
        self._answer(rid, ok=True, policy=self.vault.set_policy(app, server, policy))


def _error_of(exc: Exception) -> dict:
    if isinstance(exc, VaultRefused):
        return {"code": exc.code, "message": str(exc)}
    if isinstance(exc, AgentError):
        return {"code": "bad_request", "message": str(exc)}
    if isinstance(exc, TypeError):
        return {"code": "bad_params", "message": str(exc)}
    if isinstance(exc, OSError):
        return {"code": "io", "message": f"{exc.strerror or exc}"}
    return {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}


class SessionLog:
    """Each session's record while it runs (``sessions/<pid>.json``) and the payload bytes
    it received, counted as they arrive (``sessions/<pid>.received``, 8 bytes, so a killed
    session's count survives it); ended sessions are lines of ``sessions/log.jsonl``.
    That log is how much a vault received, resends included."""

    def __init__(self, root: Path, only: str):
        self.folder = root / "sessions"
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fold_dead_sessions()
        self.pid = os.getpid()
        self.record = {"pid": self.pid, "started_at": utc_now(), "appliance": only or None}
        client = os.environ.get("SSH_CONNECTION", "").split()[:2]  # sessions of one connection
        if len(client) == 2:  # share its address and port (ControlMaster)
            self.record["ssh_client"] = " ".join(client)
        write_json_atomic(self.folder / f"{self.pid}.json", self.record)
        self.received = 0
        fd = os.open(self.folder / f"{self.pid}.received", os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, 8)
        self._counter = mmap.mmap(fd, 8)  # a store per slice, not a syscall
        os.close(fd)

    def add(self, n: int) -> None:
        self.received += n
        self._counter[:8] = self.received.to_bytes(8, "big")

    def close(self) -> None:
        self._counter.close()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        self._append(
            {**self.record, "ended_at": utc_now(), "received": self.received, "max_rss_kib": peak}
        )
        (self.folder / f"{self.pid}.received").unlink(missing_ok=True)
        (self.folder / f"{self.pid}.json").unlink(missing_ok=True)

    def _append(self, line: dict) -> None:
        with open(self.folder / "log.jsonl", "a") as f:
            f.write(json.dumps(line) + "\n")

    def _fold_dead_sessions(self) -> None:
        for counter in self.folder.glob("*.received"):
            pid = int(counter.stem) if counter.stem.isdigit() else 0
            if process_alive(pid):
                continue
            claimed = counter.with_name(f".{counter.name}.{os.getpid()}")
            try:
                os.replace(counter, claimed)  # one folder wins, never two log lines
            except FileNotFoundError:
                continue
            received = int.from_bytes(claimed.read_bytes()[:8] or b"\0", "big")
            record_path = self.folder / f"{pid}.json"
            try:
                record = json.loads(record_path.read_text())
            except (FileNotFoundError, ValueError):
                record = {"pid": pid}
            self._append({**record, "ended_at": None, "killed": True, "received": received})
            claimed.unlink(missing_ok=True)
            record_path.unlink(missing_ok=True)


def serve(vault: VaultStore, only: str = "") -> int:
    """Serve one session on stdin/stdout (logged in ``sessions/`` of a local vault)."""
    log = SessionLog(Path(vault.root), only) if vault.root is not None else None
    session = VaultSession(vault, sys.stdin.buffer, sys.stdout.buffer, only)
    if log is not None:
        session.on_bytes = log.add
    try:
        return session.serve()
    except (BrokenPipeError, ConnectionResetError):
        return 1
    finally:
        if log is not None:
            log.close()
