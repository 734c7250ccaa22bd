"""The store's record of refused file-restore paths (``..``, symlinks out of the restore
folder, ...): ``<store>/appliance/refused-paths.log``, one JSON line per attempt, so an
attempt to read outside a point or write outside a restore folder leaves a trace."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.restore.filesystems import PathRefused


def log_refused_path(store_root: Path, what: str, point: str, path: str, reason: str) -> None:
    """Append one refused-path attempt to the store's log."""
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


@contextmanager
def refused_paths_logged(store_root: Path, what: str, point: str, paths: list) -> Iterator[None]:
    """Log a ``PathRefused`` raised inside the block, then let it propagate."""
    try:
        yield
    except PathRefused as exc:
        log_refused_path(store_root, what, point, " ".join(str(p) for p in paths), str(exc))
        raise
