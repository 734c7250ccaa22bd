"""Celery tasks: thin, idempotent; the engine and the retention check do the work."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from monitoring import delivery, engine, retention_status


@shared_task
def evaluate_fleet() -> None:
    """The evaluation cycle over the whole fleet (beat: every BDR_MONITOR_SECONDS)."""
    engine.run_cycle(timezone.now())


@shared_task
def evaluate_appliance(appliance_id: int) -> None:
    """The cycle for one appliance's servers, right after its poll, so a flip is seen at once."""
    engine.run_cycle(timezone.now(), appliance_ids=[appliance_id])


@shared_task
def check_retention() -> None:
    """Every server's retention status (beat: daily, after the appliances' rollups)."""
    retention_status.refresh(timezone.now())


@shared_task
def deliver_notices() -> None:
    """Hand new notices to e-mail and webhooks, and send what is due (beat: every
    BDR_NOTIFY_SECONDS). Apart from the evaluation cycle, so a slow endpoint never holds it."""
    delivery.run(timezone.now())
