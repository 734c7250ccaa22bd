"""Issue 14, item 8: a compromised appliance cannot exhaust the portal's memory. Behind real
sshd, a forced command that plays a hostile agent answers with an endless JSON line, or
announces a 10 GiB binary answer; the portal reads at most BDR_RPC_MAX_LINE /
BDR_RPC_MAX_PAYLOAD bytes, drops the session and says so on the page. The same pages against
the real agent over the same sshd work."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import pytest
from django.urls import reverse

from appliances.models import ApplianceState
from restores import services
from restores.models import SessionSlot
from tests.support.hostile_agent import SMALL
from tests.support.signin import force_login_verified
from tests.support.sshd import start_sshd
from tests.support.tenants import BIG, make_tenant

HOSTILE = Path(__file__).resolve().parents[1] / "support" / "hostile_agent.py"


@pytest.fixture
def sshd(tmp_path, limits_store):
    server = start_sshd(tmp_path / "sshd", limits_store[0])
    yield server
    server.stop()


def _behind_ssh(tenant, sshd, mode: str | None):
    """Point the tenant's appliance at ``sshd``, whose forced command is the real agent, or
    the hostile one playing ``mode``."""
    if mode is not None:
        command = f"{sys.executable} {HOSTILE} {mode}"
        sshd.authorized_keys.write_text(
            f'restrict,command="{command}" {sshd.client_public_key} bdr-portal@test\n'
        )
    appliance = tenant.point.server.appliance
    appliance.transport, appliance.ssh_host, appliance.ssh_port = "ssh", sshd.host, sshd.port
    appliance.ssh_user, appliance.host_key = sshd.user, sshd.host_key
    appliance.client_private_key = sshd.client_private_key
    appliance.client_public_key, appliance.state = sshd.client_public_key, ApplianceState.ONLINE
    appliance.save()


def _within_8_mib(client, url: str, **params) -> tuple[int, bytes]:
    """(status, body) of GET ``url``, read whole while the portal's traced memory stays under
    8 MiB; the session's slot is given back after."""
    tracemalloc.start()
    try:
        response = client.get(url, params)
        body = b"".join(response) if response.streaming else response.content
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
    finally:
        tracemalloc.stop()
    assert peak < 8, f"{peak:.1f} MiB"
    assert not SessionSlot.objects.exists()
    return response.status_code, body


def _refused_within_8_mib(client, url: str, **params) -> str:
    """The "can't open" page, within 8 MiB (above). Returns its text."""
    status, body = _within_8_mib(client, url, **params)
    text = body.decode()
    assert status == 200 and "We can't open this backup right now" in text
    return text


@pytest.fixture
def signed_in(client, db, limits_store, settings):
    settings.BDR_RPC_MAX_LINE = 1 << 20
    settings.BDR_RPC_MAX_PAYLOAD = 8 << 20
    acme = make_tenant(limits_store, "Acme", users=1)
    force_login_verified(client, acme.users[0])
    return acme


def test_an_endless_line_ends_the_session_not_the_memory(client, signed_in, sshd):
    _behind_ssh(signed_in, sshd, "endless-line")
    page = reverse("restore_browse", args=[signed_in.point.pk])
    text = _refused_within_8_mib(client, page, path="/")
    assert "sent a message longer than 1 MiB; connection dropped" in text


def test_a_ten_gib_payload_is_refused_before_a_byte_of_it_is_read(client, signed_in, sshd):
    _behind_ssh(signed_in, sshd, "huge-payload")
    listing = client.get(reverse("restore_browse", args=[signed_in.point.pk]), {"path": "/"})
    assert listing.status_code == 200 and "big.bin" in listing.content.decode()
    token = services.sign_download(signed_in.users[0], signed_in.point, ["/big.bin"], None)
    text = _refused_within_8_mib(client, reverse("restore_download", args=[token]))
    assert "announced a payload of 10737418240 bytes, more than the 8 MiB allowed" in text


def test_a_stderr_flood_is_drained_and_the_answers_still_come(client, signed_in, sshd, settings):
    # 64 MiB on stderr before the greeting, more all along: unread, it would fill the SSH
    # window and stall the session (here for BDR_RPC_TIMEOUT), or the memory if unbounded.
    settings.BDR_RPC_TIMEOUT = 20
    _behind_ssh(signed_in, sshd, "stderr-flood")
    status, listing = _within_8_mib(
        client, reverse("restore_browse", args=[signed_in.point.pk]), path="/"
    )
    assert status == 200 and b"big.bin" in listing
    token = services.sign_download(signed_in.users[0], signed_in.point, ["/big.bin"], None)
    assert _within_8_mib(client, reverse("restore_download", args=[token])) == (200, SMALL)


def test_the_same_pages_work_with_the_real_agent_over_the_same_sshd(client, signed_in, sshd):
    _behind_ssh(signed_in, sshd, None)
    listing = client.get(reverse("restore_browse", args=[signed_in.point.pk]), {"path": "/"})
    assert listing.status_code == 200 and "big.bin" in listing.content.decode()
    token = services.sign_download(signed_in.users[0], signed_in.point, ["/big.bin"], None)
    response = client.get(reverse("restore_download", args=[token]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == BIG
