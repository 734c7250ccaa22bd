"""Retention status: one server's timeline (the page), and every server's compliance kept on
its ServerStatus (the fleet view), refreshed daily and after each poll of its appliance."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Q

from appliances.models import Alert, Appliance, Job, JobKind, JobState, ProtectedServer
from monitoring.models import MaintenanceWindow, ProtectionState, ServerStatus
from monitoring.retention import History, Policy, Timeline, timeline
from restores.models import RecoveryPoint

BATCH = 500  # appliances per round of the fleet refresh (bounds memory)


def _policy(server: ProtectedServer) -> Policy:
    policy = getattr(server, "retention", None)
    if policy is None:
        return Policy()
    return Policy(policy.intraday, policy.daily, policy.weekly, policy.monthly, policy.yearly)


def _offsite_policy(server: ProtectedServer) -> Policy | None:
    policy = getattr(server, "offsite_retention", None)
    if policy is None:
        return None  # a server without one keeps everything off-site
    return Policy(0, policy.daily, policy.weekly, policy.monthly, policy.yearly)


def _weekdays(server: ProtectedServer) -> set[int]:
    schedule = getattr(server, "schedule", None)
    return set(schedule.weekdays or range(7)) if schedule is not None else set(range(7))


def histories(appliance_ids, now: dt.datetime) -> dict[int, History]:
    """Per appliance: its offline spells (its reachability alerts), maintenance windows (its
    own and its customer's) and failed backups, in three queries."""
    offline = defaultdict(list)
    for appliance_id, start, end in Alert.objects.filter(
        appliance_id__in=appliance_ids, server__isnull=True, kind="appliance_offline"
    ).values_list("appliance_id", "created_at", "resolved_at"):
        offline[appliance_id].append((start, end or now))
    customers = dict(Appliance.objects.filter(pk__in=appliance_ids).values_list("pk", "customer"))
    windows = defaultdict(list)
    for customer_id, appliance_id, start, end in MaintenanceWindow.objects.filter(
        Q(appliance_id__in=appliance_ids)
        | Q(appliance__isnull=True, customer_id__in=set(customers.values()))
    ).values_list("customer_id", "appliance_id", "starts_at", "ends_at"):
        ids = (
            [appliance_id]
            if appliance_id
            else [a for a, c in customers.items() if c == customer_id]
        )
        for a in ids:
            windows[a].append((start, end))
    failed = defaultdict(list)
    for appliance_id, at in Job.objects.filter(
        appliance_id__in=appliance_ids, kind=JobKind.BACKUP, state=JobState.FAILED
    ).values_list("appliance_id", "created_at"):
        failed[appliance_id].append(at)
    return {a: History(tuple(offline[a]), tuple(windows[a]), tuple(failed[a])) for a in customers}


def _points(server_ids) -> dict[int, list[tuple[dt.datetime, bool]]]:
    found = defaultdict(list)
    rows = RecoveryPoint.objects.filter(server_id__in=server_ids).exclude(verified=False)
    for server_id, taken_at, on_vault in rows.values_list("server_id", "taken_at", "on_vault"):
        found[server_id].append((taken_at, on_vault))
    return found


def _servers(queryset):
    return queryset.select_related(
        "retention", "schedule", "offsite_retention", "appliance__offsite", "appliance__customer"
    ).order_by()


def _timeline(server, points, history: History, now: dt.datetime) -> Timeline:
    first = min((t for t, _ in points), default=server.created_at)
    offsite = getattr(server.appliance, "offsite", None)
    return timeline(
        points,
        _policy(server),
        _weekdays(server),
        now,
        protected_since=min(first, server.created_at),
        has_vault=offsite is not None and offsite.vault_id is not None,
        offsite=_offsite_policy(server),
        history=history,
    )


def server_timeline(server: ProtectedServer, now: dt.datetime) -> tuple[ProtectedServer, Timeline]:
    """One server (with its appliance and customer) and its retention timeline at ``now``
    (the caller fetched ``server`` for its user)."""
    server = _servers(ProtectedServer.objects.filter(pk=server.pk)).get()
    history = histories([server.appliance_id], now)[server.appliance_id]
    return server, _timeline(server, _points([server.pk])[server.pk], history, now)


def refresh(now: dt.datetime, appliance_ids=None) -> int:
    """Recompute the retention status of every server (or those of ``appliance_ids``) and
    write the ones that changed; return how many changed."""
    if appliance_ids is None:
        appliance_ids = list(Appliance.objects.order_by("pk").values_list("pk", flat=True))
    changed = 0
    for i in range(0, len(appliance_ids), BATCH):
        changed += _refresh_batch(appliance_ids[i : i + BATCH], now)
    return changed


def _refresh_batch(appliance_ids, now: dt.datetime) -> int:
    servers = list(_servers(ProtectedServer.objects.filter(appliance_id__in=appliance_ids)))
    points = _points([s.pk for s in servers])
    history = histories(appliance_ids, now)
    statuses = {s.server_id: s for s in ServerStatus.objects.filter(server__in=servers)}
    new, changed = [], []
    for server in servers:
        result = _timeline(server, points[server.pk], history[server.appliance_id], now)
        status = statuses.get(server.pk)
        if status is None:
            status = ServerStatus(server=server, state=ProtectionState.UNKNOWN, since=now)
            new.append(status)
        elif (status.retention_ok, status.retention_summary) == (
            result.compliant,
            result.summary[:300],
        ):
            continue
        else:
            changed.append(status)
        status.retention_ok, status.retention_summary = result.compliant, result.summary[:300]
        status.retention_since = now
    ServerStatus.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    ServerStatus.objects.bulk_update(
        changed, ["retention_ok", "retention_summary", "retention_since"], batch_size=2000
    )
    return len(new) + len(changed)
