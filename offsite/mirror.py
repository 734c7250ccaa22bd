"""Mirror the appliance's off-site state into the portal, and raise or resolve the lag alert.

The appliance's ``offsite.status`` is the truth: per point its copies (vault, second vault),
the backlog, the rate, the limit in force and the ETA, and the bytes its points keep on the
vault. The poller (appliances/sync.py) and a replication's end (job_results) call ``mirror``
in their own agent session.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import BooleanField, Case, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances.client import AgentClient, AgentError
from appliances.models import Alert, Appliance, Severity
from offsite.models import ApplianceOffsite
from restores.models import RecoveryPoint

log = logging.getLogger(__name__)
LAG_ALERT = "offsite_lag"


@dataclass
class OffsiteStatus:
    """What the portal keeps of one ``offsite.status`` answer."""

    on_vault: set[str] = field(default_factory=set)
    on_second_vault: set[str] = field(default_factory=set)
    points_local: int = 0
    points_offsite: int = 0
    newest_offsite: dt.datetime | None = None
    lag: dt.timedelta | None = None  # None: no point waits
    queued_bytes: int = 0
    rate_bps: int = 0
    limit_bps: int | None = None
    eta_seconds: float | None = None
    vault_bytes: int | None = None


def _int(value, default=0) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError, OverflowError):
        return default


def _when(value) -> dt.datetime | None:
    parsed = parse_datetime(str(value or "").replace("Z", "+00:00"))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _copies(status: OffsiteStatus, answer: dict) -> None:
    """Each point's copies: "local", then the vault's name if it holds the point whole,
    then the vaults it replicated the point to."""
    vault = answer.get("vault")
    for point in answer.get("points") or []:
        if not isinstance(point, dict) or not isinstance(point.get("id"), str):
            continue
        copies = [c for c in point.get("copies") or [] if isinstance(c, str)]
        status.points_local += "local" in copies
        elsewhere = [c for c in copies if c != "local"]
        if not elsewhere:
            continue
        status.points_offsite += 1
        first = vault if vault in elsewhere else (elsewhere[0] if vault is None else None)
        if first is not None:
            status.on_vault.add(point["id"])
        if any(c != first for c in elsewhere):
            status.on_second_vault.add(point["id"])


def parse_status(answer: dict) -> OffsiteStatus:
    """The parts of the agent's answer the portal mirrors (anything malformed reads as
    nothing known)."""
    status = OffsiteStatus()
    _copies(status, answer)
    newest = answer.get("newest_offsite")
    status.newest_offsite = _when(newest.get("taken_at")) if isinstance(newest, dict) else None
    if _int(answer.get("pending_points")):
        status.lag = dt.timedelta(seconds=_int(answer.get("lag_seconds")))
    status.queued_bytes = _int(answer.get("backlog_bytes"))
    status.rate_bps = _int(answer.get("rate"))
    limit = answer.get("limit")
    status.limit_bps = _int(limit) if limit is not None else None
    eta = answer.get("eta_seconds")
    if isinstance(eta, (int, float)) and 0 <= eta < 10**9:
        status.eta_seconds = float(eta)
    used = answer.get("vault_bytes")
    status.vault_bytes = _int(used) if used is not None else None
    return status


def mirror(
    appliance: Appliance,
    agent: AgentClient,
    *,
    now: dt.datetime | None = None,
    refresh: bool = False,
) -> None:
    """Ask the appliance (in ``agent``'s session) for its off-site state and mirror it.
    Without ``refresh`` the agent answers from what it recorded, without reaching the vault,
    so a vault that is down still has its lag measured (and alerted) here; with it, the
    agent asks the vault first (which points it holds, and where else it copied them)."""
    now = now or timezone.now()
    if ApplianceOffsite.objects.filter(appliance=appliance, vault__isnull=False).exists():
        params = {"refresh": True} if refresh else {}
        try:
            apply_status(appliance, agent.call("offsite.status", **params) or {}, now=now)
            return
        except AgentError as exc:
            if refresh:
                raise  # asked for by a person: they are told why
            log.warning("off-site status of %s not read: %s", appliance.serial, exc)
    offsite = (
        ApplianceOffsite.objects.select_related("vault", "appliance")
        .filter(appliance=appliance)
        .first()
    )
    if offsite is not None:
        check_lag_alert(offsite, now=now)  # by the last status read


def _flag(ids: set[str]) -> Case:
    return Case(When(agent_id__in=list(ids), then=Value(True)), default=Value(False),
                output_field=BooleanField())  # fmt: skip


@transaction.atomic
def apply_status(appliance: Appliance, answer: dict, *, now: dt.datetime) -> ApplianceOffsite:
    """Copy one ``offsite.status`` answer onto the appliance's points and off-site record,
    then raise or resolve the lag alert."""
    status = parse_status(answer)
    RecoveryPoint.objects.filter(server__appliance=appliance).update(
        on_vault=_flag(status.on_vault), on_second_vault=_flag(status.on_second_vault)
    )
    offsite = ApplianceOffsite.objects.select_related("vault", "appliance").get(appliance=appliance)
    offsite.status_at = now
    offsite.last_offsite_at = status.newest_offsite
    offsite.waiting_since = now - status.lag if status.lag is not None else None
    offsite.points_local, offsite.points_offsite = status.points_local, status.points_offsite
    offsite.queued_bytes, offsite.rate_bps = status.queued_bytes, status.rate_bps
    offsite.limit_bps = status.limit_bps
    offsite.eta_at = None
    if status.queued_bytes and status.eta_seconds is not None:
        offsite.eta_at = now + dt.timedelta(seconds=status.eta_seconds)
    if status.vault_bytes is not None:
        offsite.vault_bytes = status.vault_bytes
    offsite.save()
    check_lag_alert(offsite, now=now)
    return offsite


def running(appliance: Appliance, record: dict, *, now: dt.datetime) -> None:
    """A running replication's progress record: its rate, what it still has to send, and
    when it will be done at that rate."""
    done, total = _int(record.get("bytes_done")), _int(record.get("bytes_total"))
    eta = record.get("eta_seconds")
    changes = {"rate_bps": _int(record.get("rate")), "queued_bytes": max(0, total - done)}
    if isinstance(eta, (int, float)) and 0 <= eta < 10**9:
        changes["eta_at"] = now + dt.timedelta(seconds=eta)
    ApplianceOffsite.objects.filter(appliance=appliance).update(**changes)


def check_lag_alert(offsite: ApplianceOffsite, *, now: dt.datetime) -> None:
    """One open alert while the off-site lag is over the threshold; resolved when it drops
    (or the appliance has no vault any more)."""
    threshold = dt.timedelta(hours=settings.BDR_OFFSITE_LAG_ALERT_HOURS)
    appliance = offsite.appliance
    open_alerts = Alert.objects.filter(
        appliance_id=offsite.appliance_id, kind=LAG_ALERT, resolved_at__isnull=True
    )
    lag = offsite.lag(now)
    if offsite.vault_id is None or lag <= threshold:
        open_alerts.update(resolved_at=now)
        return
    with transaction.atomic():
        # The appliance row is the lock: two pollers cannot both find no alert and raise one.
        Appliance.objects.select_for_update().filter(pk=offsite.appliance_id).first()
        if open_alerts.exists():
            return
        hours = int(lag.total_seconds() // 3600)
        Alert.objects.create(
            customer_id=appliance.customer_id,
            appliance_id=appliance.pk,
            kind=LAG_ALERT,
            severity=Severity.WARNING,
            message=(
                f"{appliance.name}: off-site copy {hours} h behind: a recovery point has "
                f"waited that long to reach {offsite.vault.name}"
            )[:500],
        )
