"""Where the engine's notices go: e-mail recipients and webhook endpoints (the MSP's, or one
customer's), and one ``Delivery`` per notice per target with every attempt it took.

Imported by monitoring/models.py so Django sees these models as the monitoring app's.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.encryption import EncryptedTextField
from portal.models import Customer
from portal.tenancy import TenantManager


def _target_constraints(prefix: str) -> list[models.BaseConstraint]:
    return [
        models.CheckConstraint(
            name=f"{prefix}_some_channel", condition=Q(primary=True) | Q(escalation=True)
        ),
    ]


class EmailRecipient(models.Model):
    """An address that receives the notices of the channels it is on. Without a customer it
    receives every customer's; with one, only that customer's."""

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    address = models.EmailField()
    primary = models.BooleanField(default=True)
    escalation = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["address", "id"]
        constraints = [
            *_target_constraints("recipient"),
            models.UniqueConstraint(
                fields=["customer", "address"],
                nulls_distinct=False,
                name="recipient_once_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return self.address


class WebhookEndpoint(models.Model):
    """A URL that receives the notices of its channels as Standard Webhooks, signed with its
    own secret (sealed at rest). After a rotation the previous secret signs too, until
    ``previous_secret_until``. An endpoint that answered 410 Gone is disabled, with why."""

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    primary = models.BooleanField(default=True)
    escalation = models.BooleanField(default=False)
    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=200, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["name", "id"]
        constraints = _target_constraints("endpoint")

    def __str__(self) -> str:
        return self.name


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One notice to one recipient or endpoint. The webhook's id and body are fixed when it is
    made, so every retry and replay sends the same message (receivers dedupe on the id)."""

    notice = models.ForeignKey(
        "monitoring.AlertNotice", on_delete=models.CASCADE, related_name="deliveries"
    )
    recipient = models.ForeignKey(
        EmailRecipient, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.CharField(max_length=40, unique=True)
    body = models.TextField()
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # Failures since it was made or last replayed: the retry budget counts these.
    failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "notice__alert__customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state="pending"),
                name="delivery_due",
            ),
            models.Index(fields=["endpoint", "-created_at"], name="delivery_by_endpoint"),
        ]
        constraints = [
            models.CheckConstraint(
                name="delivery_one_target",
                condition=Q(recipient__isnull=True, endpoint__isnull=False)
                | Q(recipient__isnull=False, endpoint__isnull=True),
            ),
            models.UniqueConstraint(fields=["notice", "recipient"], name="delivery_once_by_mail"),
            models.UniqueConstraint(fields=["notice", "endpoint"], name="delivery_once_by_hook"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.state})"


class DeliveryAttempt(models.Model):
    """One try of a delivery: when, what came back, how long it took."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="tries")
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response = models.CharField(max_length=1000, blank=True)  # truncated
    error = models.CharField(max_length=300, blank=True)

    tenant_path = "delivery__notice__alert__customer"
    objects = TenantManager()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"attempt of {self.delivery_id} at {self.at:%Y-%m-%d %H:%M:%S}"
