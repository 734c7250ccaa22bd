"""Progress of long operations: a bar on a terminal, JSON events with --json, else silence."""

from __future__ import annotations

import json
import sys
import threading
import time


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


class Progress:
    """Thread-safe byte counter that reports at most every ``interval`` seconds."""

    def __init__(self, mode: str = "none", stream=None, interval: float = 1.0):
        self.mode = mode  # "bar", "json" or "none"
        self.stream = stream or sys.stderr
        self.interval = interval
        self.label = ""
        self.total = 0
        self.done = 0
        self.beats = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._lock = threading.Lock()

    @classmethod
    def for_cli(cls, json_mode: bool) -> Progress:
        if json_mode:
            return cls("json")
        return cls("bar" if sys.stderr.isatty() else "none")

    def start(self, label: str, total: int) -> None:
        with self._lock:
            self.label, self.total, self.done = label, total, 0
            self._start = self._last = time.monotonic()

    def advance(self, n: int) -> None:
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.mode != "none" and now - self._last >= self.interval:
                self._last = now
                self._emit(now)

    def beat(self) -> None:
        """Say "still working" where no bytes move (marking, fsyncs, waiting on a helper).

        Called only by the thread doing the work, so a hung worker stops beating and the
        job's supervisor sees the stall (see ``agent.service.job``)."""
        with self._lock:
            self.beats += 1
            now = time.monotonic()
            if self.mode == "json" and now - self._last >= self.interval:
                self._last = now
                self._emit(now)

    def finish(self) -> None:
        with self._lock:
            if self.mode != "none":
                self._emit(time.monotonic(), final=True)

    def _emit(self, now: float, final: bool = False) -> None:
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else None
        if self.mode == "json":
            event = {
                "event": "progress",
                "phase": self.label,
                "bytes_done": self.done,
                "bytes_total": self.total,
                "rate": round(rate),
                "eta_seconds": None if eta is None else round(eta, 1),
                "beats": self.beats,
            }
            self.stream.write(json.dumps(event) + "\n")
        else:
            frac = self.done / self.total if self.total else 1.0
            bar = "#" * int(frac * 30)
            eta_s = "" if eta is None or final else f" ETA {eta:.0f}s"
            self.stream.write(
                f"\r{self.label} [{bar:<30}] {_size(self.done)}/{_size(self.total)} "
                f"{_size(rate)}/s{eta_s}  " + ("\n" if final else "")
            )
        self.stream.flush()
