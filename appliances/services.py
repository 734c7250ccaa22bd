"""Writes for appliances and the servers they protect. Model limits are enforced here."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from appliances.limits import limits_for
from appliances.models import Appliance, ProtectedServer, RetentionPolicy, Schedule
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
    appliance: Appliance, *, actor: User | None, request=None, **fields
) -> ProtectedServer:
    """Protect a new server on ``appliance``, with a default schedule and retention policy."""
    # Lock the appliance row so two concurrent adds cannot both pass the limit check.
    appliance = Appliance.objects.select_for_update().get(pk=appliance.pk)
    check_room_for_server(appliance)
    server = ProtectedServer(appliance=appliance, **fields)
    server.full_clean()
    server.save()
    Schedule.objects.create(server=server, weekdays=list(range(7)))
    RetentionPolicy.objects.create(server=server)
    audit.record(actor, "server.create", server, request=request)
    return server
