"""Small on-disk records shared by jobs, VMs and boot checks: atomic JSON files, UTC
timestamps, and whether a recorded process still lives. Standard library only."""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(path: Path, data) -> None:
    """Write ``data`` as JSON to ``path`` so a crash leaves the old or the new file, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def utc_now() -> str:
    """Now as ISO-8601 in UTC with a ``Z``, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def process_alive(pid: int | None) -> bool:
    """True while ``pid`` runs on this host; a zombie counts as dead."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def text_tail(path: Path, max_bytes: int = 64 * 1024) -> str:
    """The last ``max_bytes`` of a log file as text ("" if there is none yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
