"""Long jobs that run detached on the appliance, with a record and a log on disk.

A job (a backup, a verify, a rollup) is started by the rpc or the scheduler and runs in its
own session (``start_new_session``), so a dropped SSH connection or a restarted portal does
not stop it: the portal reattaches by reading the record again. The runner executes the
agent's own CLI (the contract of shared/DESIGN.md) with ``--json`` and folds its progress
events into the record, which it rewrites atomically at most a few times a second.

Record: ``<store>/appliance/jobs/<id>.json``; log: ``<id>.log`` beside it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from agent.appliance_config import write_json_atomic
from agent.chunkstore import pid_alive

ACTIVE = ("queued", "running")
PROGRESS_WRITE_INTERVAL = 0.5
KINDS = ("backup", "verify", "rollup", "virtualize", "bootcheck")

KINDS += ("restore", "export")  # issue 7: file restore, bare metal, image export


class JobError(Exception):
    """A job request the appliance refuses (``code`` says why, for the rpc)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def _jobs_dir(store: Path) -> Path:
    path = Path(store) / "appliance" / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _pid_alive(pid: int | None) -> bool:
    if not pid or not pid_alive(pid):
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True


def _write(store: Path, job: dict) -> None:
    write_json_atomic(_jobs_dir(store) / f"{job['id']}.json", job)


def read_job(store: Path, job_id: str) -> dict:
    """The job's record; a job whose runner died unrecorded is reported failed."""
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise JobError("not_found", f"no job {job_id!r}")
    path = _jobs_dir(store) / f"{job_id}.json"
    try:
        job = json.loads(path.read_text())
    except FileNotFoundError:
        raise JobError("not_found", f"no job {job_id!r}") from None
    if job["state"] in ACTIVE and not _pid_alive(job.get("runner_pid")):
        # The runner writes its record before it exits; a live record with a dead runner
        # means it was killed. Say so once, on disk.
        if job["state"] == "queued" and time.time() - job.get("created_ts", 0) < 10:
            return job
        job.update(
            state="failed",
            finished_at=_now(),
            error="the job's runner process ended unexpectedly (killed or appliance restarted)",
        )
        _write(store, job)
    return job


