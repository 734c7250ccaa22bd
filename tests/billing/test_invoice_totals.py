"""Invoice arithmetic as a table: each case's lines and total worked out by hand.

List prices (version 1): V1 $1,399 / $79 rental / $49 monitoring / 30 GB included;
V2 $2,699 / $149 / $99 / 60 GB; overage $0.99 per GB (2^30 bytes). From July 2026 (version 2,
the ``july_price_change`` fixture): V1 $1,499 / $89 / $55 / 40 GB; V2 $2,799 / $159 / $109 /
80 GB; overage $1.245 per GB, which shows half-up rounding (1.245 -> 1.25).
"""

import datetime as dt
from decimal import Decimal

import pytest

from billing import services
from tests import factories as f
from tests.billing.conftest import GIB, add_usage

D = dt.date

CASES = [
    # id, month billed, subscriptions, expected lines (category, amount), expected total
    (
        "v1 purchase, first month: hardware once + a full month of monitoring",
        D(2026, 3, 1),
        [dict(model="V1", kind="purchase", start=D(2026, 3, 1))],
        [("hardware", "1399.00"), ("monitoring", "49.00")],
        "1448.00",
    ),
    (
        "v1 purchase, a later month: monitoring only",
        D(2026, 3, 1),
        [dict(model="V1", kind="purchase", start=D(2026, 1, 10))],
        [("monitoring", "49.00")],
        "49.00",
    ),
    (
        "v2 purchase from 16 April: hardware + 15/30 of monitoring",
        D(2026, 4, 1),
        [dict(model="V2", kind="purchase", start=D(2026, 4, 16))],
        [("hardware", "2699.00"), ("monitoring", "49.50")],
        "2748.50",
    ),
    (
        "v2 rental, full month",
        D(2026, 4, 1),
        [dict(model="V2", kind="rental", start=D(2026, 1, 1))],
        [("rental", "149.00"), ("monitoring", "99.00")],
        "248.00",
    ),
    (
        "v1 rental from 17 March: 15/31 days (38.2258 -> 38.23, 23.7097 -> 23.71)",
        D(2026, 3, 1),
        [dict(model="V1", kind="rental", start=D(2026, 3, 17))],
        [("rental", "38.23"), ("monitoring", "23.71")],
        "61.94",
    ),
    (
        "v2 rental ending 10 April: 10/30 days (49.667 -> 49.67)",
        D(2026, 4, 1),
        [dict(model="V2", kind="rental", start=D(2026, 1, 1), end=D(2026, 4, 10))],
        [("rental", "49.67"), ("monitoring", "33.00")],
        "82.67",
    ),
    (
        "v1 rental 10-20 May: 11/31 days",
        D(2026, 5, 1),
        [dict(model="V1", kind="rental", start=D(2026, 5, 10), end=D(2026, 5, 20))],
        [("rental", "28.03"), ("monitoring", "17.39")],
        "45.42",
    ),
    (
        "february 2026 (28 days), v2 rental from the 15th: 14/28",
        D(2026, 2, 1),
        [dict(model="V2", kind="rental", start=D(2026, 2, 15))],
        [("rental", "74.50"), ("monitoring", "49.50")],
        "124.00",
    ),
    (
        "february 2024 (leap, 29 days), v2 rental from the 15th: 15/29",
        D(2024, 2, 1),
        [dict(model="V2", kind="rental", start=D(2024, 2, 15))],
        [("rental", "77.07"), ("monitoring", "51.21")],
        "128.28",
    ),
    (
        "v1 bought on 29 February 2024: hardware + 1/29 of monitoring",
        D(2024, 2, 1),
        [dict(model="V1", kind="purchase", start=D(2024, 2, 29))],
        [("hardware", "1399.00"), ("monitoring", "1.69")],
        "1400.69",
    ),
    (
        "rental ended the month before: no invoice",
        D(2026, 3, 1),
        [dict(model="V1", kind="rental", start=D(2026, 1, 1), end=D(2026, 2, 28))],
        [],
        None,
    ),
    (
        "june 2026, before the price change: old prices",
        D(2026, 6, 1),
        [dict(model="V1", kind="rental", start=D(2026, 1, 1))],
        [("rental", "79.00"), ("monitoring", "49.00")],
        "128.00",
    ),
    (
        "july 2026, after the price change: new prices",
        D(2026, 7, 1),
        [dict(model="V1", kind="rental", start=D(2026, 1, 1))],
        [("rental", "89.00"), ("monitoring", "55.00")],
        "144.00",
    ),
    (
        "v2 bought 20 July 2026 at the new price: 12/31 of $109 monitoring",
        D(2026, 7, 1),
        [dict(model="V2", kind="purchase", start=D(2026, 7, 20))],
        [("hardware", "2799.00"), ("monitoring", "42.19")],
        "2841.19",
    ),
    (
        "usage one byte under the 60 GB included: no overage",
        D(2026, 6, 1),
        [dict(model="V2", kind="purchase", start=D(2026, 1, 1), usage=[(1, 30, 60 * GIB - 1)])],
        [("monitoring", "99.00"), ("overage", "0.00")],
        "99.00",
    ),
    (
        "usage exactly at the 60 GB included: no overage",
        D(2026, 6, 1),
        [dict(model="V2", kind="purchase", start=D(2026, 1, 1), usage=[(1, 30, 60 * GIB)])],
        [("monitoring", "99.00"), ("overage", "0.00")],
        "99.00",
    ),
    (
        "usage one byte over: rounds up to 1 GB",
        D(2026, 6, 1),
        [dict(model="V2", kind="purchase", start=D(2026, 1, 1), usage=[(1, 30, 60 * GIB + 1)])],
        [("monitoring", "99.00"), ("overage", "0.99")],
        "99.99",
    ),
    (
        "half the month at 50 GB, half at 71: average 60.5 -> 1 GB over",
        D(2026, 6, 1),
        [
            dict(
                model="V2",
                kind="purchase",
                start=D(2026, 1, 1),
                usage=[(1, 15, 50 * GIB), (16, 30, 71 * GIB)],
            )
        ],
        [("monitoring", "99.00"), ("overage", "0.99")],
        "99.99",
    ),
    (
        "average 72.5 GB on a V2: 13 GB over, 12.87",
        D(2026, 6, 1),
        [
            dict(
                model="V2",
                kind="purchase",
                start=D(2026, 1, 1),
                usage=[(1, 30, 72 * GIB + GIB // 2)],
            )
        ],
        [("monitoring", "99.00"), ("overage", "12.87")],
        "111.87",
    ),
    (
        "july 2026: 41 GB on a V1 with 40 included, 1 GB at $1.245 -> 1.25 (half up)",
        D(2026, 7, 1),
        [dict(model="V1", kind="rental", start=D(2026, 1, 1), usage=[(1, 31, 41 * GIB)])],
        [("rental", "89.00"), ("monitoring", "55.00"), ("overage", "1.25")],
        "145.25",
    ),
    (
        "usage before the rental started does not count",
        D(2026, 3, 1),
        [
            dict(
                model="V1",
                kind="rental",
                start=D(2026, 3, 17),
                usage=[(1, 16, 100 * GIB), (17, 31, 30 * GIB)],
            )
        ],
        [("rental", "38.23"), ("monitoring", "23.71"), ("overage", "0.00")],
        "61.94",
    ),
    (
        "three appliances on one invoice",
        D(2026, 3, 1),
        [
            dict(
                name="a1",
                model="V1",
                kind="purchase",
                start=D(2026, 3, 1),
                usage=[(1, 31, 35 * GIB)],
            ),
            dict(name="a2", model="V2", kind="rental", start=D(2026, 1, 1)),
            dict(name="a3", model="V2", kind="rental", start=D(2026, 3, 17)),
        ],
        [
            ("hardware", "1399.00"),
            ("monitoring", "49.00"),
            ("overage", "4.95"),
            ("rental", "149.00"),
            ("monitoring", "99.00"),
            ("rental", "72.10"),
            ("monitoring", "47.90"),
        ],
        "1820.95",
    ),
]


@pytest.mark.parametrize(
    "period, subs, expected_lines, expected_total",
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_invoice_lines_and_total(july_price_change, period, subs, expected_lines, expected_total):
    customer = f.CustomerFactory()
    for spec in subs:
        appliance = f.ApplianceFactory(
            customer=customer, model=spec["model"], name=spec.get("name", "nas")
        )
        f.SubscriptionFactory(
            appliance=appliance, kind=spec["kind"], starts_on=spec["start"], ends_on=spec.get("end")
        )
        for first, last, size in spec.get("usage", []):
            add_usage(appliance, period.replace(day=first), period.replace(day=last), size)

    invoice = services.generate_invoice(customer, period)

    if expected_total is None:
        assert invoice is None
        return
    got = [(line.category, str(line.amount)) for line in invoice.lines.order_by("position")]
    assert got == expected_lines
    assert invoice.total == Decimal(expected_total)
    assert invoice.total == sum(line.amount for line in invoice.lines.all())


def test_overage_line_states_that_a_gb_is_two_to_the_thirtieth_bytes(price_book):
    sub = f.SubscriptionFactory(appliance__model="V1", starts_on=D(2026, 1, 1))
    add_usage(sub.appliance, D(2026, 6, 1), D(2026, 6, 30), 31 * GIB)
    invoice = services.generate_invoice(sub.customer, D(2026, 6, 1))
    overage = invoice.lines.get(category="overage")
    assert "1 GB = 2^30 bytes" in overage.description
    assert overage.detail["overage_gb"] == 1
    assert overage.detail["samples"] == 30


@pytest.mark.parametrize(
    "vault_days, says",
    [
        (30, "30 daily samples (measured on the vault)"),
        (20, "30 daily samples (10 of them local bytes (no vault figure))"),
        (0, "30 daily samples (local bytes: no vault figure)"),
    ],
)
def test_overage_line_says_where_the_off_site_bytes_were_measured(price_book, vault_days, says):
    sub = f.SubscriptionFactory(appliance__model="V1", starts_on=D(2026, 1, 1))
    if vault_days:
        add_usage(sub.appliance, D(2026, 6, 1), D(2026, 6, vault_days), 31 * GIB, "vault")
    if vault_days < 30:
        add_usage(sub.appliance, D(2026, 6, vault_days + 1), D(2026, 6, 30), 31 * GIB)
    invoice = services.generate_invoice(sub.customer, D(2026, 6, 1))
    overage = invoice.lines.get(category="overage")
    assert says in overage.description
    assert overage.detail["local_samples"] == 30 - vault_days


def test_invoice_uses_the_price_book_in_force_for_its_month(july_price_change, price_book):
    sub = f.SubscriptionFactory(starts_on=D(2026, 1, 1))
    june = services.generate_invoice(sub.customer, D(2026, 6, 1))
    july = services.generate_invoice(sub.customer, D(2026, 7, 1))
    assert june.price_book == price_book
    assert july.price_book == july_price_change
