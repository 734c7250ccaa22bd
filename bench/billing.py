"""Benchmark: the monthly invoice run at MSP scale, on PostgreSQL.

Seeds customers, appliances (V1 and V2, bought and rented, some starting or ending mid-month)
and a month of daily off-site usage samples, then times ``billing.month_run.run_month``, the
service the beat task ``billing.tasks.run_monthly_invoices`` calls, counting the queries it
issues and the process's peak RSS while it runs. It then runs the same month again to show
that a re-run makes nothing and changes nothing. Seeding is timed separately.

    .venv/bin/python bench/billing.py                    # 10,000 customers, 25,000 appliances
    .venv/bin/python bench/billing.py --customers 1000 --appliances 2500
    .venv/bin/python bench/billing.py --keep             # leave the data for a later --reuse
    .venv/bin/python bench/billing.py --reuse --keep     # skip seeding when already seeded

The database (--database-url) is the benchmark's own: it is created if missing and migrated,
and its portal and billing tables are emptied before seeding and after the run (unless --keep),
so its name must contain "bench". DEBUG is off, as in production, so Django keeps no query log.
Exit status 1 when the invoices made are not the ones the seed implies or a re-run changed them.
"""

from __future__ import annotations

import argparse
import calendar
import datetime as dt
import gc
import hashlib
import os
import random
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/bdr_bench_billing"
TARGET_SECONDS = 60.0
GIB = 2**30
SEED = 2026
BATCH = 5000


@dataclass(frozen=True)
class PlannedAppliance:
    """One seeded appliance and its subscription, with how its off-site usage moves."""

    customer: int  # index into the seeded customers
    model: str
    kind: str
    starts_on: dt.date
    ends_on: dt.date | None
    base_gb: float  # off-site usage on the first sampled day
    growth_gb: float  # added each day after that

    def sampled_days(self, period: dt.date) -> list[dt.date]:
        """The days of ``period``'s month the daily task samples (those it is subscribed)."""
        last = period.replace(day=calendar.monthrange(period.year, period.month)[1])
        first, last = max(self.starts_on, period), min(self.ends_on or last, last)
        return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]

    def expected_lines(self, period: dt.date) -> int:
        """Monitoring and overage always; rental for rentals; hardware if bought this month."""
        bought_now = self.kind == "purchase" and self.starts_on >= period
        return 2 + (self.kind == "rental") + bought_now


def plan(customers: int, appliances: int, period: dt.date) -> list[PlannedAppliance]:
    """A deterministic mix: 60% V1, 45% rented, ~6% new this month, ~6% ending, ~2% both."""
    rng = random.Random(SEED)
    month_days = calendar.monthrange(period.year, period.month)[1]
    items = []
    for i in range(appliances):
        owner = i if i < customers else rng.randrange(customers)
        model = "V1" if rng.random() < 0.6 else "V2"
        kind = "rental" if rng.random() < 0.45 else "purchase"
        long_ago = period - dt.timedelta(days=rng.randrange(1, 3 * 365))
        mid = period + dt.timedelta(days=rng.randrange(1, month_days - 1))
        shape = rng.random()
        if shape < 0.06:
            starts, ends = mid, None
        elif shape < 0.12:
            starts, ends = long_ago, mid
        elif shape < 0.14:
            starts = period + dt.timedelta(days=rng.randrange(1, 10))
            ends = starts + dt.timedelta(days=rng.randrange(0, month_days - 11))
        else:
            starts, ends = long_ago, None
        included = 30 if model == "V1" else 60
        base = rng.uniform(0.2, 1.6) * included  # about a third end the month over
        items.append(
            PlannedAppliance(owner, model, kind, starts, ends, base, rng.uniform(0.0, 0.4))
        )
    return items


# --- database -----------------------------------------------------------------------------


