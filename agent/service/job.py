"""``python -m agent.service.job STORE ID``: the one entry point of every detached job.

It is a supervisor. It starts the worker (this module with ``--worker``) in a process
group of its own, which calls the library function the registry names for the job's kind
(``agent.service.job_kinds``) and sends its progress, then its result, as JSON lines on a
pipe. The supervisor folds them into the job's record (``progress_at`` says when progress
last changed) and watches: a job with no progress (bytes done, phase, heartbeat) for its
kind's stall limit is stopped. The worker's whole process group gets SIGKILL (so
``qemu-img``, ssh, qemu die too, and a stopped process as well), what the run left
half-written is removed, and the record says ``failed`` and why. ``jobs.cancel`` (SIGTERM
to the supervisor) ends the worker the same way, after a short grace for a VM to power off.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import Refused, failure_line
from agent.records import utc_now
from agent.service.job_kinds import KINDS, JobKind
from agent.service.jobs import CANCEL_GRACE_SECONDS, jobs_dir, write_job

PROGRESS_WRITE_INTERVAL = 0.5
PROGRESS_KEYS = ("bytes_done", "bytes_total", "eta_seconds", "rate", "phase")


def stall_limit(kind: JobKind, params: dict) -> float | None:
    """Seconds without progress after which the job is stopped (None: no limit)."""
    limit = kind.stall_seconds(params)
    if limit is None:
        return None
    if os.environ.get("BDR_JOB_STALL_SECONDS"):
        limit = float(os.environ["BDR_JOB_STALL_SECONDS"])
    if params.get("stall_seconds"):
        limit = float(params["stall_seconds"])
    return limit


@dataclass
class _Watch:
    """What the supervisor knows of its worker so far."""

    limit: float | None
    last_change: float = field(default_factory=time.monotonic)
    signature: tuple = ()
    outcome: dict | None = None  # the worker's "result" or "error" event
    stalled: bool = False
    cancelled: bool = False
    kill_at: float | None = None


def supervise_job(store: Path, job_id: str) -> int:
    """Run job ``job_id`` to its end and leave its final record; always returns 0."""
    store = Path(store)
    job = json.loads((jobs_dir(store) / f"{job_id}.json").read_text())
    kind = KINDS[job["kind"]]
    watch = _Watch(stall_limit(kind, job["params"]))
    workers: list[int] = []

    def on_term(signum, frame):  # jobs.cancel: stop the work, VMs get a moment to power off
        watch.cancelled = True
        watch.kill_at = time.monotonic() + CANCEL_GRACE_SECONDS
        for pid in workers:
            _signal(pid, signal.SIGTERM)

    # Installed before the record says "running": a cancel that follows it is never lost.
    signal.signal(signal.SIGTERM, on_term)
    read_fd, write_fd = os.pipe()
    worker = subprocess.Popen(
        [sys.executable, "-m", "agent.service.job", "--worker", str(store), job_id, str(write_fd)],
        stdin=subprocess.DEVNULL,
        pass_fds=(write_fd,),
        start_new_session=True,  # its own process group: one killpg ends it and its helpers
    )
    workers.append(worker.pid)
    if watch.cancelled:  # cancelled while the worker was being started
        _signal(worker.pid, signal.SIGTERM)
    os.close(write_fd)
    job.update(state="running", started_at=utc_now(), progress_at=utc_now(),
               runner_pid=os.getpid(), child_pid=worker.pid, stall_seconds=watch.limit)  # fmt: skip
    write_job(store, job)
    print(f"{job['started_at']} started {kind.name} {kind.describe(job['params'])}", flush=True)
    _follow(store, job, read_fd, worker, watch)
    code = worker.wait()
    _kill_group(worker.pid)  # whatever the worker left running (it ended or was killed)
    _finish(store, job, kind, watch, code)
    return 0


def _follow(store: Path, job: dict, fd: int, worker: subprocess.Popen, watch: _Watch) -> None:
    """Fold the worker's events into the record until its pipe closes; stop it on a stall."""
    buffer, last_write, dirty = b"", 0.0, False
    while True:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                dirty |= _fold(job, line, watch)
        now = time.monotonic()
        if watch.kill_at is not None and now >= watch.kill_at:
            _kill_group(worker.pid)
            watch.kill_at = None
        if (
            watch.limit is not None
            and not watch.cancelled
            and now - watch.last_change > watch.limit
        ):
            watch.stalled = True
            _kill_group(worker.pid)
            break
        if dirty and now - last_write >= PROGRESS_WRITE_INTERVAL:
            write_job(store, job)
            last_write, dirty = now, False
    os.close(fd)


