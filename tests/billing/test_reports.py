"""Report figures, written out by hand."""

import datetime as dt
from decimal import Decimal

from django.utils import timezone

from billing import month_run, reports, services
from billing.models import Invoice
from tests import factories as f
from tests.billing.conftest import GIB, add_usage

D = dt.date


def test_mrr_counts_rental_and_monitoring_running_at_month_end(price_book, msp_admin):
    f.SubscriptionFactory(appliance__model="V1", kind="rental", starts_on=D(2026, 1, 1))
    f.SubscriptionFactory(appliance__model="V2", kind="purchase", starts_on=D(2026, 2, 10))
    f.SubscriptionFactory(
        appliance__model="V2", kind="rental", starts_on=D(2026, 1, 1), ends_on=D(2026, 2, 27)
    )
    rows = reports.mrr_by_month(msp_admin, [D(2026, 1, 1), D(2026, 2, 1), D(2026, 3, 1)])
    # Jan: V1 rental 79+49 + V2 rental 149+99 = 376; Feb: V1 128 + V2 purchase 99 = 227.
    assert [r["mrr"] for r in rows] == [Decimal("376.00"), Decimal("227.00"), Decimal("227.00")]
    assert [r["change"] for r in rows] == [None, Decimal("-149.00"), Decimal("0.00")]
    assert rows[1]["change_pct"] == Decimal("-39.6")


def test_mrr_uses_the_new_price_book_after_a_change(july_price_change, msp_admin):
    f.SubscriptionFactory(appliance__model="V1", kind="rental", starts_on=D(2026, 1, 1))
    rows = reports.mrr_by_month(msp_admin, [D(2026, 6, 1), D(2026, 7, 1)])
    assert [r["mrr"] for r in rows] == [Decimal("128.00"), Decimal("144.00")]


def test_revenue_by_category_counts_billed_invoices_only(price_book, msp_admin):
    bought = f.SubscriptionFactory(appliance__model="V1", kind="purchase", starts_on=D(2026, 3, 1))
    add_usage(bought.appliance, D(2026, 3, 1), D(2026, 3, 31), 35 * GIB)
    rented = f.SubscriptionFactory(appliance__model="V2", kind="rental", starts_on=D(2026, 3, 1))
    billed = services.generate_invoice(bought.customer, D(2026, 3, 1))
    services.finalize_invoice(billed, actor=None)
    services.generate_invoice(rented.customer, D(2026, 3, 1))  # a draft: not revenue
    rows = reports.revenue_by_month(msp_admin, [D(2026, 2, 1), D(2026, 3, 1)])
    assert rows[0]["total"] == 0
    assert (rows[1]["hardware"], rows[1]["rental"], rows[1]["monitoring"], rows[1]["overage"]) == (
        Decimal("1399.00"),
        Decimal("0.00"),
        Decimal("49.00"),
        Decimal("4.95"),
    )
    assert rows[1]["total"] == Decimal("1452.95")


def test_top_consumers_are_ordered_by_average_with_their_overage(price_book, msp_admin):
    small = f.SubscriptionFactory(appliance__model="V1", starts_on=D(2026, 1, 1))
    big = f.SubscriptionFactory(appliance__model="V1", starts_on=D(2026, 1, 1))
    add_usage(small.appliance, D(2026, 3, 1), D(2026, 3, 31), 10 * GIB)
    add_usage(big.appliance, D(2026, 3, 1), D(2026, 3, 31), 40 * GIB + GIB // 2)
    month_run.run_month(D(2026, 3, 1))
    for invoice in Invoice.objects.all():
        services.finalize_invoice(invoice, actor=None)
    rows = reports.top_consumers(msp_admin, D(2026, 3, 1))
    assert [r["serial"] for r in rows] == [big.appliance.serial, small.appliance.serial]
    assert rows[0]["average_gb"] == Decimal("40.50")
    assert rows[0]["overage_billed"] == Decimal("10.89")  # ceil(10.5) = 11 GB x 0.99
    assert rows[1]["overage_billed"] == Decimal("0.00")


def test_unpaid_invoices_fall_into_age_buckets(price_book, msp_admin):
    today = D(2026, 6, 30)
    ages = {"a": 0, "b": 30, "c": 31, "d": 60, "e": 61, "f": 90, "g": 91, "h": 400}
    for name, age in ages.items():
        finalized = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(age), dt.time(12)))
        f.InvoiceFactory(
            number=name, status="finalized", finalized_at=finalized, total=Decimal("10.00")
        )
    f.InvoiceFactory(number="paid", status="paid", finalized_at=timezone.now())
    rows = reports.unpaid_by_age(msp_admin, today=today)
    assert [(r["bucket"], r["count"], r["amount"]) for r in rows] == [
        ("0-30 days", 2, Decimal("20.00")),
        ("31-60 days", 2, Decimal("20.00")),
        ("61-90 days", 2, Decimal("20.00")),
        ("90+ days", 2, Decimal("20.00")),
    ]
