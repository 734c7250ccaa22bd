"""The rpc methods of file restore, export and bare-metal restore (registered by rpc.py).

They mirror the CLI (``ls``, ``find``, ``cat``, ``zip``, ``export``, ...). Bytes travel as
binary answers of bounded size: ``files.cat`` answers one ``offset``/``length`` window (at
most ``MAX_WINDOW``), a zip is opened with ``files.zip`` and pulled with ``files.zip.read``
until ``eof``, so neither side ever holds a whole file. Opened filesystems are kept for the
session, so the windows of one download do not re-open the point each time.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from pathlib import Path

from agent.confinement import check_host_key, check_target, check_write_folder
from agent.errors import AgentError, DamageFound, Refused, UsageError
from agent.service import jobs
from agent.service.rpc_protocol import SENT, RpcError

MAX_WINDOW = 8 << 20
DEFAULT_WINDOW = 4 << 20
KEEP_OPEN = 4


def _translated(method):
    @functools.wraps(method)
    def wrapper(self, req_id, **params):
        from agent.restore.filesystems import NotFound, PathRefused
        from agent.restore.refused_paths import log_refused_path

        try:
            return method(self, req_id, **params)
        except PathRefused as exc:
            what = params.get("path") or " ".join(params.get("paths") or [])
            log_refused_path(self.store_root, method.__name__, params.get("point", ""), what,
                             str(exc))  # fmt: skip
            raise RpcError("path_refused", str(exc)) from None
        except NotFound as exc:
            raise RpcError("not_found", str(exc)) from None
        except Refused as exc:  # outside the confinement; confinement logged it
            raise RpcError("refused", str(exc)) from None
        except DamageFound as exc:
            raise RpcError("damaged", str(exc)) from None
        except UsageError as exc:
            raise RpcError("bad_params", str(exc)) from None
        except AgentError as exc:
            raise RpcError("agent_error", str(exc)) from None

    return wrapper


def _point_server(point: str) -> str:
    if not isinstance(point, str) or point.count("/") != 2:
        raise UsageError(f"not a point id: {point!r}")
    return point.split("/", 1)[0]


class FileMethods:
    """Per-session state (opened filesystems, zip streams) and handlers."""

    def __init__(self, store_root: Path, send):
        self.store_root = Path(store_root)
        self.send = send
        self._store = None
        self._open: OrderedDict[tuple, object] = OrderedDict()
        self._zips: dict[int, object] = {}
        self._next_zip = 0

    def methods(self) -> dict:
        return {
            "files.partitions": self.partitions,
            "files.ls": self.ls,
            "files.stat": self.stat,
            "files.find": self.find,
            "files.cat": self.cat,
            "files.zip": self.zip_open,
            "files.zip.read": self.zip_read,
            "restore.start": self.restore_start,
            "export.start": self.export_start,
            "exports.read": self.exports_read,
            "exports.delete": self.exports_delete,
            "baremetal.key": self.baremetal_key,
        }

    # helpers -------------------------------------------------------------------------------
    def store(self):
        if self._store is None:
            from agent.store.datastore import Store

            self._store = Store.open(self.store_root)
        return self._store

    def fs(self, point: str, partition: int | None):
        from agent.restore.files import open_point_filesystem

        key = (point, partition)
        fs = self._open.get(key)
        if fs is None:
            self.store().get_point(point)  # UsageError for an unknown point
            fs = open_point_filesystem(self.store(), point, partition)
            self._open[key] = fs
            while len(self._open) > KEEP_OPEN:
                self._open.popitem(last=False)
        self._open.move_to_end(key)
        return fs

    # files ---------------------------------------------------------------------------------
    @_translated
    def partitions(self, req_id, point: str) -> list[dict]:
        from agent.restore.filesystems import point_partitions
        from agent.restore.reader import PointReader

        with PointReader(self.store(), point) as reader:
            return [p.to_json() for p in point_partitions(reader)]

    @_translated
    def ls(self, req_id, point: str, path: str = "/", partition: int | None = None) -> dict:
        fs = self.fs(point, partition)
        return {"point": point, "partition": fs.partition.number, "filesystem": fs.kind,
                "path": path, "entries": fs.ls(path)}  # fmt: skip

    @_translated
    def stat(self, req_id, point: str, path: str, partition: int | None = None) -> dict:
        return self.fs(point, partition).stat(path)

    @_translated
    def find(
        self, req_id, point: str, glob: str, partition: int | None = None, limit: int = 500
    ) -> dict:
        if partition is None:
            numbers = [p["number"] for p in self.partitions(req_id, point=point) if p["filesystem"]]
        else:
            numbers = [int(partition)]
        limit = max(1, min(int(limit), 5000))
        matches: list[dict] = []
        for number in numbers:
            for entry in self.fs(point, number).find(str(glob), limit=limit - len(matches)):
                matches.append({**entry, "partition": number})
            if len(matches) >= limit:
                break
        return {"point": point, "glob": glob, "matches": matches,
                "truncated": len(matches) >= limit}  # fmt: skip

    @_translated
    def cat(
        self,
        req_id,
        point: str,
        path: str,
        partition: int | None = None,
        offset: int = 0,
        length: int = DEFAULT_WINDOW,
    ):
        offset, length = int(offset), min(int(length), MAX_WINDOW)
        if offset < 0 or length < 0:
            raise UsageError("offset and length must be >= 0")
        fs = self.fs(point, partition)
        _, size = fs.open_file(path)
        data = b"".join(fs.read_file(path, offset, length))
        result = {"size": size, "offset": offset, "length": len(data),
                  "eof": offset + len(data) >= size}  # fmt: skip
        self.send({"id": req_id, "ok": True, "result": result}, data)
        return SENT

    @_translated
    def zip_open(self, req_id, point: str, paths: list, partition: int | None = None) -> dict:
        from agent.restore.files import zip_stream
        from agent.restore.filesystems import clean_path

        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise UsageError("paths must be a non-empty list of absolute paths")
        fs = self.fs(point, partition)
        for p in paths:
            fs.stat(clean_path(p))  # refuse bad or missing paths before streaming starts
        self._next_zip += 1
        self._zips[self._next_zip] = {"gen": zip_stream(fs, paths), "buffer": b""}
        return {"stream": self._next_zip}

    @_translated
    def zip_read(self, req_id, stream: int, max: int = DEFAULT_WINDOW):  # noqa: A002
        state = self._zips.get(int(stream))
        if state is None:
            raise UsageError(f"no zip stream {stream}")
        limit = max_bytes = min(int(max), MAX_WINDOW)
        buffer, eof = state["buffer"], False
        while len(buffer) < limit:
            try:
                buffer += next(state["gen"])
            except StopIteration:
                eof = True
                break
        data, state["buffer"] = buffer[:max_bytes], buffer[max_bytes:]
        eof = eof and not state["buffer"]
        if eof:
            del self._zips[int(stream)]
        self.send({"id": req_id, "ok": True, "result": {"eof": eof, "length": len(data)}}, data)
        return SENT

    # jobs ----------------------------------------------------------------------------------
    @_translated
    def restore_start(
        self,
        req_id,
        point: str,
        dest: str,
        paths: list | None = None,
        partition: int | None = None,
        overwrite: bool = False,
        target: str = "",
        port: int = 22,
        host_key: str = "",
        ref: str = "",
    ) -> dict:
        """Put files back (``paths`` into folder ``dest``) or, with ``target``, bare metal."""
        self.store().get_point(point)
        params = {"point": point, "server": _point_server(point), "dest": str(dest)}
        if target:
            target, port = check_target(self.store_root, target, port)
            known = self._known_hosts(target, port, check_host_key(self.store_root, host_key))
            params.update(mode="baremetal", target=target, port=port,
                          known_hosts=str(known), identity=str(self._key()))  # fmt: skip
        else:
            if not isinstance(paths, list) or not paths:
                raise UsageError("paths must be a non-empty list of absolute paths")
            from agent.restore.filesystems import clean_path

            params.update(mode="files", paths=[clean_path(p) for p in paths],
                          overwrite=bool(overwrite))  # fmt: skip
            if partition is not None:
                params["partition"] = int(partition)
            check_write_folder(self.store_root, dest)
        return jobs.start_job(self.store_root, "restore", params, ref=ref)

    @_translated
    def export_start(
        self,
        req_id,
        point: str,
        dest: str = "",
        format: str = "raw",
        ref: str = "",  # noqa: A002
        download: bool = False,
    ):
        """Export into folder ``dest``, or (``download``) into the appliance's exports folder,
        from where ``exports.read`` serves it to the portal."""
        from agent.restore.export import FORMATS

        self.store().get_point(point)
        if format not in FORMATS:
            raise UsageError(f"unknown format {format!r}; use one of {', '.join(FORMATS)}")
        if download:
            dest = str(self._exports_dir())
        check_write_folder(self.store_root, dest, "export folder", export=True)
        params = {"point": point, "server": _point_server(point), "dest": str(dest),
                  "format": format}  # fmt: skip
        return jobs.start_job(self.store_root, "export", params, ref=ref)

    def _exports_dir(self) -> Path:
        path = self.store_root / "appliance" / "exports"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _export_file(self, name: str) -> Path:
        if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
            raise RpcError("bad_params", f"not an export: {name!r}")
        path = self._exports_dir() / name
        if path.is_symlink() or not path.is_file():  # only what an export wrote there
            raise RpcError("not_found", f"no export {name!r} on this appliance")
        return path

    def exports_read(self, req_id, name: str, offset: int = 0, length: int = DEFAULT_WINDOW):
        """One window of an exported image in the exports folder (binary answer)."""
        offset, length = int(offset), min(int(length), MAX_WINDOW)
        if offset < 0 or length < 0:
            raise RpcError("bad_params", "offset and length must be >= 0")
        path = self._export_file(name)
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        result = {"size": size, "offset": offset, "length": len(data),
                  "eof": offset + len(data) >= size}  # fmt: skip
        self.send({"id": req_id, "ok": True, "result": result}, data)
        return SENT

    def exports_delete(self, req_id, name: str) -> dict:
        self._export_file(name).unlink()
        return {"deleted": name}

    def baremetal_key(self, req_id) -> dict:
        """The appliance's public key for bare-metal targets (created on first use)."""
        key = self._key()
        return {"public_key": Path(f"{key}.pub").read_text().strip()}

    def _key(self) -> Path:
        import subprocess

        path = self.store_root / "appliance" / "baremetal_ed25519"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                            "bdr-appliance-baremetal", "-f", str(path)],
                           check=True, capture_output=True)  # fmt: skip
        return path

    def _known_hosts(self, target: str, port: int, host_key: str) -> Path:
        """The agent's own known_hosts file for this target, inside the store: a name made
        from a hash (never from the target's text), written through a temp file and a
        rename in a folder that must be a real folder of the store (not a symlink)."""
        import hashlib
        import os

        host = target.rsplit("@", 1)[-1]
        name = host if port == 22 else f"[{host}]:{port}"
        folder = self.store_root / "appliance" / "known_hosts.d"
        folder.mkdir(parents=True, exist_ok=True)
        if folder.is_symlink() or not folder.is_dir():
            raise Refused(f"{folder} is not the store's own folder")
        path = folder / hashlib.sha256(f"{host}:{port}".encode()).hexdigest()[:32]
        tmp = folder / f".tmp.{os.getpid()}.{path.name}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{name} {host_key}\n")
        os.replace(tmp, path)
        return path
