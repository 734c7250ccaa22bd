"""Mirror what the appliance knows into the portal: status, server config, recovery points.

The agent is the truth; these functions make the portal's copy agree with it.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances import enrolment
from appliances.client import AgentClient, HostKeyMismatch, TransportError, connect
from appliances.models import Appliance, ApplianceState, ProtectedServer
from offsite import mirror as offsite_mirror
from restores import boot_verification
from restores.models import RecoveryPoint, Tier

log = logging.getLogger(__name__)


class ApplianceUnavailable(Exception):
    """The appliance cannot be used now; the message is for people."""


def open_agent(appliance: Appliance, **kwargs) -> AgentClient:
    """Connect to the appliance's agent; a changed host key is recorded and refused."""
    if appliance.state == ApplianceState.HOST_KEY_MISMATCH:
        raise ApplianceUnavailable(f"{appliance.name}: host key changed; re-enrol it first")
    try:
        return connect(appliance, **kwargs)
    except HostKeyMismatch as exc:
        enrolment.host_key_changed(appliance, exc.presented)
        raise ApplianceUnavailable(
            f"{appliance.name}: SSH host key changed; connection refused"
        ) from None


def server_config(server: ProtectedServer) -> dict:
    """What the agent needs to know of a server: volumes, schedule, retention."""
    params = {
        "name": server.name,
        "volumes": {v.name: v.source for v in server.volumes.all()},
    }
    schedule = getattr(server, "schedule", None)
    if schedule is not None:
        params["schedule"] = {
            "interval_minutes": schedule.interval_minutes,
            "weekdays": schedule.weekdays or list(range(7)),
            "start_hour": schedule.start_hour,
            "end_hour": schedule.end_hour,
            "enabled": schedule.enabled,
        }
    retention = getattr(server, "retention", None)
    if retention is not None:
        params["retention"] = {
            t: getattr(retention, t) for t in ("intraday", "daily", "weekly", "monthly", "yearly")
        }
    return params


def push_server_config(server: ProtectedServer, agent: AgentClient | None = None) -> None:
    """Send a server's volumes, schedule and retention to its appliance."""
    if not server.volumes.exists():
        return
    if agent is None:
        with open_agent(server.appliance) as agent:
            agent.call("servers.configure", **server_config(server))
    else:
        agent.call("servers.configure", **server_config(server))


def _taken_at(point: dict) -> dt.datetime:
    value = parse_datetime(str(point.get("taken_at", "")).replace("Z", "+00:00"))
    if value is None:
        raise ValueError(f"point {point.get('id')!r} has no taken_at")
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def point_fields(point: dict) -> dict:
    """The RecoveryPoint fields of one of the agent's point records."""
    tier = point.get("tier") or Tier.INTRADAY
    fields = {
        "volume": str(point.get("volume", ""))[:64],
        "taken_at": _taken_at(point),
        "tier": tier if tier in Tier.values else Tier.INTRADAY,
        "size_bytes": int(point.get("size") or point.get("size_bytes") or 0),
        "stored_bytes": int(point.get("stored_bytes") or point.get("added_bytes") or 0),
    }
    if "verified" in point:  # otherwise the portal's own verify result stands
        fields["verified"] = point["verified"]
    return fields


@transaction.atomic
def apply_points(appliance: Appliance, points: list[dict]) -> int:
    """Make the portal's recovery points of ``appliance`` equal the agent's list."""
    servers = {s.name: s for s in appliance.servers.all()}
    seen: dict[int, set[str]] = {s.pk: set() for s in servers.values()}
    existing = {
        (p.server_id, p.agent_id): p
        for p in RecoveryPoint.objects.filter(server__appliance=appliance)
    }
    created = 0
    for point in points:
        server = servers.get(point.get("server"))
        if server is None or not point.get("id"):
            continue
        fields = point_fields(point)
        seen[server.pk].add(point["id"])
        current = existing.get((server.pk, point["id"]))
        if current is None:
            RecoveryPoint.objects.create(server=server, agent_id=point["id"], **fields)
            created += 1
        elif any(getattr(current, k) != v for k, v in fields.items()):
            for k, v in fields.items():
                setattr(current, k, v)
            current.save()
    for (server_id, agent_id), point in existing.items():
        if agent_id not in seen.get(server_id, set()):
            point.delete()  # rolled up or pruned on the appliance
    return created


def record_point(server: ProtectedServer, point: dict) -> RecoveryPoint:
    """Add (or update) one point the agent reported, e.g. the one a backup job just made; the
    poller's full mirror (``apply_points``) settles tiers and removals later."""
    recovery_point, _ = RecoveryPoint.objects.update_or_create(
        server=server, agent_id=point["id"], defaults=point_fields(point)
    )
    return recovery_point


def poll_appliance(appliance: Appliance) -> dict:
    """Ask the appliance how it is, mirror its points, and return its status."""
    try:
        with open_agent(appliance) as agent:
            status = agent.call("status")
            points = agent.call("points.list")
            apply_points(appliance, points or [])
            boot_verification.sync_results(appliance, agent)  # boot checks onto those points
            offsite_mirror.mirror(appliance, agent)  # their off-site copies, the lag alert
    except TransportError as exc:
        # Only the state flips here: the monitoring engine raises the appliance's alert once
        # the flip has held (monitoring/hysteresis.py), so a flapping link does not storm.
        Appliance.objects.filter(pk=appliance.pk, state=ApplianceState.ONLINE).update(
            state=ApplianceState.OFFLINE
        )
        raise ApplianceUnavailable(f"{appliance.name} is unreachable: {exc}") from None
    Appliance.objects.filter(pk=appliance.pk).update(
        state=ApplianceState.ONLINE,
        last_seen_at=timezone.now(),
        used_bytes=int(status.get("used_bytes") or 0),
    )
    return status
