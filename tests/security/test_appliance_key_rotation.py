"""Rotating the portal's SSH key for an appliance (README, "Security: threat model"), over
real sshd with the agent as forced command: the new key waits while the old one works; the
switch is refused until the appliance accepts the new key; after it, with the old line
removed, a stolen copy of the old private key no longer gets in. Customers never see it."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from appliances import sync
from appliances.client import AuthenticationFailed
from appliances.models import ApplianceState
from portal.models import AuditEvent, Role
from tests import factories as f
from tests.support.agent_store import init_store
from tests.support.signin import force_login_verified
from tests.support.sshd import forced_command, start_sshd


@pytest.fixture
def sshd(tmp_path):
    store = init_store(tmp_path / "appliance")
    server = start_sshd(tmp_path / "sshd", store)
    server.store = store
    yield server
    server.stop()


@pytest.fixture
def appliance(db, sshd, settings):
    # The line the page shows is the one to paste: the test's agent is the forced command.
    settings.BDR_AGENT_COMMAND = forced_command(sshd.store)
    return f.ApplianceFactory(
        ssh_host=sshd.host, ssh_port=sshd.port, ssh_user=sshd.user, host_key=sshd.host_key,
        client_private_key=sshd.client_private_key, client_public_key=sshd.client_public_key,
        state=ApplianceState.ONLINE,
    )  # fmt: skip


def _answers(appliance) -> bool:
    with sync.open_agent(appliance, retries=()) as agent:
        return agent.call("status") is not None


def _line(page: str, element: str) -> str:
    return html.unescape(re.search(rf'<pre class="copy" id="{element}">([^<]+)</pre>', page)[1])


def test_the_portal_key_rotates_without_a_moment_offline(client, appliance, sshd):
    force_login_verified(client, f.UserFactory(role=Role.TECHNICIAN))
    url = reverse("appliance_key", args=[appliance.pk])
    old_line = _line(client.get(url).content.decode(), "current-line")
    old_private = appliance.client_private_key

    page = client.post(url, {"action": "start"}, follow=True).content.decode()
    new_line = _line(page, "next-line")
    assert new_line.startswith('restrict,command="') and new_line != old_line
    appliance.refresh_from_db()
    assert _answers(appliance)  # the old key works while the new one waits

    refused = client.post(url, {"action": "finish"}, follow=True).content.decode()
    assert "does not accept the new key yet" in html.unescape(refused)
    appliance.refresh_from_db()
    assert appliance.client_private_key == old_private and _answers(appliance)

    sshd.authorized_keys.write_text(f"{old_line}\n{new_line}\n")  # the person adds the line
    done = html.unescape(client.post(url, {"action": "finish"}, follow=True).content.decode())
    assert "The portal now uses the new key" in done and old_line.split()[-2] in done
    appliance.refresh_from_db()
    assert appliance.client_public_key in new_line and not appliance.next_client_public_key
    sshd.authorized_keys.write_text(f"{new_line}\n")  # and removes the old one
    assert _answers(appliance)

    appliance.client_private_key = old_private  # a stolen copy of the old key
    with pytest.raises(AuthenticationFailed):
        _answers(appliance)
    actions = AuditEvent.objects.filter(action__startswith="appliance.key_rot")
    assert set(actions.values_list("action", flat=True)) == {
        "appliance.key_rotation_started", "appliance.key_rotated"}  # fmt: skip


def test_customers_cannot_see_or_rotate_the_portal_key(client, appliance):
    admin = f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=appliance.customer)
    force_login_verified(client, admin)
    url = reverse("appliance_key", args=[appliance.pk])
    assert client.get(url).status_code == 404
    assert client.post(url, {"action": "start"}).status_code == 404
    appliance.refresh_from_db()
    assert not appliance.next_client_public_key


def test_an_unknown_action_is_400(client, appliance):
    force_login_verified(client, f.UserFactory(role=Role.TECHNICIAN))
    url = reverse("appliance_key", args=[appliance.pk])
    for data in ({"action": "x"}, {}):
        response = client.post(url, data)
        assert response.status_code == 400
        assert "action must be one of start, finish, cancel" in response.content.decode()
