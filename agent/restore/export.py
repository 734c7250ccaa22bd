"""Whole-point restores: export as a disk image file, and bare-metal restore over SSH.

Export serves the point read-only over NBD (``agent.restore.nbd``) inside this process and lets
``qemu-img convert`` read it from there, so the image is written once, in its final format,
and nothing is materialised twice. The file is built beside DEST and renamed when complete.
A raw image is exactly the volume's bytes; qcow2, vmdk and vhdx count whole 512-byte
sectors, so a volume of another size is rounded up and the tail reads as zeros.

Bare-metal restore streams the point's bytes over OpenSSH to ``python -m agent.receiver`` on
the target (its forced command), hashing what it sends; the receiver hashes what it wrote
(read back from the device or file) and the two SHA-256 must agree.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
from pathlib import Path

from agent.errors import AgentError, DamageFound, UsageError
from agent.restore.reader import PointReader
from agent.store.datastore import Store
from agent.store.progress import Progress

FORMATS = ("raw", "qcow2", "vmdk", "vhdx")
SEND_PIECE = 4 << 20
_PERCENT = re.compile(rb"\((\d+(?:\.\d+)?)/100%\)")


def export_point(
    store: Store, point_id: str, dest: str | os.PathLike, fmt: str, progress: Progress | None = None
) -> dict:
    """Write the point as a ``fmt`` image (raw, qcow2, vmdk, vhdx) at ``dest``."""
    from agent.restore.nbd import NbdServer, nbd_uri

    progress = progress or Progress()
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    dest = export_path(dest, point_id, fmt)
    if not dest.parent.is_dir():
        raise UsageError(f"destination folder does not exist: {dest.parent}")
    if dest.exists():
        raise UsageError(f"{dest} exists; export never overwrites")
    partial = dest.with_name(f"{_partial_prefix(dest)}{secrets.token_hex(4)}")
    with tempfile.TemporaryDirectory(prefix="bdr-export-") as tmp:
        # Each read qemu-img makes beats the job's heartbeat: a hung qemu-img stops it.
        server = NbdServer(store, point_id, Path(tmp) / "nbd.sock", on_read=progress.beat)
        server.start()
        progress.start("export", server.size)
        try:
            convert_image(nbd_uri(server.socket_path), partial, fmt, server.size, progress)
            if fmt == "raw":  # exactly the volume; the other formats keep whole sectors
                os.truncate(partial, server.volume_size)
            os.replace(partial, dest)
        finally:
            server.shutdown()
            partial.unlink(missing_ok=True)
    progress.finish()
    return {"point": point_id, "dest": str(dest), "format": fmt, "size": server.volume_size,
            "virtual_size": server.size, "file_bytes": dest.stat().st_size}  # fmt: skip


def export_path(dest: str | os.PathLike, point_id: str, fmt: str) -> Path:
    """The image file an export of ``point_id`` to ``dest`` (a folder or a file) writes."""
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / f"{point_id.replace('/', '-')}.{'img' if fmt == 'raw' else fmt}"
    return dest


def _partial_prefix(dest: Path) -> str:
    return f".{dest.name}.bdr-partial."


def remove_partial_export(dest: str | os.PathLike, point_id: str, fmt: str) -> list[str]:
    """Delete what a killed export of ``point_id`` to ``dest`` left (its partial image)."""
    final = export_path(dest, point_id, fmt)
    removed = []
    for path in final.parent.glob(f"{_partial_prefix(final)}*"):
        path.unlink(missing_ok=True)
        removed.append(str(path))
    return removed


def convert_image(uri: str, target: Path, fmt: str, size: int, progress: Progress) -> None:
    """``qemu-img convert`` of ``uri`` (raw) to ``target`` in ``fmt``, its progress fed to
    ``progress`` (bytes of ``size``); AgentError with qemu-img's last line if it fails."""
    cmd = ["qemu-img", "convert", "-p", "-f", "raw", "-O", fmt, uri, str(target)]
    if fmt == "vhdx":
        cmd[-2:-2] = ["-o", "subformat=dynamic"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    errors: list[bytes] = []
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    drain.start()
    done = 0
    assert proc.stdout is not None
    buffer = b""
    while chunk := proc.stdout.read1(4096):
        buffer = (buffer + chunk)[-256:]
        found = _PERCENT.findall(buffer)
        if found:
            now = int(float(found[-1]) * size / 100)
            if now > done:
                progress.advance(now - done)
                done = now
    code = proc.wait()
    drain.join(timeout=5)
    if code != 0:
        last = (b"".join(errors).decode(errors="replace").strip().splitlines() or [""])[-1]
        raise AgentError(f"qemu-img convert to {fmt} failed (exit {code}): {last}")
    if done < size:
        progress.advance(size - done)


def send_point(
    store: Store,
    point_id: str,
    target: str,
    *,
    port: int = 22,
    identity: str,
    known_hosts: str,
    dest: str = "",
    progress: Progress | None = None,
) -> dict:
    """Stream the point to ``target`` (user@host) over SSH; DamageFound if the hashes differ.

    The target's host key must already be in ``known_hosts`` (never accepted on first use).
    """
    progress = progress or Progress()
    ssh = [
        "ssh", "-i", identity, "-p", str(port),
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "IdentitiesOnly=yes",
        target, "bdr-receiver", *([dest] if dest else []),
    ]  # fmt: skip
    sent = hashlib.sha256()
    with PointReader(store, point_id, cache_chunks=4) as reader:
        progress.start("baremetal", reader.size)
        proc = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
        errors: list[bytes] = []
        drain = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
        drain.start()
        try:
            for offset in range(0, reader.size, SEND_PIECE):
                piece = reader.read(offset, SEND_PIECE)
                sent.update(piece)
                proc.stdin.write(piece)
                progress.advance(len(piece))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        out = proc.stdout.read()
        code = proc.wait()
        drain.join(timeout=5)
    if code != 0:
        last = (b"".join(errors).decode(errors="replace").strip().splitlines() or [""])[-1]
        raise AgentError(f"the target refused or failed the restore (exit {code}): {last}")
    try:
        answer = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AgentError("the target's receiver did not report a hash") from None
    if answer.get("sha256") != sent.hexdigest() or answer.get("bytes") != reader.size:
        raise DamageFound(
            f"hash check failed: sent {reader.size} bytes sha256 {sent.hexdigest()}, "
            f"target wrote {answer.get('bytes')} bytes sha256 {answer.get('sha256')}"
        )
    progress.finish()
    return {"point": point_id, "target": target, "dest": answer.get("dest"),
            "bytes": reader.size, "sha256": sent.hexdigest(), "verified": True}  # fmt: skip
