"""Backups, verifies and rollups as a technician asks for them; each is a job (jobs.py)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from appliances import jobs
from appliances.models import Appliance, Job, JobKind, ProtectedServer
from portal.models import User
from restores.models import RecoveryPoint


def start_backup(
    server: ProtectedServer, *, actor: User | None, request=None, volume: str = ""
) -> Job:
    """Queue "Back up now" for ``server``; refuses a second backup while one is active."""
    if not server.volumes.exists():
        raise ValidationError(f"{server} has no volumes to back up yet.")
    params = {"volume": volume} if volume else {}
    return jobs.queue_job(JobKind.BACKUP, server.appliance, server=server, params=params,
                          actor=actor, request=request)  # fmt: skip


def start_verify(server: ProtectedServer, *, actor: User | None, request=None) -> Job:
    """Queue a verify of every recovery point of ``server`` (re-reads and authenticates chunks)."""
    point_ids = list(RecoveryPoint.objects.filter(server=server).values_list("agent_id", flat=True))
    if not point_ids:
        raise ValidationError(f"{server} has no recovery points to verify yet.")
    return jobs.queue_job(JobKind.VERIFY, server.appliance, server=server,
                          params={"points": point_ids}, actor=actor, request=request)  # fmt: skip


def start_rollup(appliance: Appliance, *, actor: User | None, request=None) -> Job:
    """Queue a rollup of the whole appliance now: apply every server's retention, then gc
    (the appliance's scheduler also runs one a day)."""
    return jobs.queue_job(JobKind.ROLLUP, appliance, actor=actor, request=request)