def _fold(job: dict, line: bytes, watch: _Watch) -> bool:
    """Take one event into the record; True if the record changed."""
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict):
        return False
    if event.get("event") in ("result", "error"):
        watch.outcome = event
        return True
    if event.get("event") != "progress":
        return False
    for key in PROGRESS_KEYS:
        if key in event:
            job[key] = event[key]
    signature = (event.get("phase"), event.get("bytes_done"), event.get("beats"))
    if signature != watch.signature:
        watch.signature, watch.last_change = signature, time.monotonic()
        job["progress_at"] = utc_now()
    return True


def _finish(store: Path, job: dict, kind: JobKind, watch: _Watch, code: int):
    outcome = watch.outcome or {}
    failure = outcome.get("failure") if outcome.get("event") == "result" else None
    ok = outcome.get("event") == "result" and not watch.stalled and not watch.cancelled
    removed: list[str] = []
    if not ok:  # the run ended early: remove what it left half-written
        removed = kind.cleanup(store, job["params"], job["child_pid"])
        for what in removed:
            print(f"removed partial output: {what}", flush=True)
    job["finished_at"] = utc_now()
    if "result" in outcome:
        job["result"] = outcome["result"]
    if ok and not failure:
        job.update(state="succeeded", exit_code=0)
        job["bytes_done"] = job["bytes_total"] or job["bytes_done"]
        summary = kind.summary(outcome["result"]) if kind.summary else f"{kind.name} finished"
    elif watch.cancelled:
        job.update(state="cancelled", error="cancelled on request", exit_code=-signal.SIGTERM)
        summary = "cancelled on request"
    else:
        reason = failure or _failure_reason(job, kind, watch, outcome, code, removed)
        job.update(state="failed", error=reason, exit_code=3 if failure else _exit(outcome, code))
        if outcome.get("code"):
            job["error_code"] = outcome["code"]
        summary = f"{kind.name} failed: {reason}"
    print(f"{job['finished_at']} {summary}", flush=True)
    write_job(store, job)


def _failure_reason(job, kind, watch, outcome, code, removed) -> str:
    if watch.stalled:
        during = job.get("phase") or kind.name
        left = "partial output removed" if removed else "it left no partial output"
        return f"no progress for {watch.limit:g} s during {during}; stopped, {left}"
    if outcome.get("event") == "error":
        return outcome.get("message") or f"{kind.name} failed"
    if code < 0:
        reason = f"the {kind.name} worker was killed by signal {-code}"
        return reason + ("; no recovery point was written" if kind.name == "backup" else "")
    return f"the {kind.name} worker ended with exit code {code} and no result"


def _exit(outcome: dict, code: int) -> int:
    return int(outcome.get("exit_code") or code or 1)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# -- the worker --------------------------------------------------------------------------------
def work(store: Path, job_id: str, events_fd: int) -> int:
    """Do the job's work in this process: the registry's library call for its kind."""
    from agent.store.memory import tune_malloc
    from agent.store.progress import Progress

    tune_malloc()
    events = os.fdopen(events_fd, "w", buffering=1)
    job = json.loads((jobs_dir(store) / f"{job_id}.json").read_text())
    kind = KINDS[job["kind"]]
    try:
        result = kind.run(Path(store), job["params"], Progress("json", stream=events))
    except Exception as exc:  # noqa: BLE001 - reported in the record, with a traceback if a bug
        line = failure_line(exc)
        if line is None:
            traceback.print_exc()
            line = (f"{type(exc).__name__}: {exc}", 1)
        print(f"bdr-agent: {line[0]}", file=sys.stderr, flush=True)
        error = {"event": "error", "message": line[0], "exit_code": line[1]}
        if isinstance(exc, Refused):  # the record says so, and the portal audits it
            error["code"] = "refused"
        events.write(json.dumps(error))
        events.write("\n")
        return line[1]
    event = {"event": "result", "result": result, "failure": kind.failure(result)}
    events.write(json.dumps(event) + "\n")
    return 0


def main(argv: list[str]) -> int:
    """``STORE ID`` supervises a job; ``--worker STORE ID FD`` is the supervisor's worker."""
    if argv[:1] == ["--worker"]:
        return work(Path(argv[1]), argv[2], int(argv[3]))
    return supervise_job(Path(argv[0]), argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
