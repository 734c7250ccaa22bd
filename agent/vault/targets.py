"""Replication targets: a vault directory, ``ssh://user@host[:port]/DIR`` or ``s3://bucket/prefix``.

Every target is reached the same way, through a ``vault serve`` process: over SSH for a
vault host (whose forced command is ``bdr-agent vault serve DIR``), or as a local child
process for a directory or an S3 bucket. The SSH host key must be pinned beforehand in the
caller's own known_hosts file (``pin_host_key``); an unknown or changed key is refused by
ssh itself (``StrictHostKeyChecking=yes``), never accepted on first use.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from agent.confinement import parse_host_key
from agent.errors import Refused, UsageError
from agent.vault.client import VaultConnection

# AES-GCM first: with AES-NI it costs a fraction of chacha20-poly1305's CPU per byte, and
# the link's encryption runs on the same two cores as everything else (chacha20 stays as
# the fallback for hosts without it).
CIPHERS = "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com"
SSH_TARGET = re.compile(
    r"^ssh://(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]{0,31})@(?P<host>[A-Za-z0-9][A-Za-z0-9.-]{0,252}"
    r"|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?(?P<path>/[A-Za-z0-9._/-]*)$"
)


@dataclass(frozen=True)
class Target:
    """A parsed TARGET."""

    kind: str  # "dir", "ssh" or "s3"
    text: str
    path: str = ""  # the vault directory (dir, ssh) or the s3:// URL
    user: str = ""
    host: str = ""
    port: int = 22

    @property
    def pin_name(self) -> str:
        """The host as a known_hosts line names it."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


def parse_target(text: str) -> Target:
    """A TARGET from its text; UsageError when malformed."""
    if not isinstance(text, str) or not text:
        raise UsageError("no target given: a vault directory, ssh://user@host[:port]/DIR or s3://")
    if text.startswith("s3://"):
        if not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,62}(/[A-Za-z0-9._/-]*)?$", text):
            raise UsageError(f"bad S3 target {text!r}: s3://bucket/prefix")
        return Target("s3", text, path=text)
    if text.startswith("ssh://"):
        match = SSH_TARGET.match(text)
        port = int(match.group("port") or 22) if match else 0
        path = match.group("path") if match else ""
        if not match or not 1 <= port <= 65535 or ".." in path.split("/"):
            raise UsageError(f"bad target {text!r}: ssh://user@host[:port]/DIR")
        host = match.group("host").strip("[]")
        return Target("ssh", text, path=path, user=match.group("user"), host=host, port=port)
    if "://" in text:
        raise UsageError(f"bad target {text!r}: a directory, ssh:// or s3://")
    return Target("dir", text, path=os.path.abspath(text))


def pinned_key(known_hosts: Path, target: Target) -> str | None:
    """The host key pinned for the target's host and port, if any."""
    try:
        lines = known_hosts.read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in lines:
        name, _, key = line.partition(" ")
        if name == target.pin_name:
            return key.strip()
    return None


def pin_host_key(known_hosts: Path, target: Target, host_key: str) -> None:
    """Pin ``host_key`` for the target; Refused if another key is pinned there already
    (a changed host key is an alarm, never an update: remove the old pin by hand)."""
    key = parse_host_key(host_key)
    if key is None:
        raise UsageError("bad host key: one 'ssh-ed25519|ecdsa-sha2-*|ssh-rsa BASE64' key")
    old = pinned_key(known_hosts, target)
    if old == key:
        return
    if old is not None:
        raise Refused(f"vault {target.pin_name} already has another pinned host key; refused")
    known_hosts.parent.mkdir(parents=True, exist_ok=True)
    with open(known_hosts, "a") as f:
        f.write(f"{target.pin_name} {key}\n")


def ensure_identity(path: Path, comment: str) -> Path:
    """The SSH key this side presents to vault hosts (made on first use)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment,
                        "-f", str(path)], check=True, capture_output=True)  # fmt: skip
    return path


def serve_argv(
    target: Target,
    known_hosts: Path | None = None,
    identity: Path | None = None,
    mux: tuple[Path, bool] | None = None,
):
    """The command that reaches ``vault serve`` for ``target``. ``mux`` (SSH only) is
    (control socket, master?): the master's connection carries the other sessions of
    the same socket as channels of its own (OpenSSH ControlMaster), no new handshake."""
    if target.kind != "ssh":
        return [sys.executable, "-m", "agent", "vault", "serve", target.path]
    if known_hosts is None or identity is None or pinned_key(known_hosts, target) is None:
        raise Refused(
            f"no host key pinned for vault {target.pin_name}: pin it first (--host-key); "
            "a vault's key is never accepted on first use"
        )
    shared = []
    if mux is not None:
        socket, master = mux
        # a session never starts a master of its own (with no master listening it would
        # make a connection of its own: slower, still correct)
        shared = ["-o", f"ControlPath={socket}", "-o",
                  "ControlMaster=yes" if master else "ControlMaster=no"]  # fmt: skip
    return ["ssh", "-T", "-i", str(identity), "-p", str(target.port),
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "IdentitiesOnly=yes", "-o", "Compression=no", "-c", CIPHERS,
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", *shared,
            f"{target.user}@{target.host}", "bdr-agent", "vault", "serve", target.path]  # fmt: skip


def connect(
    target: Target,
    known_hosts: Path | None = None,
    identity: Path | None = None,
    mux: tuple[Path, bool] | None = None,
) -> VaultConnection:
    """A greeted connection to the target's ``vault serve`` (see ``serve_argv`` for
    ``mux``; a master's control socket is usable once this returns)."""
    conn = VaultConnection(serve_argv(target, known_hosts, identity, mux), label=target.text)
    try:
        conn.hello()
    except BaseException:
        conn.close()
        raise
    return conn


