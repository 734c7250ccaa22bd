"""Attacks on the VM console, each made through the real console proxy with a real websocket
client (issue 14, item 7): a page of another site, a token replayed to a second proxy
process, a console held open past its maximum length, and consoles that must be cut when
their user is deactivated, signs out or loses access. The positive path (a console that
works) is in test_vm_console.py and the Chromium test."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice
from websockets.exceptions import ConnectionClosed, InvalidStatus

from portal.models import AuditEvent, Role
from restores.console_access import origin_refusal, still_allowed
from restores.models import ConsoleToken
from tests.factories import CustomerFactory, UserFactory, VirtualMachineFactory
from tests.support.bootable import needs_qemu
from tests.support.console_proxy import (
    Received,
    connect_console,
    console_proxy_process,
    console_token,
    refusal,
)
from tests.support.signin import force_login_verified

pytestmark = pytest.mark.django_db(transaction=True)

RFB_HELLO = b"RFB 003.008\n"


@pytest.fixture
def msp_admin():
    """Another browser: an MSP admin on the Users pages."""
    admin = Client()
    force_login_verified(admin, UserFactory(role=Role.MSP_ADMIN))
    return admin


def first_bytes_or_refusal(url: str, token: str) -> bytes | str:
    """qemu's first 12 bytes if the console opens, else the reason the proxy closed it."""
    with connect_console(url, token) as ws:
        try:
            return Received(ws).read(12)
        except ConnectionClosed as closed:
            return closed.rcvd.reason


def wait_for_close(ws, within: float) -> tuple[int, str]:
    """(code, reason) of the proxy's close, which must come within ``within`` seconds."""
    deadline = time.monotonic() + within
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=max(0.1, deadline - time.monotonic()))
    return closed.value.rcvd.code, closed.value.rcvd.reason


def user_form(user, **changes) -> dict:
    """The Users → Edit form of ``user`` as its page would post it (is_active ticked)."""
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "role": user.role,
        "customer": user.customer_id or "",
        "is_active": "on",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    "origin",
    [
        None,  # no Origin header: not a browser on the portal's page
        "https://evil.example",
        "null",  # a sandboxed frame or a file:// page
        "http://localhost.evil.example:8000",
        "ftp://localhost",
        "http://localhost:8000/path",
    ],
)
def test_a_websocket_from_another_origin_is_refused_at_the_handshake(proxy, tech, origin):
    vm = VirtualMachineFactory(state="running")
    token = console_token(tech, vm)
    with pytest.raises(InvalidStatus) as refused:
        connect_console(proxy, token, origin=origin)
    assert refused.value.response.status_code == 403
    assert b"Console refused" in refused.value.response.body
    assert ConsoleToken.objects.get().used_at is None  # the token was not even looked at
    event = AuditEvent.objects.get(action="vm.console_refused")
    assert event.ip_address == "127.0.0.1"
    assert event.detail["origin"] == (origin or "")
    assert event.detail["reason"]


def test_in_production_only_https_pages_of_allowed_hosts_may_open_a_console(proxy, settings):
    settings.PRODUCTION, settings.DEBUG = True, False
    settings.ALLOWED_HOSTS = ["portal.example.com", "*"]  # "*" does not count for consoles
    for origin in ("http://portal.example.com", "https://other.example.com"):
        with pytest.raises(InvalidStatus) as refused:
            connect_console(proxy, None, origin=origin)
        assert refused.value.response.status_code == 403
    # The portal's own https page passes the Origin check (and is then asked for a token).
    assert refusal(proxy, None, origin="https://portal.example.com") == "invalid console token"


@pytest.mark.parametrize(
    ("origin", "allowed_hosts", "production", "allowed"),
    [
        ("http://localhost:8000", ["localhost"], False, True),
        ("https://a.example.com", [".example.com"], True, True),
        ("https://example.com", [".example.com"], True, True),
        ("https://a.example.org", [".example.com"], True, False),
        ("http://a.example.com", [".example.com"], True, False),
        ("https://anything.example", ["*"], True, False),
        ("https://[::1]:8443", ["[::1]"], True, True),
        ("https://LOCALHOST", ["localhost"], True, True),
        ("https://localhost@evil.example", ["localhost"], True, False),
        ("https://localhost:99999999", ["localhost"], True, False),
    ],
)
def test_origin_rules(settings, origin, allowed_hosts, production, allowed):
    settings.ALLOWED_HOSTS, settings.PRODUCTION = allowed_hosts, production
    assert (origin_refusal([origin]) is None) is allowed
    assert origin_refusal([]) == "no Origin header"
    assert origin_refusal([origin, origin]) == "several Origin headers"


