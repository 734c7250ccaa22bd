"""The fleet bench's seed: customers, sites, appliances, servers, schedules, retention, recovery
points and jobs written with COPY (explicit ids, sequences reset after), vaults and users with
the ORM. Deterministic for a given "now" and seed. Used by bench/fleet.py."""

from __future__ import annotations

import datetime as dt
import random
import time
from dataclasses import dataclass, field

SEED = 2026
GIB = 2**30


@dataclass
class Plan:
    customers: int = 2_000
    appliances: int = 5_000
    servers: int = 40_000
    points: int = 2_000_000
    jobs: int = 200_000


@dataclass
class Seeded:
    """What the measurements need to know of the seed."""

    server_ids: list[int] = field(default_factory=list)
    tech_id: int = 0
    customer_admin_id: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _values(fields, row: dict) -> list:
    """``row`` in ``fields``' order, every missing column from its field's default."""
    values = []
    for f in fields:
        if f.attname in row:
            values.append(row[f.attname])
        elif f.has_default():
            values.append(f.get_default())
        elif f.null:
            values.append(None)
        else:
            values.append("")
    return values


def copy_rows(model, rows) -> int:
    """COPY ``rows`` (dicts by attname) into ``model``'s table; return how many. Rows without
    the primary key get it from its sequence."""
    import itertools

    from django.db import connection
    from psycopg.types.json import Jsonb

    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    meta = model._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and f.attname not in first)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    statement = f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN"
    n = 0
    with connection.cursor() as cur, cur.copy(statement) as copy:
        for row in itertools.chain([first], rows):
            values = _values(fields, row)
            copy.write_row([Jsonb(v) if isinstance(v, (dict, list)) else v for v in values])
            n += 1
    return n


def reset_sequences(models) -> None:
    from django.core.management.color import no_style
    from django.db import connection

    with connection.cursor() as cur:
        for statement in connection.ops.sequence_reset_sql(no_style(), models):
            cur.execute(statement)


def empty(models) -> None:
    from django.db import connection

    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # noqa: S608 (our tables)


