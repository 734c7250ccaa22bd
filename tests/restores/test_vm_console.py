"""The VM console's path: token view -> console_proxy (websocket) -> appliance rpc vm.console ->
qemu's VNC socket, with a real VM (TCG) on the local transport, and every refused token.
(The Origin check, replays across processes and cutting open consoles:
test_console_security.py.)"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db.models import F
from django.urls import reverse

from agent.service.vms import start_vm
from agent.vm import machines as agent_vm
from portal.models import AuditEvent, Role
from restores import console_access
from restores.models import ConsoleToken, RecoveryPoint
from tests.factories import UserFactory, VirtualMachineFactory
from tests.support.bootable import bootable_appliance, needs_qemu, use_tcg
from tests.support.console_proxy import Received, connect_console, console_token, refusal
from tests.support.signin import force_login_verified

# The proxy checks tokens in its own threads and connections: the data must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


@needs_qemu
def test_technician_gets_the_vms_rfb_handshake_through_the_proxy_once(live_vm, proxy, tech):
    response = tech.post(reverse("vm_console_token", args=[live_vm.pk]))
    answer = json.loads(response.content)
    assert answer["url"] == proxy  # the token is not in the URL
    token = answer["protocols"][1].removeprefix(console_access.TOKEN_PREFIX)
    with connect_console(proxy, token) as ws:
        assert ws.subprotocol == "bdr-console"  # the token is not echoed back
        received = Received(ws)
        assert received.read(12) == b"RFB 003.008\n"  # qemu's VNC server, relayed
        ws.send(b"RFB 003.008\n")
        count = received.read(1)[0]
        assert count >= 1 and 1 in received.read(count)  # security type None offered
    assert refusal(proxy, token) == "console token already used"
    events = AuditEvent.objects.filter(action="vm.console_open")
    assert [(e.actor_id, e.detail) for e in events] == [(tech.user.pk, {"vm": live_vm.pk})]
    assert token not in str(ConsoleToken.objects.values_list())  # only its digest is kept


@needs_qemu
def test_the_console_travels_over_the_appliances_restricted_ssh_key(
    tmp_path, monkeypatch, proxy, tech
):
    from tests.support.sshd import start_sshd

    use_tcg(monkeypatch)
    appliance, server, store = bootable_appliance(tmp_path)
    sshd = start_sshd(tmp_path / "sshd", store)  # authorized_keys: restrict,command="... rpc"
    point = RecoveryPoint.objects.get(server=server)
    record = start_vm(store, point.agent_id, net="none", memory_mib=64)
    try:
        appliance.transport = "ssh"
        appliance.ssh_host, appliance.ssh_port, appliance.ssh_user = sshd.host, sshd.port, sshd.user
        appliance.host_key = sshd.host_key
        appliance.client_private_key = sshd.client_private_key
        appliance.client_public_key = sshd.client_public_key
        appliance.save()
        vm = VirtualMachineFactory(
            server=server, point=point, state="running", agent_id=record["id"]
        )
        with connect_console(proxy, console_token(tech, vm)) as ws:
            received = Received(ws)
            assert received.read(12) == b"RFB 003.008\n"
            ws.send(b"RFB 003.008\n")
            count = received.read(1)[0]
            assert 1 in received.read(count)
    finally:
        agent_vm.stop_vm(store, record["id"], force=True, wait=10)
        sshd.stop()


def test_an_expired_token_is_refused(proxy, tech):
    vm = VirtualMachineFactory(state="running")
    token = console_token(tech, vm)
    # As if the 60 s had passed: the token was issued 61 s ago.
    back = timedelta(seconds=61)
    ConsoleToken.objects.update(issued_at=F("issued_at") - back, expires_at=F("expires_at") - back)
    assert refusal(proxy, token) == "console token expired; open the console again"


def test_a_forged_or_missing_token_is_refused_with_one_log_line_each(proxy, tech, caplog):
    vm = VirtualMachineFactory(state="running")
    good = console_token(tech, vm)
    assert refusal(proxy, good[:-2] + ("xx" if good[-2:] != "xx" else "yy")) == (
        "invalid console token"
    )
    assert refusal(proxy, "x" * 43) == "invalid console token"
    assert refusal(proxy, None) == "invalid console token"
    # The token where it used to be, in the URL, is not read.
    assert refusal(f"{proxy}?token={good}", None) == "invalid console token"
    lines = [r for r in caplog.records if r.name.startswith("restores.console_proxy")]
    assert [r.getMessage() for r in lines] == [
        "console refused for 127.0.0.1: invalid console token"
    ] * 4
    assert not any(r.exc_info for r in caplog.records)
    refused = AuditEvent.objects.filter(action="vm.console_refused")
    assert [(e.detail["reason"], e.ip_address) for e in refused] == [
        ("invalid console token", "127.0.0.1")
    ] * 4
    assert ConsoleToken.objects.get().used_at is None  # the good token is still unused


def test_a_technician_made_a_customer_admin_after_getting_the_token_is_refused(proxy, tech):
    vm = VirtualMachineFactory(state="running")
    token = console_token(tech, vm)
    tech.user.role, tech.user.customer = Role.CUSTOMER_ADMIN, vm.server.appliance.customer
    tech.user.save(update_fields=["role", "customer"])
    assert refusal(proxy, token) == "this user may not open VM consoles"


def test_a_technician_deactivated_after_getting_the_token_is_refused(proxy, tech):
    vm = VirtualMachineFactory(state="running")
    token = console_token(tech, vm)
    tech.user.is_active = False
    tech.user.save(update_fields=["is_active"])
    assert refusal(proxy, token) == "the user was deactivated"
    event = AuditEvent.objects.get(action="vm.console_refused")
    assert (event.actor_id, event.detail) == (
        tech.user.pk,
        {"reason": "the user was deactivated", "vm": vm.pk},
    )


def test_a_token_presented_after_signing_out_is_refused(proxy, tech):
    vm = VirtualMachineFactory(state="running")
    token = console_token(tech, vm)
    tech.post(reverse("logout"))
    assert refusal(proxy, token) == "the user signed out"


@pytest.mark.parametrize("role", [Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_customer_users_get_404_on_the_console_token_view(client, role):
    vm = VirtualMachineFactory(state="running")
    force_login_verified(client, UserFactory(role=role, customer=vm.server.appliance.customer))
    assert client.post(reverse("vm_console_token", args=[vm.pk])).status_code == 404
    assert not AuditEvent.objects.filter(action="vm.console_open").exists()


def test_no_token_for_a_vm_that_is_not_running(tech):
    vm = VirtualMachineFactory(state="stopped")
    response = tech.post(reverse("vm_console_token", args=[vm.pk]))
    assert response.status_code == 409
    assert json.loads(response.content) == {"error": "This VM is not running."}
