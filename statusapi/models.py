"""API keys for the Status API (PSA/RMM integrations).

A key is shown once, when it is issued; the portal keeps only its public prefix (to find the
row) and a SHA-256 of the whole key (to check it in constant time). The key is 32 random
bytes, so a plain hash is enough: there is nothing to guess and nothing to salt against.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from portal.models import Customer
from portal.tenancy import TenantManager


class Access(models.TextChoices):
    READ_ONLY = "read", "Read-only"
    READ_WRITE = "write", "Read-write"


class ApiKey(models.Model):
    """A bearer key for the Status API, scoped to the whole MSP (no customer) or one customer."""

    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)  # hex SHA-256 of the whole key
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    access = models.CharField(max_length=5, choices=Access.choices, default=Access.READ_ONLY)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                name="apikey_access_valid", condition=Q(access__in=["read", "write"])
            ),
            models.CheckConstraint(
                name="apikey_expires_after_creation",
                condition=Q(expires_at__gt=models.F("created_at")),
            ),
        ]

    def __str__(self) -> str:
        return f"API key {self.name} ({self.prefix})"

    @property
    def scope(self) -> str:
        return self.customer.name if self.customer_id else "All customers"

    @property
    def can_write(self) -> bool:
        return self.access == Access.READ_WRITE

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and now < self.expires_at
