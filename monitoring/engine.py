"""The evaluation cycle: every server's protection state, then alerts on state flips.

One cycle (``run_cycle``) reads the fleet's facts in a fixed number of queries, evaluates
each server (monitoring/protection.py), writes the statuses that changed and the counts
by state the fleet pages show (monitoring/counts.py), folds each
subject's alarm level into its memory (monitoring/hysteresis.py), raises or resolves the
alerts that hysteresis decides, and makes the reminders and escalations that are due
(monitoring/notices.py). It writes nothing when nothing changed. Cycles never overlap: each
holds one PostgreSQL advisory lock for its transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from appliances.models import ENGINE_ALERT_KINDS, Alert, Severity
from monitoring import counts, notices
from monitoring.facts import Fleet, load_fleet
from monitoring.hysteresis import BAD, Timing, Track, decide, observe
from monitoring.models import Alarm, AlarmLevel, ServerStatus
from monitoring.protection import Rules, Verdict, appliance_levels, disk_percent, evaluate, when

LOCK_KEY = 0x6264726D  # "bdrm"
STATUS_FIELDS = (
    "state", "rank", "reason", "since", "last_point_at", "last_good_point_at", "offsite_point_at",
)  # fmt: skip


def rules() -> Rules:
    verify = settings.BDR_VERIFY_MAX_AGE_HOURS
    return Rules(
        grace=dt.timedelta(minutes=settings.BDR_RPO_GRACE_MINUTES),
        offsite_max_age=dt.timedelta(hours=settings.BDR_OFFSITE_RPO_HOURS),
        verify_max_age=dt.timedelta(hours=verify) if verify > 0 else None,
    )


def timing() -> Timing:
    return Timing(
        raise_after=dt.timedelta(minutes=settings.BDR_ALERT_RAISE_MINUTES),
        clear_after=dt.timedelta(minutes=settings.BDR_ALERT_CLEAR_MINUTES),
        flaps=settings.BDR_ALERT_FLAPS,
        flap_window=dt.timedelta(minutes=settings.BDR_ALERT_FLAP_MINUTES),
    )


@dataclass
class CycleReport:
    servers: int = 0
    statuses_written: int = 0
    counts_written: int = 0
    alarms_written: int = 0
    raised: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    notices: int = 0


def run_cycle(now: dt.datetime, appliance_ids=None) -> CycleReport:
    """Evaluate the fleet (or only ``appliance_ids``) at ``now`` and act on what changed."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        fleet = load_fleet(now, appliance_ids)
        verdicts = {sid: evaluate(f, now, rules()) for sid, f in fleet.servers.items()}
        report = CycleReport(servers=len(verdicts))
        report.statuses_written = write_statuses(verdicts, fleet, now)
        report.counts_written = counts.refresh(appliance_ids)
        apply_alarms(observations(fleet, verdicts), fleet, now, report)
        report.notices += notices.remind_and_escalate(now, fleet, appliance_ids)
    return report


def write_statuses(verdicts: dict[int, Verdict], fleet: Fleet, now: dt.datetime) -> int:
    """Write the statuses whose state, reason or facts changed; return how many."""
    stored = {
        s.server_id: s
        for s in ServerStatus.objects.filter(server_id__in=list(verdicts)).only(
            "server_id", *STATUS_FIELDS
        )
    }
    new, changed = [], []
    for server_id, verdict in verdicts.items():
        facts = fleet.servers[server_id]
        values = {
            "state": verdict.state,
            "rank": verdict.rank,
            "reason": verdict.reason,
            "last_point_at": facts.newest_at,
            "last_good_point_at": facts.good_at,
            "offsite_point_at": facts.offsite_at,
        }
        status = stored.get(server_id)
        if status is None:
            new.append(ServerStatus(server_id=server_id, since=now, **values))
            continue
        if all(getattr(status, k) == v for k, v in values.items()):
            continue
        if status.state != verdict.state:
            status.since = now
        for k, v in values.items():
            setattr(status, k, v)
        changed.append(status)
    ServerStatus.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    ServerStatus.objects.bulk_update(changed, STATUS_FIELDS, batch_size=2000)
    return len(new) + len(changed)


Key = tuple[int, int | None, str]  # (appliance id, server id or None, alert kind)


