"""Start VM through the portal's pages: a real agent store on the local transport, qemu (TCG)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.urls import reverse

from agent.vm import machines as agent_vm
from appliances.models import Alert, Job, JobState
from portal.models import AuditEvent, Role
from restores.models import RecoveryPoint, VirtualMachine
from tests.factories import UserFactory
from tests.support.agent_store import agent
from tests.support.bootable import bootable_appliance, needs_qemu, use_tcg
from tests.support.signin import force_login_verified

pytestmark = [pytest.mark.django_db, needs_qemu]


@pytest.fixture
def world(tmp_path, monkeypatch):
    use_tcg(monkeypatch)
    appliance, server, store = bootable_appliance(tmp_path, markers=("MARKER-ONE", "MARKER-TWO"))
    yield appliance, server, store
    for record in agent_vm.list_vms(store, active_only=True):  # never leave a qemu behind
        agent_vm.stop_vm(store, record["id"], force=True, wait=10)


@pytest.fixture
def tech(client):
    force_login_verified(client, UserFactory(role=Role.TECHNICIAN))
    return client


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start(client, point, capture, net="none"):
    with capture(execute=True):
        response = client.post(reverse("vm_start", args=[point.pk]), {"net": net})
    assert response.status_code == 302, response.content.decode()[:2000]
    vm = VirtualMachine.objects.get(point=point)
    assert response["Location"] == reverse("vm_detail", args=[vm.pk])
    return vm


def test_technician_starts_a_vm_watches_it_then_shuts_down_and_powers_off(
    world, tech, django_capture_on_commit_callbacks
):
    appliance, server, store = world
    point = RecoveryPoint.objects.filter(server=server).latest("taken_at")
    page = tech.get(reverse("vm_start", args=[point.pk])).content.decode()
    assert "Start VM" in page and "Isolated" in page
    vm = start(tech, point, django_capture_on_commit_callbacks)
    assert vm.job.kind == "virtualize" and vm.job.state == JobState.RUNNING
    assert vm.job.params["point"] == point.agent_id and vm.job.params["memory_mib"] == 64
    page = tech.get(reverse("vm_detail", args=[vm.pk])).content.decode()
    vm.refresh_from_db()
    assert vm.state == "running" and vm.agent_id and "Running" in page
    assert f'src="{reverse("vm_screen", args=[vm.pk])}' in page
    # It booted this very point: the boot sector of MARKER-TWO says so on the serial port.
    wait_for(lambda: "WROTE MARKER-TWO" in agent_vm.serial_output(store, vm.agent_id))
    screen = tech.get(reverse("vm_screen", args=[vm.pk]))
    assert screen.status_code == 200 and screen.content[:8] == b"\x89PNG\r\n\x1a\n"
    # Shut down: the boot sector halts with interrupts off, so it ignores the power button.
    tech.post(reverse("vm_stop", args=[vm.pk]))
    vm.refresh_from_db()
    assert vm.state == "stopping"
    response = tech.post(reverse("vm_stop", args=[vm.pk]), {"force": "1"})
    assert response.status_code == 302
    vm.refresh_from_db()
    vm.job.refresh_from_db()
    assert vm.state == "stopped" and vm.stopped_at
    assert vm.job.state == JobState.SUCCEEDED, vm.job.error
    assert "Stopped" in tech.get(reverse("vm_detail", args=[vm.pk])).content.decode()
    actions = list(AuditEvent.objects.order_by("at", "id").values_list("action", flat=True))
    assert [a for a in actions if a.startswith("vm.")] == ["vm.start", "vm.shutdown", "vm.poweroff"]
    assert not Alert.objects.exists()


def test_killing_qemu_fails_the_job_with_a_clear_reason_and_the_point_stays_intact(
    world, tech, django_capture_on_commit_callbacks
):
    appliance, server, store = world
    point = RecoveryPoint.objects.filter(server=server).earliest("taken_at")
    vm = start(tech, point, django_capture_on_commit_callbacks)
    tech.get(reverse("vm_detail", args=[vm.pk]))
    vm.refresh_from_db()
    os.kill(agent_vm.read_vm(store, vm.agent_id)["qemu_pid"], signal.SIGKILL)
    wait_for(
        lambda: "Failed" in tech.get(reverse("vm_detail", args=[vm.pk])).content.decode(),
        what="the VM page to say Failed",
    )
    vm.refresh_from_db()
    job = Job.objects.get(pk=vm.job_id)
    assert vm.state == "failed" and "qemu was killed by signal 9" in vm.error
    assert job.state == JobState.FAILED
    assert "qemu was killed by signal 9" in job.error and point.agent_id in job.error
    assert "untouched" in job.error
    alert = Alert.objects.get(kind="virtualize_failed")
    assert "qemu was killed" in alert.message
    assert agent(store, "verify", point.agent_id).returncode == 0  # the point is intact
    assert RecoveryPoint.objects.filter(pk=point.pk).exists()
    assert AuditEvent.objects.filter(action="vm.start").count() == 1


@pytest.mark.parametrize("role", [Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER])
def test_customer_users_get_404_on_every_vm_page_and_action(world, client, role):
    appliance, server, store = world
    point = RecoveryPoint.objects.filter(server=server).latest("taken_at")
    from tests.factories import VirtualMachineFactory

    vm = VirtualMachineFactory(server=server, point=point, state="running", agent_id="x")
    # A user of their own customer.
    force_login_verified(client, UserFactory(role=role, customer=appliance.customer))
    requests = [
        ("get", reverse("vm_list")),
        ("get", reverse("vm_start", args=[point.pk])),
        ("post", reverse("vm_start", args=[point.pk])),
        ("get", reverse("vm_detail", args=[vm.pk])),
        ("get", reverse("vm_screen", args=[vm.pk])),
        ("post", reverse("vm_stop", args=[vm.pk])),
        ("post", reverse("vm_stop", args=[vm.pk]) + "?force=1"),
        ("get", reverse("point_boot_png", args=[point.pk])),
    ]
    for method, url in requests:
        assert getattr(client, method)(url).status_code == 404, url
    assert VirtualMachine.objects.count() == 1 and not Job.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="vm.").exists()
    assert agent_vm.list_vms(store) == []


def test_start_vm_boots_the_demo_server(
    tmp_path, monkeypatch, tech, django_capture_on_commit_callbacks
):
    from django.core.management import call_command

    use_tcg(monkeypatch)
    call_command("demo", store_dir=str(tmp_path))
    points = RecoveryPoint.objects.filter(server__appliance__serial="V1-0001", server__name="dc01")
    newest = points.latest("taken_at")
    assert newest.boot_verified is True and bytes(newest.boot_screenshot)[:4] == b"\x89PNG"
    store = newest.server.appliance.local_store
    vm = start(tech, newest, django_capture_on_commit_callbacks, net="isolated")
    try:
        tech.get(reverse("vm_detail", args=[vm.pk]))
        vm.refresh_from_db()
        assert vm.state == "running"
        marker = "BDR demo server booted V1-0001-dc01-C"
        wait_for(lambda: marker in agent_vm.serial_output(store, vm.agent_id))
    finally:
        for record in agent_vm.list_vms(store, active_only=True):
            agent_vm.stop_vm(store, record["id"], force=True, wait=10)
