"""Celery tasks: thin, idempotent, ids in, services do the work."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from appliances import backups, sync
from appliances.models import Appliance, ApplianceState


@shared_task(acks_late=True)
def run_job(job_id: int) -> None:
    job = backups.dispatch_job(job_id)
    if job.is_active and not settings.CELERY_TASK_ALWAYS_EAGER:
        follow_job.delay(job.pk)


@shared_task(acks_late=True)
def follow_job(job_id: int) -> None:
    backups.follow_job(job_id)


@shared_task
def poll_appliance(appliance_id: int) -> None:
    appliance = Appliance.objects.get(pk=appliance_id)
    try:
        sync.poll_appliance(appliance)
    except sync.ApplianceUnavailable:
        return


@shared_task
def poll_all_appliances() -> None:
    ids = Appliance.objects.exclude(
        state__in=[ApplianceState.NEW, ApplianceState.RETIRED, ApplianceState.HOST_KEY_MISMATCH]
    ).values_list("pk", flat=True)
    for appliance_id in ids:
        poll_appliance.delay(appliance_id)
    for job in backups.stale_jobs():
        follow_job.delay(job.pk)


@shared_task
def push_server_config(server_id: int) -> None:
    from appliances.models import ProtectedServer

    server = ProtectedServer.objects.select_related("appliance").get(pk=server_id)
    sync.push_server_config(server)
