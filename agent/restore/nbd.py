"""Serve a recovery point read-only over NBD on a Unix socket.

A small NBD server (https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md):
the fixed-newstyle handshake with NBD_OPT_EXPORT_NAME, NBD_OPT_GO / NBD_OPT_INFO and
NBD_OPT_LIST, then simple replies to READ, FLUSH (nothing to flush) and DISC. WRITE, TRIM
and WRITE_ZEROES get EPERM: the export is read-only, so a VM's writes must go to an
overlay (qcow2 over ``nbd+unix:///?socket=...``), never to the point. Structured replies
and metadata contexts are refused, which every client (qemu, nbdkit's nbdcopy, the kernel)
handles by falling back to simple replies.

Every read goes through ``PointReader``, so each chunk is authenticated before a byte of
it is served; a damaged chunk answers EIO for that request and the server goes on. One
thread per client; any export name is accepted (they all name the point).
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from agent.errors import AgentError, UsageError
from agent.restore.reader import PointReader
from agent.store.datastore import Store

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES = 1, 2
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_INFO, OPT_GO = 1, 2, 3, 6, 7
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP, REP_ERR_INVALID = (1 << 31) + 1, (1 << 31) + 3
INFO_EXPORT, INFO_BLOCK_SIZE = 0, 3
# HAS_FLAGS | READ_ONLY | SEND_FLUSH | CAN_MULTI_CONN
TRANSMISSION_FLAGS = 1 | 2 | 4 | (1 << 8)
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EPERM, EIO, EINVAL, ENOTSUP = 1, 5, 22, 95
MAX_REQUEST = 32 << 20
SECTOR = 512


class _Disconnect(Exception):
    pass


def _recv(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise _Disconnect
        buf += part
    return bytes(buf)


class NbdServer:
    """A read-only NBD export of one recovery point on a Unix socket.

    ``serve_forever()`` blocks; ``shutdown()`` (from any thread) stops accepting and closes
    every client. ``start()`` runs it in a daemon thread instead.
    """

    def __init__(
        self,
        store: Store,
        point_id: str,
        socket_path: str | os.PathLike,
        on_read: Callable[[], None] | None = None,
    ):
        self.reader = PointReader(store, point_id, cache_chunks=16)
        # qemu counts in 512-byte sectors: a volume of another size is served rounded up,
        # the tail padded with zeros (``volume_size`` is the point's own size).
        self.volume_size = self.reader.size
        self.size = -(-self.volume_size // SECTOR) * SECTOR
        self.on_read = on_read  # called by the thread serving each read (a heartbeat)
        self.socket_path = Path(socket_path)
        self.clients_total = 0
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = self._listen()

    def _listen(self) -> socket.socket:
        path = self.socket_path
        if not path.parent.is_dir():
            raise UsageError(f"socket directory does not exist: {path.parent}")
        if path.exists() or path.is_symlink():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
            except OSError:
                path.unlink()  # a stale socket of a dead server
            else:
                probe.close()
                raise AgentError(f"{path} is already being served by another process")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the point's bytes: owner only
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        sock.listen(16)
        return sock

    @property
    def clients(self) -> int:
        with self._lock:
            return len(self._clients)

    def serve_forever(self, on_idle: Callable[[], bool] | None = None) -> None:
        """Accept clients until shutdown; ``on_idle()`` returning True also stops it.

        ``on_idle`` is called when the last client of at least one has left.
        """
        self._listener.settimeout(0.5)
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self._listener.accept()
                except TimeoutError:
                    if on_idle and self.clients_total and not self.clients and on_idle():
                        break
                    continue
                except OSError:
                    break
                conn.settimeout(None)
                with self._lock:
                    self._clients.add(conn)
                    self.clients_total += 1
                threading.Thread(
                    target=self._client, args=(conn,), name="bdr-nbd-client", daemon=True
                ).start()
        finally:
            self._close_listener()

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="bdr-nbd", daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self._stopping.set()
        self._close_listener()
        with self._lock:
            clients = list(self._clients)
        for conn in clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _close_listener(self) -> None:
        try:
            self._listener.close()
        finally:
            try:
                self.socket_path.unlink()
            except FileNotFoundError:
                pass

    # one client ------------------------------------------------------------------------------
    def _client(self, conn: socket.socket) -> None:
        try:
            if self._handshake(conn):
                self._transmission(conn)
        except (_Disconnect, OSError):
            pass
        finally:
            with self._lock:
                self._clients.discard(conn)
            conn.close()

    def _handshake(self, conn: socket.socket) -> bool:
        """Fixed newstyle negotiation; True when the client entered transmission."""
        conn.sendall(struct.pack(">QQH", NBDMAGIC, IHAVEOPT, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES))
        (client_flags,) = struct.unpack(">I", _recv(conn, 4))
        no_zeroes = bool(client_flags & FLAG_NO_ZEROES)
        while True:
            magic, option, length = struct.unpack(">QII", _recv(conn, 16))
            if magic != IHAVEOPT or length > 1 << 16:
                return False
            data = _recv(conn, length)
            if option == OPT_EXPORT_NAME:
                reply = struct.pack(">QH", self.size, TRANSMISSION_FLAGS)
                conn.sendall(reply + (b"" if no_zeroes else bytes(124)))
                return True
            if option == OPT_ABORT:
                self._opt_reply(conn, option, REP_ACK)
                return False
            if option == OPT_LIST:
                self._opt_reply(conn, option, REP_SERVER, struct.pack(">I", 0))
                self._opt_reply(conn, option, REP_ACK)
            elif option in (OPT_INFO, OPT_GO):
                if len(data) < 6 or struct.unpack(">I", data[:4])[0] + 6 > len(data):
                    self._opt_reply(conn, option, REP_ERR_INVALID)
                    continue
                info = struct.pack(">HQH", INFO_EXPORT, self.size, TRANSMISSION_FLAGS)
                self._opt_reply(conn, option, REP_INFO, info)
                sizes = struct.pack(">HIII", INFO_BLOCK_SIZE, 1, 4096, MAX_REQUEST)
                self._opt_reply(conn, option, REP_INFO, sizes)
                self._opt_reply(conn, option, REP_ACK)
                if option == OPT_GO:
                    return True
            else:  # STARTTLS, STRUCTURED_REPLY, meta contexts...: not offered
                self._opt_reply(conn, option, REP_ERR_UNSUP)

    @staticmethod
    def _opt_reply(conn: socket.socket, option: int, kind: int, data: bytes = b"") -> None:
        conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, kind, len(data)) + data)

    def _transmission(self, conn: socket.socket) -> None:
        while True:
            magic, _flags, cmd, handle, offset, length = struct.unpack(">IHHQQI", _recv(conn, 28))
            if magic != REQUEST_MAGIC:
                return
            if cmd == CMD_DISC:
                return
            if cmd == CMD_READ:
                self._read(conn, handle, offset, length)
            elif cmd == CMD_FLUSH:
                self._reply(conn, handle, 0)
            elif cmd == CMD_WRITE:
                _recv(conn, length)  # the payload must be consumed to stay in step
                self._reply(conn, handle, EPERM)
            elif cmd in (4, 6):  # TRIM, WRITE_ZEROES
                self._reply(conn, handle, EPERM)
            else:
                self._reply(conn, handle, ENOTSUP)

    def _read(self, conn: socket.socket, handle: int, offset: int, length: int) -> None:
        if length > MAX_REQUEST or offset + length > self.size:
            self._reply(conn, handle, EINVAL)
            return
        try:
            data = self.reader.read(offset, max(0, min(length, self.volume_size - offset)))
        except AgentError:  # a damaged chunk: this read fails, the export goes on
            self._reply(conn, handle, EIO)
            return
        if self.on_read is not None:
            self.on_read()
        self._reply(conn, handle, 0, data + bytes(length - len(data)))

    @staticmethod
    def _reply(conn: socket.socket, handle: int, error: int, data: bytes = b"") -> None:
        header = struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, error, handle)
        if data:
            conn.sendall(header)
            conn.sendall(data)
        else:
            conn.sendall(header)


def nbd_uri(socket_path: str | os.PathLike) -> str:
    """The qemu URI of an export on ``socket_path``."""
    return f"nbd+unix:///?socket={os.fspath(socket_path)}"
