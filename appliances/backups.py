"""Jobs on appliances, as the portal runs them: start, follow, reattach, finish.

A job row is created by a service (one active job per server and kind, enforced by a
partial unique constraint), then a task dispatches it to the agent with ``ref`` set to the
job's id, so a task delivered twice reattaches to the same agent job instead of starting
another. Following reads the agent's job record until it ends; if the connection drops the
follower reconnects and carries on, and a follower that died is replaced by the poller.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances import sync
from appliances.client import AgentError, TransportError
from appliances.models import Alert, Job, JobKind, JobState, ProtectedServer, Severity
from portal import audit
from portal.models import User

log = logging.getLogger(__name__)
PROGRESS_SAVE_INTERVAL = 1.0
STALE_FOLLOWER = dt.timedelta(minutes=2)


def start_backup(
    server: ProtectedServer, *, actor: User | None, request=None, volume: str = ""
) -> Job:
    """Queue "Back up now" for ``server``; refuses a second backup while one is active."""
    if not server.volumes.exists():
        raise ValidationError(f"{server} has no volumes to back up yet.")
    if server.appliance.state != "online":
        state = server.appliance.get_state_display().lower()
        raise ValidationError(f"{server.appliance.name} is {state}.")
    return _queue_job(server, JobKind.BACKUP, {"volume": volume} if volume else {}, actor, request)


def _queue_job(server: ProtectedServer, kind: str, params: dict, actor, request) -> Job:
    """Create the Job row (one active per server and kind), audit it, dispatch after commit."""
    try:
        with transaction.atomic():
            job = Job.objects.create(
                appliance=server.appliance,
                server=server,
                kind=kind,
                params=params,
                requested_by=actor if actor and actor.is_authenticated else None,
            )
    except IntegrityError:
        raise ValidationError(f"A {kind} of {server} is already running.") from None
    audit.record(actor, f"{kind}.start", server, request=request, detail={"job": job.pk})
    from appliances import tasks

    transaction.on_commit(lambda: tasks.run_job.delay(job.pk))
    return job


def dispatch_job(job_id: int) -> Job:
    """Start the agent side of a queued job (idempotent: reattaches if already started)."""
    job = Job.objects.select_related("appliance", "server").get(pk=job_id)
    if job.state not in (JobState.QUEUED, JobState.RUNNING):
        return job
    try:
        with sync.open_agent(job.appliance) as agent:
            if job.server is not None:
                sync.push_server_config(job.server, agent)
            # job.params are the rpc's parameters for "<kind>.start"; the ref makes it idempotent.
            params = {k: v for k, v in job.params.items() if v not in ("", None)}
            params["ref"] = f"portal-job-{job.pk}"
            if job.kind == JobKind.BACKUP:
                params["server"] = job.server.name
            record = agent.call(f"{job.kind}.start", **params)
    except (AgentError, TransportError, sync.ApplianceUnavailable) as exc:
        return finish(job, JobState.FAILED, f"could not start on the appliance: {exc}")
    Job.objects.filter(pk=job.pk).update(
        agent_job_id=record["id"], state=JobState.RUNNING, started_at=timezone.now()
    )
    job.refresh_from_db()
    return job


def apply_record(job: Job, record: dict) -> Job:
    """Fold the agent's job record into the portal's Job."""
    job.bytes_done = int(record.get("bytes_done") or 0)
    job.bytes_total = int(record.get("bytes_total") or 0)
    state = record.get("state")
    if state in ("succeeded", "failed", "cancelled"):
        return finish(job, state, record.get("error") or "", record=record)
    job.save(update_fields=["bytes_done", "bytes_total", "updated_at"])
    return job


def finish(job: Job, state: str, error: str = "", record: dict | None = None) -> Job:
    """Record a job's end, mirror new points, and raise an alert on failure."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.state not in (JobState.QUEUED, JobState.RUNNING):
            return locked  # another follower got here first
        locked.state = state
        locked.error = error[:2000]
        if record and isinstance(record.get("result"), dict):
            locked.params = {**locked.params, "result": record["result"]}
        locked.bytes_done, locked.bytes_total = job.bytes_done, job.bytes_total
        locked.finished_at = timezone.now()
        if record and record.get("finished_at"):
            locked.finished_at = (
                parse_datetime(record["finished_at"].replace("Z", "+00:00")) or locked.finished_at
            )
        locked.save()
        if state == JobState.FAILED:
            what = locked.server or locked.appliance.name
            Alert.objects.create(
                customer_id=locked.appliance.customer_id,
                appliance_id=locked.appliance_id,
                kind=f"{locked.kind}_failed",
                severity=Severity.CRITICAL,
                message=f"{locked.get_kind_display()} of {what} failed: {error}"[:500],
            )
    if locked.kind == JobKind.VERIFY and record and isinstance(record.get("result"), dict):
        _record_verification(locked, record["result"])
    if state == JobState.SUCCEEDED:
        try:
            sync.poll_appliance(locked.appliance)
        except sync.ApplianceUnavailable as exc:
            log.warning("job %s finished but points could not be synced: %s", locked.pk, exc)
    return locked


