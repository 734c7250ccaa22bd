"""Confinement: the paths the portal may make the agent read (volume sources) and write
(file put-back, exports), and the bare-metal targets it may send a point to.

The rules come from a file the appliance's administrator owns, never from the rpc:
``BDR_AGENT_CONFIG`` or ``/etc/bdr-agent/confinement.json``::

    {"source_roots": ["/srv/images"], "export_roots": ["/srv/restores"]}

A volume source is a block device under ``/dev`` or a regular file under a source root; a
folder written into is under an export root or the store's own exports folder. Whatever the
roots, system and SSH places, the store and its key, and this file are refused, symlinks
resolved first. A refusal is one ``Refused`` error and one line in the store's
``appliance/refused-paths.log``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from agent.errors import Refused

CONFIG_ENV = "BDR_AGENT_CONFIG"
DEFAULT_CONFIG = "/etc/bdr-agent/confinement.json"
DEFAULT_EXPORT_ROOTS = ("/srv/restores",)
# System places no root can open up (a root of "/" still refuses these).
FORBIDDEN_TREES = ("/etc", "/root", "/home", "/proc", "/sys", "/boot", "/usr", "/bin", "/sbin",
                   "/lib", "/lib64", "/var/spool", "/run/sshd")  # fmt: skip
HOST_KEY = re.compile(
    r"^(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa) ([A-Za-z0-9+/]+={0,2})\Z"
)
HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]"
TARGET = re.compile(rf"^[A-Za-z_][A-Za-z0-9._-]{{0,31}}@({HOST})\Z")


@dataclass(frozen=True)
class Confinement:
    """The appliance's rules, as read from its config file."""

    path: Path
    source_roots: tuple[str, ...] = ()
    export_roots: tuple[str, ...] = DEFAULT_EXPORT_ROOTS


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_confinement() -> Confinement:
    """The appliance's confinement; the defaults when its file does not exist. A file that
    cannot be read or parsed refuses everything (fail closed) with one line."""
    path = config_path()
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Confinement(path)
    except (OSError, ValueError) as exc:
        raise Refused(
            f"confinement config {path} is unreadable ({exc}); nothing is allowed"
        ) from None
    if not isinstance(raw, dict):
        raise Refused(f"confinement config {path} is not a JSON object; nothing is allowed")
    roots = {}
    for key in ("source_roots", "export_roots"):
        value = raw.get(key, [] if key == "source_roots" else list(DEFAULT_EXPORT_ROOTS))
        if not isinstance(value, list) or not all(_absolute(v) for v in value):
            raise Refused(f"confinement config {path}: {key} must be a list of absolute paths")
        roots[key] = tuple(os.path.realpath(v) for v in value)
    return Confinement(path, **roots)


def _absolute(path) -> bool:
    return isinstance(path, str) and path.startswith("/") and "\0" not in path


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _store_key_file(store_root: Path) -> str | None:
    try:
        key = json.loads((Path(store_root) / "config.json").read_text()).get("key_file")
    except (OSError, ValueError, AttributeError):
        key = None
    key = os.environ.get("BDR_KEY_FILE") or key
    return os.path.realpath(key) if key else None


def system_reason(path: str) -> str:
    """Why ``path`` (absolute, normalised) is never read or written on any appliance (SSH
    files, system trees), or "". Pure: the portal's forms use it too."""
    parts = path.split("/")
    if any(p == ".ssh" or p.startswith(("authorized_keys", "ssh_host_")) for p in parts):
        return "SSH files are never read or written"
    for tree in FORBIDDEN_TREES:
        if _under(path, tree):
            return f"{tree} is never read or written"
    return ""


def forbidden_reason(path: str, store_root: Path, conf: Confinement, *, allow: str = "") -> str:
    """Why ``path`` (absolute, already normalised) is never allowed, or "" when it is not
    one of those places. ``allow`` is a folder inside the store that writes may use."""
    reason = system_reason(path)
    if reason:
        return reason
    config = os.path.realpath(conf.path)
    if _under(path, config):
        return "the agent's own configuration"
    key = _store_key_file(store_root)
    if key and _under(path, key):
        return "the store's key file"
    store = os.path.realpath(store_root)
    if _under(path, store) and not (allow and _under(path, allow)):
        return "the backup store itself"
    return ""


def _refuse(store_root: Path, what: str, path: str, reason: str) -> Refused:
    log_refused_path(store_root, what, "", path, reason)
    return Refused(f"{what} {path!r} refused: {reason}")


