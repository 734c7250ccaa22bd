"""The agent's NBD export of a recovery point, read by the real qemu tools."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest

from agent.restore import nbd
from agent.store.backup import backup_volume
from tests.agent.conftest import REPO, digest

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-img") is None and not os.environ.get("CI"), reason="qemu-utils missing"
)


@pytest.fixture
def point(store, volume):
    return backup_volume(store, "srv1", str(volume))


@pytest.fixture
def served(store, point, tmp_path):
    server = nbd.NbdServer(store, point.id, tmp_path / "nbd.sock")
    server.start()
    yield server
    server.shutdown()


@needs_qemu
def test_qemu_img_reads_the_point_byte_identical(served, volume, tmp_path):
    out = tmp_path / "copy.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "raw", nbd.nbd_uri(served.socket_path), out],
        check=True,
        timeout=60,
    )
    assert digest(out) == digest(volume)


@needs_qemu
def test_qemu_img_sees_the_points_size(served, volume):
    info = subprocess.run(
        ["qemu-img", "info", "--output=json", nbd.nbd_uri(served.socket_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(info.stdout)["virtual-size"] == volume.stat().st_size


@needs_qemu
def test_writes_are_refused_and_the_point_is_unchanged(served, store, point, volume):
    proc = subprocess.run(
        ["qemu-io", "-f", "raw", "-c", "write -P 0x55 0 4096", nbd.nbd_uri(served.socket_path)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 or "Operation not permitted" in proc.stdout + proc.stderr
    assert "wrote" not in proc.stdout
    from agent.restore.reader import PointReader

    with PointReader(store, point.id) as r:
        assert r.read(0, 4096) == volume.read_bytes()[:4096]


@needs_qemu
def test_qcow2_overlay_takes_the_writes(served, store, point, volume, tmp_path):
    overlay = tmp_path / "overlay.qcow2"
    uri = nbd.nbd_uri(served.socket_path)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", uri, "-F", "raw", overlay], check=True
    )
    subprocess.run(["qemu-io", "-c", "write -P 0x55 0 4096", overlay], check=True, text=True)
    read = subprocess.run(
        ["qemu-io", "-c", "read -P 0x55 0 4096", overlay], capture_output=True, text=True
    )
    assert "Pattern verification failed" not in read.stdout
    from agent.restore.reader import PointReader

    with PointReader(store, point.id) as r:
        assert r.read(0, 4096) == volume.read_bytes()[:4096]


def _handshake(path, flags: int = nbd.FLAG_FIXED_NEWSTYLE | nbd.FLAG_NO_ZEROES) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.connect(str(path))
    magic, opt, hflags = struct.unpack(">QQH", s.recv(18, socket.MSG_WAITALL))
    assert (magic, opt) == (nbd.NBDMAGIC, nbd.IHAVEOPT)
    assert hflags & nbd.FLAG_FIXED_NEWSTYLE
    s.sendall(struct.pack(">I", flags))
    return s


def test_export_name_then_read_past_the_end_is_einval(served):
    s = _handshake(served.socket_path)
    s.sendall(struct.pack(">QII", nbd.IHAVEOPT, nbd.OPT_EXPORT_NAME, 0))
    size, tflags = struct.unpack(">QH", s.recv(10, socket.MSG_WAITALL))
    assert size == served.size and tflags & 2  # read-only
    s.sendall(struct.pack(">IHHQQI", nbd.REQUEST_MAGIC, 0, nbd.CMD_READ, 7, size - 1, 2))
    magic, error, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (magic, error, handle) == (nbd.SIMPLE_REPLY_MAGIC, nbd.EINVAL, 7)
    s.sendall(struct.pack(">IHHQQI", nbd.REQUEST_MAGIC, 0, nbd.CMD_READ, 8, 0, 512))
    magic, error, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (error, handle) == (0, 8) and len(s.recv(512, socket.MSG_WAITALL)) == 512
    s.sendall(struct.pack(">IHHQQI", nbd.REQUEST_MAGIC, 0, nbd.CMD_DISC, 9, 0, 0))
    s.close()


def test_unknown_options_are_refused_and_negotiation_goes_on(served):
    s = _handshake(served.socket_path)
    s.sendall(struct.pack(">QII", nbd.IHAVEOPT, 8, 0))  # STRUCTURED_REPLY
    magic, option, kind, length = struct.unpack(">QIII", s.recv(20, socket.MSG_WAITALL))
    assert (magic, option, kind, length) == (nbd.REPLY_MAGIC, 8, nbd.REP_ERR_UNSUP, 0)
    s.sendall(struct.pack(">QII", nbd.IHAVEOPT, nbd.OPT_ABORT, 0))
    assert struct.unpack(">QIII", s.recv(20, socket.MSG_WAITALL))[2] == nbd.REP_ACK
    s.close()


def test_a_damaged_chunk_answers_eio_and_the_export_goes_on(served, store, point):
    from agent.store.pointindex import ZERO_ID

    index = store.load_index(point)
    first = next(i for i, cid in enumerate(index.ids) if cid != ZERO_ID)
    store.chunks.path(index.ids[first]).write_bytes(b"garbage")
    s = _handshake(served.socket_path)
    s.sendall(struct.pack(">QII", nbd.IHAVEOPT, nbd.OPT_EXPORT_NAME, 0))
    s.recv(10, socket.MSG_WAITALL)
    off = first * index.chunk_size
    s.sendall(struct.pack(">IHHQQI", nbd.REQUEST_MAGIC, 0, nbd.CMD_READ, 1, off, 512))
    assert struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))[1] == nbd.EIO
    s.sendall(struct.pack(">IHHQQI", nbd.REQUEST_MAGIC, 0, nbd.CMD_FLUSH, 2, 0, 0))
    assert struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))[1:] == (0, 2)
    s.close()


@needs_qemu
def test_cli_serves_until_the_last_client_leaves(store, point, volume, tmp_path):
    sock = tmp_path / "cli.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(store.root), "--json"]
        + ["nbd", point.id, str(sock), "--idle-exit"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        ready = json.loads(proc.stdout.readline())
        assert ready["size"] == volume.stat().st_size and sock.exists()
        out = tmp_path / "copy.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", ready["uri"], out], check=True)
        assert digest(out) == digest(volume)
        assert proc.wait(timeout=10) == 0
        assert not sock.exists()
    finally:
        proc.kill()


def test_cli_unknown_point_is_a_usage_error(cli, point, tmp_path):
    proc = cli("nbd", "srv1/disk0/20000101T000000Z", str(tmp_path / "x.sock"))
    assert proc.returncode == 2 and proc.stderr.startswith("bdr-agent:")


def test_sigterm_stops_the_cli(store, point, tmp_path):
    sock = tmp_path / "term.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(store.root), "nbd", point.id, str(sock)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    proc.stdout.readline()
    time.sleep(0.1)
    proc.terminate()
    assert proc.wait(timeout=10) == 0
    assert not sock.exists()
