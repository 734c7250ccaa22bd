"""A protected server's protection state at a given time, from its facts: a pure function.

The facts are what the portal mirrors (the newest point, the newest no verify found damaged,
the newest on the vault, the last boot check, the appliance's state and disk); the rules come
from settings. ``evaluate`` answers the state (protected, warning, unprotected, paused,
unknown), every reason in words, and the level of the server's own alarm: the part of the
trouble that is the server's alone. Trouble of the whole appliance (offline, disk, off-site
lag) is shown on each of its servers but alarmed once, on the appliance.

Reasons name absolute times, never "3 h ago", so they change only when the facts do and a
fleet whose facts did not change is evaluated without a write.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

from appliances.models import ApplianceState
from monitoring.models import STATE_RANK, AlarmLevel, ProtectionState

ALL_DAYS = (0, 1, 2, 3, 4, 5, 6)
# How far back the scheduled-time walk looks (a daily backup on one weekday needs 14 days).
MAX_DAYS_BACK = 800


@dataclass(frozen=True)
class Schedule:
    interval_minutes: int = 15
    weekdays: tuple[int, ...] = ALL_DAYS
    start_hour: int = 0
    end_hour: int = 24
    enabled: bool = True


@dataclass(frozen=True)
class Rules:
    grace: dt.timedelta = dt.timedelta(minutes=30)
    offsite_max_age: dt.timedelta = dt.timedelta(hours=24)
    verify_max_age: dt.timedelta | None = None  # None: verifying is not required


@dataclass(frozen=True)
class Facts:
    """What the portal knows of one server and its appliance (times are aware, UTC)."""

    server: str
    created_at: dt.datetime
    appliance: str = "appliance"
    active: bool = True
    schedule: Schedule = Schedule()
    appliance_state: str = ApplianceState.ONLINE
    last_seen_at: dt.datetime | None = None
    # When the appliance was last seen coming back online (its servers catch up until their
    # RPO has passed since then, without alarms).
    online_since: dt.datetime | None = None
    disk_used: int = 0
    disk_capacity: int = 0
    has_vault: bool = False
    maintenance_until: dt.datetime | None = None
    maintenance_reason: str = ""
    newest_at: dt.datetime | None = None
    good_at: dt.datetime | None = None  # newest point no verify found damaged
    verified_at: dt.datetime | None = None  # newest point a verify passed
    damaged_at: dt.datetime | None = None  # newest point a verify found damaged
    offsite_at: dt.datetime | None = None  # newest good point on the vault
    boot_ok_at: dt.datetime | None = None  # last boot check that passed, and that failed
    boot_failed_at: dt.datetime | None = None


@dataclass(frozen=True)
class Problem:
    state: str  # unprotected, warning or unknown
    reason: str
    own: bool  # the server's own trouble (False: its appliance's)


@dataclass(frozen=True)
class Verdict:
    state: str
    reason: str = ""
    alarm: str = AlarmLevel.OK  # the server's own alarm level
    alarm_reason: str = ""
    problems: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def rank(self) -> int:
        return STATE_RANK[self.state]


def when(moment: dt.datetime) -> str:
    """'2 Nov 10:15 UTC': how reasons name a moment."""
    moment = moment.astimezone(dt.UTC)
    return f"{moment.day} {moment:%b %H:%M} UTC"


def _minutes(delta: dt.timedelta) -> str:
    minutes = round(delta.total_seconds() / 60)
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def rpo_words(schedule: Schedule, rules: Rules) -> str:
    return f"RPO 2 × {schedule.interval_minutes} min + {_minutes(rules.grace)} grace"


@lru_cache(maxsize=4096)
def required_since(schedule: Schedule, now: dt.datetime, grace: dt.timedelta) -> dt.datetime:
    """The oldest the newest good point may be: two intervals of *scheduled* time before
    ``now - grace`` (nights and weekends off the schedule do not count), on the appliance's
    clock (UTC, as its scheduler)."""
    need = dt.timedelta(minutes=2 * schedule.interval_minutes)
    cutoff = (now - grace).astimezone(dt.UTC)
    days = set(schedule.weekdays) or set(ALL_DAYS)
    day = cutoff.date()
    for _ in range(MAX_DAYS_BACK):
        if day.weekday() in days:
            start = dt.datetime.combine(day, dt.time(schedule.start_hour), dt.UTC)
            end = start + dt.timedelta(hours=schedule.end_hour - schedule.start_hour)
            top = min(end, cutoff)
            if top > start:
                if top - start >= need:
                    return top - need
                need -= top - start
        day -= dt.timedelta(days=1)
    return cutoff - dt.timedelta(days=MAX_DAYS_BACK)


def disk_band(used: int, capacity: int) -> str:
    """Datto's bands: 'low' under 51 %, 'mid' 51–80 %, 'high' over 80 % ('' unknown)."""
    if capacity <= 0:
        return ""
    if used * 100 > 80 * capacity:
        return "high"
    return "mid" if used * 100 >= 51 * capacity else "low"


def disk_percent(used: int, capacity: int) -> int | None:
    return None if capacity <= 0 else used * 100 // capacity


def _paused(f: Facts) -> str | None:
    if f.maintenance_until is not None:
        why = f": {f.maintenance_reason}" if f.maintenance_reason else ""
        return f"maintenance until {when(f.maintenance_until)}{why}"
    if f.appliance_state == ApplianceState.RETIRED:
        return f"appliance {f.appliance} retired"
    if not f.active:
        return "protection switched off"
    if not f.schedule.enabled:
        return "backups paused (schedule off)"
    return None


