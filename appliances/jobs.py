"""The life cycle of a job on an appliance, the same for every kind (job_kinds.py says what
differs between kinds).

- ``queue_job``: a service asks for a job. The appliance must be in a state that takes jobs;
  one job is active per scope (per server and kind, or per appliance and kind for jobs of
  the whole appliance: partial unique constraints on Job); the request is audited, and the
  job is dispatched once the transaction commits.
- ``dispatch_job``: the task starts it on the agent in one session (the server's config
  first when the kind wants it), with ``ref`` set to the job's id, so a task delivered twice
  reattaches to the same agent job instead of starting another.
- ``follow_job``: reads the agent's record until the job ends, reconnecting when the
  connection drops; the poller replaces a follower that died (``stale_followers``).
- ``finish_job``: records the end, alerts on failure, and lets the kind's handler say what
  the result means, in the follower's session.
- the watchdog (``stalled_jobs`` + ``stop_if_stalled``): a job that has not moved for its
  kind's stall limit is cancelled on the appliance and fails with the reason in words.

Tasks (appliances/tasks.py) import this module; this module sends tasks by name only.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances import sync
from appliances.client import AgentClient, AgentError, TransportError
from appliances.confinement import audit_refusal
from appliances.job_kinds import REGISTRY, job_type
from appliances.models import Alert, Appliance, Job, JobState, ProtectedServer, Severity
from portal import audit
from portal.celery import app as celery_app
from portal.models import User

log = logging.getLogger(__name__)
PROGRESS_SAVE_INTERVAL = 1.0
STALE_FOLLOWER = dt.timedelta(minutes=2)
ENDED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)
UNREACHABLE = (TransportError, sync.ApplianceUnavailable)


def queue_job(
    kind: str,
    appliance: Appliance,
    *,
    server: ProtectedServer | None = None,
    params: dict | None = None,
    actor: User | None = None,
    request=None,
    audit_as: tuple[str, object] | None = None,
    detail: dict | None = None,
    with_job=None,
) -> Job:
    """Create the Job (one active per scope), audit it, and dispatch it after the commit.

    ``audit_as`` is (action, object) for the audit log (default "<kind>.start" on the server
    or appliance); ``with_job(job)`` makes rows that belong to the job in the same
    transaction and returns more audit detail.
    """
    kind_of = job_type(kind)
    if not appliance.takes_jobs:
        raise ValidationError(f"{appliance.name} is {appliance.get_state_display().lower()}.")
    try:
        with transaction.atomic():
            job = Job.objects.create(
                appliance=appliance,
                server=server,
                kind=kind,
                params=params or {},
                requested_by=actor if actor and actor.is_authenticated else None,
            )
            extra = with_job(job) if with_job else {}
    except IntegrityError:
        what = server or appliance.name
        raise ValidationError(f"A {kind_of.noun or kind} of {what} is already running.") from None
    action, target = audit_as or (f"{kind}.start", server or appliance)
    audit.record(actor, action, target, request=request,
                 detail={"job": job.pk, **(detail or {}), **extra})  # fmt: skip
    transaction.on_commit(lambda: send_task("appliances.tasks.run_job", job.pk))
    return job


def send_task(name: str, *args) -> None:
    """Queue a task by name (run at once when Celery runs tasks eagerly)."""
    celery_app.signature(name, args=args).delay()


def dispatch_job(job_id: int) -> Job:
    """Start the agent side of a queued job (idempotent: reattaches if already started)."""
    job = Job.objects.select_related("appliance", "server").get(pk=job_id)
    if not job.is_active:
        return job
    kind_of = job_type(job.kind)
    # job.params are the rpc's parameters for "<kind>.start"; the ref makes it idempotent.
    params = {k: v for k, v in job.params.items() if v not in ("", None)}
    params.update(kind_of.start_params(job), ref=f"portal-job-{job.pk}")
    try:
        with sync.open_agent(job.appliance) as agent:
            if kind_of.prepare is not None:
                kind_of.prepare(job, agent)
            record = agent.call(kind_of.start_method or f"{job.kind}.start", **params)
    except (AgentError, *UNREACHABLE) as exc:
        audit_refusal(getattr(exc, "code", None), str(exc), job)  # the appliance said no
        return finish_job(job, JobState.FAILED, f"could not start on the appliance: {exc}")
    now = timezone.now()
    Job.objects.filter(pk=job.pk, state__in=[JobState.QUEUED, JobState.RUNNING]).update(
        agent_job_id=record["id"],
        state=JobState.RUNNING,
        started_at=Coalesce("started_at", now),
        progress_at=Coalesce("progress_at", now),
    )
    job.refresh_from_db()
    return job


def _when(value) -> dt.datetime | None:
    if not value:
        return None
    parsed = parse_datetime(str(value).replace("Z", "+00:00"))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def apply_record(
    job: Job, record: dict, *, agent: AgentClient | None = None, now: dt.datetime | None = None
) -> Job:
    """Fold the agent's job record into the portal's Job (and finish it if it ended)."""
    done = int(record.get("bytes_done") or 0)
    moved = _when(record.get("progress_at"))
    if moved is None and (done != job.bytes_done or job.progress_at is None):
        moved = now or timezone.now()  # the agent does not say: when the portal saw it move
    job.progress_at = moved or job.progress_at
    job.bytes_done, job.bytes_total = done, int(record.get("bytes_total") or 0)
    if record.get("state") in ENDED:
        return finish_job(job, record["state"], record.get("error") or "", record=record,
                          agent=agent)  # fmt: skip
    job.save(update_fields=["bytes_done", "bytes_total", "progress_at", "updated_at"])
    on_progress = job_type(job.kind).on_progress
    if on_progress is not None:
        on_progress(job, record, now or timezone.now())
    return job


def finish_job(
    job: Job,
    state: str,
    error: str = "",
    *,
    record: dict | None = None,
    agent: AgentClient | None = None,
) -> Job:
    """Record a job's end, alert on failure, then run its kind's handler for the result."""
    with transaction.atomic():
        locked = (
            Job.objects.select_for_update(of=("self",))
            .select_related("appliance", "server")
            .get(pk=job.pk)
        )
        if not locked.is_active:
            return locked  # another follower (or the watchdog) got here first
        locked.state, locked.error = state, error[:2000]
        if record and isinstance(record.get("result"), dict):
            locked.params = {**locked.params, "result": record["result"]}
        locked.bytes_done, locked.bytes_total = job.bytes_done, job.bytes_total
        locked.progress_at = job.progress_at
        locked.finished_at = _when((record or {}).get("finished_at")) or timezone.now()
        locked.save()
        if state == JobState.FAILED:
            audit_refusal((record or {}).get("error_code"), error, locked)
        if state == JobState.FAILED and job_type(locked.kind).alert_on_failure:
            Alert.objects.create(
                customer_id=locked.appliance.customer_id,
                appliance_id=locked.appliance_id,
                kind=f"{locked.kind}_failed",
                severity=Severity.CRITICAL,
                message=(
                    f"{locked.get_kind_display()} of {locked.server or locked.appliance.name} "
                    f"failed: {error}"
                )[:500],
            )
    try:
        job_type(locked.kind).on_finish(locked, agent)
    except (AgentError, TransportError) as exc:  # the poller's mirror catches up later
        log.warning("job %s finished; its result could not be recorded: %s", locked.pk, exc)
    return locked


def _save_log(job: Job, agent: AgentClient) -> None:
    job.log = agent.call("jobs.log", id=job.agent_job_id)["log"][-20000:]
    job.save(update_fields=["log"])


def refresh_job(
    job: Job, *, agent: AgentClient | None = None, now: dt.datetime | None = None
) -> Job:
    """Read the agent's record of ``job`` once and fold it in (in ``agent``'s session if given)."""
    if not job.agent_job_id or not job.is_active:
        return job
    if agent is None:
        try:
            with sync.open_agent(job.appliance, retries=()) as agent:
                return refresh_job(job, agent=agent, now=now)
        except UNREACHABLE:
            return job
    try:
        record = agent.call("jobs.status", id=job.agent_job_id)
        _save_log(job, agent)
    except AgentError as exc:
        return finish_job(job, JobState.FAILED, f"the appliance lost the job: {exc}")
    return apply_record(job, record, agent=agent, now=now)


def follow_in_session(job: Job, agent: AgentClient, timeout: float) -> Job:
    """Follow ``job`` in ``agent``'s session until it ends or ``timeout``; then read its log."""
    last_save = 0.0

    def on_event(record):
        nonlocal last_save
        # Progress only: the end is folded in below, once the answer has been read.
        due = time.monotonic() - last_save >= PROGRESS_SAVE_INTERVAL
        if due and record.get("state") not in ENDED:
            apply_record(job, record)
            last_save = time.monotonic()

    record = agent.call("jobs.follow", on_event=on_event, id=job.agent_job_id, timeout=timeout)
    _save_log(job, agent)
    return apply_record(job, record, agent=agent)


