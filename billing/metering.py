"""Off-site usage: where the bytes come from, and the daily sample the invoices average."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing.models import Subscription, UsageSample, UsageSource
from offsite.models import ApplianceOffsite
from portal import audit
from restores.models import RecoveryPoint


def offsite_bytes(appliance_ids: list[int]) -> dict[int, tuple[int, str]]:
    """(bytes, source) each appliance keeps off-site now. The only place that knows the source.

    With a vault set: the bytes of the blobs its points reference on the vault, each blob
    counted once, as its last ``offsite.status`` reported them (source "vault"). Without a
    vault, or before its vault has reported a figure, the sum of the stored sizes of its
    recovery points stands in (source "local"), as before replication existed.
    """
    on_vault = dict(
        ApplianceOffsite.objects.filter(
            appliance_id__in=appliance_ids, vault__isnull=False, vault_bytes__isnull=False
        ).values_list("appliance_id", "vault_bytes")
    )
    local_ids = [pk for pk in appliance_ids if pk not in on_vault]
    rows = (
        RecoveryPoint.objects.filter(server__appliance_id__in=local_ids)
        .values("server__appliance_id")
        .annotate(total=Sum("stored_bytes"))
    )
    local = {row["server__appliance_id"]: row["total"] or 0 for row in rows}
    return {
        pk: (on_vault[pk], UsageSource.VAULT)
        if pk in on_vault
        else (local.get(pk, 0), UsageSource.LOCAL)
        for pk in appliance_ids
    }


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
        samples = [
            UsageSample(appliance_id=pk, day=day, offsite_bytes=size, source=source)
            for pk, (size, source) in sizes.items()
        ]
        UsageSample.objects.bulk_create(
            samples,
            update_conflicts=True,
            unique_fields=["appliance", "day"],
            update_fields=["offsite_bytes", "source", "taken_at"],
        )
        written += len(samples)
    audit.record(None, "billing.usage_sampled", detail={"day": str(day), "samples": written})
    return written
