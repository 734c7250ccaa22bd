"""The appliance's own configuration: which servers it protects, their volumes and schedules.

Kept in ``<store>/appliance/servers.json`` and ``settings.json``, written atomically, so the
scheduler and the rpc see the same truth after any restart. Retention counts live with the
store's policy (see ``agent.store.retention``); this module only holds what the store does not.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from agent.records import write_json_atomic

SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_RUNS_PER_DAY = 96

DEFAULT_SETTINGS = {
    "rollup_hour": 0,
    "timezone": "UTC",
    "serial": "",
    # Boot verification by the ``run`` service (agent.bootcheck): "off", "each" new point, or
    # "daily" (the newest point of each volume once a day); per-server modes override it.
    "bootcheck": "off",
    "bootcheck_servers": {},
    "bootcheck_marker": "",  # text on COM1 that means booted; empty: a settled screen
    "bootcheck_timeout": 300,
    # Off-site: the vault (TARGET of ``replicate``), its pinned host key, the uplink limit
    # and its time windows (agent.vault.throttle's grammar, read again every second while a
    # replication runs), and which points go first.
    "offsite_target": "",
    "offsite_host_key": "",
    "offsite_limit": "",
    "offsite_windows": "",
    "offsite_order": "newest",
    # Per server, the off-site retention policy the vaults apply (it may keep more than the
    # local one, e.g. {"yearly": 7}); pushed to the vault by every replication.
    "offsite_policies": {},
}
BOOTCHECK_MODES = ("off", "each", "daily")


class ConfigError(ValueError):
    """A configuration that the appliance refuses; the message says why in one line."""


@dataclass
class Schedule:
    interval_minutes: int = 15
    weekdays: list[int] = field(default_factory=lambda: list(range(7)))  # 0 = Monday
    start_hour: int = 0
    end_hour: int = 24  # exclusive
    enabled: bool = True

    def validate(self) -> None:
        if not isinstance(self.interval_minutes, int) or self.interval_minutes < 15:
            raise ConfigError("schedule interval must be a whole number of minutes, at least 15")
        if not (0 <= self.start_hour < self.end_hour <= 24):
            raise ConfigError("schedule hours must satisfy 0 <= start < end <= 24")
        if not self.weekdays or any(d not in range(7) for d in self.weekdays):
            raise ConfigError("schedule weekdays must be a non-empty list of 0 (Monday) to 6")
        if self.runs_per_day() > MAX_RUNS_PER_DAY:
            raise ConfigError(f"schedule would run more than {MAX_RUNS_PER_DAY} times a day")

    def runs_per_day(self) -> int:
        minutes = (self.end_hour - self.start_hour) * 60
        return -(-minutes // self.interval_minutes)


@dataclass
class ServerConfig:
    name: str
    volumes: dict[str, str]  # volume name -> block device or image path on the appliance
    schedule: Schedule = field(default_factory=Schedule)

    def validate(self) -> None:
        if not SERVER_NAME.match(self.name or ""):
            raise ConfigError(f"bad server name {self.name!r}: letters, digits, '.', '-', '_' only")
        if not isinstance(self.volumes, dict) or not self.volumes:
            raise ConfigError("a server needs at least one volume")
        for vol, source in self.volumes.items():
            if not VOLUME_NAME.match(vol):
                raise ConfigError(f"bad volume name {vol!r}")
            if not isinstance(source, str) or not source.startswith("/"):
                raise ConfigError(f"volume {vol!r} needs an absolute source path")
        self.schedule.validate()


def _dir(store: Path) -> Path:
    path = Path(store) / "appliance"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def server_from_dict(data: dict) -> ServerConfig:
    if not isinstance(data, dict):
        raise ConfigError("server configuration must be an object")
    sched = data.get("schedule") or {}
    if not isinstance(sched, dict):
        raise ConfigError("schedule must be an object")
    try:
        schedule = Schedule(**{k: sched[k] for k in sched if k in Schedule.__dataclass_fields__})
        server = ServerConfig(
            name=data.get("name", ""), volumes=data.get("volumes") or {}, schedule=schedule
        )
    except TypeError as exc:
        raise ConfigError(f"bad server configuration: {exc}") from None
    server.validate()
    return server


def load_servers(store: Path) -> dict[str, ServerConfig]:
    raw = _read_json(_dir(store) / "servers.json", {})
    return {name: server_from_dict(cfg) for name, cfg in raw.items()}


def save_server(store: Path, server: ServerConfig) -> None:
    """Add or replace one server's configuration."""
    server.validate()
    path = _dir(store) / "servers.json"
    raw = _read_json(path, {})
    raw[server.name] = asdict(server)
    write_json_atomic(path, raw)


