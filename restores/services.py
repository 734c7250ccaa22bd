"""File restore, export and bare-metal restore as the portal does them.

Every read of a point's files goes to the appliance's agent (files.* rpc); every browse,
search, download and refused path is written to the audit log. Downloads go through
short-lived links signed with the user's id, so a link is no use to anybody else, and they
stream from the appliance through the portal in windows of a few MiB (bounded memory).
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from django.core import signing
from django.core.exceptions import ValidationError
from django.http import Http404

from appliances import jobs, sync
from appliances.client import AgentClient, AgentError, TransportError
from appliances.confinement import clean_host_key, validate_appliance_folder, validate_target
from appliances.file_names import BadPathParam, display_name, parse_path_param, path_param
from appliances.models import Appliance, Job, JobKind
from portal import audit
from portal.models import User
from portal.tenancy import get_for_user
from restores import session_limits
from restores.models import RecoveryPoint, SessionKind

LINK_SALT = "restores.download"
LINK_MAX_AGE = 10 * 60  # seconds a download link works
WINDOW = 4 << 20  # bytes per files.cat / files.zip.read answer
FORMATS = ("raw", "qcow2", "vmdk", "vhdx")


class RestoreUnavailable(Exception):
    """The appliance could not answer; the message is for people."""


class PathRefused(Exception):
    """A path that tries to leave the filesystem (``..``, relative, NUL)."""


class LinkRefused(Exception):
    """A download link that expired, was forged, or is another user's (answered as 404)."""


def clean_path(path: str) -> str:
    """``path`` as ``/a/b``; anything with ``..``, ``.``, NUL or not absolute is refused.
    Every other character is part of a name (a backslash is legal on ext4)."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise PathRefused(path)
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise PathRefused(path)
    return "/" + "/".join(parts)


def _refused(user: User, point: RecoveryPoint, path: str, request=None) -> PathRefused:
    detail = {"path": path_param(path[:500])}
    audit.record(user, "restore.path_refused", point, request=request, detail=detail)
    return PathRefused(path)


@contextlib.contextmanager
def appliance_session(appliance: Appliance, user: User, kind: str) -> Iterator[AgentClient]:
    """One rpc session with the appliance for all the calls of one page or download, in one
    of ``user``'s session slots of ``kind`` (LimitReached when none is free); a connection
    problem, when opening or later in the block, is RestoreUnavailable."""
    with session_limits.slot(user, appliance.customer, kind):
        try:
            with sync.open_agent(appliance, retries=()) as agent:
                yield agent
        except (TransportError, sync.ApplianceUnavailable) as exc:
            raise RestoreUnavailable(f"{appliance.name} cannot be reached: {exc}") from None


def _checked(user, point, path, request):
    """The exact path that ``path`` (itself, or its ``~`` form) names; refusals audited."""
    try:
        return clean_path(parse_path_param(path))
    except (PathRefused, BadPathParam, AttributeError):
        raise _refused(user, point, str(path), request) from None


def _agent_errors(user, point, path, request, fn):
    try:
        return fn()
    except AgentError as exc:
        if exc.code == "path_refused":
            raise _refused(user, point, path, request) from None
        if exc.code in ("not_found", "bad_params"):
            raise Http404(str(exc)) from None
        raise RestoreUnavailable(str(exc)) from None


def _files_call(agent: AgentClient, point: RecoveryPoint, method: str, **params):
    return agent.call(method, point=point.agent_id, **params)


def partitions(agent: AgentClient, user: User, point: RecoveryPoint) -> list[dict]:
    """The point's partitions and the filesystem in each (only readable ones are browsable)."""
    return _agent_errors(
        user, point, "/", None, lambda: _files_call(agent, point, "files.partitions")
    )


def browse(
    agent: AgentClient,
    user: User,
    point: RecoveryPoint,
    path: str,
    partition: int | None,
    *,
    request=None,
) -> dict:
    """A directory listing of ``path`` in the point; audited."""
    path = _checked(user, point, path, request)
    params = {"path": path} | ({"partition": partition} if partition is not None else {})
    listing = _agent_errors(
        user, point, path, request, lambda: _files_call(agent, point, "files.ls", **params)
    )
    audit.record(user, "restore.browse", point, request=request,
                 detail={"path": path_param(path), "partition": listing["partition"]})  # fmt: skip
    return listing


def search(
    user: User, point: RecoveryPoint, pattern: str, partition: int | None, *, request=None
) -> dict:
    """Files whose name matches ``pattern`` (a glob; a plain word matches inside names)."""
    pattern = (pattern or "").strip()[:200]
    if not pattern:
        return {"matches": [], "truncated": False}
    glob = pattern if any(c in pattern for c in "*?[") else f"*{pattern}*"
    params = {"glob": glob, "limit": 500}
    if partition is not None:
        params["partition"] = partition
    with appliance_session(point.server.appliance, user, SessionKind.BROWSE) as agent:
        result = _agent_errors(
            user, point, pattern, request, lambda: _files_call(agent, point, "files.find", **params)
        )
    audit.record(user, "restore.search", point, request=request,
                 detail={"pattern": path_param(pattern),
                         "found": len(result["matches"])})  # fmt: skip
    return result


