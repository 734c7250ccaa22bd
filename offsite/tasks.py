"""Celery tasks: thin, idempotent, ids in, services do the work."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from offsite import services


@shared_task
def replicate_due() -> None:
    """Queue the scheduled replications (appliances with points waiting for their vault)."""
    retry = dt.timedelta(minutes=settings.BDR_REPLICATE_RETRY_MINUTES)
    services.queue_due_replications(timezone.now(), retry)