class Fleet:
    """The planned fleet: who is healthy, stale, damaged, offline, full, lagging off-site."""

    def __init__(self, plan: Plan, now: dt.datetime):
        self.plan, self.now, self.rng = plan, now, random.Random(SEED)
        rng = self.rng
        self.per_appliance = plan.servers // plan.appliances
        self.offline = set(rng.sample(range(plan.appliances), plan.appliances // 100))
        self.full = set(rng.sample(range(plan.appliances), plan.appliances * 3 // 100))
        self.vault = set(rng.sample(range(plan.appliances), plan.appliances * 6 // 10))
        self.lagging = set(rng.sample(sorted(self.vault), len(self.vault) * 3 // 100))
        # Appliances that were off for three days last week: their servers miss dailies.
        self.were_off = set(rng.sample(range(plan.appliances), plan.appliances * 2 // 100))
        self.profiles = [self._profile() for _ in range(plan.servers)]

    def _profile(self) -> str:
        roll = self.rng.random()
        for name, share in (("stale", 0.03), ("damaged", 0.01), ("bootfail", 0.01),
                            ("paused", 0.02), ("gaps", 0.02)):  # fmt: skip
            if roll < share:
                return name
            roll -= share
        return "healthy"

    def appliance_of(self, server: int) -> int:
        return server // self.per_appliance


def seed(plan: Plan, now: dt.datetime) -> Seeded:
    """Empty the tables and load the fleet."""
    from appliances.models import Alert, Appliance, Job, ProtectedServer, RetentionPolicy, Schedule
    from monitoring.models import Alarm, AlertNotice, MaintenanceWindow, ServerStatus
    from offsite.models import ApplianceOffsite, Vault
    from portal.models import AuditEvent, Customer, Site, User
    from restores.models import RecoveryPoint

    everything = [Customer, Site, Appliance, ProtectedServer, Schedule, RetentionPolicy,
                  RecoveryPoint, Job, Alert, ServerStatus, Alarm, AlertNotice,
                  MaintenanceWindow, ApplianceOffsite, Vault, AuditEvent]  # fmt: skip
    empty(everything)
    User.objects.filter(username__startswith="bench-").delete()
    fleet, seeded = Fleet(plan, now), Seeded()
    steps = [
        ("customers and sites", lambda: _customers(fleet)),
        ("appliances", lambda: _appliances(fleet)),
        ("servers, schedules, retention", lambda: _servers(fleet, seeded)),
        ("recovery points", lambda: _points(fleet)),
        ("jobs", lambda: _jobs(fleet)),
        ("vaults, alerts, users", lambda: _extras(fleet, seeded)),
    ]
    for label, step in steps:
        mark = time.perf_counter()
        seeded.rows[label] = step()
        seeded.seconds[label] = time.perf_counter() - mark
    reset_sequences(everything)
    return seeded


def _customers(fleet: Fleet) -> int:
    from portal.models import Customer, Site

    n = copy_rows(Customer, (
        {"id": c + 1, "name": f"Customer {c + 1:04}", "contact_email": f"it@c{c + 1}.example",
         "created_at": fleet.now} for c in range(fleet.plan.customers)))  # fmt: skip
    sites = ({"id": s + 1, "customer_id": s % fleet.plan.customers + 1,
              "name": f"Site {s // fleet.plan.customers + 1}"}
             for s in range(fleet.plan.customers * 3 // 2))  # fmt: skip
    return n + copy_rows(Site, sites)


def _appliances(fleet: Fleet) -> int:
    from appliances.models import Appliance

    customers = fleet.plan.customers
    sites = customers * 3 // 2

    def rows():
        for a in range(fleet.plan.appliances):
            customer = a % customers
            site = customer if (a // customers) % 2 == 0 or customer + customers >= sites else (
                customer + customers)  # fmt: skip
            used = 1_800 * 10**9 if a in fleet.full else fleet.rng.randrange(200, 1_400) * 10**9
            offline = a in fleet.offline
            yield {"id": a + 1, "serial": f"BDR-{a + 1:06}", "name": f"nas-{a + 1:05}",
                   "model": "V2", "customer_id": customer + 1, "site_id": site + 1,
                   "ssh_host": f"10.{a // 65536}.{a // 256 % 256}.{a % 256}",
                   "state": "offline" if offline else "online", "capacity_bytes": 2 * 10**12,
                   "used_bytes": used, "purchased_on": dt.date(2025, 1, 1),
                   "last_seen_at": fleet.now - dt.timedelta(hours=5 if offline else 0, minutes=3),
                   "created_at": fleet.now - dt.timedelta(days=400)}  # fmt: skip

    return copy_rows(Appliance, rows())


def _servers(fleet: Fleet, seeded: Seeded) -> int:
    from appliances.models import ProtectedServer, RetentionPolicy, Schedule

    created = fleet.now - dt.timedelta(days=4 * 365)
    n = copy_rows(ProtectedServer, (
        {"id": s + 1, "appliance_id": fleet.appliance_of(s) + 1, "name": f"srv{s % 8:02}",
         "hostname": f"srv{s + 1:05}.corp.local", "created_at": created}
        for s in range(fleet.plan.servers)))  # fmt: skip
    seeded.server_ids = list(range(1, fleet.plan.servers + 1))
    workdays = [0, 1, 2, 3, 4]

    def schedules():
        for s in range(fleet.plan.servers):
            office = s % 10 == 9
            yield {"id": s + 1, "server_id": s + 1,
                   "interval_minutes": 60 if office else 15,
                   "weekdays": workdays if office else list(range(7)),
                   "start_hour": 8 if office else 0, "end_hour": 18 if office else 24,
                   "enabled": fleet.profiles[s] != "paused"}  # fmt: skip

    copy_rows(Schedule, schedules())
    copy_rows(RetentionPolicy, ({"id": s + 1, "server_id": s + 1}
                                for s in range(fleet.plan.servers)))  # fmt: skip
    return n * 3


def _times(fleet: Fleet, s: int) -> list[tuple[dt.datetime, str]]:
    """The 50 points a server keeps: 24 of today's every 15 min, 7 dailies, 4 weeklies,
    12 monthlies, 3 yearlies (fewer dailies and more intraday where there are gaps)."""
    now, profile = fleet.now, fleet.profiles[s]
    newest = now - dt.timedelta(minutes=fleet.rng.randrange(1, 20))
    if profile == "stale":
        newest = now - dt.timedelta(minutes=fleet.rng.randrange(120, 4320))
    today = now.date()
    skip = set()
    if fleet.appliance_of(s) in fleet.were_off:
        skip = {3, 4, 5}
    elif profile == "gaps":
        skip = set(fleet.rng.sample(range(1, 8), 2))
    at = dt.datetime.combine
    dailies = [at(today - dt.timedelta(days=d), dt.time(17, 30), dt.UTC) for d in range(1, 8)
               if d not in skip]  # fmt: skip
    weeklies = [at(today - dt.timedelta(days=today.weekday() + 7 * w + 1), dt.time(20), dt.UTC)
                for w in range(1, 5)]  # fmt: skip
    monthlies = []
    first = today.replace(day=1)
    for _ in range(12):
        first = (first - dt.timedelta(days=1)).replace(day=1)
        monthlies.append(at(first, dt.time(12), dt.UTC))
    yearlies = [at(dt.date(today.year - y, 12, 31), dt.time(6), dt.UTC) for y in range(1, 4)]
    kept = 7 - len(skip) + 4 + 12 + 3
    intraday = [newest - dt.timedelta(minutes=15 * k) for k in range(50 - kept)]
    return ([(t, "intraday") for t in intraday] + [(t, "daily") for t in dailies]
            + [(t, "weekly") for t in weeklies] + [(t, "monthly") for t in monthlies]
            + [(t, "yearly") for t in yearlies])  # fmt: skip


def _points(fleet: Fleet) -> int:
    from restores.models import RecoveryPoint

    per_server = max(1, fleet.plan.points // fleet.plan.servers)
    lag_cut = fleet.now - dt.timedelta(days=2)

    def rows():
        pk = 0
        for s in range(fleet.plan.servers):
            appliance = fleet.appliance_of(s)
            has_vault, lagging = appliance in fleet.vault, appliance in fleet.lagging
            times = sorted(_times(fleet, s)[:per_server], reverse=True)
            for k, (taken, tier) in enumerate(times):
                pk += 1
                damaged = fleet.profiles[s] == "damaged" and k == 0
                boot = fleet.profiles[s] == "bootfail" and k == 0
                yield {"id": pk, "server_id": s + 1, "agent_id": f"srv{s % 8:02}/C/{taken:%Y%m%dT%H%M%SZ}",
                       "volume": "C", "taken_at": taken, "tier": tier, "size_bytes": 100 * GIB,
                       "stored_bytes": 2 * GIB if k == len(times) - 1 else 64 * 2**20,
                       "verified": False if damaged else (True if k % 10 == 5 else None),
                       "on_vault": has_vault and k > 1 and not (lagging and taken > lag_cut),
                       "synced_at": fleet.now,
                       "boot_verified": False if boot else None,
                       "boot_checked_at": taken + dt.timedelta(minutes=3) if boot else None}  # fmt: skip

    return copy_rows(RecoveryPoint, rows())


def _jobs(fleet: Fleet) -> int:
    from appliances.models import Job

    per_server = max(1, fleet.plan.jobs // fleet.plan.servers)

    def rows():
        pk = 0
        for s in range(fleet.plan.servers):
            for k in range(per_server):
                pk += 1
                failed = fleet.rng.random() < 0.04
                at = fleet.now - dt.timedelta(minutes=15 * k + fleet.rng.randrange(15) + 20)
                yield {"id": pk, "appliance_id": fleet.appliance_of(s) + 1, "server_id": s + 1,
                       "kind": "verify" if k == per_server - 1 else "backup",
                       "state": "failed" if failed else "succeeded",
                       "agent_job_id": f"backup-{pk}", "bytes_done": 64 * 2**20,
                       "bytes_total": 64 * 2**20, "error": "source not readable" if failed else "",
                       "params": {}, "created_at": at, "updated_at": at, "started_at": at,
                       "progress_at": at, "finished_at": at + dt.timedelta(minutes=2)}  # fmt: skip

    return copy_rows(Job, rows())


def _extras(fleet: Fleet, seeded: Seeded) -> int:
    from appliances.models import Alert, Severity
    from offsite.models import ApplianceOffsite, Vault
    from portal.models import Customer, Role, User

    vaults = [Vault.objects.create(name=f"vault-{i}", data_centre=f"DC {i}",
                                   endpoint=f"s3://bench-vault-{i}/appliances")
              for i in range(4)]  # fmt: skip
    ApplianceOffsite.objects.bulk_create(
        [ApplianceOffsite(appliance_id=a + 1, vault=vaults[a % 4], status_at=fleet.now)
         for a in sorted(fleet.vault)], batch_size=2000)  # fmt: skip
    spell_start = dt.datetime.combine(fleet.now.date() - dt.timedelta(days=5), dt.time(0), dt.UTC)
    alerts = [Alert(customer_id=a % fleet.plan.customers + 1, appliance_id=a + 1,
                    kind="appliance_offline", severity=Severity.CRITICAL,
                    message=f"nas-{a + 1:05} is unreachable", resolved_at=spell_start
                    + dt.timedelta(days=3)) for a in sorted(fleet.were_off)]  # fmt: skip
    Alert.objects.bulk_create(alerts)
    Alert.objects.filter(kind="appliance_offline").update(
        created_at=spell_start - dt.timedelta(hours=2)
    )
    # No passwords: the bench signs its clients in with sessions it makes itself.
    tech = User.objects.create_user("bench-tech", role=Role.TECHNICIAN)
    admin = User.objects.create_user("bench-admin", role=Role.CUSTOMER_ADMIN,
                                     customer=Customer.objects.get(pk=1))  # fmt: skip
    seeded.tech_id, seeded.customer_admin_id = tech.pk, admin.pk
    return len(vaults) + len(fleet.vault) + len(alerts) + 2
