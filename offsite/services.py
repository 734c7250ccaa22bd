"""Writes for off-site copies: the vault inventory, each appliance's vault and throttle, and
replication jobs. Each change is audited; what the appliance must know is pushed to it."""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from appliances import jobs
from appliances.client import AgentClient, AgentError, TransportError
from appliances.models import (
    Appliance,
    ApplianceState,
    Job,
    JobKind,
    JobState,
    ProtectedServer,
)
from offsite.models import ApplianceOffsite, OffsiteRetention, Vault
from portal import audit
from portal.models import User
from restores.models import RecoveryPoint

GB = 2**30  # as billing counts
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@transaction.atomic
def save_vault(
    vault: Vault, *, capacity_gb: int, actor: User, request=None, changed: list | None = None
) -> Vault:
    """Add a vault to the inventory, or save changes to one (appliances using it get the new
    endpoint and host key before their next replication)."""
    creating = vault.pk is None
    vault.capacity_bytes = capacity_gb * GB
    vault.full_clean()
    vault.save()
    detail = {"endpoint": vault.endpoint, "data_centre": vault.data_centre}
    if changed is not None:
        detail["changed"] = changed
    audit.record(actor, "vault.create" if creating else "vault.update", vault, request=request,
                 detail=detail)  # fmt: skip
    return vault


def offsite_of(appliance: Appliance) -> ApplianceOffsite:
    """The appliance's off-site record (made on first use)."""
    offsite, _ = ApplianceOffsite.objects.select_related("vault__second_vault").get_or_create(
        appliance=appliance
    )
    offsite.appliance = appliance
    return offsite


def agent_settings(offsite: ApplianceOffsite) -> dict:
    """What the appliance's agent is told (settings.set): its namespace on vaults (the
    serial), its vault and the vault's pinned host key, the throttle windows, the time
    zone their hours are in (the site's), and each server's off-site retention (carried to
    the vaults by every replication)."""
    vault = offsite.vault
    return {
        "serial": offsite.appliance.serial,
        "timezone": offsite.appliance.site.timezone,
        "offsite_target": vault.endpoint if vault else "",
        "offsite_host_key": vault.host_key if vault else "",
        "offsite_windows": offsite.windows,
        "offsite_policies": {
            policy.server.name: policy.as_policy()
            for policy in OffsiteRetention.objects.filter(
                server__appliance_id=offsite.appliance_id
            ).select_related("server")
        },
    }


def push_settings(offsite: ApplianceOffsite, agent: AgentClient | None = None) -> str | None:
    """Send the off-site settings to the appliance now; the problem in words if that failed
    (a replication the portal starts pushes them again first, so a failed push is not lost)."""
    from appliances import sync

    appliance = offsite.appliance
    if agent is None and not appliance.takes_jobs:
        problem = f"{appliance.name} is not online; the change will be sent before its next "
        problem += "replication."
    else:
        try:
            if agent is None:
                with sync.open_agent(appliance) as session:
                    _push(offsite, session)
            else:
                _push(offsite, agent)
            problem = None
        except AgentError as exc:
            problem = f"Saved, but the appliance refused it: {exc}"
        except (sync.ApplianceUnavailable, TransportError) as exc:
            problem = f"Saved, but not yet on the appliance: {exc}"
    ApplianceOffsite.objects.filter(pk=offsite.pk).update(
        pushed_at=None if problem else timezone.now(), push_error=(problem or "")[:500]
    )
    return problem


def _push(offsite: ApplianceOffsite, agent: AgentClient) -> None:
    agent.call("settings.set", **agent_settings(offsite))
    # "type base64" only: the comment is the agent's, the line below names the serial.
    key = " ".join(str(agent.call("offsite.key").get("public_key") or "").split()[:2])[:1000]
    if key != offsite.appliance_key:
        offsite.appliance_key = key
        ApplianceOffsite.objects.filter(pk=offsite.pk).update(appliance_key=key)


def vault_authorized_keys_line(offsite: ApplianceOffsite) -> str:
    """The line for the vault host's ``~bdr-vault/.ssh/authorized_keys`` that lets this
    appliance in, to its own namespace only ("" until the appliance has told its key)."""
    vault, serial = offsite.vault, offsite.appliance.serial
    if vault is None or not offsite.appliance_key or not vault.endpoint.startswith("ssh://"):
        return ""
    if not SAFE_NAME.match(serial):
        return ""  # never put text a shell would read otherwise into a forced command
    from agent.vault.targets import parse_target

    folder = parse_target(vault.endpoint).path
    command = f"bdr-agent vault serve {folder} --appliance {serial}"
    return f'restrict,command="{command}" {offsite.appliance_key} {serial}'


