"""Writes for appliances and the servers they protect. Model limits are enforced here."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from appliances.confinement import audit_refusal, validate_volume_source
from appliances.limits import limits_for
from appliances.models import Appliance, ProtectedServer, RetentionPolicy, Schedule, Volume
from portal import audit
from portal.models import User


def check_room_for_server(appliance: Appliance, *, adding: int = 1) -> None:
    """Raise ValidationError when ``appliance`` cannot protect ``adding`` more servers."""
    limit = limits_for(appliance.model).max_servers
    current = appliance.servers.filter(is_active=True).count()
    if current + adding > limit:
        raise ValidationError(
            f"A {appliance.model} appliance protects at most {limit} servers; "
            f"{appliance.name} already has {current}."
        )


@transaction.atomic
def create_appliance(*, actor: User | None, request=None, **fields) -> Appliance:
    """Register an appliance in the inventory (enrolment over SSH comes after)."""
    appliance = Appliance(**fields)
    if not appliance.capacity_bytes:
        appliance.capacity_bytes = limits_for(appliance.model).local_bytes
    appliance.full_clean()
    appliance.save()
    audit.record(actor, "appliance.create", appliance, request=request)
    return appliance


@transaction.atomic
def add_server(
    appliance: Appliance,
    *,
    actor: User | None,
    request=None,
    volumes: dict[str, str] | None = None,
    **fields,
) -> ProtectedServer:
    """Protect a new server on ``appliance``, with a default schedule and retention policy.

    ``volumes`` maps volume names to their source on the appliance (device or image path).
    """
    # Lock the appliance row so two concurrent adds cannot both pass the limit check.
    appliance = Appliance.objects.select_for_update().get(pk=appliance.pk)
    check_room_for_server(appliance)
    for source in (volumes or {}).values():
        validate_volume_source(source)  # the appliance checks again, against its own roots
    server = ProtectedServer(appliance=appliance, **fields)
    server.full_clean()
    server.save()
    ensure_defaults(server)
    for name, source in (volumes or {}).items():
        Volume.objects.create(server=server, name=name, source=source)
    audit.record(actor, "server.create", server, request=request, detail={"volumes": volumes or {}})
    return server


def ensure_defaults(server: ProtectedServer) -> None:
    """Give a server the default schedule (every 15 minutes) and retention if it has none."""
    Schedule.objects.get_or_create(server=server, defaults={"weekdays": list(range(7))})
    RetentionPolicy.objects.get_or_create(server=server)


def push_config(server: ProtectedServer) -> str | None:
    """Send the server's configuration to its appliance now; the error text if that failed.

    A failed push is not lost: every backup the portal starts pushes the configuration first.
    """
    from appliances import sync
    from appliances.client import AgentError, TransportError

    if not server.appliance.takes_jobs:
        return (
            f"{server.appliance.name} is not online; the change will be sent with the next backup."
        )
    try:
        sync.push_server_config(server)
    except AgentError as exc:
        if exc.code == "refused":
            audit_refusal(exc.code, str(exc), server)
            return f"Saved, but the appliance refused it: {exc}"
        return f"Saved, but not yet on the appliance: {exc}"
    except (sync.ApplianceUnavailable, TransportError) as exc:
        return f"Saved, but not yet on the appliance: {exc}"
    return None


@transaction.atomic
def update_schedule(schedule: Schedule, *, actor: User, request=None, **fields) -> Schedule:
    """Change a server's backup schedule."""
    for name, value in fields.items():
        setattr(schedule, name, value)
    schedule.full_clean()
    schedule.save()
    audit.record(actor, "schedule.update", schedule.server, request=request, detail=fields)
    return schedule


@transaction.atomic
def update_retention(
    policy: RetentionPolicy, *, actor: User, request=None, **fields
) -> RetentionPolicy:
    """Change how many recovery points of each tier a server keeps."""
    for name, value in fields.items():
        setattr(policy, name, value)
    policy.save()
    audit.record(actor, "retention.update", policy.server, request=request, detail=fields)
    return policy
