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


def point_for(user: User, point_pk: int) -> RecoveryPoint:
    """The recovery point ``point_pk`` if ``user`` may see it, else Http404."""
    from django.http import Http404

    try:
        return (
            RecoveryPoint.objects.for_user(user)
            .select_related("server__appliance__customer")
            .get(pk=point_pk)
        )
    except RecoveryPoint.DoesNotExist:
        raise Http404("No recovery point matches the given query.") from None


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """(label, path as links carry it) for each folder from the root down to ``path``."""
    from appliances.file_names import display_name, path_param

    crumbs = [("All files", "/")]
    so_far = ""
    for part in [p for p in path.split("/") if p]:
        so_far += "/" + part
        crumbs.append((display_name(part), path_param(so_far)))
    return crumbs


RESTORE_ACTIONS = (
    "restore.browse",
    "restore.search",
    "restore.download",
    "restore.put_back",
    "restore.export",
    "restore.bare_metal",
    "restore.path_refused",
    "restore.link_refused",
)


def restore_events_for(user: User):
    """The restore audit events ``user`` may see (their customer's, or all for the MSP)."""
    from portal.models import AuditEvent
    from portal.selectors import as_seen_by

    events = AuditEvent.objects.for_user(user).filter(action__in=RESTORE_ACTIONS)
    return as_seen_by(events.select_related("customer").order_by("-at", "-id"), user)


def when(epoch: int | None):
    """An entry's epoch seconds as an aware datetime (None stays None)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch, dt.UTC) if epoch else None
