"""A technician, in Chromium, in demo mode: boot the demo server's newest point as a VM, see
its screen, power it off."""

import pytest
from django.core.management import call_command

from agent.vm import machines as agent_vm
from restores.models import VirtualMachine
from tests.browser.conftest import sign_in
from tests.support.bootable import needs_qemu, use_tcg


@needs_qemu
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_technician_starts_a_vm_of_the_demo_server_sees_its_screen_and_stops_it(
    page, live_server, tmp_path, monkeypatch
):
    use_tcg(monkeypatch)
    call_command("demo", store_dir=str(tmp_path / "demo-store"))
    sign_in(page, live_server, "tech", "demo-pass-2026")
    page.click("nav >> text=Restore files")
    page.click("text=dc01.acme.local")
    # The newest point comes first; it was boot-verified when the demo was made.
    first = page.locator("tbody tr").first
    assert "yes, in" in first.inner_text()
    shot = first.locator("img[alt='Screen of the boot check']")
    # The screenshot is fetched after the page: wait for it to load, then check it has pixels.
    shot.evaluate("i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })")
    assert shot.evaluate("i => i.naturalWidth") > 0
    first.locator("a:has-text('Start VM')").click()
    page.wait_for_selector("h1:has-text('Start a VM of')")
    page.click("button:has-text('Start VM')")
    page.wait_for_selector("#vm-status >> text=Running")
    try:
        with page.expect_response(lambda r: "/screen.png" in r.url and r.status == 200) as shot:
            page.wait_for_selector("#vm-screen")
        assert shot.value.body()[:8] == b"\x89PNG\r\n\x1a\n"
        page.wait_for_function("document.querySelector('#vm-screen').naturalWidth > 0")
        page.screenshot(path=str(tmp_path / "vm.png"), full_page=True)
        page.click("button:has-text('Power off')")
        page.wait_for_selector("#vm-status >> text=Stopped")
        assert page.locator("#vm-screen").count() == 0
        vm = VirtualMachine.objects.get()
        assert vm.state == "stopped" and vm.job.state == "succeeded"
    finally:
        store = VirtualMachine.objects.get().server.appliance.local_store
        for record in agent_vm.list_vms(store, active_only=True):
            agent_vm.stop_vm(store, record["id"], force=True, wait=10)