def assign_vault(
    appliance: Appliance, vault: Vault | None, *, actor: User, request=None
) -> str | None:
    """Make ``vault`` the appliance's vault (None: no off-site copy); push it."""
    with transaction.atomic():
        offsite = offsite_of(appliance)
        before = offsite.vault
        offsite.vault = vault
        offsite.save(update_fields=["vault"])
        audit.record(actor, "offsite.vault_assigned", appliance, request=request, detail={
            "vault": vault.name if vault else None, "before": before.name if before else None,
        })  # fmt: skip
    return push_settings(offsite)


def set_windows(appliance: Appliance, windows: str, *, actor: User, request=None) -> str | None:
    """Change the appliance's throttle windows; the agent applies them to a running
    replication too."""
    with transaction.atomic():
        offsite = offsite_of(appliance)
        before = offsite.windows
        offsite.windows = windows
        offsite.save(update_fields=["windows"])
        audit.record(actor, "offsite.windows_changed", appliance, request=request,
                     detail={"windows": windows, "before": before})  # fmt: skip
    return push_settings(offsite)


def refresh_from_vault(appliance: Appliance) -> None:
    """Have the appliance ask its vault which points it holds whole and where else it
    copied them, and mirror that; ValidationError with the reason when it cannot."""
    from appliances import sync
    from offsite import mirror

    if not ApplianceOffsite.objects.filter(appliance=appliance, vault__isnull=False).exists():
        raise ValidationError(f"{appliance.name} has no vault: assign one first.")
    try:
        with sync.open_agent(appliance, retries=()) as agent:
            mirror.mirror(appliance, agent, refresh=True)
    except (AgentError, TransportError, sync.ApplianceUnavailable) as exc:
        raise ValidationError(f"The vault could not be asked: {exc}") from None


def set_offsite_retention(
    server: ProtectedServer, fields: dict, *, actor: User, request=None
) -> str | None:
    """Change how many points of each tier the vaults keep for ``server``; push it (the
    vaults get it with the next replication, and apply it in their own retention run)."""
    with transaction.atomic():
        policy, _ = OffsiteRetention.objects.get_or_create(server=server)
        for name in OffsiteRetention.TIERS:
            setattr(policy, name, fields[name])
        policy.full_clean()
        policy.save()
        audit.record(actor, "offsite.retention_changed", server, request=request,
                     detail=policy.as_policy())  # fmt: skip
    return push_settings(offsite_of(server.appliance))


def start_replication(appliance: Appliance, *, actor: User | None, request=None) -> Job:
    """Queue "Replicate now" (or a scheduled replication): one at a time per appliance."""
    offsite = ApplianceOffsite.objects.filter(appliance=appliance).select_related("vault").first()
    if offsite is None or offsite.vault is None:
        raise ValidationError(f"{appliance.name} has no vault: assign one first.")
    return jobs.queue_job(JobKind.REPLICATE, appliance, actor=actor, request=request,
                          params={"target": offsite.vault.endpoint})  # fmt: skip


def due_for_replication(now: dt.datetime, retry_after: dt.timedelta):
    """Appliances that should replicate now: online, with a vault, something waiting for it
    (never asked yet, points waiting by its last status, or a point taken since its newest
    off-site one), no replication running, and none failed within ``retry_after`` (a vault
    that is down is not asked every few minutes)."""
    replications = Job.objects.filter(appliance=OuterRef("pk"), kind=JobKind.REPLICATE)
    newer = RecoveryPoint.objects.filter(server__appliance=OuterRef("pk"), on_vault=False).filter(
        Q(taken_at__gt=OuterRef("offsite__last_offsite_at"))
        | Q(taken_at__isnull=False, server__appliance__offsite__last_offsite_at__isnull=True)
    )
    waiting = (
        Q(offsite__status_at__isnull=True) | Q(offsite__waiting_since__isnull=False) | Exists(newer)
    )
    return (
        Appliance.objects.filter(state=ApplianceState.ONLINE, offsite__vault__isnull=False)
        .filter(waiting)
        .exclude(Exists(replications.filter(state__in=[JobState.QUEUED, JobState.RUNNING])))
        .exclude(
            Exists(replications.filter(state=JobState.FAILED, finished_at__gte=now - retry_after))
        )
    )


def queue_due_replications(now: dt.datetime, retry_after: dt.timedelta) -> list[int]:
    """Queue a replication for every appliance due one (the scheduled replications)."""
    queued = []
    for appliance in due_for_replication(now, retry_after):
        try:
            queued.append(start_replication(appliance, actor=None).pk)
        except ValidationError:
            continue  # it went offline, or a technician started one meanwhile
    return queued
