"""Reads for the restore pages."""

from __future__ import annotations

from django.db.models import Max, QuerySet

from appliances.models import ProtectedServer
from portal.models import User
from restores.models import RecoveryPoint


def restorable_servers(user: User) -> QuerySet[ProtectedServer]:
    return (
        ProtectedServer.objects.for_user(user)
        .select_related("appliance", "appliance__customer")
        .annotate(latest_point_at=Max("points__taken_at"))
        .order_by("appliance__customer__name", "name")
    )


def points_of(user: User, server: ProtectedServer) -> QuerySet[RecoveryPoint]:
    return RecoveryPoint.objects.for_user(user).filter(server=server).order_by("-taken_at")
