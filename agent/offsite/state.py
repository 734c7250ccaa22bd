"""What the appliance knows of its off-site copies: ``<store>/appliance/offsite/state.json``.

Per target (its TARGET text): the vault's name, when the vault was last asked, the copies
of each point the vault reported (its own name and those of the vaults it replicates
to), and the replication run in progress or last finished (bytes, rate, times). Written
by ``replicate`` as it goes and by ``offsite TARGET``; read by ``offsite`` and the rpc's
``offsite.status`` without touching the network.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

from agent.records import utc_now, write_json_atomic

WRITE_EVERY = 2.0  # seconds between progress writes during a run
RATE_WINDOW = 30.0  # seconds the current rate is measured over


def state_path(store_root: Path) -> Path:
    return Path(store_root) / "appliance" / "offsite" / "state.json"


def load_state(store_root: Path) -> dict:
    """{target: its state}; empty when nothing was replicated yet."""
    try:
        return json.loads(state_path(store_root).read_text())
    except (FileNotFoundError, ValueError):
        return {}


@contextmanager
def _locked(store_root: Path):
    path = state_path(store_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(".state.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load_state(store_root)
        yield state
        write_json_atomic(path, state)


def record_vault_points(
    store_root: Path, target: str, vault: str, points: list[dict], retired: list[str]
) -> None:
    """What the vault just said it holds (whole) and where else each point is."""
    with _locked(store_root) as state:
        entry = state.setdefault(target, {})
        entry.update(vault=vault, checked_at=utc_now())
        entry["points"] = {p["point"]: p.get("copies") or [vault] for p in points if p.get("whole")}
        entry["retired"] = sorted(retired)


def record_vault_usage(store_root: Path, target: str, vault_bytes: int | None) -> None:
    """The bytes this appliance's points reference on the vault (what billing counts), as
    the vault just said; None (it could not say) keeps the last figure."""
    if vault_bytes is None:
        return
    with _locked(store_root) as state:
        entry = state.setdefault(target, {})
        entry.update(vault_bytes=vault_bytes, vault_bytes_at=utc_now())


class RunRecorder:
    """Keeps the state of one replication run on disk: started, progress, commits, end.
    ``rate`` is over the last half minute (what the link does now, throttle included),
    ``average_rate`` over the whole run."""

    def __init__(self, store_root: Path, target: str):
        self.store_root = store_root
        self.target = target
        self.started = time.monotonic()
        self.done = 0
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self._lock = threading.Lock()
        self._run = {
            "pid": os.getpid(),
            "state": "running",
            "started_at": utc_now(),
            "bytes_done": 0,
            "rate": None,
            "average_rate": None,
            "updated_at": utc_now(),
        }
        self._write()

    def _write(self, point: str = "", copies: list[str] | None = None) -> None:
        with _locked(self.store_root) as state:
            entry = state.setdefault(self.target, {})
            entry["run"] = dict(self._run)
            if point:
                entry.setdefault("points", {})[point] = copies

    def sent(self, n: int) -> None:
        """Count ``n`` bytes on the wire; the record is rewritten every few seconds."""
        with self._lock:  # the writer threads of several connections
            self.done += n
            now = time.monotonic()
            if now - self._samples[-1][0] < WRITE_EVERY:
                return
            self._update(now)
        self._write()

    def _update(self, now: float) -> None:
        self._samples.append((now, self.done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
            self._samples.popleft()
        (t0, d0), elapsed = self._samples[0], max(now - self.started, 1e-6)
        self._run.update(
            bytes_done=self.done,
            rate=round((self.done - d0) / max(now - t0, 1e-6)),
            average_rate=round(self.done / elapsed),
            updated_at=utc_now(),
        )

    def committed(self, point: str, copies: list[str]) -> None:
        self._write(point, copies)

    def finish(self, error: str = "") -> None:
        self._update(time.monotonic())
        self._run.update(
            state="failed" if error else "finished", finished_at=utc_now(), error=error
        )
        self._write()
