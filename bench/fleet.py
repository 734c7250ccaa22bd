"""Benchmark: fleet monitoring at 5,000 appliances, on PostgreSQL.

Seeds 2,000 customers, 5,000 appliances, 40,000 servers, 2,000,000 recovery points and 200,000
jobs with COPY (bench/fleet_seed.py), then measures:

- the evaluation cycle over the whole fleet (monitoring.engine.run_cycle): the first (every
  status written), again with nothing changed (must write nothing), a minute later, and six
  minutes later (the alerts of everything bad raised); the daily retention refresh;
- the fleet pages under gunicorn with 20 concurrent clients (each sends its next request when
  the last one answered): the dashboard, its live part (what htmx fetches), the server list
  filtered by state, a customer admin's dashboard, and a server's retention timeline (a
  random server each time): p50, p95, max, requests per second; and the queries of each.

    .venv/bin/python bench/fleet.py                  # seed, measure, empty the tables
    .venv/bin/python bench/fleet.py --keep           # leave the data for --reuse
    .venv/bin/python bench/fleet.py --reuse --keep   # skip seeding when already seeded

The database (--database-url) is the benchmark's own, created if missing and migrated; its
name must contain "bench". /tmp/QUIET exists while it measures (other people's tests wait).
Exit status 1 when a target is missed or an unchanged cycle wrote something.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # before bench/: its billing.py must not hide the billing app
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bdr_bench_fleet"
PAGE_P95_MS = 150.0
CYCLE_SECONDS = 10.0
QUIET = Path("/tmp/QUIET")


def prepare_database(url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing {name!r}: the benchmark empties tables; name it *bench*")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as c:
        if not c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    os.environ.update(DATABASE_URL=url, DEBUG="false", DJANGO_SETTINGS_MODULE="portal.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


class Writes:
    """A connection.execute_wrapper counting statements by their first word."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.kinds[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    @property
    def writes(self) -> int:
        return sum(self.kinds[k] for k in ("INSERT", "UPDATE", "DELETE", "COPY"))


def timed_cycle(now: dt.datetime, label: str) -> list[str]:
    from django.db import connection

    from monitoring import engine

    counter = Writes()
    with connection.execute_wrapper(counter):
        mark = time.perf_counter()
        report = engine.run_cycle(now)
        seconds = time.perf_counter() - mark
    return [label, f"{seconds:.2f} s", f"{sum(counter.kinds.values()):,}", f"{counter.writes:,}",
            f"{report.statuses_written:,}", f"{len(report.raised):,}", f"{report.notices:,}"]  # fmt: skip


def backup_round(at: dt.datetime) -> int:
    """A minute of a real fleet: every 15th server (15-minute schedules) takes a point."""
    import fleet_seed

    from appliances.models import ProtectedServer
    from restores.models import RecoveryPoint

    ids = list(ProtectedServer.objects.order_by("pk").values_list("pk", flat=True)[::15])
    return fleet_seed.copy_rows(RecoveryPoint, (
        {"server_id": pk, "agent_id": f"round/{at:%Y%m%dT%H%M%S}", "volume": "C", "taken_at": at,
         "tier": "intraday", "size_bytes": 100 * 2**30, "synced_at": at} for pk in ids))  # fmt: skip


def measure_cycles(now: dt.datetime) -> tuple[list[list[str]], list[str]]:
    from django.db import connection

    from monitoring import retention_status

    rows = [
        timed_cycle(now, "first (statuses made)"),
        timed_cycle(now, "again, nothing changed"),
    ]
    made = backup_round(now + dt.timedelta(seconds=30))
    rows += [
        timed_cycle(now + dt.timedelta(minutes=1), f"a minute on, {made:,} new points"),
        timed_cycle(now + dt.timedelta(minutes=6), "6 min later (alerts raised)"),
        timed_cycle(now + dt.timedelta(minutes=6), "again, nothing changed"),
    ]
    counter = Writes()
    with connection.execute_wrapper(counter):
        mark = time.perf_counter()
        changed = retention_status.refresh(now)
        seconds = time.perf_counter() - mark
    again = retention_status.refresh(now)
    retention = [f"{seconds:.1f} s", f"{changed:,}", f"{again:,}"]
    return rows, retention


