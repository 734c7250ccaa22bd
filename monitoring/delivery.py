"""Delivery of the engine's notices by e-mail and webhook, apart from the evaluation cycle.

``run(now)`` (Celery beat, every BDR_NOTIFY_SECONDS) does two steps:

1. ``fan_out``: each notice not yet handed over becomes one ``Delivery`` per e-mail recipient
   and per enabled webhook endpoint on its channel (the MSP's, and its customer's); the notice's
   ``delivered_at`` is set then. The webhook body and id are fixed here.
2. ``send_due``: the deliveries whose time came are claimed (a lease, so a worker that dies
   leaves them to the next run), sent (webhooks in parallel threads, one per endpoint, each
   call with a short timeout, so one slow endpoint holds up nobody; once an endpoint did not
   answer, the rest of its batch waits for a later run), and each attempt is logged. A
   failure is retried after ``BDR_NOTIFY_RETRY_BASE_SECONDS`` x 2^(failures-1), capped at
   ``BDR_NOTIFY_RETRY_MAX_SECONDS``, with ±20 % jitter, until ``BDR_NOTIFY_MAX_ATTEMPTS``; an
   endpoint answering 410 Gone is disabled at once, with the reason shown on its page.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import Q

from monitoring import notify_messages, webhooks
from monitoring.models import AlertNotice, Channel
from monitoring.notify_models import (
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EmailRecipient,
    WebhookEndpoint,
)
from monitoring.webhooks import Answer


def run(now: dt.datetime, rng: random.Random | None = None) -> tuple[int, int]:
    """Fan out the new notices, then send what is due, batch after batch until nothing is
    left or BDR_NOTIFY_SECONDS have passed; return (deliveries made, attempts made)."""
    deadline = time.monotonic() + settings.BDR_NOTIFY_SECONDS
    made = sent = 0
    while True:
        batch_made, batch_sent = fan_out(now), send_due(now, rng=rng)
        made, sent = made + batch_made, sent + batch_sent
        if not (batch_made or batch_sent) or time.monotonic() > deadline:
            return made, sent


def fan_out(now: dt.datetime) -> int:
    """Make the deliveries of the notices not handed over yet; return how many."""
    with transaction.atomic():
        batch = list(
            AlertNotice.objects.filter(delivered_at__isnull=True)
            .select_related("alert__customer", "alert__appliance", "alert__server")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("at", "id")[: settings.BDR_NOTIFY_BATCH]
        )
        if not batch:
            return 0
        customers = {n.alert.customer_id for n in batch}
        mine = Q(customer__isnull=True) | Q(customer_id__in=customers)
        recipients = list(EmailRecipient.objects.filter(mine))
        endpoints = list(WebhookEndpoint.objects.filter(mine, enabled=True))
        made = []
        for notice in batch:
            body = notify_messages.payload(notice)
            for target in (*recipients, *endpoints):
                if _wants(target, notice):
                    made.append(_delivery(notice, target, body, now))
        Delivery.objects.bulk_create(made, batch_size=1000, ignore_conflicts=True)
        AlertNotice.objects.filter(pk__in=[n.pk for n in batch]).update(delivered_at=now)
    return len(made)


def _wants(target, notice: AlertNotice) -> bool:
    if target.customer_id not in (None, notice.alert.customer_id):
        return False
    return target.primary if notice.channel == Channel.PRIMARY else target.escalation


def _delivery(notice, target, body: str, now: dt.datetime) -> Delivery:
    hook = isinstance(target, WebhookEndpoint)
    return Delivery(
        notice=notice,
        endpoint=target if hook else None,
        recipient=None if hook else target,
        message_id="msg_" + secrets.token_urlsafe(18),
        body=body,
        created_at=now,
        next_attempt_at=now,
    )


def _lease() -> dt.timedelta:
    return dt.timedelta(seconds=settings.BDR_WEBHOOK_TIMEOUT * 4 + 60)


def claim(now: dt.datetime) -> list[Delivery]:
    """The due deliveries, each leased to this run (their next attempt moved past the lease)."""
    with transaction.atomic():
        due = list(
            Delivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .select_related("endpoint", "recipient", "notice")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at", "id")[: settings.BDR_NOTIFY_BATCH]
        )
        ids = [d.pk for d in due]
        Delivery.objects.filter(pk__in=ids).update(next_attempt_at=now + _lease())
    return due


def send_due(now: dt.datetime, rng: random.Random | None = None) -> int:
    """Send every delivery due at ``now``; return how many attempts were made."""
    due = claim(now)
    hooks = [d for d in due if d.endpoint_id and d.endpoint.enabled]
    mails = [d for d in due if d.recipient_id]
    for gone in (d for d in due if d.endpoint_id and not d.endpoint.enabled):
        _finish(gone, DeliveryState.FAILED, now)
    answers = _post_all(hooks, now) + _mail_all(mails)
    rng = rng or random.Random()
    for delivery, answer in answers:
        if answer is None:  # its endpoint did not answer this run: try again later
            Delivery.objects.filter(pk=delivery.pk).update(
                next_attempt_at=now + retry_delay(1, rng)
            )
        else:
            record(delivery, answer, now, rng)
    return sum(1 for _, answer in answers if answer is not None)


def _post_all(deliveries: list[Delivery], now: dt.datetime) -> list[tuple[Delivery, Answer | None]]:
    """Send in parallel across endpoints, in order within one. Once an endpoint did not answer
    (timeout, refused connection), the rest of its batch waits for a later run (None) instead
    of each costing a timeout: a dead endpoint takes one slot for one timeout per run."""
    if not deliveries:
        return []
    timestamp = int(now.timestamp())
    by_endpoint: dict[int, list[Delivery]] = defaultdict(list)
    for d in deliveries:
        by_endpoint[d.endpoint_id].append(d)

    def send_group(group: list[Delivery]) -> list[tuple[Delivery, Answer | None]]:
        sent: list[tuple[Delivery, Answer | None]] = []
        down = False
        for delivery in group:
            if down:
                sent.append((delivery, None))
                continue
            keys = signing_secrets(delivery.endpoint, now)
            signed = webhooks.headers(keys, delivery.message_id, timestamp, delivery.body)
            answer = webhooks.post(delivery.endpoint.url, delivery.body, signed)
            down = answer.status_code is None
            sent.append((delivery, answer))
        return sent

    workers = min(settings.BDR_WEBHOOK_WORKERS, len(by_endpoint))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [pair for group in pool.map(send_group, by_endpoint.values()) for pair in group]


def signing_secrets(endpoint: WebhookEndpoint, now: dt.datetime) -> list[str]:
    """The endpoint's secret, and its previous one while the rotation's overlap lasts."""
    keys = [endpoint.secret]
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and now < until:
        keys.append(endpoint.previous_secret)
    return keys


def _mail_all(deliveries: list[Delivery]) -> list[tuple[Delivery, Answer | None]]:
    if not deliveries:
        return []
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # the mail server is down: every message waits for a retry
        return [(d, Answer(False, None, 0, error=f"mail: {exc}"[:300])) for d in deliveries]
    try:
        return [(d, _mail_one(d, connection)) for d in deliveries]
    finally:
        connection.close()


def _mail_one(delivery: Delivery, connection) -> Answer:
    subject, text = notify_messages.email(delivery.body)
    message = EmailMessage(subject, text, settings.DEFAULT_FROM_EMAIL,
                           [delivery.recipient.address], connection=connection)  # fmt: skip
    started = time.monotonic()
    try:
        message.send()
    except Exception as exc:  # any mail failure is a failed attempt, retried
        return Answer(False, None, _ms(started), error=f"mail: {exc}"[:300])
    return Answer(True, None, _ms(started))


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def retry_delay(failures: int, rng: random.Random) -> dt.timedelta:
    """How long to wait after the ``failures``-th failure in a row (exponential, ±20 %)."""
    base = settings.BDR_NOTIFY_RETRY_BASE_SECONDS * 2 ** (failures - 1)
    seconds = min(base, settings.BDR_NOTIFY_RETRY_MAX_SECONDS) * rng.uniform(0.8, 1.2)
    return dt.timedelta(seconds=seconds)


@transaction.atomic
def record(delivery: Delivery, answer: Answer, now: dt.datetime, rng: random.Random) -> None:
    """Log one attempt and decide what follows: done, retry later, give up, or (410) disable."""
    DeliveryAttempt.objects.create(
        delivery=delivery, at=now, ok=answer.ok, status_code=answer.status_code,
        duration_ms=answer.duration_ms, response=answer.response, error=answer.error,
    )  # fmt: skip
    delivery.attempts += 1
    if answer.ok:
        _finish(delivery, DeliveryState.DELIVERED, now)
        return
    delivery.failures += 1
    if answer.status_code == 410:
        disable(delivery.endpoint, f"answered 410 Gone at {now:%Y-%m-%d %H:%M} UTC", now)
        _finish(delivery, DeliveryState.FAILED, now)
    elif delivery.failures >= settings.BDR_NOTIFY_MAX_ATTEMPTS:
        _finish(delivery, DeliveryState.FAILED, now)
    else:
        delivery.next_attempt_at = now + retry_delay(delivery.failures, rng)
        delivery.save(update_fields=["attempts", "failures", "next_attempt_at"])


def _finish(delivery: Delivery, state: str, now: dt.datetime) -> None:
    delivery.state, delivery.finished_at, delivery.next_attempt_at = state, now, None
    delivery.save(update_fields=["state", "attempts", "failures", "finished_at",
                                 "next_attempt_at"])  # fmt: skip


def disable(endpoint: WebhookEndpoint, reason: str, now: dt.datetime) -> None:
    """Stop sending to ``endpoint``: what still waits for it fails now."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        enabled=False, disabled_reason=reason[:200], disabled_at=now
    )
    endpoint.enabled, endpoint.disabled_reason, endpoint.disabled_at = False, reason[:200], now
    endpoint.deliveries.filter(state=DeliveryState.PENDING).update(
        state=DeliveryState.FAILED, finished_at=now, next_attempt_at=None
    )
