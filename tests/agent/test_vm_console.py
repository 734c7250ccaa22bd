"""rpc vm.console: after an ok answer the session relays the VM's VNC (RFB) bytes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent.service.vms import start_vm
from agent.store.backup import backup_volume
from agent.vm import machines as vm
from agent.vm.bootsector import write_boot_disk
from tests.support.bootable import needs_qemu, use_tcg

pytestmark = needs_qemu


@pytest.fixture
def running_vm(store, tmp_path, monkeypatch):
    use_tcg(monkeypatch)
    disk = write_boot_disk(tmp_path / "srv1.img", "MARKER-ONE", 4 << 20)
    point = backup_volume(store, "srv1", str(disk))
    record = start_vm(store.root, point.id, net="none", memory_mib=64)
    yield record
    vm.stop_vm(store.root, record["id"], force=True, wait=10)


def _rpc(store):
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "--store", str(store.root), "rpc"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def _call(proc, req_id, method, **params):
    line = {"id": req_id, "method": method, "params": params}
    proc.stdin.write(json.dumps(line).encode() + b"\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def test_console_relays_the_vms_rfb_handshake_then_ends_the_session(store, running_vm):
    proc = _rpc(store)
    try:
        assert _call(proc, 1, "hello")["ok"]
        answer = _call(proc, 2, "vm.console", vm_id=running_vm["id"])
        assert answer == {"id": 2, "ok": True, "result": {"relay": "rfb"}}
        assert proc.stdout.read(12) == b"RFB 003.008\n"  # qemu's VNC server speaks first
        proc.stdin.write(b"RFB 003.008\n")
        proc.stdin.flush()
        count = proc.stdout.read(1)[0]
        assert count >= 1 and 1 in proc.stdout.read(count)  # security type None offered
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_console_of_a_stopped_vm_is_refused_and_the_session_goes_on(store, running_vm):
    vm.stop_vm(store.root, running_vm["id"], force=True, wait=10)
    proc = _rpc(store)
    try:
        assert _call(proc, 1, "hello")["ok"]
        answer = _call(proc, 2, "vm.console", vm_id=running_vm["id"])
        assert not answer["ok"] and answer["error"]["code"] == "not_running"
        assert _call(proc, 3, "vm.list")["ok"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