@needs_qemu
def test_a_token_replayed_to_a_second_proxy_process_is_refused(live_vm, tech):
    with console_proxy_process() as first, console_proxy_process() as second:
        token = console_token(tech, live_vm)
        with connect_console(first, token) as ws:
            assert Received(ws).read(12) == RFB_HELLO
            assert refusal(second, token) == "console token already used"
        # A fresh token sent to both processes at the same moment: exactly one opens.
        token = console_token(tech, live_vm)
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(first_bytes_or_refusal, [first, second], [token] * 2))
    assert sorted(outcomes, key=str) == sorted([RFB_HELLO, "console token already used"], key=str)
    replays = AuditEvent.objects.filter(action="vm.console_refused")
    assert [e.detail["reason"] for e in replays] == ["console token already used"] * 2
    assert {e.actor_id for e in replays} == {tech.user.pk}


@needs_qemu
def test_a_console_is_closed_at_its_maximum_length(live_vm, tech, proxy, settings):
    settings.BDR_CONSOLE_MAX_SECONDS = 2
    token = console_token(tech, live_vm)
    before = time.monotonic()
    with connect_console(proxy, token) as ws:
        assert Received(ws).read(12) == RFB_HELLO
        assert wait_for_close(ws, within=10) == (
            1008,
            "the console reached its maximum length (2 s)",
        )
    assert 2 <= time.monotonic() - before < 5
    cut = AuditEvent.objects.get(action="vm.console_cut")
    assert (cut.actor_id, cut.detail) == (
        tech.user.pk,
        {"reason": "the console reached its maximum length (2 s)", "vm": live_vm.pk},
    )


@needs_qemu
def test_deactivating_the_user_closes_an_open_console_within_seconds(
    live_vm, tech, proxy, msp_admin
):
    # BDR_CONSOLE_CHECK_SECONDS at its default (5).
    with connect_console(proxy, console_token(tech, live_vm)) as ws:
        assert Received(ws).read(12) == RFB_HELLO
        response = msp_admin.post(
            reverse("user_edit", args=[tech.user.pk]), user_form(tech.user, is_active=None)
        )
        assert response.status_code == 302, response.content
        deactivated = time.monotonic()
        assert wait_for_close(ws, within=8) == (1008, "the user was deactivated")
        assert time.monotonic() - deactivated < 6.5
    cut = AuditEvent.objects.get(action="vm.console_cut")
    assert (cut.actor_id, cut.detail["reason"]) == (tech.user.pk, "the user was deactivated")


@needs_qemu
def test_signing_out_closes_an_open_console(live_vm, tech, proxy, settings):
    settings.BDR_CONSOLE_CHECK_SECONDS = 1
    with connect_console(proxy, console_token(tech, live_vm)) as ws:
        assert Received(ws).read(12) == RFB_HELLO
        assert tech.post(reverse("logout")).status_code == 302
        signed_out = time.monotonic()
        assert wait_for_close(ws, within=5) == (1008, "the user signed out")
        assert time.monotonic() - signed_out < 2.5
    assert AuditEvent.objects.get(action="vm.console_cut").detail["reason"] == "the user signed out"


@needs_qemu
def test_losing_access_to_the_vm_closes_an_open_console(live_vm, tech, proxy, settings, msp_admin):
    settings.BDR_CONSOLE_CHECK_SECONDS = 1
    with connect_console(proxy, console_token(tech, live_vm)) as ws:
        assert Received(ws).read(12) == RFB_HELLO
        # The technician becomes a customer's admin: no VM pages, no consoles.
        form = user_form(tech.user, role=Role.CUSTOMER_ADMIN, customer=CustomerFactory().pk)
        response = msp_admin.post(reverse("user_edit", args=[tech.user.pk]), form)
        assert response.status_code == 302, response.content
        assert wait_for_close(ws, within=5) == (1008, "this user may not open VM consoles")


def test_a_console_session_must_stay_signed_in_verified_and_unchanged(
    tech, django_assert_num_queries
):
    """The checks the proxy repeats, one by one (what each cut above relies on)."""
    vm = VirtualMachineFactory(state="running")
    user, key = tech.user, tech.session.session_key
    with django_assert_num_queries(4):  # user, session, authenticator, VM: the README says so
        assert still_allowed(user.pk, vm.pk, key) is None
    assert still_allowed(user.pk, vm.pk, "") == "the user signed out"
    other = Client()
    force_login_verified(other, UserFactory(role=Role.TECHNICIAN))
    assert still_allowed(user.pk, vm.pk, other.session.session_key) == "the user signed out"
    TOTPDevice.objects.filter(user=user).delete()  # an admin removed the authenticator
    assert still_allowed(user.pk, vm.pk, key) == "the session lost its second factor"
    force_login_verified(tech, user)
    key = tech.session.session_key
    assert still_allowed(user.pk, vm.pk, key) is None
    user.set_password("a new password 2026!")
    user.save()
    assert still_allowed(user.pk, vm.pk, key) == "the user's password changed"