def prepare_database(url: str) -> float:
    """Create the database if missing, point Django at it and migrate. Returns seconds."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        sys.exit(f"refusing {name!r}: the benchmark empties tables, use a database named *bench*")
    started = time.perf_counter()
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    os.environ["DATABASE_URL"] = url
    os.environ["DEBUG"] = "false"
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    return time.perf_counter() - started


def _truncate(models) -> None:
    from django.db import connection

    tables = ", ".join(connection.ops.quote_name(m._meta.db_table) for m in models)
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")  # noqa: S608 (our tables)


def empty_invoices() -> None:
    """Forget earlier runs: invoices, their lines and the audit log."""
    from billing.models import Invoice, InvoiceLine, StripeEvent
    from portal.models import AuditEvent

    _truncate([InvoiceLine, StripeEvent, Invoice, AuditEvent])


def empty_all() -> None:
    from appliances.models import Appliance
    from billing.models import BillingAccount, Subscription, UsageSample
    from portal.models import Customer, Site

    empty_invoices()
    _truncate([UsageSample, Subscription, BillingAccount, Appliance, Site, Customer])


def is_seeded(customers: int, items: list[PlannedAppliance], period: dt.date) -> bool:
    from appliances.models import Appliance
    from billing.models import Subscription, UsageSample
    from portal.models import Customer

    samples = sum(len(p.sampled_days(period)) for p in items)
    return (
        Customer.objects.count() == customers
        and Appliance.objects.count() == Subscription.objects.count() == len(items)
        and UsageSample.objects.count() == samples
        and UsageSample.objects.filter(day__gte=period, day__lte=_month_end(period)).count()
        == samples
    )


def _month_end(period: dt.date) -> dt.date:
    return period.replace(day=calendar.monthrange(period.year, period.month)[1])


# --- seeding ------------------------------------------------------------------------------


def seed(customers: int, items: list[PlannedAppliance], period: dt.date) -> dict[str, float]:
    """Empty the tables and load the plan: ORM bulk_create, COPY for the samples."""
    from django.db import connection

    from appliances.models import Appliance
    from billing.models import Subscription
    from portal.models import Customer, Site

    times: dict[str, float] = {}
    started = time.perf_counter()
    empty_all()
    names = [f"Bench customer {i:05d}" for i in range(customers)]
    custs = Customer.objects.bulk_create(
        [Customer(name=n, contact_email=f"it@bench{i:05d}.example") for i, n in enumerate(names)],
        batch_size=BATCH,
    )
    sites = Site.objects.bulk_create(
        [Site(customer=c, name="Head office") for c in custs], batch_size=BATCH
    )
    times["customers and sites"] = time.perf_counter() - started

    mark = time.perf_counter()
    appliances = Appliance.objects.bulk_create(
        [
            Appliance(
                serial=f"BENCH{i:06d}",
                name=f"nas-{i:05d}",
                model=p.model,
                customer=custs[p.customer],
                site=sites[p.customer],
                capacity_bytes=(450 if p.model == "V1" else 2000) * 10**9,
                purchased_on=p.starts_on,
            )
            for i, p in enumerate(items)
        ],
        batch_size=BATCH,
    )
    Subscription.objects.bulk_create(
        [
            Subscription(
                customer_id=a.customer_id,
                appliance=a,
                kind=p.kind,
                starts_on=p.starts_on,
                ends_on=p.ends_on,
            )
            for a, p in zip(appliances, items, strict=True)
        ],
        batch_size=BATCH,
    )
    times["appliances and subscriptions"] = time.perf_counter() - mark

    mark = time.perf_counter()
    copy_samples([a.pk for a in appliances], items, period)
    times["usage samples (COPY)"] = time.perf_counter() - mark

    mark = time.perf_counter()
    with connection.cursor() as cur:  # settle the new rows now, not in autovacuum mid-run
        cur.execute("VACUUM (ANALYZE)")
    times["VACUUM ANALYZE"] = time.perf_counter() - mark
    times["seeding total"] = time.perf_counter() - started
    return times


def copy_samples(ids: list[int], items: list[PlannedAppliance], period: dt.date) -> None:
    from django.db import connection
    from django.utils import timezone

    from billing.models import UsageSample

    meta = UsageSample._meta
    columns = [meta.get_field(f).column for f in ("appliance", "day", "offsite_bytes", "taken_at")]
    statement = f"COPY {meta.db_table} ({', '.join(columns)}) FROM STDIN"
    taken_at = timezone.now()
    with connection.cursor() as cur, cur.copy(statement) as copy:
        for pk, p in zip(ids, items, strict=True):
            for n, day in enumerate(p.sampled_days(period)):
                copy.write_row((pk, day, int((p.base_gb + n * p.growth_gb) * GIB), taken_at))


# --- the measured run ---------------------------------------------------------------------


class QueryCounter:
    """A connection.execute_wrapper that counts statements by their first word."""

    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.kinds[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, params, many, context)

    @property
    def total(self) -> int:
        return sum(self.kinds.values())


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _peak_rss_mib() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Measured:
    created: int
    already_there: int
    seconds: float
    queries: QueryCounter
    peak_rss_mib: float
    run_only_rss: bool


def measure(period: dt.date) -> Measured:
    """One monthly run as the beat task makes it, timed, its queries counted."""
    from django.db import connection

    from billing import month_run

    gc.collect()
    reset = _reset_peak_rss()
    counter = QueryCounter()
    with connection.execute_wrapper(counter):
        started = time.perf_counter()
        result = month_run.run_month(period)
        seconds = time.perf_counter() - started
    return Measured(result.created, result.already_there, seconds, counter, _peak_rss_mib(), reset)


def invoice_state(period: dt.date) -> tuple[int, int, str]:
    """Invoices and lines of the month, and a digest of everything they say."""
    from billing.models import Invoice, InvoiceLine

    digest = hashlib.sha256()
    invoices = Invoice.objects.filter(period_start=period).order_by("pk")
    for row in invoices.values_list("pk", "number", "status", "total", "price_book_id"):
        digest.update(repr(row).encode())
    lines = InvoiceLine.objects.filter(invoice__period_start=period).order_by("pk")
    fields = ("pk", "invoice_id", "position", "category", "quantity", "amount", "description")
    n_lines = 0
    for row in lines.values_list(*fields).iterator(chunk_size=10000):
        digest.update(repr(row).encode())
        n_lines += 1
    return invoices.count(), n_lines, digest.hexdigest()[:16]


# --- report -------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = "| " + " | ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header) + " |", "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [fmt.format(*r) + " |" for r in rows]
    return "\n".join(out)


def report_row(label, m: Measured, customers, appliances, samples, lines) -> list[str]:
    return [
        label,
        f"{customers:,}",
        f"{appliances:,}",
        f"{samples:,}",
        f"{m.created:,}",
        f"{lines:,}",
        f"{m.seconds:.2f}",
        f"{m.queries.total:,}",
        f"{m.queries.total / max(customers, 1):.2f}",
        f"{m.peak_rss_mib:.0f} MiB" + ("" if m.run_only_rss else " (process)"),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from_today = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--appliances", type=int, default=25_000)
    parser.add_argument(
        "--month",
        type=lambda s: dt.date.fromisoformat(s + "-01"),
        default=from_today,
        help="YYYY-MM to bill (default: the month before this one, as the beat task does)",
    )
    parser.add_argument("--keep", action="store_true", help="leave the seeded data and invoices")
    parser.add_argument("--reuse", action="store_true", help="skip seeding if already seeded")
    args = parser.parse_args(argv)
    if args.customers < 1 or args.appliances < 1:
        parser.error("--customers and --appliances must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    period = args.month
    migrate_seconds = prepare_database(args.database_url)
    items = plan(args.customers, args.appliances, period)
    samples = sum(len(p.sampled_days(period)) for p in items)
    billed = len({p.customer for p in items})
    expected_lines = sum(p.expected_lines(period) for p in items)

    if args.reuse and is_seeded(args.customers, items, period):
        seeding = {"seeding total (reused)": 0.0}
        empty_invoices()
    else:
        seeding = seed(args.customers, items, period)
    items = None  # the run should not carry the seed's memory
    gc.collect()

    first = measure(period)
    first_state = invoice_state(period)
    again = measure(period)
    again_state = invoice_state(period)

    print(f"\nbilling monthly run, {period:%B %Y}, database {args.database_url}")
    print(
        f"migrate {migrate_seconds:.1f} s; "
        + "; ".join(f"{k} {v:.1f} s" for k, v in seeding.items())
    )
    header = ["run", "customers", "appliances", "samples", "invoices made", "invoice lines",
              "seconds", "queries total", "queries/customer", "peak RSS"]  # fmt: skip
    rows = [
        report_row("first", first, billed, args.appliances, samples, first_state[1]),
        report_row("re-run", again, billed, args.appliances, samples, 0),
    ]
    print(_table(header, rows))
    for label, m in (("first", first), ("re-run", again)):
        kinds = ", ".join(f"{k} {v:,}" for k, v in m.queries.kinds.most_common())
        print(f"queries, {label}: {kinds}")
    problems = []
    if (first.created, first_state[:2]) != (billed, (billed, expected_lines)):
        problems.append(
            f"expected {billed} invoices with {expected_lines} lines, made {first.created}, "
            f"found {first_state[0]} with {first_state[1]} lines"
        )
    if again.created or again.already_there != billed or again_state != first_state:
        problems.append(f"the re-run changed something: {first_state} -> {again_state}")
    verdict = "met" if first.seconds < TARGET_SECONDS else "MISSED"
    print(f"target: under {TARGET_SECONDS:.0f} s: {verdict}")
    print(
        f"re-run: {again.created} invoices made, {again.already_there:,} already there, "
        f"invoices and lines unchanged: {'yes' if again_state == first_state else 'NO'} "
        f"(digest {again_state[2]})"
    )
    for problem in problems:
        print("PROBLEM:", problem)
    if not args.keep:
        empty_all()
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
