"""Retention status: one server's timeline (the page), and every server's compliance kept on
its ServerStatus (the fleet view), refreshed daily and after each poll of its appliance.

The fleet refresh reads plain values, the points' times as epoch seconds (a float loads
several times faster than a datetime, and there are 2,000,000 of them at 5,000 appliances),
makes each calendar once per policy (monitoring/retention.py), and writes the statuses that
changed with one UPDATE per distinct result.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import F, FloatField, Func, Q

from appliances.models import Alert, Appliance, Job, JobKind, JobState, ProtectedServer
from monitoring.models import MaintenanceWindow, ProtectionState, ServerStatus
from monitoring.retention import History, Policy, Timeline, timeline
from restores.models import RecoveryPoint

BATCH = 500  # appliances per round of the fleet refresh (bounds memory)
TIERS = ("daily", "weekly", "monthly", "yearly")
_FIELDS = (
    ("id", "created_at", "appliance_id", "schedule__weekdays", "appliance__offsite__vault_id")
    + tuple(f"retention__{t}" for t in ("intraday",) + TIERS)
    + tuple(f"offsite_retention__{t}" for t in TIERS)
)


class EpochSeconds(Func):
    """A timestamp as seconds since 1970."""

    output_field = FloatField()
    template = "CAST(EXTRACT(EPOCH FROM %(expressions)s) AS double precision)"

    def as_sqlite(self, compiler, connection, **extra):
        template = "((julianday(%(expressions)s) - 2440587.5) * 86400.0)"
        return super().as_sql(compiler, connection, template=template, **extra)


def _policy(row: dict) -> Policy:
    if row["retention__daily"] is None:
        return Policy()
    return Policy(*(row[f"retention__{t}"] for t in ("intraday",) + TIERS))


def _offsite_policy(row: dict) -> Policy | None:
    if row["offsite_retention__daily"] is None:
        return None  # a server without one keeps everything off-site
    return Policy(0, *(row[f"offsite_retention__{t}"] for t in TIERS))


def _weekdays(row: dict) -> set[int]:
    return set(row["schedule__weekdays"] or range(7))


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


def _points(server_ids) -> dict[int, list[tuple[float, bool]]]:
    found = defaultdict(list)
    rows = RecoveryPoint.objects.filter(server_id__in=server_ids).exclude(verified=False)
    for server_id, taken, on_vault in rows.values_list(
        "server_id", EpochSeconds(F("taken_at")), "on_vault"
    ).order_by():
        found[server_id].append((taken, on_vault))
    return found


def _timeline(row: dict, points, history: History, now: dt.datetime) -> Timeline:
    created = row["created_at"]
    first = min((t for t, _ in points), default=created.timestamp())
    return timeline(
        points,
        _policy(row),
        _weekdays(row),
        now,
        protected_since=min(dt.datetime.fromtimestamp(first, dt.UTC), created),
        has_vault=row["appliance__offsite__vault_id"] is not None,
        offsite=_offsite_policy(row),
        history=history,
    )


def server_timeline(server: ProtectedServer, now: dt.datetime) -> tuple[ProtectedServer, Timeline]:
    """One server (with its appliance and customer) and its retention timeline at ``now``
    (the caller fetched ``server`` for its user)."""
    related = ("appliance__customer", "appliance__offsite", "retention", "schedule",
               "offsite_retention")  # fmt: skip
    server = ProtectedServer.objects.select_related(*related).get(pk=server.pk)
    row = _row_of(server)
    history = histories([server.appliance_id], now)[server.appliance_id]
    return server, _timeline(row, _points([server.pk])[server.pk], history, now)


def _row_of(server: ProtectedServer) -> dict:
    """The values the fleet refresh reads, from a server fetched with its relations."""
    row = {"id": server.pk, "created_at": server.created_at, "appliance_id": server.appliance_id}
    schedule = getattr(server, "schedule", None)
    row["schedule__weekdays"] = schedule.weekdays if schedule else None
    offsite = getattr(server.appliance, "offsite", None)
    row["appliance__offsite__vault_id"] = offsite.vault_id if offsite else None
    for prefix, tiers in (("retention", ("intraday",) + TIERS), ("offsite_retention", TIERS)):
        policy = getattr(server, prefix, None)
        for tier in tiers:
            row[f"{prefix}__{tier}"] = getattr(policy, tier) if policy else None
    return row


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
    rows = list(
        ProtectedServer.objects.filter(appliance_id__in=appliance_ids).values(*_FIELDS).order_by()
    )
    points = _points([r["id"] for r in rows])
    history = histories(appliance_ids, now)
    stored = {
        server_id: (ok, summary)
        for server_id, ok, summary in ServerStatus.objects.filter(
            server_id__in=[r["id"] for r in rows]
        ).values_list("server_id", "retention_ok", "retention_summary")
    }
    new, groups = [], defaultdict(list)
    for row in rows:
        result = _timeline(row, points[row["id"]], history[row["appliance_id"]], now)
        found = (result.compliant, result.summary[:300])
        if row["id"] not in stored:
            new.append(ServerStatus(server_id=row["id"], state=ProtectionState.UNKNOWN, since=now,
                                    retention_ok=found[0], retention_summary=found[1],
                                    retention_since=now))  # fmt: skip
        elif stored[row["id"]] != found:
            groups[found].append(row["id"])
    ServerStatus.objects.bulk_create(new, batch_size=2000, ignore_conflicts=True)
    for (ok, summary), ids in groups.items():
        ServerStatus.objects.filter(server_id__in=ids).update(
            retention_ok=ok, retention_summary=summary, retention_since=now
        )
    return len(new) + sum(len(ids) for ids in groups.values())
