"""The registry of job kinds: what each detached job does, and what it needs around it.

One entry per kind: the library call that does the work (in the worker process), a line
describing the job for its log, the reason a finished run still counts as failed (a
verify that found damage, a point that did not boot), what a stopped run leaves behind
and how to remove it, and how long the job may go without progress before its
supervisor stops it (``None``: never; a VM's whole life is one job). Adding a job kind
is adding one entry to ``KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.store.progress import Progress

# Without progress for this long a job is stopped (seconds). Overridden for every kind
# that has a limit by env BDR_JOB_STALL_SECONDS, and for one job by its "stall_seconds"
# param. Work that moves no bytes for a while (gc's marking, fsyncs, qemu-img reading
# over NBD) sends heartbeats (``Progress.beat``), so these hold for slow disks too.
DEFAULT_STALL_SECONDS = 120.0
BOOTCHECK_GRACE_SECONDS = 120.0


@dataclass(frozen=True)
class JobKind:
    """What the job runner needs to know about one kind of job."""

    name: str
    run: Callable[[Path, dict, Progress], dict]
    describe: Callable[[dict], str]
    stall_seconds: Callable[[dict], float | None] = lambda params: DEFAULT_STALL_SECONDS
    failure: Callable[[dict], str | None] = lambda result: None
    cleanup: Callable[[Path, dict, int], list[str]] = lambda store, params, worker_pid: []
    summary: Callable[[dict], str] | None = None  # the log's last line on success


def _open(store_root: Path):
    from agent.store.datastore import Store

    return Store.open(store_root)


def _when(text: str | None):
    from agent.store.backup import parse_time

    return parse_time(text) if text else None


# -- backup ----------------------------------------------------------------------------------
def _backup(store_root: Path, params: dict, progress: Progress) -> dict:
    when = _when(params.get("at"))
    if params.get("vm"):  # the server runs as a VM here: back up the VM's disk
        from agent.vm.backup import backup_from_vm

        record = backup_from_vm(store_root, params["vm"], taken_at=when, progress=progress)
    else:
        from agent.confinement import check_source
        from agent.store.backup import backup_volume

        # Resolved again here: a symlink swapped since the job started is caught, and the
        # backup reads the path that was checked, not the link.
        source = check_source(store_root, params["source"], must_exist=True)
        store = _open(store_root)
        record = backup_volume(
            store, params["server"], source, params["volume"], when, progress=progress
        )
    return record.to_json()  # every field points.list gives, so the portal can insert it


def _backup_cleanup(store_root: Path, params: dict, worker_pid: int) -> list:
    removed = _open(store_root).chunks.remove_staged_of(worker_pid)
    return [f"{removed} staged chunk file(s)"] if removed else []


def _backup_summary(result: dict) -> str:
    return (
        f"recovery point {result.get('id')}: {result.get('size', 0):,} bytes read, "
        f"{result.get('chunks_new', 0)} new chunks, {result.get('stored_bytes', 0):,} bytes stored"
    )


def _describe_source(params: dict) -> str:
    return f"of {params['server']} volume {params['volume']} from {params['source']}"


# -- verify, rollup ----------------------------------------------------------------------------
def _verify(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.store.verify import verify_points

    points = params.get("points") or None
    return verify_points(_open(store_root), points, progress=progress).to_json()


def _verify_failure(result: dict) -> str | None:
    damaged = [p["id"] for p in result.get("damaged_points", [])]
    if not damaged:
        return None
    return f"verify found damage in {len(damaged)} point(s): {', '.join(damaged)}"


def _describe_points(params: dict) -> str:
    points = params.get("points")
    return f"of {len(points)} point(s)" if points else "of the whole store"


def _rollup(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.store.rollup import rollup

    return rollup(_open(store_root), _when(params.get("now")), progress=progress)


# -- VMs and boot checks -----------------------------------------------------------------------
def _virtualize(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.vm.machines import supervise

    return supervise(store_root, params["vm"], progress=progress)


def _bootcheck(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.vm.bootcheck import bootcheck

    marker = params.get("marker") or None
    timeout = float(params.get("timeout", 300))
    return bootcheck(store_root, params["point"], marker=marker, timeout=timeout)


def _bootcheck_failure(result: dict) -> str | None:
    if result.get("ok"):
        return None
    return f"point {result.get('point')} did not boot: {result.get('reason')}"


def _bootcheck_cleanup(store_root: Path, params: dict, worker_pid: int) -> list:
    from agent.vm.bootcheck import remove_stale_workdirs

    return remove_stale_workdirs(store_root, pid=worker_pid)


def _point_only(params: dict) -> str:
    return f"of point {params['point']}"


# -- restores and exports ----------------------------------------------------------------------
def _restore(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.confinement import check_target, check_write_folder

    if params.get("mode") == "baremetal":
        from agent.restore.export import send_point

        check_target(store_root, params["target"], params["port"])

        return send_point(_open(store_root), params["point"], params["target"],
                          port=int(params["port"]), identity=params["identity"],
                          known_hosts=params["known_hosts"], dest=params["dest"],
                          progress=progress)  # fmt: skip
    from agent.restore.files import open_point_filesystem, restore_files
    from agent.restore.refused_paths import refused_paths_logged

    check_write_folder(store_root, params["dest"])  # again: a folder swapped for a symlink
    with refused_paths_logged(store_root, "restore-files", params["point"], params["paths"]):
        fs = open_point_filesystem(_open(store_root), params["point"], params.get("partition"))
        overwrite = bool(params.get("overwrite"))
        result = restore_files(
            fs, params["paths"], params["dest"], overwrite=overwrite, progress=progress
        )
    return {**result, "point": params["point"]}


def _restore_cleanup(store_root: Path, params: dict, worker_pid: int) -> list:
    if params.get("mode") == "baremetal":
        return []  # the target keeps what it received; its receiver reports no hash
    from agent.restore.files import remove_partial_files

    return remove_partial_files(params["dest"], pid=worker_pid)


def _export(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.confinement import check_write_folder
    from agent.restore.export import export_point

    check_write_folder(store_root, params["dest"], "export folder", export=True)

    return export_point(
        _open(store_root), params["point"], params["dest"], params["format"], progress=progress
    )


def _export_cleanup(store_root: Path, params: dict, worker_pid: int) -> list:
    from agent.restore.export import remove_partial_export

    return remove_partial_export(params["dest"], params["point"], params["format"])


# -- off-site ----------------------------------------------------------------------------------
def _replicate(store_root: Path, params: dict, progress: Progress) -> dict:
    from agent.service.offsite import run_replicate

    return run_replicate(store_root, params, progress)


def _replicate_failure(result: dict) -> str | None:
    skipped = result.get("skipped") or []
    if not skipped:
        return None
    named = "; ".join(f"{s['point']}: {s['reason']}" for s in skipped[:3])
    return f"{len(skipped)} point(s) not sent: {named}"


def _replicate_summary(result: dict) -> str:
    return (
        f"{result.get('points_sent', 0)} point(s), {result.get('bytes_sent', 0):,} bytes sent "
        f"to vault {result.get('vault')}; {result.get('points_on_vault')}/"
        f"{result.get('points_local')} points off-site"
    )


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            "backup", _backup, _describe_source, cleanup=_backup_cleanup, summary=_backup_summary
        ),
        JobKind("verify", _verify, _describe_points, failure=_verify_failure),
        JobKind("rollup", _rollup, lambda params: "of the whole store"),
        JobKind("virtualize", _virtualize, _point_only, stall_seconds=lambda params: None),
        JobKind(
            "bootcheck",
            _bootcheck,
            _point_only,
            # It has its own timeout; the supervisor only steps in when that fails to fire.
            stall_seconds=lambda p: float(p.get("timeout", 300)) + BOOTCHECK_GRACE_SECONDS,
            failure=_bootcheck_failure,
            cleanup=_bootcheck_cleanup,
        ),
        JobKind("restore", _restore, _point_only, cleanup=_restore_cleanup),
        JobKind("export", _export, _point_only, cleanup=_export_cleanup),
        JobKind(
            "replicate",
            _replicate,
            lambda params: f"to {params.get('target') or 'the configured vault'}",
            failure=_replicate_failure,
            summary=_replicate_summary,
        ),
    )
}
