"""Stripe's webhook events: verified, recorded once, applied once.

The event id goes into a table with a unique constraint inside the same transaction as the
effect, so a replay or two deliveries racing each other leave exactly one effect: the second
insert waits for the first transaction and then fails on the constraint.
"""

from __future__ import annotations

import time

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction

from billing import services
from billing.models import Invoice, StripeEvent

PAID_EVENTS = {"invoice.paid", "invoice.payment_succeeded"}
PAST_DUE_EVENTS = {"invoice.payment_failed", "invoice.overdue", "invoice.marked_uncollectible"}


class BadEvent(Exception):
    """The payload is not a genuine, fresh Stripe event."""


def verify(payload: bytes, signature: str | None) -> stripe.Event:
    """The event, if ``signature`` proves Stripe sent ``payload`` recently; BadEvent otherwise."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        raise BadEvent("STRIPE_WEBHOOK_SECRET is not set")
    _check_not_from_the_future(signature or "")
    try:
        return stripe.Webhook.construct_event(
            payload.decode("utf-8"),
            signature,
            secret,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except (ValueError, UnicodeDecodeError, stripe.SignatureVerificationError) as exc:
        raise BadEvent(str(exc)) from exc


def _check_not_from_the_future(signature: str) -> None:
    # The SDK refuses old timestamps only; a signature dated ahead would stay replayable
    # for as long as it is ahead, so it is refused too.
    for item in signature.split(","):
        name, _, value = item.partition("=")
        value = value.strip()
        if name.strip() != "t":
            continue
        # ASCII digits only: "²".isdigit() is true and int("²") fails.
        if not (value.isascii() and value.isdigit()):
            raise BadEvent("the signature's timestamp is not a number")
        if int(value) > time.time() + settings.STRIPE_WEBHOOK_TOLERANCE:
            raise BadEvent("timestamp in the future")


def _invoice_for(obj: dict) -> Invoice | None:
    stripe_id = obj.get("id") or ""
    found = Invoice.objects.filter(stripe_invoice_id=stripe_id).first() if stripe_id else None
    if found is None:
        ours = (obj.get("metadata") or {}).get("bdr_invoice_id", "")
        ours = str(ours)
        if ours.isascii() and ours.isdigit() and len(ours) <= 18:
            found = Invoice.objects.filter(pk=int(ours)).first()
    return found


def handle(event: stripe.Event) -> str:
    """Apply a verified event once; the outcome in words (``duplicate`` for a replay)."""
    event_id = event["id"]
    event_type = event["type"]
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = StripeEvent.objects.create(event_id=event_id, type=event_type)
        except IntegrityError:
            return "duplicate"
        obj = event["data"]["object"].to_dict() if event_type.startswith("invoice.") else {}
        invoice = _invoice_for(obj) if obj else None
        if invoice is None:
            outcome = "ignored"
        elif event_type in PAID_EVENTS:
            changed = services.mark_paid(invoice, actor=None, via="stripe", event=event_id)
            outcome = "paid" if changed else "no change"
        elif event_type in PAST_DUE_EVENTS:
            changed = services.mark_past_due(invoice, event=event_id)
            outcome = "past due" if changed else "no change"
        else:
            outcome = "ignored"
        record.invoice = invoice
        record.outcome = outcome
        record.save(update_fields=["invoice", "outcome"])
        return outcome
