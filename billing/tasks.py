"""Billing's Celery tasks: thin, idempotent, taking ids and ISO dates."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.utils import timezone

from billing import metering, month_run, stripe_sync
from billing.periods import parse_month, previous_month


@shared_task
def sample_usage(day: str | None = None) -> int:
    """Beat, daily: one off-site usage sample per subscribed appliance (overwrites the day's)."""
    return metering.record_daily_usage(dt.date.fromisoformat(day) if day else None)


@shared_task
def run_monthly_invoices(month: str | None = None) -> int:
    """Beat, on the 1st: the invoices of the month before (or of ``month``, YYYY-MM)."""
    period = parse_month(month) if month else previous_month(timezone.localdate())
    return month_run.run_month(period).created


@shared_task
def push_invoice_to_stripe(invoice_id: int) -> bool:
    return stripe_sync.push_invoice(invoice_id)


@shared_task
def void_invoice_in_stripe(invoice_id: int) -> bool:
    return stripe_sync.void_invoice(invoice_id)
