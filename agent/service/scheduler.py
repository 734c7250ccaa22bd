"""``bdr-agent run``: the appliance's scheduler service.

Every tick it starts the backups that are due by each server's schedule and, once a day after
the rollup hour, a rollup (retention, then gc). What it has started is written to
``<store>/appliance/scheduler.json`` before it moves on, so a restart neither repeats nor
skips a slot. Backups themselves run as detached jobs (``agent.service.jobs``), and so do
boot checks: when the appliance's ``bootcheck`` setting (or a server's own) says "each" or
"daily", the newest point of each volume is booted with no network (``agent.vm.bootcheck``)
and the result kept.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from pathlib import Path

from agent.errors import Refused
from agent.records import write_json_atomic
from agent.service import appliance_config as config
from agent.service import jobs
from agent.service.servers import start_backup


def slot_of(schedule: config.Schedule, now: dt.datetime) -> str | None:
    """The schedule slot ``now`` falls in (a string naming day and slot), or None if off-hours."""
    if not schedule.enabled or now.weekday() not in schedule.weekdays:
        return None
    if not (schedule.start_hour <= now.hour < schedule.end_hour):
        return None
    minutes = (now.hour - schedule.start_hour) * 60 + now.minute
    return f"{now:%Y-%m-%d}#{minutes // schedule.interval_minutes}"


def due_backups(
    servers: dict[str, config.ServerConfig], done_slots: dict[str, str], now: dt.datetime
) -> list[tuple[str, str, str]]:
    """(server, volume, slot) for every volume whose current slot has not been started yet."""
    due = []
    for name, server in sorted(servers.items()):
        slot = slot_of(server.schedule, now)
        if slot is None:
            continue
        for volume in server.volumes:
            if done_slots.get(f"{name}/{volume}") != slot:
                due.append((name, volume, slot))
    return due


def rollup_due(settings: dict, last_rollup_day: str | None, now: dt.datetime) -> bool:
    return now.hour >= settings["rollup_hour"] and last_rollup_day != f"{now:%Y-%m-%d}"


def _state_path(store: Path) -> Path:
    return Path(store) / "appliance" / "scheduler.json"


def load_state(store: Path) -> dict:
    try:
        return json.loads(_state_path(store).read_text())
    except FileNotFoundError:
        return {"done_slots": {}, "last_rollup_day": None}


def tick(store: Path, now: dt.datetime | None = None) -> list[str]:
    """Start whatever is due at ``now``; return the ids of the jobs started."""
    now = now or dt.datetime.now(dt.UTC)
    state = load_state(store)
    started = []
    for name, volume, slot in due_backups(config.load_servers(store), state["done_slots"], now):
        try:
            job = start_backup(store, name, volume, ref=f"schedule:{name}/{volume}:{slot}")
            started.append(job["id"])
        except (jobs.JobError, Refused):
            pass  # busy, gone or refused (logged by confinement): this slot is skipped
        state["done_slots"][f"{name}/{volume}"] = slot
        write_json_atomic(_state_path(store), state)
    if rollup_due(config.load_settings(store), state.get("last_rollup_day"), now):
        try:
            job = jobs.start_job(store, "rollup", {}, ref=f"rollup:{now:%Y-%m-%d}")
            started.append(job["id"])
            state["last_rollup_day"] = f"{now:%Y-%m-%d}"
        except jobs.JobError:
            pass  # a rollup is running; try again next tick
        write_json_atomic(_state_path(store), state)
    started += _start_bootchecks(store, state, now)
    return started


def _start_bootchecks(store: Path, state: dict, now: dt.datetime) -> list[str]:
    """Boot-verify the points that are due (see ``bootcheck.due_bootchecks``)."""
    from agent.store.datastore import Store
    from agent.vm import bootcheck

    settings = config.load_settings(store)
    modes = [settings.get("bootcheck")] + list((settings.get("bootcheck_servers") or {}).values())
    if all(mode in (None, "off") for mode in modes):
        return []
    points = [
        {"id": p.id, "server": p.server, "volume": p.volume, "taken_at": p.taken_at}
        for p in Store.open(store).list_points()
    ]
    started = []
    for key, point_id in bootcheck.due_bootchecks(points, settings, state, f"{now:%Y-%m-%d}"):
        server, volume = key.split("/", 1)
        params = {"server": server, "volume": volume, "source": point_id, "point": point_id}
        params.update(
            marker=settings.get("bootcheck_marker") or "",
            timeout=float(settings.get("bootcheck_timeout") or 300),
        )
        try:
            job = jobs.start_job(store, "bootcheck", params, ref=f"bootcheck:{point_id}")
        except jobs.JobError:
            continue  # a boot check of this server still runs: try again next tick
        started.append(job["id"])
        state.setdefault("bootchecked", {})[key] = point_id
        state.setdefault("bootcheck_days", {})[key] = f"{now:%Y-%m-%d}"
        write_json_atomic(_state_path(store), state)
    return started


def run_forever(store: Path, interval: float = 20.0, once: bool = False) -> int:
    """The service loop; SIGTERM or SIGINT ends it between ticks."""
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        for job_id in tick(store):
            print(json.dumps({"event": "started", "job": job_id}), flush=True)
        if once:
            break
        deadline = time.monotonic() + interval
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.5, interval))
    return 0
