"""Celery tasks: thin, idempotent, ids in, services do the work."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from appliances import jobs, sync
from appliances.models import Appliance, ApplianceState, Job


@shared_task(acks_late=True)
def run_job(job_id: int) -> None:
    job = jobs.dispatch_job(job_id)
    if job.is_active and not settings.CELERY_TASK_ALWAYS_EAGER:
        follow_job.delay(job.pk)


@shared_task(acks_late=True)
def follow_job(job_id: int) -> None:
    jobs.follow_job(job_id)


@shared_task
def stop_if_stalled(job_id: int) -> None:
    job = Job.objects.select_related("appliance", "server").get(pk=job_id)
    jobs.stop_if_stalled(job, now=timezone.now())


@shared_task
def poll_appliance(appliance_id: int) -> None:
    """Mirror the appliance, then evaluate its servers at once (a flip is seen on this poll,
    not at the next fleet cycle) and refresh their retention status."""
    from monitoring import engine, retention_status

    appliance = Appliance.objects.get(pk=appliance_id)
    try:
        sync.poll_appliance(appliance)
    except sync.ApplianceUnavailable:
        pass
    now = timezone.now()
    engine.run_cycle(now, appliance_ids=[appliance_id])
    retention_status.refresh(now, appliance_ids=[appliance_id])


@shared_task
def poll_all_appliances() -> None:
    """Mirror every appliance, re-follow jobs whose follower went quiet, and stop jobs that
    have not moved for their kind's stall limit."""
    now = timezone.now()
    ids = Appliance.objects.exclude(
        state__in=[ApplianceState.NEW, ApplianceState.RETIRED, ApplianceState.HOST_KEY_MISMATCH]
    ).values_list("pk", flat=True)
    for appliance_id in ids:
        poll_appliance.delay(appliance_id)
    stalled = set(jobs.stalled_jobs(now).values_list("pk", flat=True))
    for job_id in stalled:
        stop_if_stalled.delay(job_id)
    for job_id in jobs.stale_followers(now).exclude(pk__in=stalled).values_list("pk", flat=True):
        follow_job.delay(job_id)


@shared_task
def push_server_config(server_id: int) -> None:
    from appliances.models import ProtectedServer

    server = ProtectedServer.objects.select_related("appliance").get(pk=server_id)
    sync.push_server_config(server)