# -- signed download links ----------------------------------------------------------------


@dataclass
class Download:
    point: RecoveryPoint
    paths: list[str]
    partition: int | None

    @property
    def is_zip(self) -> bool:
        return len(self.paths) > 1 or self.paths[0].endswith("/")


def sign_download(user: User, point: RecoveryPoint, paths: list[str], partition: int | None,
                  *, request=None) -> str:  # fmt: skip
    """A token for downloading ``paths`` of ``point``, good for ``user`` for LINK_MAX_AGE."""
    if not paths:
        raise ValidationError("Pick at least one file or folder.")
    cleaned = []
    for p in paths:
        folder = p.endswith("/") and p != "/"
        exact = _checked(user, point, p[:-1] if folder else p, request)
        cleaned.append(exact + ("/" if folder and exact != "/" else ""))
    payload = {"u": user.pk, "p": point.pk, "f": cleaned, "n": partition}
    return signing.dumps(payload, salt=LINK_SALT, compress=True)


def open_download(user: User, token: str, *, request=None) -> Download:
    """The download a token names; 404 when expired, forged or another user's."""
    try:
        payload = signing.loads(token, salt=LINK_SALT, max_age=LINK_MAX_AGE)
    except signing.SignatureExpired:
        audit.record(user, "restore.link_refused", request=request, detail={"why": "expired"},
                     customer=getattr(user, "customer", None))  # fmt: skip
        raise LinkRefused("This download link has expired. Open the file again.") from None
    except signing.BadSignature:
        raise LinkRefused("Not a download link.") from None
    if payload.get("u") != user.pk:
        audit.record(user, "restore.link_refused", request=request,
                     detail={"why": "another user's link"},
                     customer=getattr(user, "customer", None))  # fmt: skip
        raise LinkRefused("Not a download link.")
    point = get_for_user(RecoveryPoint, user, pk=payload["p"])
    return Download(point, list(payload["f"]), payload.get("n"))


def download_name(download: Download) -> str:
    if not download.is_zip:
        return display_name(posixpath.basename(download.paths[0])) or "file"
    return f"{download.point.server.name}-{download.point.taken_at:%Y-%m-%d-%H%M}.zip"


def start_download(
    user: User, download: Download, *, request=None
) -> tuple[int | None, Iterator[bytes]]:
    """(size if known, the bytes in pieces) of a download, in one session with the appliance
    that stays open until the last byte is sent (or the response is closed); audited."""
    point = download.point
    paths = [p.rstrip("/") or "/" for p in download.paths]
    part = {"partition": download.partition} if download.partition is not None else {}
    with contextlib.ExitStack() as session:
        appliance = point.server.appliance
        agent = session.enter_context(appliance_session(appliance, user, SessionKind.DOWNLOAD))
        size = None if download.is_zip else _file_size(agent, user, point, paths[0], part, request)
        session = session.pop_all()  # from here the stream owns the session
    audit.record(user, "restore.download", point, request=request,
                 detail={"paths": [path_param(p) for p in paths[:50]], "zip": download.is_zip,
                         "size": size})  # fmt: skip
    pieces = (
        _zip_pieces(agent, point, paths, part)
        if download.is_zip
        else _file_pieces(agent, "files.cat", point=point.agent_id, path=paths[0], **part)
    )
    return size, SessionStream.started(session, pieces, point.server.appliance)


def _file_size(agent, user, point, path, part, request) -> int:
    stat = lambda: _files_call(agent, point, "files.stat", path=path, **part)  # noqa: E731
    entry = _agent_errors(user, point, path, request, stat)
    if entry["type"] != "file":
        raise Http404("Not a file.")
    return entry["size"]


class SessionStream:
    """Bytes read in an open appliance session, for a StreamingHttpResponse: the session ends
    with the last piece, or when the response is closed (Django calls ``close``) even if the
    client went away before reading anything."""

    def __init__(self, session: contextlib.ExitStack, pieces: Iterator[bytes], first=b""):
        self.session, self.pieces, self.first, self.closed = session, pieces, first, False

    @classmethod
    def started(cls, session, pieces: Iterator[bytes], appliance: Appliance) -> SessionStream:
        """The stream with its first piece read already, so an appliance that fails at once
        (an error, a hostile answer) is a page saying so, not a download cut at byte 0."""
        try:
            first = next(pieces, b"")
        except (TransportError, AgentError) as exc:
            session.close()
            raise RestoreUnavailable(f"{appliance.name}: {exc}") from None
        return cls(session, pieces, first)

    def __iter__(self) -> Iterator[bytes]:
        try:
            if self.first:
                yield self.first
            yield from self.pieces
        finally:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pieces.close()
            self.session.close()


