"""Off-site usage: where the bytes come from, and the daily sample the invoices average."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing.models import Subscription, UsageSample
from portal import audit
from restores.models import RecoveryPoint


def offsite_bytes(appliance_ids: list[int]) -> dict[int, int]:
    """Bytes each appliance keeps off-site now. The only place that knows the source.

    Until replication reports what the vaults hold, this is the sum of the stored sizes of
    the appliance's recovery points.
    """
    rows = (
        RecoveryPoint.objects.filter(server__appliance_id__in=appliance_ids)
        .values("server__appliance_id")
        .annotate(total=Sum("stored_bytes"))
    )
    found = {row["server__appliance_id"]: row["total"] or 0 for row in rows}
    return {pk: found.get(pk, 0) for pk in appliance_ids}


def metered_appliance_ids(day: dt.date) -> list[int]:
    """Appliances with a subscription running on ``day``."""
    return list(
        Subscription.objects.filter(starts_on__lte=day)
        .filter(Q(ends_on__isnull=True) | Q(ends_on__gte=day))
        .values_list("appliance_id", flat=True)
        .distinct()
    )


@transaction.atomic
def record_daily_usage(day: dt.date | None = None, *, batch_size: int = 2000) -> int:
    """Store one usage sample per subscribed appliance for ``day``; running it again overwrites.

    Returns how many samples were written.
    """
    day = day or timezone.localdate()
    ids = metered_appliance_ids(day)
    written = 0
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        sizes = offsite_bytes(chunk)
        samples = [UsageSample(appliance_id=pk, day=day, offsite_bytes=sizes[pk]) for pk in chunk]
        UsageSample.objects.bulk_create(
            samples,
            update_conflicts=True,
            unique_fields=["appliance", "day"],
            update_fields=["offsite_bytes", "taken_at"],
        )
        written += len(samples)
    audit.record(None, "billing.usage_sampled", detail={"day": str(day), "samples": written})
    return written
