"""Writes for billing: price book versions, subscriptions and the invoice life cycle.

Every change is audited. Invoices: one per customer per month that is not void; re-running a
month leaves existing invoices alone, a draft can be regenerated, a finalized invoice can only
be voided and replaced by a new draft. Payment moves forward only (finalized -> past due ->
paid), so events arriving late or twice cannot move an invoice back.
"""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, transaction
from django.utils import timezone

from appliances.models import Alert, Severity
from billing import pricing
from billing.errors import BillingError
from billing.models import (
    Invoice,
    InvoiceLine,
    InvoiceStatus,
    PriceBook,
)
from billing.periods import month_start
from billing.subscriptions import price_book_for, subscription_terms
from portal import audit
from portal.models import Customer, User

PAYMENT_TERMS_DAYS = 30


# --- invoices ---------------------------------------------------------------------------------


def _live_invoices(period: dt.date, customer_ids: list[int] | None = None):
    found = Invoice.objects.filter(period_start=period).exclude(status=InvoiceStatus.VOID)
    if customer_ids is not None:
        found = found.filter(customer_id__in=customer_ids)
    return found.order_by()


def _live_invoice(customer_id: int, period: dt.date):
    return Invoice.objects.filter(customer_id=customer_id, period_start=period).exclude(
        status=InvoiceStatus.VOID
    )


def _line_rows(invoice: Invoice, drafts: list[pricing.LineDraft]) -> list[InvoiceLine]:
    return [
        InvoiceLine(
            invoice=invoice,
            position=i,
            appliance_id=d.appliance_id,
            category=d.category,
            description=d.description,
            quantity=d.quantity,
            unit_price=d.unit_price,
            amount=d.amount,
            detail=d.detail,
        )
        for i, d in enumerate(drafts, start=1)
    ]


def _write_lines(invoice: Invoice, drafts: list[pricing.LineDraft]) -> None:
    InvoiceLine.objects.bulk_create(_line_rows(invoice, drafts))


def _invoice_number(customer_id: int, period: dt.date, revision: int) -> str:
    return f"{period:%Y-%m}-{customer_id:06d}" + ("" if revision == 1 else f"-R{revision}")


def _create_invoice(
    customer_id: int,
    period: dt.date,
    book: PriceBook,
    drafts: list[pricing.LineDraft],
    *,
    replaces: Invoice | None = None,
) -> Invoice:
    revision = Invoice.objects.filter(customer_id=customer_id, period_start=period).count() + 1
    invoice = Invoice.objects.create(
        customer_id=customer_id,
        period_start=period,
        number=_invoice_number(customer_id, period, revision),
        price_book=book,
        total=pricing.invoice_total(drafts),
        replaces=replaces,
    )
    _write_lines(invoice, drafts)
    return invoice


def generate_invoice(
    customer: Customer,
    period: dt.date,
    *,
    actor: User | None = None,
    request=None,
    _terms: dict | None = None,
    _book: tuple | None = None,
) -> Invoice | None:
    """The customer's invoice for ``period``'s month, made if missing; an existing one is kept.

    None when the customer had nothing to bill that month. Safe to call twice, also at once
    from two workers: the customer row is locked and the database allows one live invoice.
    """
    period = month_start(period)
    book, prices = _book or price_book_for(period)
    try:
        with transaction.atomic():
            Customer.objects.select_for_update().filter(pk=customer.pk).first()
            existing = _live_invoice(customer.pk, period).first()
            if existing is not None:
                return existing
            terms = _terms if _terms is not None else subscription_terms(period, [customer.pk])
            subs = terms.get(customer.pk, [])
            if not subs:
                return None
            invoice = _create_invoice(
                customer.pk, period, book, pricing.invoice_lines(subs, prices, period)
            )
            audit.record(
                actor,
                "billing.invoice_create",
                invoice,
                request=request,
                customer=customer,
                detail={"period": f"{period:%Y-%m}", "total": str(invoice.total)},
            )
            return invoice
    except IntegrityError:
        # Another worker made it between our check and insert; theirs stands.
        return _live_invoice(customer.pk, period).first()


def _locked(invoice: Invoice) -> Invoice:
    return Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)


