"""The protected servers' side of the service: start a configured server's backup, set
its retention. Used by the rpc (the portal's requests) and the scheduler."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from agent.confinement import check_source
from agent.service import appliance_config as config
from agent.service.jobs import JobError, start_job

RETENTION_TIERS = ("intraday", "daily", "weekly", "monthly", "yearly")


def start_backup(
    store: Path,
    server_name: str,
    volume: str | None = None,
    *,
    ref: str = "",
    at: str | None = None,
) -> dict:
    """Start a detached backup of one configured server's volume (the first if none named)."""
    from agent.vm.machines import running_vm_of

    server = config.load_servers(store).get(server_name)
    if server is None:
        raise JobError("not_found", f"no server {server_name!r} is configured on this appliance")
    volume = volume or next(iter(server.volumes))
    if volume not in server.volumes:
        raise JobError("not_found", f"server {server_name!r} has no volume {volume!r}")
    params = {"server": server_name, "volume": volume, "source": server.volumes[volume]}
    check_source(store, params["source"], must_exist=True)  # again in the worker
    running = running_vm_of(store, server_name, volume)
    if running:  # the server runs as a VM here: back up the VM's disk, keep the chain going
        params.update(source=f"vm:{running['id']}", vm=running["id"])
    if at:
        params["at"] = at
    return start_job(store, "backup", params, ref=ref)


def set_retention(store: Path, server: str, retention: dict) -> None:
    """Store a server's retention counts with the store's policy."""
    from agent.store.datastore import Store

    unknown = set(retention) - set(RETENTION_TIERS)
    if unknown:
        raise JobError("bad_params", f"unknown retention tier(s): {', '.join(sorted(unknown))}")
    for tier, count in retention.items():
        if not isinstance(count, int) or count < 0:
            raise JobError("bad_params", f"retention {tier} must be a whole number >= 0")
    opened = Store.open(store)
    opened.save_policy(server, replace(opened.load_policy(server), **retention))