def _appliance_unknown(f: Facts) -> str | None:
    if f.appliance_state == ApplianceState.NEW:
        return f"appliance {f.appliance} not enrolled yet"
    if f.appliance_state == ApplianceState.HOST_KEY_MISMATCH:
        return f"appliance {f.appliance} refused: its SSH host key changed"
    if f.appliance_state == ApplianceState.OFFLINE:
        seen = f"last seen {when(f.last_seen_at)}" if f.last_seen_at else "never seen"
        return f"appliance {f.appliance} offline ({seen})"
    return None


def _local(f: Facts, required: dt.datetime, rpo: str) -> Problem | None:
    if f.good_at is not None and f.good_at >= required:
        return None
    if f.newest_at is None:
        if f.created_at > required:
            return Problem(ProtectionState.UNKNOWN, "waiting for its first backup", True)
        return Problem(ProtectionState.UNPROTECTED, f"never backed up ({rpo})", True)
    if f.good_at is None:
        reason = f"every point is damaged (verify); the newest was taken {when(f.newest_at)}"
    elif f.newest_at > f.good_at:
        reason = f"no good backup since {when(f.good_at)}: newer points are damaged ({rpo})"
    else:
        reason = f"no backup since {when(f.good_at)} ({rpo})"
    return Problem(ProtectionState.UNPROTECTED, reason, True)


def _checks(f: Facts, now: dt.datetime, rules: Rules) -> list[Problem]:
    """Warnings: the last verify and boot check, verifying at all, off-site age, disk."""
    found = []
    if f.damaged_at and (f.verified_at is None or f.damaged_at > f.verified_at):
        found.append(
            Problem("warning", f"verify found damage in the point of {when(f.damaged_at)}", True)
        )
    if rules.verify_max_age is not None and f.good_at is not None:
        if f.verified_at is None:
            found.append(Problem("warning", "no point verified yet", True))
        elif f.verified_at < now - rules.verify_max_age:
            found.append(Problem("warning", f"no point verified since {when(f.verified_at)}", True))
    if f.boot_failed_at and (f.boot_ok_at is None or f.boot_failed_at > f.boot_ok_at):
        found.append(Problem("warning", f"boot check failed at {when(f.boot_failed_at)}", True))
    if f.has_vault and f.good_at is not None:
        limit = now - rules.offsite_max_age
        if f.offsite_at is None:
            found.append(Problem("warning", "no point on the vault yet", False))
        elif f.offsite_at < limit:
            hours = _minutes(rules.offsite_max_age)
            text = f"newest off-site point {when(f.offsite_at)}, over {hours} old"
            found.append(Problem("warning", text, False))
    if disk_band(f.disk_used, f.disk_capacity) == "high":
        percent = disk_percent(f.disk_used, f.disk_capacity)
        found.append(Problem("warning", f"appliance disk {percent}% full", False))
    return found


def evaluate(f: Facts, now: dt.datetime, rules: Rules) -> Verdict:
    """The server's protection state at ``now``, every reason, and its own alarm level."""
    paused = _paused(f)
    if paused:
        return Verdict(ProtectionState.PAUSED, paused, AlarmLevel.HOLD)
    unknown = _appliance_unknown(f)
    if unknown:
        return Verdict(ProtectionState.UNKNOWN, unknown, AlarmLevel.HOLD)
    required = required_since(f.schedule, now, rules.grace)
    local = _local(f, required, rpo_words(f.schedule, rules))
    problems = ([local] if local else []) + _checks(f, now, rules)
    if not problems:
        return Verdict(ProtectionState.PROTECTED)
    problems.sort(key=lambda p: STATE_RANK[p.state])
    state = problems[0].state
    reason = "; ".join(p.reason for p in problems)[:500]
    own = [p for p in problems if p.own and p.state != ProtectionState.UNKNOWN]
    alarm = AlarmLevel.OK
    if own:
        alarm = AlarmLevel.CRITICAL if own[0].state == "unprotected" else AlarmLevel.WARNING
        if f.online_since is not None and f.online_since > required:
            # Its appliance came back within the RPO: its backups are catching up.
            alarm = AlarmLevel.HOLD
    alarm_reason = "; ".join(p.reason for p in own)[:400]
    return Verdict(state, reason, alarm, alarm_reason, tuple(problems))


def appliance_levels(state: str, used: int, capacity: int, in_maintenance: bool) -> dict[str, str]:
    """The appliance's own alarms: reachability and disk."""
    if in_maintenance or state in (ApplianceState.RETIRED, ApplianceState.NEW):
        return {"appliance_offline": AlarmLevel.HOLD, "appliance_disk": AlarmLevel.HOLD}
    offline = AlarmLevel.CRITICAL if state == ApplianceState.OFFLINE else AlarmLevel.OK
    if state == ApplianceState.HOST_KEY_MISMATCH:
        offline = AlarmLevel.HOLD  # its own event alert (host_key_changed) says it
    high = state == ApplianceState.ONLINE and disk_band(used, capacity) == "high"
    return {
        "appliance_offline": offline,
        "appliance_disk": AlarmLevel.WARNING if high else AlarmLevel.OK,
    }
