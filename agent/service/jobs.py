"""Long jobs that run detached on the appliance: their records, starting and cancelling.

A job (a backup, a verify, a restore...) is started by the rpc or the scheduler and runs in
its own session, so a dropped SSH connection or a restarted portal does not stop it: the
portal reattaches by reading the record again. Every job runs through one entry point,
``python -m agent.service.job STORE ID`` (the supervisor, ``agent.service.job``), which
finds what to do in the registry of job kinds (``agent.service.job_kinds``).

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
import time
from pathlib import Path

from agent.records import process_alive, text_tail, utc_now, write_json_atomic
from agent.service.job_kinds import KINDS

ACTIVE = ("queued", "running")
# A cancelled job's worker gets this long to stop before its process group is killed.
CANCEL_GRACE_SECONDS = 5.0


class JobError(Exception):
    """A job request the appliance refuses (``code`` says why, for the rpc)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def jobs_dir(store: Path) -> Path:
    """The folder of job records and logs."""
    path = Path(store) / "appliance" / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_job(store: Path, job: dict) -> None:
    """Replace the job's record on disk (atomically)."""
    write_json_atomic(jobs_dir(store) / f"{job['id']}.json", job)


def read_job(store: Path, job_id: str) -> dict:
    """The job's record; a job whose runner died unrecorded is reported failed."""
    if not job_id or "/" in job_id or job_id.startswith("."):
        raise JobError("not_found", f"no job {job_id!r}")
    path = jobs_dir(store) / f"{job_id}.json"
    try:
        job = json.loads(path.read_text())
    except FileNotFoundError:
        raise JobError("not_found", f"no job {job_id!r}") from None
    if job["state"] in ACTIVE and not process_alive(job.get("runner_pid")):
        # The runner writes its record before it exits; a live record with a dead runner
        # means it was killed. Say so once, on disk.
        if job["state"] == "queued" and time.time() - job.get("created_ts", 0) < 10:
            return job
        job.update(
            state="failed",
            finished_at=utc_now(),
            error="the job's runner process ended unexpectedly (killed or appliance restarted)",
        )
        write_job(store, job)
    return job


def list_jobs(store: Path, *, active_only: bool = False, limit: int = 100) -> list[dict]:
    """Job records, newest first."""
    paths = sorted(jobs_dir(store).glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
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


def start_job(store: Path, kind: str, params: dict, *, ref: str = "") -> dict:
    """Start a detached job, or return the existing one with the same ``ref`` (idempotent).

    One active job per server and kind: a second one is refused with code ``busy``.
    """
    if kind not in KINDS:
        raise JobError("bad_request", f"unknown job kind {kind!r}")
    store = Path(store)
    # Two callers starting the same job at once must not both pass the checks below.
    with open(jobs_dir(store) / ".start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _start_locked(store, kind, params, ref)


def _start_locked(store: Path, kind: str, params: dict, ref: str) -> dict:
    existing = list_jobs(store, limit=1000)
    for job in existing:
        if ref and job.get("ref") == ref:
            return job
    for job in existing:
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
    job = _new_record(kind, params, ref)
    write_job(store, job)
    log = open(jobs_dir(store) / f"{job['id']}.log", "ab")  # noqa: SIM115 (handed to the child)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.service.job", str(store), job["id"]],
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


def _new_record(kind: str, params: dict, ref: str) -> dict:
    return {
        "id": f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
        "kind": kind,
        "params": params,
        "ref": ref,
        "state": "queued",
        "created_at": utc_now(),
        "created_ts": time.time(),
        "started_at": None,
        "finished_at": None,
        "progress_at": None,
        "bytes_done": 0,
        "bytes_total": 0,
        "error": "",
        "result": None,
        "runner_pid": None,
        "child_pid": None,
    }


def cancel_job(store: Path, job_id: str) -> dict:
    """Ask a running job to stop; its record once it has. The supervisor gives the worker
    ``CANCEL_GRACE_SECONDS`` to stop, then kills its process group (a frozen worker too), so
    waiting a little longer than that returns the job's end in all but a broken appliance."""
    job = read_job(store, job_id)
    if job["state"] in ACTIVE and job.get("runner_pid"):
        try:
            os.kill(job["runner_pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + CANCEL_GRACE_SECONDS + 5
        while time.monotonic() < deadline:
            job = read_job(store, job_id)
            if job["state"] not in ACTIVE:
                break
            time.sleep(0.05)
    return job


def read_log(store: Path, job_id: str, max_bytes: int = 64 * 1024) -> str:
    """The tail of the job's log."""
    read_job(store, job_id)
    return text_tail(jobs_dir(store) / f"{job_id}.log", max_bytes)
