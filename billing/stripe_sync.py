"""Stripe, through the official SDK: customers synced, finalized invoices pushed.

Every request carries an idempotency key derived from our own ids, so a retried push (the SDK's
own retries, or the task running again after a crash) reuses the keys and Stripe answers with the
objects it already made instead of making them twice. With no STRIPE_API_KEY nothing is sent.
"""

from __future__ import annotations

from decimal import Decimal

import stripe
from django.conf import settings
from django.utils import timezone

from billing.models import BILLED_STATUSES, BillingAccount, Invoice, InvoiceStatus
from portal import audit
from portal.models import Customer


def enabled() -> bool:
    return bool(settings.STRIPE_API_KEY)


def client() -> stripe.StripeClient:
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def _key(*parts: object) -> str:
    return "bdr-" + "-".join(str(p) for p in parts)


def _cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def sync_customer(sc: stripe.StripeClient, customer: Customer) -> str:
    """The customer's Stripe id: created the first time, name and e-mail updated after."""
    account, _ = BillingAccount.objects.get_or_create(customer=customer)
    params = {"name": customer.name, "email": customer.contact_email or None}
    if account.stripe_customer_id:
        sc.v1.customers.update(account.stripe_customer_id, params=params)
    else:
        created = sc.v1.customers.create(
            params={**params, "metadata": {"bdr_customer_id": str(customer.pk)}},
            options={"idempotency_key": _key("customer", customer.pk)},
        )
        account.stripe_customer_id = created.id
    account.synced_at = timezone.now()
    account.save(update_fields=["stripe_customer_id", "synced_at"])
    return account.stripe_customer_id


def push_invoice(invoice_id: int) -> bool:
    """Send a finalized invoice to Stripe as invoice items on an invoice, then finalize it there.

    No database transaction is held across the network calls; each step saves what it learnt,
    and every call's idempotency key is fixed by our ids, so a second run finishes the job.
    False when there is nothing to do (Stripe off, not finalized, already pushed).
    """
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    if not enabled() or invoice.status not in BILLED_STATUSES or invoice.stripe_pushed_at:
        return False
    sc = client()
    customer_id = sync_customer(sc, invoice.customer)
    if not invoice.stripe_invoice_id:
        created = sc.v1.invoices.create(
            params={
                "customer": customer_id,
                "collection_method": "send_invoice",
                "days_until_due": 30,
                "auto_advance": False,
                "currency": invoice.currency,
                "pending_invoice_items_behavior": "exclude",
                "description": f"Invoice {invoice.number}, {invoice.period_start:%B %Y}",
                "metadata": {"bdr_invoice_id": str(invoice.pk), "number": invoice.number},
            },
            options={"idempotency_key": _key("invoice", invoice.pk, "create")},
        )
        invoice.stripe_invoice_id = created.id
        invoice.save(update_fields=["stripe_invoice_id"])
    for line in invoice.lines.all():
        if not line.amount:
            continue
        sc.v1.invoice_items.create(
            params={
                "customer": customer_id,
                "invoice": invoice.stripe_invoice_id,
                "amount": _cents(line.amount),
                "currency": invoice.currency,
                "description": line.description,
                "metadata": {"bdr_invoice_line": f"{invoice.pk}:{line.position}"},
            },
            options={"idempotency_key": _key("invoice", invoice.pk, "line", line.position)},
        )
    sc.v1.invoices.finalize_invoice(
        invoice.stripe_invoice_id,
        options={"idempotency_key": _key("invoice", invoice.pk, "finalize")},
    )
    invoice.stripe_pushed_at = timezone.now()
    invoice.save(update_fields=["stripe_pushed_at"])
    audit.record(
        None,
        "billing.invoice_stripe_push",
        invoice,
        detail={"stripe_invoice_id": invoice.stripe_invoice_id},
    )
    return True


def void_invoice(invoice_id: int) -> bool:
    """Void our voided invoice in Stripe too, so the customer is not asked to pay it."""
    invoice = Invoice.objects.get(pk=invoice_id)
    if not enabled() or invoice.status != InvoiceStatus.VOID or not invoice.stripe_invoice_id:
        return False
    client().v1.invoices.void_invoice(
        invoice.stripe_invoice_id,
        options={"idempotency_key": _key("invoice", invoice.pk, "void")},
    )
    audit.record(None, "billing.invoice_stripe_void", invoice)
    return True
