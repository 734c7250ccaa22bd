"""Billing pages: MSP admins only, constant queries, printable invoice, CSV exports."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from billing import month_run, services, subscriptions
from billing.models import Invoice, InvoiceStatus
from portal.models import Role
from tests import factories as f
from tests.billing.conftest import GIB, add_usage
from tests.portal.test_isolation import all_routes, url_for
from tests.support.signin import force_login_verified
from tests.tenancy_world import build_world

NOT_ADMINS = [Role.TECHNICIAN, Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER]


def billing_routes():
    return [(n, k) for n, k in all_routes() if n.startswith("billing_")]


@pytest.mark.parametrize("role", NOT_ADMINS)
def test_every_billing_page_and_export_answers_404_to_everyone_but_msp_admins(client, db, role):
    world = build_world()
    user = world.own.users.get(role) or world.msp[role]
    force_login_verified(client, user)
    routes = billing_routes()
    assert len(routes) >= 20
    for name, kwargs in routes:
        for tenant in (world.own, world.other):
            url = url_for(name, kwargs, tenant)
            assert client.get(url).status_code == 404, (role, url)
            assert client.post(url).status_code == 404, (role, url)


def test_msp_admin_opens_every_billing_page(client, db):
    world = build_world()
    force_login_verified(client, world.msp[Role.MSP_ADMIN])
    for name, kwargs in billing_routes():
        response = client.get(url_for(name, kwargs, world.other))
        assert response.status_code in (200, 405), (name, response.status_code)


def test_stripe_webhook_refuses_browsers_with_405(client, db):
    assert client.get(reverse("stripe_webhook")).status_code == 405


def _customers_with_invoices(n: int, period=dt.date(2026, 3, 1)):
    for i in range(n):
        sub = f.SubscriptionFactory(
            appliance__model="V1" if i % 2 else "V2",
            kind="rental" if i % 3 else "purchase",
            starts_on=dt.date(2026, 1, 1),
        )
        add_usage(sub.appliance, period, period.replace(day=3), (40 + i) * GIB)
    month_run.run_month(period)
    for invoice in Invoice.objects.filter(period_start=period, status="draft")[: n // 2]:
        services.finalize_invoice(invoice, actor=None)


@pytest.mark.parametrize(
    "name",
    [
        "billing_home",
        "billing_invoices",
        "billing_subscriptions",
        "billing_price_books",
        "billing_reports",
        "billing_invoices_csv",
        "billing_report_mrr_csv",
        "billing_report_revenue_csv",
        "billing_report_consumers_csv",
        "billing_report_unpaid_csv",
    ],
)
def test_list_and_report_pages_keep_a_constant_number_of_queries(
    client, msp_admin, price_book, django_assert_max_num_queries, name
):
    force_login_verified(client, msp_admin)
    url = reverse(name) + (
        "?month=2026-03" if "consumers" in name or name == "billing_reports" else ""
    )
    _customers_with_invoices(2)
    with django_assert_max_num_queries(12) as small:
        assert client.get(url).status_code == 200
    _customers_with_invoices(12)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(url).status_code == 200


def test_invoice_page_and_csv_keep_a_constant_number_of_queries(
    client, msp_admin, price_book, django_assert_max_num_queries
):
    force_login_verified(client, msp_admin)
    small = f.SubscriptionFactory(starts_on=dt.date(2026, 3, 1))
    big_customer = f.CustomerFactory()
    for _ in range(6):
        f.SubscriptionFactory(appliance__customer=big_customer, starts_on=dt.date(2026, 3, 1))
    counts = []
    for customer in (small.customer, big_customer):
        invoice = services.generate_invoice(customer, dt.date(2026, 3, 1))
        for name in ("billing_invoice_detail", "billing_invoice_csv"):
            with django_assert_max_num_queries(10) as ctx:
                assert client.get(reverse(name, args=[invoice.pk])).status_code == 200
            counts.append((name, len(ctx.captured_queries)))
    assert counts[0][1] == counts[2][1] and counts[1][1] == counts[3][1]


def test_invoice_page_is_printable_and_states_the_gb(client, msp_admin, price_book):
    force_login_verified(client, msp_admin)
    sub = f.SubscriptionFactory(appliance__model="V1", starts_on=dt.date(2026, 3, 17))
    invoice = services.generate_invoice(sub.customer, dt.date(2026, 3, 1))
    html = client.get(reverse("billing_invoice_detail", args=[invoice.pk])).content.decode()
    assert "1 GB = 2^30 bytes" in html
    assert "$61.94" in html
    # The print rules live in the stylesheet (no inline style under the CSP), the button is
    # bound by static/js/portal.js.
    assert "css/portal.css" in html and "data-print" in html
    css = (settings.BASE_DIR / "static" / "css" / "portal.css").read_text()
    assert "@media print { .subnav, .actions, .msg { display:none; } }" in css


def test_invoice_csv_has_every_line_and_the_total(client, msp_admin, price_book):
    force_login_verified(client, msp_admin)
    sub = f.SubscriptionFactory(appliance__model="V1", starts_on=dt.date(2026, 3, 17))
    invoice = services.generate_invoice(sub.customer, dt.date(2026, 3, 1))
    response = client.get(reverse("billing_invoice_csv", args=[invoice.pk]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert [r[3] for r in rows[1:]] == ["rental", "monitoring", "total"]
    assert [r[7] for r in rows[1:]] == ["38.23", "23.71", "61.94"]


def test_csv_cells_that_look_like_formulas_are_defused(client, msp_admin, price_book):
    force_login_verified(client, msp_admin)
    sub = f.SubscriptionFactory(
        appliance__customer__name="=HYPERLINK(1)", starts_on=dt.date(2026, 3, 1)
    )
    services.generate_invoice(sub.customer, dt.date(2026, 3, 1))
    body = client.get(reverse("billing_invoices_csv")).content.decode()
    assert "'=HYPERLINK(1)" in body


def test_admin_finalizes_marks_paid_by_hand_with_stripe_off(
    client, msp_admin, price_book, settings
):
    settings.STRIPE_API_KEY = ""
    force_login_verified(client, msp_admin)
    sub = f.SubscriptionFactory(starts_on=dt.date(2026, 3, 1))
    invoice = services.generate_invoice(sub.customer, dt.date(2026, 3, 1))
    client.post(reverse("billing_invoice_finalize", args=[invoice.pk]))
    client.post(reverse("billing_invoice_mark_paid", args=[invoice.pk]))
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.paid_via == "manual"
    assert invoice.stripe_invoice_id == ""


def test_run_month_form_makes_the_month_and_a_second_run_changes_nothing(
    client, msp_admin, price_book
):
    force_login_verified(client, msp_admin)
    f.SubscriptionFactory(starts_on=dt.date(2026, 3, 1))
    f.SubscriptionFactory(starts_on=dt.date(2026, 3, 1))
    client.post(reverse("billing_run_month"), {"month": "2026-03"})
    first = list(Invoice.objects.values_list("pk", "total", "number"))
    client.post(reverse("billing_run_month"), {"month": "2026-03"})
    assert list(Invoice.objects.values_list("pk", "total", "number")) == first
    assert len(first) == 2


def test_admin_adds_a_price_book_version_from_the_form(client, msp_admin, price_book):
    force_login_verified(client, msp_admin)
    form = {"effective_from": "2027-01", "note": "2027"}
    for model in ("V1", "V2"):
        form.update(
            {
                f"{model}_purchase": "1500",
                f"{model}_rental_monthly": "90",
                f"{model}_monitoring_monthly": "50",
                f"{model}_included_gb": "50",
                f"{model}_overage_per_gb": "0.89",
            }
        )
    assert client.post(reverse("billing_price_book_create"), form).status_code == 302
    book, prices = subscriptions.price_book_for(dt.date(2027, 5, 1))
    assert book.version == 2 and prices["V1"].rental_monthly == Decimal("90.00")
    assert subscriptions.price_book_for(dt.date(2026, 12, 1))[0] == price_book


def test_admin_adds_and_ends_a_subscription(client, msp_admin, price_book):
    force_login_verified(client, msp_admin)
    appliance = f.ApplianceFactory()
    response = client.post(
        reverse("billing_subscription_create"),
        {"appliance": appliance.pk, "kind": "rental", "starts_on": "2026-03-17"},
    )
    assert response.status_code == 302
    sub = appliance.subscriptions.get()
    assert sub.customer == appliance.customer and sub.warranty_end == dt.date(2028, 3, 17)
    client.post(reverse("billing_subscription_end", args=[sub.pk]), {"ends_on": "2026-06-30"})
    sub.refresh_from_db()
    assert sub.ends_on == dt.date(2026, 6, 30)
    # A second open subscription for the same appliance is refused.
    response = client.post(
        reverse("billing_subscription_create"),
        {"appliance": appliance.pk, "kind": "purchase", "starts_on": "2026-05-01"},
    )
    assert response.status_code == 200 and appliance.subscriptions.count() == 1


def test_reports_show_mrr_revenue_overage_and_aging(client, msp_admin, price_book):
    force_login_verified(client, msp_admin)
    today = timezone.localdate()
    _customers_with_invoices(3, period=today.replace(day=1))
    html = client.get(reverse("billing_reports")).content.decode()
    assert "<svg" in html and "Monthly recurring revenue" in html and "0-30 days" in html
