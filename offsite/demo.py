"""The demo's off-site copies: two local vault directories (ams1 replicating to fra1), every
enrolled demo appliance replicating to the first, and the copies mirrored, so the off-site
pages show three copies of each point from the start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from appliances import sync
from appliances.models import Appliance, ApplianceState, Transport
from offsite import mirror, services
from offsite.models import Vault

DEMO_WINDOWS = "mon-fri 08:00-18:00 512kbit; * * 20mbit"


def _agent(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "agent", *args], check=True, capture_output=True,
                   timeout=300)  # fmt: skip


def _vault_dir(path: Path, name: str) -> Path:
    if not (path / "vault.json").exists():
        _agent("vault", "init", str(path), "--name", name)
    return path


def make_demo_vaults(root: Path) -> None:
    """Vaults ams1 -> fra1 under ``root/vaults``; each online demo appliance assigned to
    ams1 with a throttle window, replicated (unthrottled, once), then ams1 to fra1."""
    dc1, dc2 = (
        _vault_dir(root / "vaults" / "dc1", "dc1"),
        _vault_dir(root / "vaults" / "dc2", "dc2"),
    )
    fra1, _ = Vault.objects.get_or_create(
        name="fra1", defaults={"data_centre": "Frankfurt (demo)", "endpoint": str(dc2)}
    )
    ams1, _ = Vault.objects.get_or_create(
        name="ams1",
        defaults={"data_centre": "Amsterdam (demo)", "endpoint": str(dc1), "second_vault": fra1},
    )
    appliances = list(
        Appliance.objects.filter(transport=Transport.LOCAL, state=ApplianceState.ONLINE)
    )
    for appliance in appliances:
        services.assign_vault(appliance, ams1, actor=None)
        services.set_windows(appliance, DEMO_WINDOWS, actor=None)
        _agent("--store", appliance.local_store, "replicate", str(dc1), "--windows", "* * off")
    _agent("vault", "replicate", str(dc1), str(dc2))
    for appliance in appliances:
        with sync.open_agent(appliance) as agent:
            mirror.mirror(appliance, agent, refresh=True)
