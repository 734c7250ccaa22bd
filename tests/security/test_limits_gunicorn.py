"""Issue 14, item 5, end to end: the portal under a real gunicorn (portal/gunicorn_conf.py,
two worker processes of four threads) with a real agent behind it (the local transport, as the
demo). Customer A holds its limit of downloads with clients that read slowly; a further
download of A is refused with 429, and customer B's pages still answer at once."""

from __future__ import annotations

import http.client
import socket
import subprocess
import threading
import time

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from restores import services
from restores.models import SessionSlot
from tests.support.database import child_database_url
from tests.support.manage import ROOT, environment
from tests.support.sshd import free_port
from tests.support.tenants import BIG, make_tenant


class SlowDownload:
    """A client that asks for a download and then reads it 2 KiB at a time, 20 times a
    second (40 KiB/s: a 12 MiB file would take five minutes), with a small receive buffer."""

    def __init__(self, port: int, cookie: str, path: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\r\n".encode()
        )
        self.head = b""
        while b"\r\n\r\n" not in self.head:
            self.head += self.sock.recv(1)
        self.received, self.stop = 0, threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def status(self) -> int:
        return int(self.head.split(b" ", 2)[1])

    def _read(self) -> None:
        while not self.stop.wait(0.05):
            data = self.sock.recv(2048)
            if not data:
                return
            self.received += len(data)

    def close(self) -> None:
        """The client goes away in the middle of the download."""
        self.stop.set()
        self.reader.join()
        self.sock.close()


def _get(port: int, path: str, cookie: str) -> tuple[int, str, float]:
    """(status, body, seconds) of a GET."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Cookie": cookie})
    response = conn.getresponse()
    body = response.read(64 << 10).decode(errors="replace")
    conn.close()
    return response.status, body, time.monotonic() - started


def _cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


def _link(user, tenant) -> str:
    token = services.sign_download(user, tenant.point, ["/big.bin"], None)
    return reverse("restore_download", args=[token])


@pytest.fixture
def gunicorn(tmp_path):
    port = free_port()
    args = [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "python:portal.gunicorn_conf",
            "-b", f"127.0.0.1:{port}", "portal.wsgi"]  # fmt: skip
    # Workers and threads through the settings gunicorn_conf reads, not -w/--threads: its
    # worker_connections follows BDR_WEB_THREADS, and a worker allowed more connections than
    # threads accepts a request it cannot serve while slow downloads hold its threads.
    env = environment(DATABASE_URL=child_database_url(), BDR_DOWNLOADS_PER_USER="2",
                      BDR_DOWNLOADS_PER_CUSTOMER="4", BDR_WEB_WORKERS="2",
                      BDR_WEB_THREADS="4")  # fmt: skip
    with open(tmp_path / "gunicorn.log", "w") as log:
        server = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                assert server.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
                try:
                    if _get(port, "/accounts/login/", "")[0] == 200:
                        break
                except OSError:
                    time.sleep(0.2)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_customer_at_its_download_limit_does_not_starve_another(limits_store, gunicorn):
    acme, globex = make_tenant(limits_store, "Acme"), make_tenant(limits_store, "Globex", 1)
    cookies = {user: _cookie(user) for user in (*acme.users, *globex.users)}
    ann, bob, cat = acme.users
    slow = [SlowDownload(gunicorn, cookies[u], _link(u, acme)) for u in (ann, ann, bob, bob)]
    try:
        assert [d.status for d in slow] == [200] * 4
        assert SessionSlot.objects.filter(customer=acme.customer).count() == 4
        # Acme is at its limit: a third download of Ann's, or Cat's first, is refused.
        status, body, _ = _get(gunicorn, _link(ann, acme), cookies[ann])
        assert status == 429 and "You already have 2 downloads in progress" in body
        status, body, _ = _get(gunicorn, _link(cat, acme), cookies[cat])
        assert status == 429 and "Acme already has 4 downloads in progress" in body
        # Globex is not touched: its folder page answers at once, its download starts.
        dave = globex.users[0]
        page = reverse("restore_browse", args=[globex.point.pk]) + "?path=/Shared"
        status, body, seconds = _get(gunicorn, page, cookies[dave])
        assert status == 200 and "price list.txt" in body
        assert seconds < 5, seconds
        theirs = SlowDownload(gunicorn, cookies[dave], _link(dave, globex))
        assert theirs.status == 200
        theirs.close()
        time.sleep(1)
        assert all(0 < d.received < len(BIG) for d in slow)  # Acme's are still running
    finally:
        for download in slow:
            download.close()
    # The clients went away: the server closes their responses and the slots come back.
    deadline = time.monotonic() + 15
    while SessionSlot.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not SessionSlot.objects.exists()
    status, _, _ = _get(gunicorn, reverse("restore_browse", args=[acme.point.pk]), cookies[cat])
    assert status == 200
