"""The one table of appliance model limits, read by every path that needs one: how many servers
a model protects (checked on every path that adds a server), its local capacity, and what a VM
of a recovery point may take on it."""

from __future__ import annotations

from dataclasses import dataclass

GB = 10**9  # disk capacities are sold in decimal gigabytes
TB = 10**12


@dataclass(frozen=True)
class ModelLimits:
    max_servers: int
    local_bytes: int
    disks: int
    raid: str
    vm_cpus: int
    vm_memory_mib: int

    @property
    def summary(self) -> str:
        """ "2 servers, 450 GB" / "8 servers, 2 TB RAID5", for the model's label."""
        size = (
            f"{self.local_bytes // TB} TB"
            if self.local_bytes % TB == 0
            else f"{self.local_bytes // GB} GB"
        )
        raid = f" {self.raid}" if self.raid != "none" else ""
        return f"{self.max_servers} servers, {size}{raid}"


MODEL_LIMITS: dict[str, ModelLimits] = {
    "V1": ModelLimits(
        max_servers=2, local_bytes=450 * GB, disks=1, raid="none", vm_cpus=2, vm_memory_mib=4096
    ),
    "V2": ModelLimits(
        max_servers=8, local_bytes=2 * TB, disks=4, raid="RAID5", vm_cpus=8, vm_memory_mib=16384
    ),
}


def limits_for(model: str) -> ModelLimits:
    return MODEL_LIMITS[model]