def close_all(conns: list[VaultConnection]) -> None:
    """Close ``conns``: all are told the requests are over at once (each ending costs a
    round trip, 16 in a row 2-3 s at 100 ms), then waited for, the last opened first (a
    ControlMaster's connection ends only once the sessions it carries have). Those still
    opening (``Connections``) are waited for first."""
    if isinstance(conns, Connections):
        conns.finish()
    for conn in reversed(conns):
        conn.end_requests()
    for conn in reversed(conns):
        conn.close()


@contextlib.contextmanager
def all_closed(conns: list[VaultConnection]):
    """``conns`` in a with block that closes every one of them."""
    try:
        yield conns
    finally:
        close_all(conns)


def connect_streams(
    target: Target,
    known_hosts: Path | None = None,
    identity: Path | None = None,
    streams: int | None = None,
    channels: int | None = None,
) -> list[VaultConnection]:
    """Greeted connections for sending: ``streams`` of them, or (None) as many as the
    measured round trip needs (see ``agent.vault.streams``): then only the first is open
    when this returns, the others join the list as they open (``Connections``), so the
    first blobs go out meanwhile. To an SSH vault, each SSH
    connection carries up to ``channels`` of them as sessions (None: the default of
    ``agent.vault.streams``): each session has a flow-control window of its own, while
    handshakes, ssh and sshd processes are per connection. The first connection is a
    ControlMaster then (its socket is removed once the others are open), so more
    sessions cost no handshake. Close them all when done (``close_all``)."""
    from agent.vault.streams import CHANNELS, OPEN_AT_ONCE, open_more, round_trip, streams_for

    per = max(1, channels or CHANNELS) if target.kind == "ssh" else 1
    sockets = _MuxSockets() if per > 1 else None
    try:
        first = connect(target, known_hosts, identity, sockets.mux(0, True) if sockets else None)
    except BaseException:
        sockets.remove() if sockets else None
        raise
    handed = False  # the sockets, to ``Connections`` (which removes them when done)
    try:
        count = streams if streams else streams_for(round_trip(first))
        if sockets is None or count == 1:
            opener = lambda _: connect(target, known_hosts, identity)  # noqa: E731
            if streams or count == 1:
                return open_more(first, opener, count)
            return Connections(first, opener, count, OPEN_AT_ONCE)
        # in groups of ``per``: a master (the first connection is the first one) and the
        # sessions it carries; a session waits for its master's handshake, no longer
        masters = {0: threading.Event()}
        masters[0].set()
        masters.update({g: threading.Event() for g in range(1, math.ceil(count / per))})

        def opener(n: int) -> VaultConnection:
            group = n // per
            if n % per:
                masters[group].wait()
                return connect(target, known_hosts, identity, sockets.mux(group, False))
            try:
                return connect(target, known_hosts, identity, sockets.mux(group, True))
            finally:
                masters[group].set()  # its sessions fail fast if it did not come up

        if streams:
            return open_more(first, opener, count, at_once=count)
        handed = True
        return Connections(first, opener, count, count, sockets)
    except BaseException:
        first.close()
        raise
    finally:
        if sockets is not None and not handed:
            sockets.remove()  # sessions only need a socket to open: nobody else may


class Connections(list):
    """The first connection, and the others as they open (a thread opens them, ``at_once``
    at a time). One that fails to open is left out (the run goes on with fewer; its
    error is kept in ``failures``); ``finish`` waits until all have been tried and removes
    the control sockets."""

    def __init__(self, first, opener, count: int, at_once: int, sockets=None):
        super().__init__([first])
        self.failures: list[BaseException] = []
        self._sockets = sockets
        self._thread = threading.Thread(
            target=self._open, args=(opener, count, at_once), name="bdr-connect", daemon=True
        )
        self._thread.start()

    def _open(self, opener, count: int, at_once: int) -> None:
        try:
            with ThreadPoolExecutor(max(1, min(at_once, count - 1))) as pool:
                for start in range(1, count, at_once):
                    wave = [
                        pool.submit(opener, n) for n in range(start, min(count, start + at_once))
                    ]
                    for future in as_completed(wave):
                        try:
                            self.append(future.result())
                        except BaseException as exc:  # noqa: BLE001 - the run goes on with fewer
                            self.failures.append(exc)
        finally:
            if self._sockets is not None:
                self._sockets.remove()

    def finish(self) -> None:
        self._thread.join()


class _MuxSockets:
    """ControlMaster sockets of one run, in a private folder (0700) with a short path .
    A master keeps its connection when its socket is removed; new sessions cannot join."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="bdr-mux-"))

    def mux(self, group: int, master: bool) -> tuple[Path, bool]:
        return self.folder / str(group), master

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class Opening:
    """``connect_streams`` begun in a thread now, so the SSH handshake and the far side's
    start (about 0.45 s on 127.0.0.1) overlap the sender's own start (opening the store,
    reading its catalogs); ``result()`` takes the connections, ``discard()`` closes them
    if they are not wanted after all (the replicate lock was held, the store failed);
    closing connections already closed is harmless."""

    def __init__(self, *args):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bdr-connect")
        self._future = self._pool.submit(connect_streams, *args)
        self._pool.shutdown(wait=False)

    def result(self) -> list[VaultConnection]:
        return self._future.result()

    def discard(self) -> None:
        try:
            conns = self._future.result()
        except BaseException:  # noqa: BLE001 - nothing was opened: nothing to close
            return
        close_all(conns)