@transaction.atomic
def regenerate_draft(invoice: Invoice, *, actor: User | None, request=None) -> Invoice:
    """Recompute a draft's lines from today's subscriptions, usage and prices."""
    invoice = _locked(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise BillingError("Only a draft can be regenerated; void and replace a finalized one.")
    book, prices = price_book_for(invoice.period_start)
    subs = subscription_terms(invoice.period_start, [invoice.customer_id]).get(
        invoice.customer_id, []
    )
    drafts = pricing.invoice_lines(subs, prices, invoice.period_start)
    invoice.lines.all().delete()
    _write_lines(invoice, drafts)
    before = invoice.total
    invoice.total = pricing.invoice_total(drafts)
    invoice.price_book = book
    invoice.save(update_fields=["total", "price_book"])
    audit.record(
        actor,
        "billing.invoice_regenerate",
        invoice,
        request=request,
        detail={"total_before": str(before), "total": str(invoice.total)},
    )
    return invoice


@transaction.atomic
def finalize_invoice(invoice: Invoice, *, actor: User | None, request=None) -> Invoice:
    """Fix a draft: it can no longer change, is due in 30 days and goes to Stripe if enabled."""
    from billing import stripe_sync, tasks

    invoice = _locked(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise BillingError("Only a draft can be finalized.")
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = timezone.now()
    invoice.due_on = timezone.localdate() + dt.timedelta(days=PAYMENT_TERMS_DAYS)
    invoice.save(update_fields=["status", "finalized_at", "due_on"])
    audit.record(actor, "billing.invoice_finalize", invoice, request=request)
    if stripe_sync.enabled():
        pk = invoice.pk
        transaction.on_commit(lambda: tasks.push_invoice_to_stripe.delay(pk))
    return invoice


@transaction.atomic
def void_and_replace(invoice: Invoice, *, actor: User | None, request=None) -> Invoice:
    """Void a finalized invoice and make a new draft for the same month; returns the draft."""
    from billing import stripe_sync, tasks

    invoice = _locked(invoice)
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAST_DUE):
        raise BillingError("Only a finalized, unpaid invoice can be voided.")
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = timezone.now()
    invoice.save(update_fields=["status", "voided_at"])
    audit.record(actor, "billing.invoice_void", invoice, request=request)
    book, prices = price_book_for(invoice.period_start)
    subs = subscription_terms(invoice.period_start, [invoice.customer_id]).get(
        invoice.customer_id, []
    )
    drafts = pricing.invoice_lines(subs, prices, invoice.period_start)
    replacement = _create_invoice(
        invoice.customer_id, invoice.period_start, book, drafts, replaces=invoice
    )
    audit.record(
        actor,
        "billing.invoice_create",
        replacement,
        request=request,
        detail={"replaces": invoice.number, "total": str(replacement.total)},
    )
    if invoice.stripe_invoice_id and stripe_sync.enabled():
        pk = invoice.pk
        transaction.on_commit(lambda: tasks.void_invoice_in_stripe.delay(pk))
    return replacement


@transaction.atomic
def mark_paid(
    invoice: Invoice, *, actor: User | None, request=None, via: str = "manual", event: str = ""
) -> bool:
    """Record payment of an unpaid invoice. False (and no change) if it is not unpaid."""
    invoice = _locked(invoice)
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAST_DUE):
        return False
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = timezone.now()
    invoice.paid_via = via
    invoice.save(update_fields=["status", "paid_at", "paid_via"])
    Alert.objects.filter(
        customer_id=invoice.customer_id, kind=past_due_alert_kind(invoice), resolved_at=None
    ).update(resolved_at=invoice.paid_at)
    audit.record(
        actor, "billing.invoice_paid", invoice, request=request, detail={"via": via, "event": event}
    )
    return True


def past_due_alert_kind(invoice: Invoice) -> str:
    return f"invoice_past_due:{invoice.pk}"[:40]


@transaction.atomic
def mark_past_due(invoice: Invoice, *, actor: User | None = None, event: str = "") -> bool:
    """Mark a finalized invoice past due and raise an alert. False if it was not finalized."""
    invoice = _locked(invoice)
    if invoice.status != InvoiceStatus.FINALIZED:
        return False
    invoice.status = InvoiceStatus.PAST_DUE
    invoice.save(update_fields=["status"])
    Alert.objects.create(
        customer_id=invoice.customer_id,
        kind=past_due_alert_kind(invoice),
        severity=Severity.WARNING,
        message=(
            f"Invoice {invoice.number} of {invoice.customer.name} is past due (${invoice.total:,})."
        ),
    )
    audit.record(actor, "billing.invoice_past_due", invoice, detail={"event": event})
    return True
