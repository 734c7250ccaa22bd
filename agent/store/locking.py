"""Store locks with a lifetime and a heartbeat, and the short commit interlock.

A lock is a file created with O_EXCL holding its owner (host, pid, token) and an expiry.
While held, a heartbeat thread pushes the expiry forward. A lock is stale when it has
expired or its owner process on this host is gone; any process that needs it breaks a
stale lock, so a kill -9 never needs a manual unlock. The owner checks its lock before
committing: a process that was paused past its lifetime (restic #2715) finds the lock
gone and aborts without committing.

The commit interlock is a flock(2): held for milliseconds by a committing backup and for
the sweep by gc, and dropped by the kernel when its holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import threading
import time
from pathlib import Path

from agent.errors import LockHeld, LockLost
from agent.store.chunkstore import pid_alive, write_atomic

DEFAULT_LIFETIME = 300.0


def lock_lifetime() -> float:
    """Seconds a lock lives without a heartbeat (env BDR_LOCK_LIFETIME, default 300)."""
    return float(os.environ.get("BDR_LOCK_LIFETIME", DEFAULT_LIFETIME))


def read_lock(path: Path) -> dict | None:
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def is_stale(info: dict | None, now: float | None = None) -> bool:
    if info is None:
        return True  # unreadable: a torn write from a crashed owner
    now = time.time() if now is None else now
    if info.get("expires", 0) < now:
        return True
    return info.get("host") == socket.gethostname() and not pid_alive(info.get("pid", 0))


def break_if_stale(path: Path) -> bool:
    """Remove ``path`` if its lock is stale. Rename first so only one breaker wins."""
    info = read_lock(path)
    if not is_stale(info):
        return False
    aside = path.with_name(f"{path.name}.broken.{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return True
    if not is_stale(read_lock(aside)):
        # refreshed between our read and our rename: put it back
        with contextlib.suppress(OSError):
            os.link(aside, path)
        aside.unlink(missing_ok=True)
        return False
    aside.unlink(missing_ok=True)
    return True


class StoreLock:
    """An exclusive, expiring, heartbeated lock named ``name`` in ``locks_dir``."""

    def __init__(self, locks_dir: Path, name: str, purpose: str, lifetime: float | None = None):
        self.path = Path(locks_dir) / f"{name}.lock"
        self.name = name
        self.purpose = purpose
        self.lifetime = lock_lifetime() if lifetime is None else lifetime
        self.token = secrets.token_hex(16)
        self.expires = 0.0
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        self.expires = time.time() + self.lifetime
        info = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "purpose": self.purpose,
            "expires": self.expires,
        }
        return json.dumps(info).encode()

    def acquire(self) -> StoreLock:
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                if break_if_stale(self.path):
                    continue
                info = read_lock(self.path) or {}
                raise LockHeld(
                    f"{self.name} is locked by {info.get('purpose', '?')} "
                    f"(pid {info.get('pid', '?')} on {info.get('host', '?')})"
                ) from None
            try:
                os.write(fd, self._record())
                os.fsync(fd)
            finally:
                os.close(fd)
            self._thread = threading.Thread(target=self._heartbeat, daemon=True)
            self._thread.start()
            return self
        raise LockHeld(f"{self.name}: lock keeps changing hands")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lifetime / 4):
            try:
                self.refresh()
            except LockLost:
                self.lost = True
                return
            except OSError:
                # A full or failing disk: try again next beat. If it never works, the
                # expiry passes and check() stops the commit (nothing half-done).
                continue

    def refresh(self) -> None:
        # Past (or near) our expiry someone may already have broken the lock: never
        # write over a lock that may now be someone else's.
        if time.time() > self.expires - self.lifetime / 4:
            raise LockLost(f"lock {self.name} expired while this process was paused")
        info = read_lock(self.path)
        if not info or info.get("token") != self.token:
            raise LockLost(f"lock {self.name} was broken by another process")
        write_atomic(self.path, self._record(), sync_dir=False)

    def check(self) -> None:
        """Raise LockLost unless we still own the lock with time to spare."""
        info = read_lock(self.path)
        if (
            self.lost
            or not info
            or info.get("token") != self.token
            or time.time() > self.expires - self.lifetime / 8
        ):
            self.lost = True
            raise LockLost(f"lock {self.name} was lost (expired or broken); nothing committed")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        info = read_lock(self.path)
        if info and info.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def break_stale_locks(locks_dir: Path) -> list[str]:
    """Remove every stale lock in ``locks_dir``; return the names removed."""
    removed = []
    for path in Path(locks_dir).glob("*.lock"):
        if break_if_stale(path):
            removed.append(path.stem)
    for path in Path(locks_dir).glob("*.lock.broken.*"):
        path.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def commit_interlock(locks_dir: Path, timeout: float = 600.0):
    """Exclusive flock held while a backup commits or gc sweeps."""
    fd = os.open(Path(locks_dir) / "commit.flock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockHeld("the store's commit interlock is held too long") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
