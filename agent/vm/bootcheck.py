"""Boot verification: boot a point with no network, wait for a sign of life, screenshot it.

The sign is ``marker`` on the first serial port when given, else a settled screen (the
same picture three looks in a row). The overlay is thrown away afterwards; the result and
the screenshot are kept under ``<store>/appliance/bootchecks/<server>/<volume>/`` so the
portal can fetch them, and ``scheduler`` knows which points were checked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

from agent.records import write_json_atomic
from agent.store.datastore import Store
from agent.vm.machines import fit_to_host, launch, sockets, vms_dir
from agent.vm.qmp import QmpError

SETTLE_INTERVAL = 2.0
SETTLE_MIN_SECONDS = 6.0


def results_dir(store: Path, server: str, volume: str) -> Path:
    return Path(store) / "appliance" / "bootchecks" / server / volume


def _stamp(point_id: str) -> str:
    return point_id.rsplit("/", 1)[-1]


def result_of(store: Path, point_id: str) -> dict | None:
    """The recorded boot check of ``point_id``, or None."""
    server, volume, stamp = point_id.split("/")
    try:
        return json.loads((results_dir(store, server, volume) / f"{stamp}.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def list_results(store: Path, server: str | None = None) -> list[dict]:
    root = Path(store) / "appliance" / "bootchecks"
    pattern = f"{server}/*/*.json" if server else "*/*/*.json"
    out = []
    for path in sorted(root.glob(pattern)):
        try:
            out.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            continue
    return out


def screenshot_path(store: Path, point_id: str) -> Path:
    server, volume, stamp = point_id.split("/")
    return results_dir(store, server, volume) / f"{stamp}.png"


def bootcheck(
    store_root: Path,
    point_id: str,
    *,
    marker: str | None = None,
    timeout: float = 300.0,
    cpus: int | None = 1,
    memory_mib: int | None = 1024,
) -> dict:
    """Boot ``point_id`` in a throw-away VM; record and return pass/fail, boot time, screenshot."""
    store_root = Path(store_root)
    store = Store.open(store_root)
    record = store.get_point(point_id)
    cpus, memory_mib = fit_to_host(cpus, memory_mib)
    work = vms_dir(store_root) / f".bootcheck-{os.getpid()}-{secrets.token_hex(4)}"
    work.mkdir(mode=0o700)
    out_dir = results_dir(store_root, record.server, record.volume)
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = screenshot_path(store_root, record.id)
    t0 = time.monotonic()
    ok, reason, boot_seconds, accel = False, "", None, None
    try:
        vm = launch(store, record.id, work, net="none", cpus=cpus, memory_mib=memory_mib)
        accel = vm.accel
        try:
            ok, reason = _wait_for_life(vm, work, marker, t0, timeout)
            boot_seconds = round(time.monotonic() - t0, 2)
            _screenshot(vm, shot)
        finally:
            vm.end()
    except Exception as exc:  # noqa: BLE001 - any failure to boot is the check's verdict
        reason = reason or f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(sockets(work), ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)  # the overlay: whatever the VM wrote is thrown away
    result = {
        "point": record.id,
        "server": record.server,
        "volume": record.volume,
        "ok": ok,
        "boot_seconds": boot_seconds if ok else None,
        "marker": marker,
        "reason": reason,
        "accel": accel,
        "screenshot": str(shot) if shot.exists() else None,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(out_dir / f"{_stamp(record.id)}.json", result)
    return result


def remove_stale_workdirs(store_root: Path, pid: int) -> list[str]:
    """Delete the throw-away VM folders of the boot check process ``pid`` (a killed check
    cannot remove its own)."""
    removed = []
    for work in vms_dir(store_root).glob(f".bootcheck-{pid}-*"):
        shutil.rmtree(sockets(work), ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        removed.append(str(work))
    return removed


def _wait_for_life(vm, work: Path, marker: str | None, t0: float, timeout: float):
    serial = work / "serial.log"
    shots: list[bytes] = []
    next_shot = t0 + SETTLE_INTERVAL
    while time.monotonic() - t0 < timeout:
        if not vm.alive():
            return False, f"qemu exited with code {vm.proc.returncode} before the point booted"
        if marker:
            try:
                if marker.encode() in serial.read_bytes():
                    return True, ""
            except FileNotFoundError:
                pass
        elif time.monotonic() >= next_shot:
            next_shot += SETTLE_INTERVAL
            probe = work / "settle.png"
            try:
                _screenshot(vm, probe)
                shots.append(probe.read_bytes())
            except (QmpError, OSError):
                continue
            settled = len(shots) >= 3 and shots[-1] == shots[-2] == shots[-3]
            if settled and time.monotonic() - t0 >= SETTLE_MIN_SECONDS:
                return True, ""
        time.sleep(0.1)
    if marker:
        return False, f"marker {marker!r} not seen on the serial port within {timeout:.0f} s"
    return False, f"the screen did not settle within {timeout:.0f} s"


def _screenshot(vm, path: Path) -> None:
    with vm.qmp() as q:
        q.execute("screendump", filename=str(path), format="png")


def mode_for(settings: dict, server: str) -> str:
    """The boot verification mode of ``server``: its own, else the appliance's."""
    return (settings.get("bootcheck_servers") or {}).get(server) or settings.get("bootcheck", "off")


def due_bootchecks(
    points: list[dict], settings: dict, state: dict, today: str
) -> list[tuple[str, str]]:
    """(volume key ``server/volume``, point id) to boot-verify now: the newest point of each
    volume, unless it was already started ("each") or its volume was checked today ("daily").

    ``points`` are point records (``id``, ``server``, ``volume``, ``taken_at``); ``state``
    holds ``bootchecked`` (volume key -> last point started) and ``bootcheck_days``
    (volume key -> day of the last start).
    """
    newest: dict[str, dict] = {}
    for point in points:
        key = f"{point['server']}/{point['volume']}"
        if key not in newest or (point["taken_at"], point["id"]) > (
            newest[key]["taken_at"],
            newest[key]["id"],
        ):
            newest[key] = point
    due = []
    for key, point in sorted(newest.items()):
        mode = mode_for(settings, point["server"])
        if mode == "off" or state.get("bootchecked", {}).get(key) == point["id"]:
            continue
        if mode == "daily" and state.get("bootcheck_days", {}).get(key) == today:
            continue
        due.append((key, point["id"]))
    return due