def follow_job(job_id: int, *, max_seconds: float = 6 * 3600) -> Job:
    """Follow a running job until it ends, reconnecting when the connection drops."""
    job = Job.objects.select_related("appliance", "server").get(pk=job_id)
    deadline = time.monotonic() + max_seconds
    while job.is_active and job.agent_job_id and time.monotonic() < deadline:
        try:
            with sync.open_agent(job.appliance) as agent:
                job = follow_in_session(job, agent, timeout=min(600, max_seconds))
        except TransportError as exc:
            log.warning(
                "lost appliance %s while following job %s: %s", job.appliance.serial, job.pk, exc
            )
            time.sleep(2)
        except AgentError as exc:
            return finish_job(job, JobState.FAILED, f"the appliance lost the job: {exc}")
        except sync.ApplianceUnavailable as exc:
            return finish_job(job, JobState.FAILED, str(exc))
        job.refresh_from_db()
    return job


def stale_followers(now: dt.datetime):
    """Running jobs whose follower has not written for a while (a portal restart, a lost task)."""
    return Job.objects.filter(state=JobState.RUNNING, updated_at__lt=now - STALE_FOLLOWER).exclude(
        agent_job_id=""
    )


# -- the watchdog -------------------------------------------------------------------------


def _last_moved(job: Job) -> dt.datetime:
    return job.progress_at or job.started_at or job.created_at


