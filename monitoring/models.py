"""Fleet monitoring: each server's protection and retention status, the engine's memory of
each subject's condition (for hysteresis), maintenance windows, and the notices the engine
asks to send. Alerts themselves are ``appliances.Alert`` (extended, not forked).

Statuses are written by the evaluation cycle (monitoring/engine.py) only, so the fleet pages
read one indexed table instead of computing anything per row.
"""

from __future__ import annotations

import functools
import operator

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from appliances.models import Alert, Appliance, ProtectedServer
from portal.models import Customer
from portal.tenancy import TenantManager


class ProtectionState(models.TextChoices):
    UNPROTECTED = "unprotected", "Unprotected"
    WARNING = "warning", "Warning"
    UNKNOWN = "unknown", "Unknown"
    PAUSED = "paused", "Paused"
    PROTECTED = "protected", "Protected"


# Worst first: the fleet pages sort by rank, so unprotected and warning servers lead.
STATE_RANK = {state: rank for rank, state in enumerate(ProtectionState.values)}


class ServerStatus(models.Model):
    """A protected server's protection state as the last evaluation found it, and why."""

    server = models.OneToOneField(
        ProtectedServer, on_delete=models.CASCADE, primary_key=True, related_name="status"
    )
    state = models.CharField(
        max_length=12, choices=ProtectionState.choices, default=ProtectionState.UNKNOWN
    )
    rank = models.PositiveSmallIntegerField(default=STATE_RANK[ProtectionState.UNKNOWN])
    # Every reason, worst first, in words with absolute times (so it changes only when the
    # facts do, and an unchanged fleet writes nothing).
    reason = models.CharField(max_length=500, blank=True)
    since = models.DateTimeField()  # when the server entered this state
    last_point_at = models.DateTimeField(null=True, blank=True)
    # The newest point no verify found damaged, and the newest of those on the vault.
    last_good_point_at = models.DateTimeField(null=True, blank=True)
    offsite_point_at = models.DateTimeField(null=True, blank=True)
    # Retention: the policy's promise against the points that exist (monitoring/retention.py).
    retention_ok = models.BooleanField(null=True)
    retention_summary = models.CharField(max_length=300, blank=True)
    retention_since = models.DateTimeField(null=True, blank=True)  # last change

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    class Meta:
        indexes = [
            # The fleet list's order, so a page is an index range, not a sort of the fleet.
            models.Index(fields=["rank", "since", "server"], name="status_worst_first"),
            models.Index(
                fields=["retention_since", "server"],
                condition=Q(retention_ok=False),
                name="status_retention_short",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                name="status_state_valid", condition=Q(state__in=ProtectionState.values)
            ),
            # The fleet pages filter a state by its rank (monitoring/selectors.py).
            models.CheckConstraint(
                name="status_rank_of_state",
                condition=functools.reduce(
                    operator.or_, (Q(state=s, rank=r) for s, r in STATE_RANK.items())
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.server}: {self.state}"


class StateCount(models.Model):
    """How many servers are in a state, per customer and appliance model; the rows without a
    customer count the whole fleet. The evaluation cycle keeps them (monitoring/counts.py,
    writing only the rows that changed), so the fleet pages' tiles read a few rows instead of
    counting 40,000 statuses on every refresh."""

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    model = models.CharField(max_length=4)
    state = models.CharField(max_length=12, choices=ProtectionState.choices)
    servers = models.PositiveIntegerField()

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "model", "state"],
                name="state_count_once",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id or 'fleet'} {self.model} {self.state}: {self.servers}"


class AlarmLevel(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    # Neither good nor bad (appliance offline, maintenance, catching up): raises nothing,
    # resolves nothing.
    HOLD = "hold", "On hold"


class Alarm(models.Model):
    """The engine's memory of one subject's condition: a server's protection, an appliance's
    reachability or disk. Hysteresis reads it: how long the level has held, and how often it
    turned bad lately (flapping). A subject without a row has been OK for ever."""

    appliance = models.ForeignKey(Appliance, on_delete=models.CASCADE, related_name="alarms")
    server = models.ForeignKey(
        ProtectedServer, null=True, blank=True, on_delete=models.CASCADE, related_name="alarms"
    )
    kind = models.CharField(max_length=40)  # the kind of the alert it raises
    level = models.CharField(max_length=10, choices=AlarmLevel.choices, default=AlarmLevel.OK)
    since = models.DateTimeField()  # when it last turned bad, good or on hold
    flips = models.PositiveSmallIntegerField(default=0)  # turns to bad since flips_since
    flips_since = models.DateTimeField(null=True, blank=True)

    tenant_path = "appliance__customer"
    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["server", "kind"],
                condition=Q(server__isnull=False),
                name="alarm_one_per_server_and_kind",
            ),
            models.UniqueConstraint(
                fields=["appliance", "kind"],
                condition=Q(server__isnull=True),
                name="alarm_one_per_appliance_and_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of {self.server_id or self.appliance_id}: {self.level}"


class MaintenanceWindow(models.Model):
    """A time when an appliance (or every appliance of a customer) is expected to be down:
    its servers show "paused", and no alert is raised, reminded or escalated for them."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="maintenance")
    appliance = models.ForeignKey(
        Appliance, null=True, blank=True, on_delete=models.CASCADE, related_name="maintenance"
    )
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-starts_at", "-id"]
        indexes = [models.Index(fields=["ends_at", "starts_at"], name="maintenance_when")]
        constraints = [
            models.CheckConstraint(
                name="maintenance_ends_after_start", condition=Q(ends_at__gt=F("starts_at"))
            ),
        ]

    def __str__(self) -> str:
        what = self.appliance.name if self.appliance_id else f"all of {self.customer.name}"
        return f"maintenance of {what}, {self.starts_at:%Y-%m-%d %H:%M}-{self.ends_at:%H:%M}"


class NoticeKind(models.TextChoices):
    OPENED = "opened", "Opened"
    REMINDER = "reminder", "Reminder"
    ESCALATION = "escalation", "Escalation"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Channel(models.TextChoices):
    PRIMARY = "primary", "Primary"
    ESCALATION = "escalation", "Escalation"


class AlertNotice(models.Model):
    """One message the engine asks to send about an alert, on one channel. Delivery (e-mail,
    webhooks) reads these and fills ``delivered_at``."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=12, choices=NoticeKind.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.PRIMARY)
    at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "alert__customer"
    objects = TenantManager()

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(
                fields=["at"], condition=Q(delivered_at__isnull=True), name="notice_undelivered"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} of alert {self.alert_id} on {self.channel}"


from monitoring.notify_models import (  # noqa: E402, F401  (Django finds models here)
    Delivery,
    DeliveryAttempt,
    DeliveryState,
    EmailRecipient,
    WebhookEndpoint,
)