def _zip_pieces(agent: AgentClient, point, paths: list[str], part: dict) -> Iterator[bytes]:
    stream = agent.call("files.zip", point=point.agent_id, paths=paths, **part)["stream"]
    while True:
        meta, data = agent.call_binary("files.zip.read", stream=stream, max=WINDOW)
        if data:
            yield data
        if meta["eof"]:
            return


def _file_pieces(agent: AgentClient, method: str, **params) -> Iterator[bytes]:
    """A file read in windows with ``method`` (files.cat, exports.read) until its end."""
    offset = 0
    while True:
        meta, data = agent.call_binary(method, offset=offset, length=WINDOW, **params)
        if data:
            yield data
        offset += len(data)
        if meta["eof"] or not data:
            return


# -- jobs ---------------------------------------------------------------------------------


def _queue_for_point(user: User, point: RecoveryPoint, kind: str, params: dict, action: str,
                     request) -> Job:  # fmt: skip
    return jobs.queue_job(kind, point.server.appliance, server=point.server, params=params,
                          actor=user, request=request, audit_as=(action, point),
                          detail=params)  # fmt: skip


def put_back(user: User, point: RecoveryPoint, paths: list[str], dest: str,
             partition: int | None, overwrite: bool, *, request=None) -> Job:  # fmt: skip
    """Start a restore job that copies ``paths`` into folder ``dest`` on the appliance side."""
    if not paths:
        raise ValidationError("Pick at least one file or folder.")
    cleaned = [_checked(user, point, p, request) for p in paths]
    dest = validate_appliance_folder(dest)  # the appliance checks again, against its roots
    # Job params are JSON in PostgreSQL: the paths in their ``~`` form (restore's start_params
    # turns them back into the exact paths for the agent).
    params = {"point": point.agent_id, "paths": [path_param(p) for p in cleaned], "dest": dest,
              "overwrite": overwrite}  # fmt: skip
    if partition is not None:
        params["partition"] = partition
    return _queue_for_point(user, point, JobKind.RESTORE, params, "restore.put_back", request)


def export_volume(user: User, point: RecoveryPoint, dest: str, fmt: str, *, request=None,
                  download: bool = False) -> Job:  # fmt: skip
    """Start an export job writing the point as a ``fmt`` image into folder ``dest`` on the
    appliance, or (``download``) into the appliance's exports folder, to be downloaded."""
    if fmt not in FORMATS:
        raise ValidationError(f"Unknown format {fmt}.")
    params = {"point": point.agent_id, "format": fmt}
    if download:
        params["download"] = True
    else:
        params["dest"] = validate_appliance_folder(dest)
    return _queue_for_point(user, point, JobKind.EXPORT, params, "restore.export", request)


def bare_metal(user: User, point: RecoveryPoint, target: str, port: int, host_key: str,
               dest: str, *, request=None) -> Job:  # fmt: skip
    """Start a bare-metal restore: stream the point to ``target``'s receiver over SSH."""
    validate_target(target)
    params = {"point": point.agent_id, "target": target, "port": port,
              "host_key": clean_host_key(host_key), "dest": dest}  # fmt: skip
    return _queue_for_point(user, point, JobKind.RESTORE, params, "restore.bare_metal", request)


def export_download(user: User, job: Job, *, request=None) -> tuple[str, int, Iterator[bytes]]:
    """(file name, size, bytes in pieces) of a finished export made "as a download"."""
    result = job.params.get("result") or {}
    if not (job.kind == JobKind.EXPORT and job.params.get("download")
            and job.state == "succeeded" and result.get("dest")):  # fmt: skip
        raise Http404("This export is not ready for download.")
    name = posixpath.basename(result["dest"])
    stream = _export_stream(user, job.appliance, name)
    detail = {"job": job.pk, "file": name, "size": result.get("file_bytes")}
    audit.record(user, "restore.export_download", job.server, request=request, detail=detail)
    return name, int(result.get("file_bytes") or 0), stream


def _export_stream(user: User, appliance, name: str) -> Iterator[bytes]:
    with contextlib.ExitStack() as session:
        agent = session.enter_context(appliance_session(appliance, user, SessionKind.DOWNLOAD))
        session = session.pop_all()  # from here the stream owns the session
    return SessionStream.started(session, _file_pieces(agent, "exports.read", name=name), appliance)


def job_eta_seconds(job: Job) -> float | None:
    """Seconds left at the job's average rate so far (None until it has moved)."""
    if not job.is_active or not job.started_at or job.bytes_done <= 0 or not job.bytes_total:
        return None
    from django.utils import timezone

    elapsed = (timezone.now() - job.started_at).total_seconds()
    return max(0.0, elapsed * (job.bytes_total - job.bytes_done) / job.bytes_done)
