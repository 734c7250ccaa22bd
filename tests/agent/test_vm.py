"""Recovery points booted as VMs: real qemu (TCG), a real boot sector, real jobs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from agent.restore.reader import PointReader
from agent.service import appliance_config as config
from agent.service import jobs
from agent.service.servers import start_backup
from agent.service.vms import start_vm, stop_vm
from agent.store.backup import backup_volume
from agent.store.verify import verify_points
from agent.vm import machines as vm
from agent.vm.bootsector import write_boot_disk

pytestmark = pytest.mark.skipif(
    (shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None)
    and not os.environ.get("CI"),  # on CI scripts/test.sh installs qemu: a miss must fail
    reason="qemu-system-x86 and qemu-utils are needed",
)


@pytest.fixture(autouse=True)
def tcg(monkeypatch):
    # CI may or may not have a usable /dev/kvm; TCG boots a boot sector in well under a second.
    monkeypatch.setenv("BDR_VM_ACCEL", os.environ.get("BDR_TEST_VM_ACCEL", "tcg"))


@pytest.fixture
def points(store, tmp_path):
    """Two points of srv1 whose boot sectors print different markers."""
    disk = tmp_path / "srv1.img"
    write_boot_disk(disk, "MARKER-ONE", 8 << 20)
    one = backup_volume(store, "srv1", str(disk), taken_at=_at("2025-01-01T10:00:00"))
    write_boot_disk(disk, "MARKER-TWO", 8 << 20)
    two = backup_volume(store, "srv1", str(disk), taken_at=_at("2025-01-01T10:15:00"))
    config.save_server(store.root, config.ServerConfig("srv1", {"disk0": str(disk)}))
    return one, two


def _at(text):
    from agent.store.backup import parse_time

    return parse_time(text)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def wait_for_job(store, job_id, timeout=60.0):
    return wait_for(
        lambda: (j := jobs.read_job(store, job_id))["state"] not in jobs.ACTIVE and j,
        timeout,
        f"job {job_id}",
    )


@pytest.fixture
def started(store):
    vms = []

    def start(point_id, **kw):
        record = start_vm(store.root, point_id, memory_mib=64, **kw)
        vms.append(record["id"])
        return record

    yield start
    for vm_id in vms:
        vm.stop_vm(store.root, vm_id, force=True, wait=10)


def test_each_point_boots_and_prints_its_own_marker(store, points, started):
    for point, marker in zip(points, ("MARKER-ONE", "MARKER-TWO"), strict=True):
        record = started(point.id, net="none")
        assert record["state"] == "running" and record["seconds_to_running"] < 10
        wait_for(lambda m=marker, r=record: f"WROTE {m}" in vm.serial_output(store.root, r["id"]))
        other = "MARKER-TWO" if marker == "MARKER-ONE" else "MARKER-ONE"
        assert other not in vm.serial_output(store.root, record["id"])
        stopped = stop_vm(store.root, record["id"], force=True, wait=10)
        assert stopped["state"] == "stopped"
        assert jobs.read_job(store.root, record["job_id"])["state"] == "succeeded"


def test_the_points_data_is_unchanged_after_the_vm_wrote_to_its_disk(store, points, started):
    one, _ = points
    with PointReader(store, one.id) as r:
        before = r.read(0, 1 << 20)
    record = started(one.id)
    wait_for(lambda: "WROTE MARKER-ONE" in vm.serial_output(store.root, record["id"]))
    vm.stop_vm(store.root, record["id"], force=True, wait=10)
    with PointReader(store, one.id) as r:
        assert r.read(0, 1 << 20) == before
        assert r.read(512, 512) == bytes(512)  # the VM's copy of sector 0 went to the overlay
    assert verify_points(store, [one.id]).ok


def test_backups_while_the_vm_runs_contain_its_writes_and_restore_them(
    store, points, started, tmp_path
):
    _, two = points
    record = started(two.id)
    wait_for(lambda: "WROTE MARKER-TWO" in vm.serial_output(store.root, record["id"]))
    job = start_backup(store.root, "srv1", ref="schedule:srv1/disk0:test")
    assert job["params"]["vm"] == record["id"]  # the scheduler's backups read the VM's disk
    done = wait_for_job(store.root, job["id"])
    assert done["state"] == "succeeded", done["error"]
    new_point = done["result"]["id"]
    assert vm.read_vm(store.root, record["id"])["state"] == "running"  # the guest never stopped
    from agent.restore.reader import restore_point

    restored = tmp_path / "restored.img"
    restore_point(store, new_point, restored)
    data = restored.read_bytes()
    assert data[512:1024] == data[:512]  # the VM's write is in the new point
    assert b"MARKER-TWO" in data[512:1024]
    with PointReader(store, two.id) as r:
        assert r.read(512, 512) == bytes(512)  # and the booted point is untouched


def test_killing_qemu_fails_the_job_with_a_clear_reason_and_the_point_is_intact(
    store, points, started
):
    one, _ = points
    record = started(one.id)
    os.kill(record["qemu_pid"], signal.SIGKILL)
    job = wait_for_job(store.root, record["job_id"])
    assert job["state"] == "failed"
    assert "qemu was killed by signal 9" in job["error"]
    assert one.id in job["error"] and "untouched" in job["error"]
    assert vm.read_vm(store.root, record["id"])["state"] == "failed"
    assert verify_points(store, [one.id]).ok


def test_vm_records_survive_a_new_process(store, points, started, cli):
    record = started(points[0].id)
    listed = json.loads(cli("vm", "list", "--json").stdout)
    assert [v["id"] for v in listed] == [record["id"]] and listed[0]["state"] == "running"
    status = json.loads(cli("vm", "status", record["id"], "--json").stdout)
    assert status["uptime_seconds"] >= 0


def test_one_vm_per_server_at_a_time(store, points, started):
    started(points[0].id)
    with pytest.raises(Exception, match="already running"):
        start_vm(store.root, points[1].id, memory_mib=64)


def test_start_with_the_same_ref_returns_the_same_vm(store, points, started):
    first = started(points[0].id, ref="portal-job-7")
    again = start_vm(store.root, points[0].id, ref="portal-job-7")
    assert again["id"] == first["id"]


def test_cli_vm_start_screenshot_and_stop(store, points, cli, tmp_path):
    out = cli("vm", "start", points[0].id, "--net", "none", "--memory", "64", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    try:
        wait_for(lambda: "WROTE" in vm.serial_output(store.root, record["id"]))
        shot = tmp_path / "screen.png"
        assert cli("vm", "screenshot", record["id"], str(shot)).returncode == 0
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        stop = cli("vm", "stop", record["id"], "--force", "--json")
    assert stop.returncode == 0 and json.loads(stop.stdout)["state"] == "stopped"


def test_bootcheck_passes_with_its_marker_and_keeps_a_screenshot(store, points, cli):
    out = cli("bootcheck", points[1].id, "--marker", "MARKER-TWO", "--memory", "64", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["ok"] and 0 < result["boot_seconds"] < 60
    with open(result["screenshot"], "rb") as f:
        assert f.read(4) == b"\x89PNG"
    assert not any(p.name.startswith(".bootcheck") for p in vm.vms_dir(store.root).iterdir())


def test_bootcheck_fails_with_exit_3_when_the_marker_never_comes(store, points, cli):
    out = cli(
        "bootcheck", points[0].id, "--marker", "NEVER", "--timeout", "3", "--memory", "64", "--json"
    )
    assert out.returncode == 3
    result = json.loads(out.stdout)
    assert not result["ok"] and "'NEVER' not seen" in result["reason"]


def test_a_point_of_a_volume_not_a_multiple_of_512_bytes_boots(store, tmp_path, started):
    disk = tmp_path / "odd.img"
    write_boot_disk(disk, "MARKER-ODD", 1623)  # the NBD export pads it to 2048 bytes
    point = backup_volume(store, "odd", str(disk))
    record = started(point.id, net="none")
    assert record["state"] == "running", record
    wait_for(lambda: "WROTE MARKER-ODD" in vm.serial_output(store.root, record["id"]))
