"""Recovery points as the portal sees them: a mirror of the agent's, refreshed by sync tasks."""

from __future__ import annotations

from django.db import models

from appliances.models import ProtectedServer
from portal.tenancy import TenantManager


class Tier(models.TextChoices):
    INTRADAY = "intraday", "Intraday"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    YEARLY = "yearly", "Yearly"


class RecoveryPoint(models.Model):
    server = models.ForeignKey(ProtectedServer, on_delete=models.CASCADE, related_name="points")
    agent_id = models.CharField(max_length=200)
    volume = models.CharField(max_length=64)
    taken_at = models.DateTimeField(db_index=True)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.INTRADAY)
    size_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)
    verified = models.BooleanField(null=True)
    offsite_copies = models.PositiveSmallIntegerField(default=0)
    synced_at = models.DateTimeField(auto_now=True)

    tenant_path = "server__appliance__customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "agent_id"], name="point_unique_agent_id_per_server"
            )
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.volume} {self.taken_at:%Y-%m-%d %H:%M}"
