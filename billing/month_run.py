"""The monthly invoice run: every customer's invoice for a month, in batches.

Same rules as ``services.generate_invoice`` (the customer row is locked, one live invoice per
customer and month, re-running changes nothing) with bulk writes, so a month of 10,000
customers is a few queries per batch instead of several per customer (bench/billing.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Count

from billing import pricing
from billing.models import Invoice, InvoiceLine, PriceBook
from billing.periods import month_start
from billing.services import (
    _invoice_number,
    _line_rows,
    _live_invoices,
    generate_invoice,
)
from billing.subscriptions import price_book_for, subscription_terms
from portal import audit
from portal.models import Customer, User


@dataclass
class MonthRun:
    period: dt.date
    created: int
    already_there: int


# Customers per transaction in the monthly run: a few queries per batch instead of per customer,
# and row locks held for a fraction of a second.
MONTH_RUN_BATCH = 500


def run_month(period: dt.date, *, actor: User | None = None, request=None) -> MonthRun:
    """Make the invoices of ``period``'s month for every customer that has something to bill."""
    period = month_start(period)
    book = price_book_for(period)
    terms = subscription_terms(period)
    existing = set(_live_invoices(period).values_list("customer_id", flat=True))
    todo = [customer_id for customer_id in terms if customer_id not in existing]
    created = 0
    for start in range(0, len(todo), MONTH_RUN_BATCH):
        batch = todo[start : start + MONTH_RUN_BATCH]
        try:
            created += _create_month_invoices(batch, period, book, terms, actor, request)
        except IntegrityError:
            # A writer that does not lock the customer made one meanwhile: go one by one.
            there = set(_live_invoices(period, batch).values_list("pk", flat=True))
            for customer_id in batch:
                invoice = generate_invoice(
                    Customer(pk=customer_id), period, actor=actor, _terms=terms, _book=book
                )
                created += invoice is not None and invoice.pk not in there
    audit.record(
        actor,
        "billing.month_run",
        request=request,
        detail={"period": f"{period:%Y-%m}", "created": created},
    )
    return MonthRun(period, created, len(existing & set(terms)))


@transaction.atomic
def _create_month_invoices(
    customer_ids: list[int],
    period: dt.date,
    book: tuple[PriceBook, dict[str, pricing.PriceTerms]],
    terms: dict[int, list[pricing.SubscriptionTerms]],
    actor: User | None,
    request,
) -> int:
    """``generate_invoice`` for a batch of customers: same locks and checks, bulk writes.

    The batch's customer rows are locked (in id order, so two runs cannot deadlock), then only
    the customers still without a live invoice get one, with its lines and audit event.
    """
    list(
        Customer.objects.select_for_update()
        .filter(pk__in=customer_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    live = set(_live_invoices(period, customer_ids).values_list("customer_id", flat=True))
    revisions = dict(
        Invoice.objects.filter(customer_id__in=customer_ids, period_start=period)
        .order_by()
        .values("customer_id")
        .annotate(n=Count("id"))
        .values_list("customer_id", "n")
    )
    price_book, prices = book
    drafts = {
        customer_id: pricing.invoice_lines(terms.get(customer_id, []), prices, period)
        for customer_id in customer_ids
        if customer_id not in live
    }
    invoices = Invoice.objects.bulk_create(
        Invoice(
            customer_id=customer_id,
            period_start=period,
            number=_invoice_number(customer_id, period, revisions.get(customer_id, 0) + 1),
            price_book=price_book,
            total=pricing.invoice_total(lines),
        )
        for customer_id, lines in drafts.items()
        if lines
    )
    InvoiceLine.objects.bulk_create(
        row for invoice in invoices for row in _line_rows(invoice, drafts[invoice.customer_id])
    )
    _audit_created(invoices, period, actor, request)
    return len(invoices)


def _audit_created(invoices: list[Invoice], period: dt.date, actor: User | None, request) -> None:
    audit.record_many(
        actor,
        "billing.invoice_create",
        [
            (
                invoice,
                Customer(pk=invoice.customer_id),
                {"period": f"{period:%Y-%m}", "total": str(invoice.total)},
            )
            for invoice in invoices
        ],
        request=request,
    )
