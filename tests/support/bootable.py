"""A demo-sized appliance whose server boots: a tiny boot-sector disk backed up by the agent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agent.vm.bootsector import write_boot_disk
from tests.support.agent_store import agent, init_store

needs_qemu = pytest.mark.skipif(
    (shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None)
    and not os.environ.get("CI"),  # on CI scripts/test.sh installs qemu: a miss must fail
    reason="qemu-system-x86 and qemu-utils are needed",
)


def use_tcg(monkeypatch) -> None:
    """TCG boots the boot sector in well under a second, with or without /dev/kvm."""
    monkeypatch.setenv("BDR_VM_ACCEL", os.environ.get("BDR_TEST_VM_ACCEL", "tcg"))


def bootable_appliance(tmp_path: Path, markers=("MARKER-ONE",), name: str = "srv1"):
    """(appliance, server, store) on the local transport; one point per marker, 15 min apart."""
    from appliances import sync
    from appliances.models import ApplianceState
    from tests.factories import ApplianceFactory, ProtectedServerFactory, VolumeFactory

    store = init_store(tmp_path / "appliance")
    disk = tmp_path / f"{name}.img"
    for i, marker in enumerate(markers):
        write_boot_disk(disk, marker, 4 << 20)
        at = f"2026-11-23T10:{15 * i:02}:00"
        agent(store, "backup", name, str(disk), "--volume", "disk0", "--at", at)
    appliance = ApplianceFactory(
        transport="local", local_store=str(store), state=ApplianceState.ONLINE
    )
    server = ProtectedServerFactory(appliance=appliance, name=name, cpus=1, memory_mib=64)
    VolumeFactory(server=server, name="disk0", source=str(disk))
    sync.poll_appliance(appliance)
    return appliance, server, store
