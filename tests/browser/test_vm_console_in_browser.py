"""A technician, in Chromium: start a VM, open its console (noVNC through manage.py
console_proxy and the appliance's rpc), type into it, power it off."""

import os

import pytest
from django.urls import reverse

from agent.vm import machines as agent_vm
from agent.vm.qmp import Qmp
from portal.models import Role
from restores.models import RecoveryPoint, VirtualMachine
from tests.browser.conftest import sign_in
from tests.factories import DEFAULT_PASSWORD, UserFactory
from tests.support.bootable import bootable_appliance, needs_qemu, use_tcg
from tests.support.console_proxy import running_console_proxy
from tests.support.sshd import free_port


def vnc_clients(store, vm_id: str) -> list:
    """The VNC clients qemu itself has: proof the browser's console reached the VM."""
    with Qmp(agent_vm.sockets(agent_vm.vm_dir(store, vm_id)) / "qmp.sock", timeout=10) as q:
        return q.execute("query-vnc").get("clients", [])


@needs_qemu
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_technician_opens_the_vms_console_types_into_it_and_powers_it_off(
    page, live_server, tmp_path, monkeypatch, settings
):
    use_tcg(monkeypatch)
    appliance, server, store = bootable_appliance(tmp_path)
    point = RecoveryPoint.objects.get(server=server)
    tech = UserFactory(role=Role.TECHNICIAN)
    settings.BDR_CONSOLE_PROXY_URL = f"ws://127.0.0.1:{free_port()}/"  # no proxy there yet
    try:
        sign_in(page, live_server, tech.username, DEFAULT_PASSWORD)
        page.goto(live_server.url + reverse("vm_start", args=[point.pk]))
        page.click("button:has-text('Start VM')")
        page.wait_for_selector("#vm-status >> text=Running")
        # Without the proxy the page says so and keeps showing the screenshots.
        page.click("button:has-text('Open console')")
        page.wait_for_selector("#console-status >> text=is manage.py console_proxy running")
        page.wait_for_function("document.querySelector('#vm-screen').naturalWidth > 0")
        with running_console_proxy() as proxy_url:
            settings.BDR_CONSOLE_PROXY_URL = proxy_url
            page.click("button:has-text('Open console')")
            page.wait_for_selector("#vm-console[data-state=connected]")
            assert "Connected" in page.inner_text("#console-status")
            canvas = page.locator("#console-screen canvas")
            assert canvas.evaluate("c => c.width") > 0  # the VM's framebuffer, drawn by noVNC
            assert page.locator("#vm-screen").count() == 0  # no screenshots while live
            vm = VirtualMachine.objects.get()
            assert len(vnc_clients(store, vm.agent_id)) == 1
            canvas.click()
            page.keyboard.type("dir")
            page.keyboard.press("Enter")
            page.wait_for_timeout(300)
            assert page.get_attribute("#vm-console", "data-state") == "connected"
            page.screenshot(path=str(tmp_path / "console.png"), full_page=True)
            if shots := os.environ.get("BDR_TEST_SCREENSHOTS"):
                page.screenshot(path=f"{shots}/vm-console.png", full_page=True)
            page.click("button:has-text('Power off')")
            page.wait_for_selector("#vm-status >> text=Stopped")
            vm.refresh_from_db()
            assert vm.state == "stopped" and vm.job.state == "succeeded"
    finally:
        for record in agent_vm.list_vms(store, active_only=True):
            agent_vm.stop_vm(store, record["id"], force=True, wait=10)