def stalled_jobs(now: dt.datetime):
    """Active jobs that have not moved for longer than their kind's stall limit (by the
    portal's copy; ``stop_if_stalled`` asks the appliance before it stops anything)."""
    overdue = Q()
    for kind, kind_of in REGISTRY.items():
        if kind_of.stall_limit is not None:
            overdue |= Q(kind=kind, last_moved__lt=now - kind_of.stall_limit)
    if not overdue:
        return Job.objects.none()
    return (
        Job.objects.filter(state__in=[JobState.QUEUED, JobState.RUNNING])
        .annotate(last_moved=Coalesce("progress_at", "started_at", "created_at"))
        .filter(overdue)
    )


def duration_words(delta: dt.timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes // 60} hours"
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def stop_if_stalled(job: Job, *, now: dt.datetime) -> Job:
    """Fail ``job`` if it has not moved for its kind's stall limit, cancelling it on the
    appliance first. The agent's record is read first (in the same session): a job that
    moved, or ended, meanwhile is left to its follower."""
    limit = job_type(job.kind).stall_limit
    if limit is None or not job.is_active or now - _last_moved(job) <= limit:
        return job
    if not job.agent_job_id:  # the dispatch task was lost: nothing runs on the appliance
        reason = f"not started on the appliance within {duration_words(limit)}"
        return finish_job(job, JobState.FAILED, reason)
    try:
        with sync.open_agent(job.appliance, retries=()) as agent:
            job = refresh_job(job, agent=agent, now=now)
            if not job.is_active or now - _last_moved(job) <= limit:
                return job
            return _cancel_stalled(job, agent, limit)
    except UNREACHABLE as exc:
        log.warning("job %s looks stalled; appliance unreachable: %s", job.pk, exc)
        return job  # asked again at the next poll


def _cancel_stalled(job: Job, agent: AgentClient, limit: dt.timedelta) -> Job:
    # The row stays locked while the appliance cancels, so a follower that sees the job end
    # "cancelled" meanwhile waits and then finds it already finished with this reason.
    with transaction.atomic():
        Job.objects.select_for_update().filter(pk=job.pk).first()
        record = agent.call("jobs.cancel", id=job.agent_job_id)
        how = (
            "stopped on the appliance"
            if record.get("state") in ENDED
            else "the appliance was asked to stop it"
        )
        return finish_job(
            job, JobState.FAILED, f"no progress for {duration_words(limit)}; {how}", agent=agent
        )
