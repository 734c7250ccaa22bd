"""Pushing invoices to Stripe with the real SDK against a local stand-in of its API."""

import datetime as dt

import pytest
import stripe

from billing import services, stripe_sync, tasks
from billing.models import BillingAccount, InvoiceStatus
from tests import factories as f
from tests.billing import fake_stripe

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def stripe_api(settings):
    fake, server = fake_stripe.start()
    settings.STRIPE_API_KEY = "sk_test_local"
    settings.STRIPE_API_BASE = fake.base
    settings.STRIPE_MAX_NETWORK_RETRIES = 2
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def finalized(price_book, django_capture_on_commit_callbacks):
    """A finalized March invoice: V1 rental from 17 March (38.23 + 23.71)."""
    sub = f.SubscriptionFactory(
        appliance__model="V1", appliance__customer__name="Acme", starts_on=dt.date(2026, 3, 17)
    )
    invoice = services.generate_invoice(sub.customer, MARCH)
    return invoice


def _finalize(invoice, capture):
    with capture(execute=True):
        services.finalize_invoice(invoice, actor=None)
    invoice.refresh_from_db()
    return invoice


def test_finalizing_pushes_customer_items_and_invoice(
    stripe_api, finalized, django_capture_on_commit_callbacks
):
    invoice = _finalize(finalized, django_capture_on_commit_callbacks)

    assert [r.path for r in stripe_api.requests] == [
        "/v1/customers",
        "/v1/invoices",
        "/v1/invoiceitems",
        "/v1/invoiceitems",
        f"/v1/invoices/{invoice.stripe_invoice_id}/finalize",
    ]
    customer_call, invoice_call, rental, monitoring, finalize = stripe_api.requests
    assert customer_call.form["name"] == "Acme"
    assert customer_call.idempotency_key == f"bdr-customer-{invoice.customer_id}"
    assert invoice_call.form["customer"] == BillingAccount.objects.get().stripe_customer_id
    assert invoice_call.form["metadata[bdr_invoice_id]"] == str(invoice.pk)
    assert invoice_call.form["pending_invoice_items_behavior"] == "exclude"
    assert invoice_call.idempotency_key == f"bdr-invoice-{invoice.pk}-create"
    assert (rental.form["amount"], monitoring.form["amount"]) == ("3823", "2371")
    assert rental.form["invoice"] == invoice.stripe_invoice_id
    assert rental.form["currency"] == "usd"
    assert rental.idempotency_key == f"bdr-invoice-{invoice.pk}-line-1"
    assert monitoring.idempotency_key == f"bdr-invoice-{invoice.pk}-line-2"
    assert finalize.idempotency_key == f"bdr-invoice-{invoice.pk}-finalize"
    assert stripe_api.objects[invoice.stripe_invoice_id]["status"] == "open"
    assert invoice.stripe_pushed_at is not None


def test_sdk_retry_after_a_server_error_reuses_the_idempotency_key(
    stripe_api, finalized, django_capture_on_commit_callbacks
):
    stripe_api.fail(r"/v1/invoiceitems", status=500, times=1)
    invoice = _finalize(finalized, django_capture_on_commit_callbacks)

    items = stripe_api.calls(r"/v1/invoiceitems")
    assert [c.idempotency_key for c in items] == [
        f"bdr-invoice-{invoice.pk}-line-1",
        f"bdr-invoice-{invoice.pk}-line-1",
        f"bdr-invoice-{invoice.pk}-line-2",
    ]
    assert len(stripe_api.made("ii_")) == 2
    assert invoice.stripe_pushed_at is not None


def test_a_failed_push_run_again_reuses_every_key_and_makes_nothing_twice(
    stripe_api, finalized, django_capture_on_commit_callbacks
):
    stripe_api.fail(r"/v1/invoices/in_\d+/finalize", status=400, times=1)
    with pytest.raises(stripe.InvalidRequestError):
        _finalize(finalized, django_capture_on_commit_callbacks)
    finalized.refresh_from_db()
    assert finalized.status == InvoiceStatus.FINALIZED and finalized.stripe_pushed_at is None
    first_keys = [r.idempotency_key for r in stripe_api.requests if "invoiceitems" in r.path]

    assert tasks.push_invoice_to_stripe.apply(args=[finalized.pk]).get() is True

    second_keys = [r.idempotency_key for r in stripe_api.requests if "invoiceitems" in r.path]
    assert second_keys == first_keys * 2
    assert len(stripe_api.made("ii_")) == 2
    assert len(stripe_api.made("in_")) == 1
    assert len(stripe_api.calls(r"/v1/invoices")) == 1  # the Stripe invoice id was kept
    finalized.refresh_from_db()
    assert finalized.stripe_pushed_at is not None
    # Delivered once more: already pushed, nothing sent.
    sent = len(stripe_api.requests)
    assert tasks.push_invoice_to_stripe.apply(args=[finalized.pk]).get() is False
    assert len(stripe_api.requests) == sent


def test_known_customer_is_updated_not_created_again(stripe_api, price_book):
    customer = f.CustomerFactory(name="Old name")
    sc = stripe_sync.client()
    first = stripe_sync.sync_customer(sc, customer)
    customer.name = "New name"
    assert stripe_sync.sync_customer(sc, customer) == first
    assert [r.path for r in stripe_api.requests] == ["/v1/customers", f"/v1/customers/{first}"]
    assert stripe_api.objects[first]["name"] == "New name"


def test_voiding_a_pushed_invoice_voids_it_in_stripe_too(
    stripe_api, finalized, django_capture_on_commit_callbacks
):
    invoice = _finalize(finalized, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        replacement = services.void_and_replace(invoice, actor=None)
    assert stripe_api.objects[invoice.stripe_invoice_id]["status"] == "void"
    assert stripe_api.calls(r"/v1/invoices/in_\d+/void")[0].idempotency_key == (
        f"bdr-invoice-{invoice.pk}-void"
    )
    assert replacement.status == InvoiceStatus.DRAFT and replacement.replaces == invoice


def test_with_stripe_off_nothing_is_sent_and_invoices_still_work(
    settings, finalized, django_capture_on_commit_callbacks
):
    settings.STRIPE_API_KEY = ""
    invoice = _finalize(finalized, django_capture_on_commit_callbacks)
    assert invoice.status == InvoiceStatus.FINALIZED and invoice.stripe_invoice_id == ""
    assert services.mark_paid(invoice, actor=None) is True
