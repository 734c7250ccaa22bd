"""The appliance's off-site settings put to work: which vault, its pinned key, the throttle,
the ``replicate`` job and the status the portal reads (``offsite.status``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agent.errors import UsageError
from agent.service.appliance_config import load_settings, offsite_rate
from agent.store.progress import Progress


def resolve_target(store_root: Path, text: str | None = None, host_key: str | None = None):
    """The TARGET given, else the settings' ``offsite_target``; an SSH target's host key
    (given, else the settings' ``offsite_host_key``) is pinned before anything connects."""
    from agent.offsite.replicate import vault_files
    from agent.vault.targets import parse_target, pin_host_key

    settings = load_settings(store_root)
    text = text or settings["offsite_target"]
    if not text:
        raise UsageError("no vault given and no offsite_target in the settings")
    target = parse_target(text)
    key = host_key
    if not key and text == settings["offsite_target"]:
        key = settings["offsite_host_key"]
    if key and target.kind == "ssh":
        pin_host_key(vault_files(store_root)[0], target, key)
    return target


def appliance(store_root: Path) -> str:
    """This appliance's namespace on its vaults (fixed at the first replication)."""
    from agent.offsite.replicate import appliance_id

    return appliance_id(store_root, load_settings(store_root).get("serial", ""))


def throttle(store_root: Path, limit: str | None, windows: str | None, progress: Progress):
    """The token bucket for a replication: the flags (or job params) when given, else the
    settings, asked again every second."""
    from agent.vault.throttle import Throttle, parse_rate, parse_windows

    parse_rate(limit)  # a bad value is refused now, not ignored later
    parse_windows(windows)
    return Throttle(offsite_rate(store_root, limit, windows), on_wait=progress.beat)


def run_replicate(store_root: Path, params: dict, progress: Progress) -> dict:
    """The ``replicate`` job (and the CLI): settings resolved, then ``offsite.replicate``."""
    from agent.offsite.replicate import replicate
    from agent.store.datastore import Store

    store = Store.open(store_root)
    target = resolve_target(store_root, params.get("target"), params.get("host_key"))
    bucket = throttle(store_root, params.get("limit"), params.get("windows"), progress)
    order = params.get("order") or load_settings(store_root)["offsite_order"]
    servers = params.get("servers") or ([params["server"]] if params.get("server") else None)
    policies = load_settings(store_root)["offsite_policies"]
    return replicate(
        store,
        target,
        app=appliance(store_root),
        servers=servers,
        order=order,
        progress=progress,
        pace=bucket.take,
        policies=policies,
        streams=params.get("streams") or None,
        channels=params.get("channels") or None,
    )


def status(store_root: Path, target: str | None = None, refresh: bool = False, now=None) -> dict:
    """``offsite.status``: from the off-site state, or (``refresh``) after asking the vault."""
    from agent.offsite.status import offsite_status
    from agent.store.datastore import Store

    store = Store.open(store_root)
    if refresh or target:
        resolved = resolve_target(store_root, target)
        refresh_from_vault(store, resolved)
        text = resolved.text
    else:
        text = load_settings(store_root)["offsite_target"] or _last_target(store_root)
    limit = offsite_rate(store_root)()
    now = now or dt.datetime.now(dt.UTC)
    return offsite_status(store, text, now=now, limit=limit, app=appliance(store_root))


def refresh_from_vault(store, target) -> None:
    """Ask the vault which points it holds (and where else they are), and the bytes they
    reference there."""
    from agent.offsite.replicate import vault_files
    from agent.offsite.state import record_vault_points, record_vault_usage
    from agent.vault.targets import connect
    from agent.vault.transfer import remote_points, remote_usage

    known_hosts, identity = vault_files(store.root)
    app = appliance(store.root)
    with connect(target, known_hosts, identity) as conn:
        remote = remote_points(conn, app)
        used = remote_usage(conn, app)
    record_vault_points(
        store.root, target.text, conn.vault_name, remote["points"], remote["retired"]
    )
    record_vault_usage(store.root, target.text, used)


def _last_target(store_root: Path) -> str:
    from agent.offsite.state import load_state

    state = load_state(store_root)
    return max(state, key=lambda t: (state[t].get("run") or {}).get("started_at", ""), default="")