def start_verify(server: ProtectedServer, *, actor: User | None, request=None) -> Job:
    """Queue a verify of every recovery point of ``server`` (re-reads and authenticates chunks)."""
    from restores.models import RecoveryPoint

    point_ids = list(RecoveryPoint.objects.filter(server=server).values_list("agent_id", flat=True))
    if not point_ids:
        raise ValidationError(f"{server} has no recovery points to verify yet.")
    return _queue_job(server, JobKind.VERIFY, {"points": point_ids}, actor, request)


def _record_verification(job: Job, report: dict) -> None:
    from restores.models import RecoveryPoint

    damaged = {p["id"] for p in report.get("damaged_points", [])}
    checked = RecoveryPoint.objects.filter(
        server__appliance=job.appliance, agent_id__in=job.params.get("points", [])
    )
    checked.filter(agent_id__in=damaged).update(verified=False)
    checked.exclude(agent_id__in=damaged).update(verified=True)


def refresh_job(job: Job) -> Job:
    """Read the agent's record of ``job`` once and fold it in."""
    if not job.agent_job_id or not job.is_active:
        return job
    try:
        with sync.open_agent(job.appliance, retries=()) as agent:
            record = agent.call("jobs.status", id=job.agent_job_id)
            log_text = agent.call("jobs.log", id=job.agent_job_id)["log"]
    except (TransportError, sync.ApplianceUnavailable):
        return job
    except AgentError as exc:
        return finish(job, JobState.FAILED, f"the appliance lost the job: {exc}")
    job.log = log_text[-20000:]
    job.save(update_fields=["log"])
    return apply_record(job, record)


def follow_job(job_id: int, *, max_seconds: float = 6 * 3600) -> Job:
    """Follow a running job until it ends, reconnecting when the connection drops."""
    job = Job.objects.select_related("appliance", "server").get(pk=job_id)
    deadline = time.monotonic() + max_seconds
    while job.is_active and job.agent_job_id and time.monotonic() < deadline:
        last_save = 0.0

        def on_event(record, job=job):
            nonlocal last_save
            if time.monotonic() - last_save >= PROGRESS_SAVE_INTERVAL:
                apply_record(job, record)
                last_save = time.monotonic()

        try:
            with sync.open_agent(job.appliance) as agent:
                record = agent.call(
                    "jobs.follow",
                    on_event=on_event,
                    id=job.agent_job_id,
                    timeout=min(600, max_seconds),
                )
                log_text = agent.call("jobs.log", id=job.agent_job_id)["log"]
            job.log = log_text[-20000:]
            job.save(update_fields=["log"])
            job = apply_record(job, record)
        except TransportError as exc:
            log.warning(
                "lost appliance %s while following job %s: %s", job.appliance.serial, job.pk, exc
            )
            time.sleep(2)
        except AgentError as exc:
            return finish(job, JobState.FAILED, f"the appliance lost the job: {exc}")
        except sync.ApplianceUnavailable as exc:
            return finish(job, JobState.FAILED, str(exc))
        job.refresh_from_db()
    return job


def stale_jobs():
    """Running jobs whose follower has not written for a while (a portal restart, a lost task)."""
    return Job.objects.filter(
        state=JobState.RUNNING, updated_at__lt=timezone.now() - STALE_FOLLOWER
    ).exclude(agent_job_id="")