def _forbidden(path: str, real: str, store_root: Path, conf: Confinement, allow: str = "") -> str:
    normal = os.path.normpath(path)
    return forbidden_reason(normal, store_root, conf, allow=allow) or forbidden_reason(
        real, store_root, conf, allow=allow
    )


def check_source(store_root: Path, source, *, must_exist: bool = False) -> str:
    """``source`` resolved (symlinks followed) if it may be backed up, else ``Refused``.

    A block device under /dev, or a regular file under a source root; ``must_exist`` at
    backup time (at configure time a disk may not be attached yet)."""
    what = "volume source"
    if not _absolute(source):
        raise _refuse(store_root, what, str(source), "not an absolute path")
    conf = load_confinement()
    real = os.path.realpath(source)
    reason = _forbidden(source, real, store_root, conf)
    if reason:
        raise _refuse(store_root, what, source, reason)
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = None
    if mode is None and must_exist:
        raise _refuse(store_root, what, source, "it does not exist")
    if _under(real, "/dev"):
        if mode is not None and not stat.S_ISBLK(mode):
            raise _refuse(store_root, what, source, f"{real} is not a block device")
    elif any(_under(real, root) for root in conf.source_roots):
        if mode is not None and not stat.S_ISREG(mode):
            raise _refuse(store_root, what, source, f"{real} is not a regular image file")
    else:
        roots = ", ".join(conf.source_roots) or "none configured"
        why = f"not a block device under /dev nor an image under a source root ({roots})"
        raise _refuse(store_root, what, source, why)
    return real


def check_write_folder(
    store_root: Path, folder, what: str = "restore folder", *, export: bool = False
) -> str:
    """``folder`` resolved if put-back or (``export``) an export may write there: under an
    export root, or for an export also the store's exports folder (whose files ``exports.read``
    serves), and no forbidden place; else ``Refused``."""
    if not _absolute(folder) or ".." in str(folder).split("/"):
        raise _refuse(store_root, what, str(folder), "not an absolute path without '..'")
    conf = load_confinement()
    exports = os.path.realpath(Path(store_root) / "appliance" / "exports") if export else ""
    real = os.path.realpath(folder)
    reason = _forbidden(folder, real, store_root, conf, allow=exports)
    if reason:
        raise _refuse(store_root, what, folder, reason)
    if not any(_under(real, root) for root in (exports, *conf.export_roots) if root):
        roots = ", ".join(conf.export_roots) or "none configured"
        why = f"not under an export root ({roots}) or the appliance's exports folder"
        raise _refuse(store_root, what, folder, why)
    return real


def check_target(store_root: Path, target, port) -> tuple[str, int]:
    """(user@host, port) of a bare-metal target when well formed, else ``Refused``."""
    if not isinstance(target, str) or not TARGET.match(target):
        raise _refuse(store_root, "bare-metal target", str(target)[:200], "not user@host")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _refuse(store_root, "bare-metal port", str(port)[:20], "not a port number")
    return target, port


def check_host_key(store_root: Path, host_key) -> str:
    """``"type base64"`` when ``host_key`` is exactly one key of a known type (no options,
    markers such as @cert-authority, comments or further lines), else ``Refused``."""
    key = parse_host_key(host_key)
    if key is None:
        raise _refuse(store_root, "bare-metal host key", str(host_key)[:200],
                      "not one 'ssh-ed25519|ecdsa-sha2-*|ssh-rsa BASE64' key")  # fmt: skip
    return key


def parse_host_key(text) -> str | None:
    """``"type base64"`` if ``text`` is exactly that (spaces around allowed), else None."""
    key = text.strip(" ") if isinstance(text, str) else ""
    match = HOST_KEY.match(key)
    if not match or not _key_blob_matches(match.group(1), match.group(2)):
        return None
    return key


def _key_blob_matches(kind: str, blob: str) -> bool:
    """The base64 blob is an SSH public key of the type it claims (its first string)."""
    try:
        data = base64.b64decode(blob, validate=True)
    except ValueError:
        return False
    size = int.from_bytes(data[:4], "big")
    return data[4 : 4 + size] == kind.encode()


def log_refused_path(store_root: Path, what: str, point: str, path: str, reason: str) -> None:
    """Append one refused-path attempt to ``<store>/appliance/refused-paths.log``."""
    log_dir = Path(store_root) / "appliance"
    log_dir.mkdir(parents=True, exist_ok=True)
    line = {
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": what,
        "point": point,
        "path": path,
        "reason": reason,
    }
    with open(log_dir / "refused-paths.log", "a") as f:
        f.write(json.dumps(line) + "\n")
