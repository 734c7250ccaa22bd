"""Reads for appliances, servers, jobs and alerts."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, QuerySet
from django.utils import timezone

from appliances.models import ACTIVE_JOB_STATES, Alert, Appliance, Job, JobState, ProtectedServer
from portal.models import Customer, User


def appliances_for(user: User) -> QuerySet[Appliance]:
    return (
        Appliance.objects.for_user(user)
        .select_related("customer", "site")
        .annotate(server_count=Count("servers", distinct=True))
        .order_by("customer__name", "name")
    )


def servers_for(user: User) -> QuerySet[ProtectedServer]:
    return ProtectedServer.objects.for_user(user).select_related("appliance", "appliance__customer")


def jobs_for(user: User) -> QuerySet[Job]:
    return Job.objects.for_user(user).select_related("appliance", "server", "requested_by")


def open_alerts_for(user: User) -> QuerySet[Alert]:
    return (
        Alert.objects.for_user(user)
        .filter(resolved_at__isnull=True)
        .select_related("customer", "appliance", "server", "acknowledged_by")
    )


def dashboard_summary(user: User, now: dt.datetime | None = None) -> dict:
    since = (now or timezone.now()) - dt.timedelta(hours=24)
    appliances = Appliance.objects.for_user(user)
    by_state = dict(
        appliances.values_list("state").annotate(n=Count("id")).values_list("state", "n")
    )
    return {
        "customer_count": Customer.objects.for_user(user).count(),
        "appliance_count": sum(by_state.values()),
        "appliances_by_state": by_state,
        "active_jobs": jobs_for(user).filter(state__in=ACTIVE_JOB_STATES)[:20],
        "open_alerts": open_alerts_for(user)[:20],
        "failed_jobs_24h": Job.objects.for_user(user)
        .filter(state=JobState.FAILED, finished_at__gte=since)
        .count(),
    }


def points_by_tier(user: User, server: ProtectedServer) -> dict[str, list]:
    from restores.models import RecoveryPoint

    grouped: dict[str, list] = {}
    for point in (
        RecoveryPoint.objects.for_user(user).filter(server=server).order_by("-taken_at")[:500]
    ):
        grouped.setdefault(point.tier, []).append(point)
    return grouped
