"""Writes MSP admins make to notifications: recipients, webhook endpoints (created, rotated,
enabled again, deleted) and replays. Each one is audited; no secret is ever in the audit log."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from monitoring import webhooks
from monitoring.notify_models import Delivery, DeliveryState, EmailRecipient, WebhookEndpoint
from portal import audit
from portal.models import Customer, User


def _channels(primary: bool, escalation: bool) -> None:
    if not (primary or escalation):
        raise ValidationError("Choose the primary channel, the escalation channel, or both.")


@transaction.atomic
def add_recipient(
    *,
    customer: Customer | None,
    address: str,
    primary: bool,
    escalation: bool,
    actor: User,
    request=None,
) -> EmailRecipient:
    """An e-mail address for the notices of the chosen channels (of one customer, or all)."""
    _channels(primary, escalation)
    address = address.strip().lower()
    if EmailRecipient.objects.filter(customer=customer, address=address).exists():
        raise ValidationError(f"{address} already receives these notices.")
    recipient = EmailRecipient.objects.create(
        customer=customer, address=address, primary=primary, escalation=escalation
    )
    audit.record(actor, "notify.recipient_added", recipient, request=request,
                 customer=customer, detail={"address": address})  # fmt: skip
    return recipient


@transaction.atomic
def remove_recipient(recipient: EmailRecipient, *, actor: User, request=None) -> None:
    audit.record(actor, "notify.recipient_removed", recipient, request=request,
                 customer=recipient.customer, detail={"address": recipient.address})  # fmt: skip
    recipient.delete()


@transaction.atomic
def add_endpoint(
    *,
    customer: Customer | None,
    name: str,
    url: str,
    primary: bool,
    escalation: bool,
    actor: User,
    request=None,
) -> tuple[WebhookEndpoint, str]:
    """A webhook endpoint with a new secret; returns it and the secret (shown once)."""
    _channels(primary, escalation)
    try:
        webhooks.check_url(url)
    except webhooks.RefusedAddress as exc:
        raise ValidationError(str(exc)) from None
    secret = webhooks.new_secret()
    endpoint = WebhookEndpoint.objects.create(
        customer=customer, name=name.strip()[:100], url=url, primary=primary,
        escalation=escalation, secret=secret, created_by=actor,
    )  # fmt: skip
    audit.record(actor, "notify.endpoint_added", endpoint, request=request,
                 customer=customer, detail={"url": url})  # fmt: skip
    return endpoint, secret


@transaction.atomic
def rotate_secret(endpoint: WebhookEndpoint, *, now: dt.datetime, actor: User, request=None) -> str:
    """A new secret for the endpoint; the old one keeps signing too for
    BDR_WEBHOOK_OVERLAP_HOURS, so the receiver can switch without losing a message."""
    locked = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    secret = webhooks.new_secret()
    locked.previous_secret, locked.secret = locked.secret, secret
    locked.previous_secret_until = now + dt.timedelta(hours=settings.BDR_WEBHOOK_OVERLAP_HOURS)
    locked.save(update_fields=["secret", "previous_secret", "previous_secret_until"])
    audit.record(actor, "notify.endpoint_rotated", locked, request=request,
                 customer=locked.customer,
                 detail={"overlap_until": locked.previous_secret_until.isoformat()})  # fmt: skip
    return secret


@transaction.atomic
def enable_endpoint(endpoint: WebhookEndpoint, *, actor: User, request=None) -> None:
    """Send to a disabled endpoint again: new notices, and the failed deliveries replayed."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        enabled=True, disabled_reason="", disabled_at=None
    )
    audit.record(actor, "notify.endpoint_enabled", endpoint, request=request,
                 customer=endpoint.customer)  # fmt: skip


@transaction.atomic
def remove_endpoint(endpoint: WebhookEndpoint, *, actor: User, request=None) -> None:
    audit.record(actor, "notify.endpoint_removed", endpoint, request=request,
                 customer=endpoint.customer, detail={"url": endpoint.url})  # fmt: skip
    endpoint.delete()


@transaction.atomic
def replay(delivery: Delivery, *, now: dt.datetime, actor: User, request=None) -> None:
    """Send a webhook delivery again, same id and body, with a fresh retry budget."""
    locked = (
        Delivery.objects.select_for_update(of=("self",))
        .select_related("endpoint")
        .get(pk=delivery.pk)
    )
    if locked.endpoint is None:
        raise ValidationError("Only webhook deliveries can be replayed.")
    if not locked.endpoint.enabled:
        raise ValidationError("The endpoint is disabled: enable it first, then replay.")
    if locked.state == DeliveryState.PENDING and locked.failures == 0:
        raise ValidationError("That delivery is already waiting to be sent.")
    locked.state, locked.failures = DeliveryState.PENDING, 0
    locked.next_attempt_at, locked.finished_at = now, None
    locked.save(update_fields=["state", "failures", "next_attempt_at", "finished_at"])
    audit.record(actor, "notify.delivery_replayed", locked.endpoint, request=request,
                 customer=locked.endpoint.customer,
                 detail={"webhook_id": locked.message_id})  # fmt: skip
