"""Fixtures of the VM console tests (test_vm_console.py, test_console_security.py)."""

from __future__ import annotations

import pytest

from agent.service.vms import start_vm
from agent.vm import machines as agent_vm
from portal.models import Role
from restores.models import RecoveryPoint
from tests.factories import UserFactory, VirtualMachineFactory
from tests.support.bootable import bootable_appliance, use_tcg
from tests.support.console_proxy import running_console_proxy
from tests.support.signin import force_login_verified


@pytest.fixture
def proxy(settings):
    """The console proxy in a thread of this process; the VM page points noVNC at it."""
    with running_console_proxy() as url:
        settings.BDR_CONSOLE_PROXY_URL = url
        yield url


@pytest.fixture
def tech(client):
    """A test client signed in (second factor included) as a technician: ``tech.user``."""
    user = UserFactory(role=Role.TECHNICIAN)
    force_login_verified(client, user)
    client.user = user
    return client


@pytest.fixture
def live_vm(tmp_path, monkeypatch):
    """A running VM (qemu under TCG) of a point on a local-transport appliance, and its row;
    the appliance's store is ``live_vm.store``."""
    use_tcg(monkeypatch)
    _appliance, server, store = bootable_appliance(tmp_path)
    point = RecoveryPoint.objects.get(server=server)
    record = start_vm(store, point.agent_id, net="none", memory_mib=64)
    try:
        vm = VirtualMachineFactory(
            server=server, point=point, state="running", agent_id=record["id"]
        )
        vm.store = store
        yield vm
    finally:
        agent_vm.stop_vm(store, record["id"], force=True, wait=10)
