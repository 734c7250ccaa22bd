"""Benchmark: delivering alert notices (monitoring/delivery.py) on PostgreSQL.

Seeds N notices (one customer, one appliance, N alerts), one e-mail recipient (locmem mail),
and webhook endpoints on a local HTTP server in a thread: ``--hooks`` healthy ones, plus with
``--slow`` one that answers after 10 s (cut by BDR_WEBHOOK_TIMEOUT). Then runs
``delivery.fan_out`` and ``delivery.send_due`` (one batch each, what ``delivery.run`` loops
over) until nothing is due, and prints what each round made and sent, the time
and queries it took. The database (--database-url) is the benchmark's own: created if missing,
migrated, and its monitoring, appliance and portal rows deleted before the run.

    .venv/bin/python bench/notify.py --notices 1000 --hooks 2 --slow
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
NOW = dt.datetime(2026, 11, 5, 10, 0, tzinfo=dt.UTC)


def _setup(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["DEBUG"] = "false"
    from urllib.parse import urlsplit, urlunsplit

    import django
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    assert "bench" in name, "the benchmark's database name must contain 'bench'"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname=%s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _seed(notices: int, hooks: list[str]) -> None:
    from appliances.models import Alert, Appliance
    from monitoring.models import AlertNotice, EmailRecipient, WebhookEndpoint
    from monitoring.webhooks import new_secret
    from portal.models import Customer, Site

    Alert.objects.filter(customer__name="bench-notify").delete()
    Appliance.objects.filter(customer__name="bench-notify").delete()
    Site.objects.filter(customer__name="bench-notify").delete()
    Customer.objects.filter(name="bench-notify").delete()
    EmailRecipient.objects.all().delete()
    WebhookEndpoint.objects.all().delete()
    customer = Customer.objects.create(name="bench-notify")
    site = Site.objects.create(customer=customer, name="HQ")
    nas = Appliance.objects.create(serial="BENCH-N1", name="bench-nas", model="V2",
                                   customer=customer, site=site)  # fmt: skip
    alerts = Alert.objects.bulk_create(
        Alert(customer=customer, appliance=nas, kind="backup_failed", message=f"bench {i}")
        for i in range(notices)
    )
    AlertNotice.objects.bulk_create(AlertNotice(alert=a, kind="opened", at=NOW) for a in alerts)
    EmailRecipient.objects.create(address="oncall@bench.example")
    for i, url in enumerate(hooks):
        WebhookEndpoint.objects.create(name=f"hook {i}", url=url, secret=new_secret())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/bdr_bench_notify")
    ap.add_argument("--notices", type=int, default=1000)
    ap.add_argument("--hooks", type=int, default=2)
    ap.add_argument("--slow", action="store_true")
    args = ap.parse_args()
    _setup(args.database_url)
    from django.db import connection
    from django.db.models import Count
    from django.test.utils import CaptureQueriesContext

    from monitoring import delivery
    from monitoring.models import Delivery
    from tests.support import webhook_receiver

    good = webhook_receiver.start()
    urls = [good.url(f"/h{i}") for i in range(args.hooks)]
    if args.slow:
        slow = webhook_receiver.start()
        slow.delay = 10.0
        urls.append(slow.url("/slow"))
    _seed(args.notices, urls)
    print("| round | made | sent | seconds | queries |\n|---|---|---|---|---|")
    total, now, rnd = time.perf_counter(), NOW, 0
    while True:
        rnd += 1
        connection.queries_log.clear()  # the log keeps 9,000 queries at most
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as ctx:
            made, sent = delivery.fan_out(now), delivery.send_due(now)
        took = time.perf_counter() - started
        if not made and not sent:
            break
        print(f"| {rnd} | {made} | {sent} | {took:.2f} | {len(ctx.captured_queries)} |")
    states = dict(Delivery.objects.values_list("state").annotate(n=Count("id")))
    print(
        f"\nall rounds: {time.perf_counter() - total:.1f} s; deliveries by state: {states}; "
        f"webhooks received: {len(good.received)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