def session_cookie(user_id: int) -> str:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from tests.support.signin import force_login_verified

    client = Client()
    force_login_verified(client, get_user_model().objects.get(pk=user_id))
    return client.cookies["sessionid"].value


def queries_of(user_id: int, path: str, headers: dict | None = None) -> int:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.support.signin import force_login_verified

    client = Client(headers=headers or {})
    force_login_verified(client, get_user_model().objects.get(pk=user_id))
    with CaptureQueriesContext(connection) as ctx:
        status = client.get(path).status_code
    if status != 200:
        raise SystemExit(f"{path} answered {status}")
    return len(ctx.captured_queries)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds the machine has been busy, those of process ``pid`` and its children):
    /proc, so a page's CPU per request can be split between gunicorn, the client and the
    rest (PostgreSQL)."""
    tick = os.sysconf("SC_CLK_TCK")
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
    pids = [pid, *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    own = 0
    for p in pids:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        own += int(fields[11]) + int(fields[12])  # utime, stime
    return busy / tick, own / tick


def start_gunicorn(args) -> subprocess.Popen:
    url, port, workers, threads = args.database_url, args.port, args.workers, args.threads
    env = {**os.environ, "DATABASE_URL": url, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1",
           "CONN_MAX_AGE": str(args.conn_max_age)}  # fmt: skip
    command = [str(Path(sys.executable).with_name("gunicorn")), "portal.wsgi",
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads",
               str(threads), "--worker-class", "gthread", "--log-level", "warning"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    import http.client

    for _ in range(100):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/accounts/login/")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("gunicorn did not start")


def load(port: int, cookie: str, paths, clients: int, per_client: int, headers=None) -> list:
    """``clients`` threads, each sending ``per_client`` requests back to back; latencies."""
    import http.client

    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine = []
        for _ in range(per_client):
            path = paths(rng) if callable(paths) else paths
            start = time.perf_counter()
            conn.request("GET", path, headers={"Cookie": f"sessionid={cookie}", **(headers or {})})
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - start)
            if response.status != 200:
                errors.append(f"{path}: {response.status}")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    mark = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - mark
    if errors:
        raise SystemExit(f"{len(errors)} errors, e.g. {errors[:3]}")
    return [latencies, elapsed]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "| " + " | ".join(f"{{:{w}}}" for w in widths) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line.format(*header), rule] + [line.format(*r) for r in rows])


def measure_page(args, server_pid: int, cookie: str, path, headers) -> list[str]:
    """Latencies, throughput and CPU per request of one page under load."""
    busy, web = cpu_seconds(server_pid)
    client = time.process_time()
    latencies, elapsed = load(args.port, cookie, path, args.clients, args.requests, headers)
    n = len(latencies)
    client = (time.process_time() - client) / n * 1000
    after = cpu_seconds(server_pid)
    busy, web = (after[0] - busy) / n * 1000, (after[1] - web) / n * 1000
    p95 = percentile(latencies, 95) * 1000
    return [*(f"{percentile(latencies, p) * 1000:.0f}" for p in (50, 95, 99)),
            f"{max(latencies) * 1000:.0f}", f"{n / elapsed:.0f}", f"{busy:.1f}", f"{web:.1f}",
            f"{client:.1f}", f"{busy - web - client:.1f}",
            "met" if p95 <= PAGE_P95_MS else "MISSED"]  # fmt: skip


def measure_pages(args, seeded_servers: list[int], tech: int, admin: int) -> list[list[str]]:
    pages = [
        ("dashboard (technician)", tech, "/fleet/", None),
        ("dashboard, htmx live part", tech, "/fleet/", {"HX-Request": "true"}),
        ("servers, state=unprotected", tech, "/fleet/?state=unprotected", None),
        ("servers, state=warning, V2", tech, "/fleet/?state=warning&model=V2", None),
        ("dashboard (customer admin)", admin, "/fleet/", None),
        ("retention timeline", tech, lambda rng: f"/fleet/servers/{rng.choice(seeded_servers)}/retention/", None),
        ("servers out of retention", tech, "/fleet/retention/", None),
    ]  # fmt: skip
    cookies = {tech: session_cookie(tech), admin: session_cookie(admin)}
    server = start_gunicorn(args)
    rows = []
    try:
        for label, user, path, headers in pages:
            sample = path(random.Random(0)) if callable(path) else path
            queries = queries_of(user, sample, headers)
            load(args.port, cookies[user], path, args.clients, 3, headers)  # warm up
            rows.append([label, str(queries), *measure_page(args, server.pid, cookies[user],
                                                            path, headers)])  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    return rows


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--appliances", type=int, default=5_000)
    parser.add_argument("--servers", type=int, default=40_000)
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--jobs", type=int, default=200_000)
    parser.add_argument("--now", type=dt.datetime.fromisoformat, default=None,
                        help="the moment to seed and evaluate at (default: now)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=25, help="per client and page")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--conn-max-age", type=int, default=60,
                        help="gunicorn's CONN_MAX_AGE: 0 opens a PostgreSQL connection per request")  # fmt: skip
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--pages-only", action="store_true", help="with --reuse: no cycles")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    import fleet_seed

    args = parse_args(argv)
    now = (args.now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    prepare_database(args.database_url)
    from appliances.models import ProtectedServer
    from portal.models import User

    plan = fleet_seed.Plan(args.customers, args.appliances, args.servers, args.points, args.jobs)
    quiet = not QUIET.exists()
    if quiet:
        QUIET.write_text("bench/fleet.py\n")
    try:
        if args.reuse and ProtectedServer.objects.count() == plan.servers:
            seeded = fleet_seed.Seeded(server_ids=list(ProtectedServer.objects.values_list("pk", flat=True)),
                                       tech_id=User.objects.get(username="bench-tech").pk,
                                       customer_admin_id=User.objects.get(username="bench-admin").pk)  # fmt: skip
        else:
            mark = time.perf_counter()
            seeded = fleet_seed.seed(plan, now)
            from django.db import connection

            with connection.cursor() as cur:
                cur.execute("VACUUM (ANALYZE)")
            seeded.seconds["total, with VACUUM ANALYZE"] = time.perf_counter() - mark
        cycles, retention = measure_cycles(now) if not args.pages_only else ([], ["-"] * 3)
        pages = measure_pages(args, seeded.server_ids, seeded.tech_id, seeded.customer_admin_id)
    finally:
        if quiet:
            QUIET.unlink(missing_ok=True)
    return report(args, plan, seeded, cycles, retention, pages)


def report(args, plan, seeded, cycles, retention, pages) -> int:
    print(f"\nfleet monitoring: {plan.customers:,} customers, {plan.appliances:,} appliances, "
          f"{plan.servers:,} servers, {plan.points:,} points, {plan.jobs:,} jobs; "
          f"{os.cpu_count()} cores; gunicorn {args.workers} workers x {args.threads} threads")  # fmt: skip
    if seeded.seconds:
        print("seeding: " + "; ".join(f"{k} {v:.1f} s" for k, v in seeded.seconds.items()))
    print("\nevaluation cycle (target <= 10 s; with nothing changed, no write)")
    print(table(["cycle", "time", "statements", "writes", "statuses written", "alerts raised",
                 "notices"], cycles))  # fmt: skip
    print(
        f"\nretention refresh, whole fleet: {retention[0]}, {retention[1]} statuses changed; "
        f"again: {retention[2]} changed"
    )
    print(
        f"\npages under gunicorn, {args.clients} concurrent clients x {args.requests} requests "
        f"(target p95 <= {PAGE_P95_MS:.0f} ms)"
    )
    print(table(["page", "queries", "p50 ms", "p95 ms", "p99 ms", "max ms", "req/s",
                 "CPU ms/req", "gunicorn", "client", "rest (PostgreSQL)", "p95 target"],
                pages))  # fmt: skip
    print(
        "CPU ms/req: the machine's busy CPU time per request while the page was measured "
        f"(with {args.clients} clients always waiting, p50 is about {args.clients} x it / "
        f"{os.cpu_count()} cores)"
    )
    problems = [r[0] for r in pages if r[-1] != "met"]
    problems += [
        f"cycle '{r[0]}' took {r[1]}" for r in cycles[1:] if float(r[1][:-2]) > CYCLE_SECONDS
    ]
    problems += [
        f"cycle '{r[0]}' wrote {r[3]}" for r in cycles if "nothing" in r[0] and r[3] != "0"
    ]
    for problem in problems:
        print("MISSED:", problem)
    if not args.keep:
        import fleet_seed

        from appliances.models import Appliance
        from portal.models import Customer

        fleet_seed.empty([Customer, Appliance])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