def observations(fleet: Fleet, verdicts: dict[int, Verdict]) -> dict[Key, tuple[str, str]]:
    """Each subject's alarm level now, with the message its alert would carry."""
    seen: dict[Key, tuple[str, str]] = {}
    for appliance_id, row in fleet.appliances.items():
        levels = appliance_levels(
            row["state"], row["used_bytes"], row["capacity_bytes"],
            appliance_id in fleet.maintenance,
        )  # fmt: skip
        seen_at = when(row["last_seen_at"]) if row["last_seen_at"] else "never"
        percent = disk_percent(row["used_bytes"], row["capacity_bytes"])
        messages = {
            "appliance_offline": f"{row['name']} is unreachable (last seen {seen_at})",
            "appliance_disk": f"{row['name']}: disk {percent}% full",
        }
        for kind, level in levels.items():
            seen[(appliance_id, None, kind)] = (level, messages[kind])
    for server_id, verdict in verdicts.items():
        appliance = fleet.appliances[fleet.server_appliance[server_id]]
        message = f"{fleet.server_names[server_id]} on {appliance['name']}: {verdict.alarm_reason}"
        seen[(appliance["id"], server_id, "protection")] = (verdict.alarm, message)
    return seen


def _scoped(queryset, fleet: Fleet):
    return queryset.filter(appliance_id__in=list(fleet.appliances))


def apply_alarms(seen: dict, fleet: Fleet, now: dt.datetime, report: CycleReport) -> None:
    """Fold each observation into its alarm; raise and resolve what hysteresis decides."""
    alarms = {(a.appliance_id, a.server_id, a.kind): a for a in _scoped(Alarm.objects, fleet)}
    engine_alerts = Alert.objects.filter(resolved_at__isnull=True, kind__in=ENGINE_ALERT_KINDS)
    open_alerts = {(a.appliance_id, a.server_id, a.kind): a for a in _scoped(engine_alerts, fleet)}
    new, changed, t = [], [], timing()
    for key, (level, message) in seen.items():
        alarm = alarms.get(key)
        before = _track(alarm)
        after = observe(before, level, now, t)
        if after != before:
            if alarm is None:
                alarm = Alarm(appliance_id=key[0], server_id=key[1], kind=key[2])
                new.append(alarm)
            else:
                changed.append(alarm)
            alarm.level, alarm.since = after.level, after.since or now
            alarm.flips, alarm.flips_since = after.flips, after.flips_since
        alert = open_alerts.get(key)
        action = decide(after, alert is not None, now, t)
        if action == "raise":
            customer_id = fleet.appliances[key[0]]["customer_id"]
            report.raised.append(_raise(key, customer_id, after.level, message, now).pk)
        elif action == "resolve":
            report.resolved.append(_resolve(alert, now).pk)
        elif alert is not None and after.level in BAD and _severity(after.level) != alert.severity:
            alert.severity, alert.message = _severity(after.level), message[:500]
            alert.save(update_fields=["severity", "message"])
    Alarm.objects.bulk_create(new, batch_size=2000)
    Alarm.objects.bulk_update(changed, ["level", "since", "flips", "flips_since"], batch_size=2000)
    report.alarms_written = len(new) + len(changed)
    report.notices += len(report.raised) + len(report.resolved)


def _track(alarm: Alarm | None) -> Track:
    if alarm is None:
        return Track()
    return Track(alarm.level, alarm.since, alarm.flips, alarm.flips_since)


def _severity(level: str) -> str:
    return Severity.CRITICAL if level == AlarmLevel.CRITICAL else Severity.WARNING


def _raise(key: Key, customer_id: int, level: str, message: str, now: dt.datetime) -> Alert:
    appliance_id, server_id, kind = key
    alert = Alert.objects.create(
        customer_id=customer_id,
        appliance_id=appliance_id,
        server_id=server_id,
        kind=kind,
        severity=_severity(level),
        message=message[:500],
        notified_at=now,
    )
    # created_at is auto_now_add: the engine's clock is "now", which tests freeze.
    Alert.objects.filter(pk=alert.pk).update(created_at=now)
    alert.created_at = now
    notices.record(alert, "opened", now)
    return alert


def _resolve(alert: Alert, now: dt.datetime) -> Alert:
    alert.resolved_at = now
    alert.save(update_fields=["resolved_at"])
    notices.record(alert, "resolved", now, both=alert.escalated_at is not None)
    return alert