def remove_server(store: Path, name: str) -> bool:
    path = _dir(store) / "servers.json"
    raw = _read_json(path, {})
    if name not in raw:
        return False
    del raw[name]
    write_json_atomic(path, raw)
    return True


def load_settings(store: Path) -> dict:
    return {**DEFAULT_SETTINGS, **_read_json(_dir(store) / "settings.json", {})}


def save_settings(store: Path, changes: dict) -> dict:
    unknown = set(changes) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    if "rollup_hour" in changes and changes["rollup_hour"] not in range(24):
        raise ConfigError("rollup_hour must be 0 to 23")
    _check_bootcheck_settings(changes)
    _check_offsite_settings(changes)
    settings = {**load_settings(store), **changes}
    write_json_atomic(_dir(store) / "settings.json", settings)
    return settings


def _check_bootcheck_settings(changes: dict) -> None:
    modes = [changes["bootcheck"]] if "bootcheck" in changes else []
    per_server = changes.get("bootcheck_servers", {})
    if not isinstance(per_server, dict) or not all(SERVER_NAME.match(str(k)) for k in per_server):
        raise ConfigError("bootcheck_servers must map server names to a mode")
    modes += list(per_server.values())
    if any(mode not in BOOTCHECK_MODES for mode in modes):
        raise ConfigError(f"bootcheck mode must be one of {', '.join(BOOTCHECK_MODES)}")
    timeout = changes.get("bootcheck_timeout", 300)
    if not isinstance(timeout, (int, float)) or not 5 <= timeout <= 3600:
        raise ConfigError("bootcheck_timeout must be 5 to 3600 seconds")
    if not isinstance(changes.get("bootcheck_marker", ""), str):
        raise ConfigError("bootcheck_marker must be text")


def _check_offsite_settings(changes: dict) -> None:
    from agent.confinement import parse_host_key
    from agent.errors import UsageError
    from agent.vault.targets import parse_target
    from agent.vault.throttle import parse_rate, parse_windows

    _check_offsite_policies(changes.get("offsite_policies", {}))
    texts = {
        k: v for k, v in changes.items() if k.startswith("offsite_") and k != "offsite_policies"
    }
    if not all(isinstance(v, str) for v in texts.values()):
        raise ConfigError("off-site settings are text")
    try:
        if texts.get("offsite_target"):
            parse_target(texts["offsite_target"])
        parse_rate(texts.get("offsite_limit"))
        parse_windows(texts.get("offsite_windows"))
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
    if texts.get("offsite_host_key") and parse_host_key(texts["offsite_host_key"]) is None:
        raise ConfigError("offsite_host_key must be one 'ssh-ed25519|ecdsa-sha2-*|ssh-rsa' key")
    if texts.get("offsite_order", "newest") not in ("newest", "oldest"):
        raise ConfigError("offsite_order must be newest or oldest")


def _check_offsite_policies(policies) -> None:
    from agent.store.retention import RetentionPolicy

    if not isinstance(policies, dict) or not all(SERVER_NAME.match(str(k)) for k in policies):
        raise ConfigError("offsite_policies must map server names to retention policies")
    for server, policy in policies.items():
        try:
            RetentionPolicy(**policy)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"off-site policy of {server}: {exc}") from None


def offsite_rate(store: Path, limit: str | None = None, windows: str | None = None):
    """The throttle's rate source: ``limit`` and ``windows`` when given (the CLI's flags),
    else the settings, read again at each call so the portal can change them mid-run."""
    from agent.vault.throttle import parse_rate, parse_windows, rate_at, zone

    def rate_now() -> float | None:
        import datetime as dt

        settings = load_settings(store)
        spec = windows if windows is not None else settings["offsite_windows"]
        default = parse_rate(limit if limit is not None else settings["offsite_limit"])
        now = dt.datetime.now(dt.UTC)
        return rate_at(parse_windows(spec), default, now, zone(settings["timezone"]))

    return rate_now
