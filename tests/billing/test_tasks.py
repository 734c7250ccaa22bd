"""Beat tasks: usage sampling and the monthly run, each safe to deliver twice."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection

from billing import month_run, services, tasks
from billing.models import Invoice, InvoiceStatus, UsageSample
from tests import factories as f
from tests.billing.conftest import GIB

MARCH = dt.date(2026, 3, 1)


def test_usage_sample_is_the_sum_of_the_recovery_points_stored_bytes(price_book):
    sub = f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1))
    server = f.ProtectedServerFactory(appliance=sub.appliance)
    f.RecoveryPointFactory(server=server, stored_bytes=3 * GIB)
    f.RecoveryPointFactory(server=server, stored_bytes=2 * GIB)
    ended = f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1), ends_on=dt.date(2026, 2, 1))
    f.RecoveryPointFactory(server__appliance=ended.appliance, stored_bytes=GIB)

    assert tasks.sample_usage.apply(args=["2026-03-05"]).get() == 1
    f.RecoveryPointFactory(server=server, stored_bytes=GIB)
    assert tasks.sample_usage.apply(args=["2026-03-05"]).get() == 1  # delivered again

    sample = UsageSample.objects.get()
    assert (sample.appliance, sample.day, sample.offsite_bytes) == (
        sub.appliance,
        dt.date(2026, 3, 5),
        6 * GIB,
    )


def test_usage_is_the_vaults_figure_where_a_vault_is_set_and_local_bytes_elsewhere(price_book):
    measured, unmeasured, without = (
        f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1)) for _ in range(3)
    )
    for sub in (measured, unmeasured, without):
        server = f.ProtectedServerFactory(appliance=sub.appliance)
        f.RecoveryPointFactory(server=server, stored_bytes=5 * GIB)
    # The vault counts the blobs its points reference once: less than the points' sum.
    f.ApplianceOffsiteFactory(appliance=measured.appliance, vault_bytes=3 * GIB)
    f.ApplianceOffsiteFactory(appliance=unmeasured.appliance, vault_bytes=None)
    assert tasks.sample_usage.apply(args=["2026-03-05"]).get() == 3
    got = {s.appliance_id: (s.offsite_bytes, s.source) for s in UsageSample.objects.all()}
    assert got == {
        measured.appliance_id: (3 * GIB, "vault"),
        unmeasured.appliance_id: (5 * GIB, "local"),
        without.appliance_id: (5 * GIB, "local"),
    }


def test_monthly_invoice_task_delivered_twice_makes_one_invoice(price_book):
    f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1))
    f.SubscriptionFactory(starts_on=dt.date(2026, 3, 17))
    assert tasks.run_monthly_invoices.apply(args=["2026-03"]).get() == 2
    first = list(Invoice.objects.order_by("pk").values_list("pk", "number", "total"))
    assert tasks.run_monthly_invoices.apply(args=["2026-03"]).get() == 0
    assert list(Invoice.objects.order_by("pk").values_list("pk", "number", "total")) == first


def test_monthly_task_without_a_month_bills_the_month_before(price_book, monkeypatch):
    from django.utils import timezone

    monkeypatch.setattr(timezone, "localdate", lambda: dt.date(2026, 4, 1))
    sub = f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1))
    tasks.run_monthly_invoices.apply().get()
    assert Invoice.objects.get().period_start == MARCH
    assert Invoice.objects.get().customer == sub.customer


def test_rerun_keeps_a_draft_as_it_was_until_regenerated(price_book, msp_admin):
    sub = f.SubscriptionFactory(appliance__model="V1", starts_on=dt.date(2026, 1, 1))
    month_run.run_month(MARCH)
    f.SubscriptionFactory(appliance__customer=sub.customer, starts_on=dt.date(2026, 3, 1))
    month_run.run_month(MARCH)
    invoice = Invoice.objects.get()
    assert invoice.total == Decimal("128.00")
    services.regenerate_draft(invoice, actor=msp_admin)
    invoice.refresh_from_db()
    assert invoice.total == Decimal("128.00") + Decimal("248.00")


def test_finalized_invoice_is_only_voided_and_replaced(price_book, msp_admin):
    sub = f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1))
    invoice = services.generate_invoice(sub.customer, MARCH)
    services.finalize_invoice(invoice, actor=msp_admin)
    with pytest.raises(services.BillingError):
        services.regenerate_draft(invoice, actor=msp_admin)
    replacement = services.void_and_replace(invoice, actor=msp_admin)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.VOID
    assert replacement.replaces == invoice and replacement.number == invoice.number + "-R2"
    assert services.generate_invoice(sub.customer, MARCH) == replacement
    with pytest.raises(services.BillingError):
        services.void_and_replace(invoice, actor=msp_admin)


def test_database_refuses_two_live_invoices_for_one_customer_month(price_book):
    from django.db import IntegrityError, transaction

    invoice = f.InvoiceFactory(period_start=MARCH)
    with pytest.raises(IntegrityError), transaction.atomic():
        f.InvoiceFactory(customer=invoice.customer, period_start=MARCH)


@pytest.mark.django_db(transaction=True)
def test_two_workers_running_the_same_month_at_once_make_one_invoice():
    f.default_price_book()
    sub = f.SubscriptionFactory(starts_on=dt.date(2026, 1, 1))
    barrier, results = threading.Barrier(4), []

    def work():
        try:
            barrier.wait()
            results.append(services.generate_invoice(sub.customer, MARCH).pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert Invoice.objects.count() == 1
    assert results == [Invoice.objects.get().pk] * 4
