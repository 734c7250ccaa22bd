"""Stripe's webhook: signed like Stripe signs, replayed, raced and out of order."""

import datetime as dt
import hashlib
import hmac
import json
import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from appliances.models import Alert
from billing import services
from billing.models import Invoice, InvoiceStatus, StripeEvent
from portal.models import AuditEvent
from tests import factories as f

SECRET = "whsec_test_secret"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    settings.STRIPE_WEBHOOK_TOLERANCE = 300


def sign(payload: str, secret: str = SECRET, at: int | None = None) -> str:
    at = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{at}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def event(event_id: str, kind: str, invoice: Invoice) -> str:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "data": {
                "object": {
                    "id": invoice.stripe_invoice_id,
                    "object": "invoice",
                    "metadata": {"bdr_invoice_id": str(invoice.pk)},
                }
            },
        }
    )


def deliver(client, payload: str, signature: str | None = None):
    return client.post(
        reverse("stripe_webhook"),
        payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature if signature is not None else sign(payload),
    )


def _finalized_invoice() -> Invoice:
    f.default_price_book()
    sub = f.SubscriptionFactory(starts_on=dt.date(2026, 3, 1))
    invoice = services.generate_invoice(sub.customer, dt.date(2026, 3, 1))
    services.finalize_invoice(invoice, actor=None)
    Invoice.objects.filter(pk=invoice.pk).update(stripe_invoice_id=f"in_{invoice.pk}")
    invoice.refresh_from_db()
    return invoice


def _state(invoice):
    invoice.refresh_from_db()
    return (
        invoice.status,
        StripeEvent.objects.count(),
        Alert.objects.count(),
        AuditEvent.objects.filter(action__startswith="billing.invoice_p").count(),
    )


@pytest.mark.django_db
def test_paid_event_marks_the_invoice_paid(client):
    invoice = _finalized_invoice()
    response = deliver(client, event("evt_1", "invoice.paid", invoice))
    assert response.status_code == 200
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and invoice.paid_via == "stripe"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make_signature",
    [
        lambda p: sign(p, secret="whsec_wrong"),
        lambda p: sign(p + " "),
        lambda p: sign(p, at=int(time.time()) - 3600),  # stale: an hour old
        lambda p: sign(p, at=int(time.time()) + 3600),  # from the future
        lambda p: "",
        lambda p: "t=1,v1=00",
        lambda p: "t=²,v1=00",  # "²".isdigit() is true, int("²") fails
        lambda p: sign(p).replace("t=", "t=²", 1),
        lambda p: "t=٣," + sign(p).split(",", 1)[1],  # an Arabic-Indic 3: int() takes it
    ],
    ids=[
        "wrong secret",
        "other payload",
        "stale",
        "future",
        "missing",
        "garbage",
        "superscript two",
        "superscript before a real time",
        "arabic-indic digit",
    ],  # fmt: skip
)
def test_bad_signature_or_stale_timestamp_gets_400_and_changes_nothing(client, make_signature):
    invoice = _finalized_invoice()
    before = _state(invoice)
    payload = event("evt_bad", "invoice.paid", invoice)
    response = deliver(client, payload, make_signature(payload))
    assert response.status_code == 400
    assert _state(invoice) == before
    assert before[0] == InvoiceStatus.FINALIZED


@pytest.mark.django_db
def test_no_webhook_secret_configured_refuses_everything(client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    invoice = _finalized_invoice()
    assert deliver(client, event("evt_1", "invoice.paid", invoice)).status_code == 400
    assert _state(invoice)[0] == InvoiceStatus.FINALIZED


@pytest.mark.django_db
def test_one_event_delivered_five_times_has_one_effect(client):
    invoice = _finalized_invoice()
    payload = event("evt_twice", "invoice.payment_failed", invoice)
    answers = [deliver(client, payload).content.decode() for _ in range(5)]
    assert answers == ["past due"] + ["duplicate"] * 4
    assert _state(invoice) == (InvoiceStatus.PAST_DUE, 1, 1, 1)


@pytest.mark.django_db
def test_past_due_raises_an_alert_that_payment_resolves(client):
    invoice = _finalized_invoice()
    deliver(client, event("evt_a", "invoice.payment_failed", invoice))
    alert = Alert.objects.get()
    assert invoice.number in alert.message and alert.customer == invoice.customer
    assert alert.resolved_at is None
    deliver(client, event("evt_b", "invoice.paid", invoice))
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert _state(invoice)[0] == InvoiceStatus.PAID


@pytest.mark.django_db
def test_late_failure_after_payment_does_not_move_the_invoice_back(client):
    invoice = _finalized_invoice()
    deliver(client, event("evt_paid", "invoice.paid", invoice))
    answer = deliver(client, event("evt_old_failure", "invoice.payment_failed", invoice))
    assert answer.content == b"no change"
    assert _state(invoice) == (InvoiceStatus.PAID, 2, 0, 1)


@pytest.mark.django_db
def test_event_for_an_unknown_invoice_is_recorded_and_ignored(client):
    invoice = _finalized_invoice()
    payload = event("evt_x", "invoice.paid", invoice).replace(
        f'"bdr_invoice_id": "{invoice.pk}"', '"bdr_invoice_id": "999999"'
    )
    payload = payload.replace(f'"in_{invoice.pk}"', '"in_unknown"')
    assert deliver(client, payload).content == b"ignored"
    assert _state(invoice)[0] == InvoiceStatus.FINALIZED


def _in_threads(count: int, work) -> list:
    results, barrier = [None] * count, threading.Barrier(count)

    def run(i):
        try:
            barrier.wait()
            results[i] = work(i)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.mark.django_db(transaction=True)
def test_one_event_delivered_five_times_at_once_has_one_effect():
    invoice = _finalized_invoice()
    payload = event("evt_race", "invoice.payment_failed", invoice)
    signature = sign(payload)
    answers = _in_threads(5, lambda i: deliver(Client(), payload, signature).content.decode())
    assert sorted(answers) == ["duplicate"] * 4 + ["past due"]
    assert _state(invoice) == (InvoiceStatus.PAST_DUE, 1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_paid_and_failed_racing_leave_the_invoice_paid():
    invoice = _finalized_invoice()
    paid = event("evt_p", "invoice.paid", invoice)
    failed = event("evt_f", "invoice.payment_failed", invoice)
    payloads = [paid, failed] * 3  # each delivered three times, all at once
    answers = _in_threads(6, lambda i: deliver(Client(), payloads[i]).status_code)
    assert answers == [200] * 6
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert StripeEvent.objects.count() == 2
    assert Alert.objects.filter(resolved_at=None).count() == 0
