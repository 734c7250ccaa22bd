"""The store's record of refused file-restore paths (``..``, symlinks out of the restore
folder, ...): ``<store>/appliance/refused-paths.log``, one JSON line per attempt, so an
attempt to read outside a point or write outside a restore folder leaves a trace. The log
itself is written by ``agent.confinement.log_refused_path`` (confinement refusals share it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.confinement import log_refused_path
from agent.restore.filesystems import PathRefused

__all__ = ["log_refused_path", "refused_paths_logged"]


@contextmanager
def refused_paths_logged(store_root: Path, what: str, point: str, paths: list) -> Iterator[None]:
    """Log a ``PathRefused`` raised inside the block, then let it propagate."""
    try:
        yield
    except PathRefused as exc:
        log_refused_path(store_root, what, point, " ".join(str(p) for p in paths), str(exc))
        raise
