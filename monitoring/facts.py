"""The facts the evaluation cycle reads, for the whole fleet or one appliance, in a fixed
number of queries whatever the fleet's size (one aggregate over the recovery points)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Max, Q

from appliances.models import Appliance, ProtectedServer
from monitoring.models import Alarm, AlarmLevel, MaintenanceWindow
from monitoring.protection import ALL_DAYS, Facts, Schedule
from restores.models import RecoveryPoint

SCHEDULE_FIELDS = ("interval_minutes", "weekdays", "start_hour", "end_hour", "enabled")
_SERVER_FIELDS = ("id", "name", "hostname", "is_active", "created_at", "appliance_id") + tuple(
    f"schedule__{name}" for name in SCHEDULE_FIELDS
)
_APPLIANCE_FIELDS = (
    "id", "name", "state", "last_seen_at", "used_bytes", "capacity_bytes", "customer_id",
    "offsite__vault_id",
)  # fmt: skip


@dataclass
class Fleet:
    """One cycle's facts: appliances by id, server facts by server id, the server's appliance."""

    appliances: dict[int, dict]
    servers: dict[int, Facts]
    server_appliance: dict[int, int]
    server_names: dict[int, str]
    maintenance: dict[int, tuple[dt.datetime, str]]  # appliance id -> (until, reason)


def point_facts(server_ids=None) -> dict[int, dict]:
    """Per server: newest point, newest good, verified, damaged, off-site, boot checks."""
    points = RecoveryPoint.objects.all()
    if server_ids is not None:
        points = points.filter(server_id__in=server_ids)
    rows = points.values("server_id").annotate(
        newest_at=Max("taken_at"),
        good_at=Max("taken_at", filter=~Q(verified=False)),
        verified_at=Max("taken_at", filter=Q(verified=True)),
        damaged_at=Max("taken_at", filter=Q(verified=False)),
        offsite_at=Max("taken_at", filter=~Q(verified=False) & Q(on_vault=True)),
        boot_ok_at=Max("boot_checked_at", filter=Q(boot_verified=True)),
        boot_failed_at=Max("boot_checked_at", filter=Q(boot_verified=False)),
    )
    return {row.pop("server_id"): row for row in rows.order_by()}


def maintenance_now(now: dt.datetime, appliances: dict[int, dict]) -> dict[int, tuple]:
    """Appliance id -> (until, reason) for every appliance in a window at ``now``; a customer's
    window covers each of its appliances."""
    windows = MaintenanceWindow.objects.filter(starts_at__lte=now, ends_at__gt=now).values(
        "customer_id", "appliance_id", "ends_at", "reason"
    )
    by_customer: dict[int, list[int]] = {}
    for appliance_id, row in appliances.items():
        by_customer.setdefault(row["customer_id"], []).append(appliance_id)
    found: dict[int, tuple] = {}
    for window in windows.order_by("ends_at"):
        ids = [window["appliance_id"]] if window["appliance_id"] else []
        ids = ids or by_customer.get(window["customer_id"], [])
        for appliance_id in ids:
            if appliance_id in appliances:
                found[appliance_id] = (window["ends_at"], window["reason"])  # the latest end
    return found


def _schedule(row: dict) -> Schedule:
    if row["schedule__interval_minutes"] is None:
        return Schedule()  # servers made outside the service: the default schedule
    return Schedule(
        interval_minutes=row["schedule__interval_minutes"],
        weekdays=tuple(sorted(set(row["schedule__weekdays"] or ALL_DAYS))),
        start_hour=row["schedule__start_hour"],
        end_hour=row["schedule__end_hour"],
        enabled=row["schedule__enabled"],
    )


def online_since(appliance_ids) -> dict[int, dt.datetime]:
    """When each appliance was last seen coming back (its reachability alarm turned OK)."""
    rows = Alarm.objects.filter(
        kind="appliance_offline", server__isnull=True, level=AlarmLevel.OK
    ).values_list("appliance_id", "since")
    if appliance_ids is not None:
        rows = rows.filter(appliance_id__in=appliance_ids)
    return dict(rows)


def load_fleet(now: dt.datetime, appliance_ids=None) -> Fleet:
    """Every fact the cycle needs (``appliance_ids``: only those appliances)."""
    appliances = Appliance.objects.all()
    servers = ProtectedServer.objects.all()
    if appliance_ids is not None:
        appliances = appliances.filter(pk__in=appliance_ids)
        servers = servers.filter(appliance_id__in=appliance_ids)
    by_id = {row["id"]: row for row in appliances.values(*_APPLIANCE_FIELDS).order_by()}
    maintenance = maintenance_now(now, by_id)
    points = point_facts(None if appliance_ids is None else servers.values("pk"))
    back = online_since(appliance_ids)
    fleet = Fleet(by_id, {}, {}, {}, maintenance)
    for row in servers.values(*_SERVER_FIELDS).order_by():
        appliance = by_id[row["appliance_id"]]
        until, why = maintenance.get(row["appliance_id"], (None, ""))
        fleet.servers[row["id"]] = Facts(
            server=row["hostname"] or row["name"],
            created_at=row["created_at"],
            appliance=appliance["name"],
            active=row["is_active"],
            schedule=_schedule(row),
            appliance_state=appliance["state"],
            last_seen_at=appliance["last_seen_at"],
            online_since=back.get(row["appliance_id"]),
            disk_used=appliance["used_bytes"],
            disk_capacity=appliance["capacity_bytes"],
            has_vault=appliance["offsite__vault_id"] is not None,
            maintenance_until=until,
            maintenance_reason=why,
            **points.get(row["id"], {}),
        )
        fleet.server_appliance[row["id"]] = row["appliance_id"]
        fleet.server_names[row["id"]] = row["hostname"] or row["name"]
    return fleet