def list_jobs(store: Path, *, active_only: bool = False, limit: int = 100) -> list[dict]:
    paths = sorted(_jobs_dir(store).glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    jobs = []
    for path in paths:
        try:
            job = read_job(store, path.stem)
        except (JobError, json.JSONDecodeError):
            continue
        if active_only and job["state"] not in ACTIVE:
            continue
        jobs.append(job)
        if len(jobs) >= limit:
            break
    return jobs


def _command(job: dict) -> list[str]:
    params = job["params"]
    if job["kind"] == "backup" and params.get("vm"):  # the server runs as a VM: its disk
        return ["vm", "backup", params["vm"]] + (["--at", params["at"]] if params.get("at") else [])
    if job["kind"] == "virtualize":
        return ["vm", "run", params["vm"]]
    if job["kind"] == "bootcheck":
        cmd = ["bootcheck", params["point"], "--timeout", str(params.get("timeout", 300))]
        return cmd + (["--marker", params["marker"]] if params.get("marker") else [])
    if job["kind"] == "backup":
        cmd = ["backup", params["server"], params["source"], "--volume", params["volume"]]
        if params.get("at"):
            cmd += ["--at", params["at"]]
        return cmd
    if job["kind"] == "verify":
        return ["verify", *params.get("points", [])]
    if job["kind"] == "rollup":
        return ["rollup"] + (["--now", params["now"]] if params.get("now") else [])
    if job["kind"] in ("restore", "export"):  # file restore, bare metal, image export
        from agent.rpc_files import job_command

        return job_command(job)
    raise JobError("bad_request", f"unknown job kind {job['kind']!r}")


def start_job(store: Path, kind: str, params: dict, *, ref: str = "") -> dict:
    """Start a detached job, or return the existing one with the same ``ref`` (idempotent).

    One active job per server and kind: a second one is refused with code ``busy``.
    """
    if kind not in KINDS:
        raise JobError("bad_request", f"unknown job kind {kind!r}")
    store = Path(store)
    # Two callers starting the same job at once must not both pass the checks below.
    with open(_jobs_dir(store) / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(store, kind, params, ref)


def _start_locked(store: Path, kind: str, params: dict, ref: str) -> dict:
    active = list_jobs(store, limit=1000)
    for job in active:
        if ref and job.get("ref") == ref:
            return job
    for job in active:
        if (
            job["state"] in ACTIVE
            and job["kind"] == kind
            and job["params"].get("server") == params.get("server")
        ):
            raise JobError(
                "busy",
                f"a {kind} of {params.get('server') or 'the store'} is already "
                f"running as job {job['id']}",
            )
    job_id = f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
    job = {
        "id": job_id,
        "kind": kind,
        "params": params,
        "ref": ref,
        "state": "queued",
        "created_at": _now(),
        "created_ts": time.time(),
        "started_at": None,
        "finished_at": None,
        "bytes_done": 0,
        "bytes_total": 0,
        "error": "",
        "result": None,
        "runner_pid": None,
        "child_pid": None,
    }
    _write(store, job)
    log = open(_jobs_dir(store) / f"{job_id}.log", "ab")  # noqa: SIM115 (handed to the child)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.jobs", str(store), job_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        log.close()
    # The runner records its own pid when it starts; until then the record says "queued".
    return {**job, "runner_pid": proc.pid}


def cancel_job(store: Path, job_id: str) -> dict:
    job = read_job(store, job_id)
    if job["state"] in ACTIVE and job.get("runner_pid"):
        try:
            os.kill(job["runner_pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        for _ in range(100):
            job = read_job(store, job_id)
            if job["state"] not in ACTIVE:
                break
            time.sleep(0.05)
    return job


def read_log(store: Path, job_id: str, max_bytes: int = 64 * 1024) -> str:
    read_job(store, job_id)
    path = _jobs_dir(store) / f"{job_id}.log"
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - max_bytes))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _fold_event(job: dict, event: dict) -> None:
    """Take a CLI ``--json`` progress event into the record."""
    for key in ("bytes_done", "bytes_total", "eta_seconds", "rate", "phase"):
        if key in event:
            job[key] = event[key]


def _describe(params: dict) -> str:
    if "point" in params and "source" not in params:
        return f"of point {params['point']}"
    if "server" in params:
        return f"of {params['server']} volume {params['volume']} from {params['source']}"
    if params.get("points"):
        return f"of {len(params['points'])} point(s)"
    return "of the whole store"


def _summary(job: dict, code: int, cancelled: bool, stderr: str) -> str:
    result = job.get("result")
    if cancelled:
        return "cancelled on request"
    if code == 0 and job["kind"] == "backup" and isinstance(result, dict):
        return (
            f"recovery point {result.get('id')}: {result.get('size', 0):,} bytes read, "
            f"{result.get('chunks_new', 0)} new chunks, "
            f"{result.get('stored_bytes', 0):,} bytes stored"
        )
    if code == 0:
        return f"{job['kind']} finished"
    return f"{job['kind']} failed (exit {code}): {(stderr.strip().splitlines() or [''])[-1]}"


def run(store: Path, job_id: str) -> int:
    """The detached runner: execute the job's CLI command and keep the record current."""
    store = Path(store)
    job = json.loads((_jobs_dir(store) / f"{job_id}.json").read_text())
    job.update(state="running", started_at=_now(), runner_pid=os.getpid())
    cmd = [sys.executable, "-m", "agent", "--store", str(store), "--json", *_command(job)]
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    job["child_pid"] = child.pid
    _write(store, job)
    print(f"{job['started_at']} started {job['kind']} {_describe(job['params'])}", flush=True)
    cancelled = False

    def on_term(signum, frame):
        nonlocal cancelled
        cancelled = True
        child.terminate()

    signal.signal(signal.SIGTERM, on_term)
    # With --json the CLI prints progress events as JSON lines on stderr and its result as
    # one JSON document on stdout. Read stderr here, stdout in a thread.
    out_lines: list[str] = []
    reader = threading.Thread(target=lambda: out_lines.extend(child.stdout), daemon=True)
    reader.start()
    last_write = 0.0
    errors: list[str] = []
    assert child.stderr is not None
    for line in child.stderr:
        line = line.strip()
        if not line:
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            event = None
        if isinstance(event, dict) and event.get("event") == "progress":
            _fold_event(job, event)
            if time.monotonic() - last_write >= PROGRESS_WRITE_INTERVAL:
                _write(store, job)
                last_write = time.monotonic()
            continue
        errors.append(line)
        print(line, file=sys.stderr, flush=True)
    code = child.wait()
    reader.join(timeout=10)
    output = "".join(out_lines).strip()
    if output:
        try:
            job["result"] = json.loads(output.splitlines()[-1])
        except json.JSONDecodeError:
            print(output, flush=True)
    stderr = "\n".join(errors)
    job["exit_code"] = code
    job["finished_at"] = _now()
    print(f"{job['finished_at']} {_summary(job, code, cancelled, stderr)}", flush=True)
    if cancelled:
        job.update(state="cancelled", error="cancelled on request")
    elif code == 0:
        job["state"] = "succeeded"
        if job["bytes_total"]:
            job["bytes_done"] = job["bytes_total"]
    else:
        last = (stderr.strip().splitlines() or [""])[-1]
        result = job.get("result")
        if job["kind"] == "verify" and code == 3 and isinstance(result, dict):
            damaged = [p["id"] for p in result.get("damaged_points", [])]
            reason = f"verify found damage in {len(damaged)} point(s): {', '.join(damaged)}"
        elif job["kind"] == "bootcheck" and code == 3 and isinstance(result, dict):
            reason = f"point {result.get('point')} did not boot: {result.get('reason')}"
        elif code < 0:
            reason = f"bdr-agent {job['kind']} was killed by signal {-code}"
            if job["kind"] == "backup":
                reason += "; no recovery point was written"
        else:
            reason = last or f"bdr-agent {job['kind']} failed with exit code {code}"
        job.update(state="failed", error=reason)
    _write(store, job)
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2]))
