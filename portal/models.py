"""Tenancy: customers (the tenants), their sites, users and roles, and the audit log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models import Q

from portal.tenancy import TenantManager, TenantQuerySet


class Role(models.TextChoices):
    MSP_ADMIN = "msp_admin", "MSP admin"
    TECHNICIAN = "technician", "Technician"
    CUSTOMER_ADMIN = "customer_admin", "Customer admin"
    CUSTOMER_USER = "customer_user", "Customer user"


MSP_ROLES = frozenset({Role.MSP_ADMIN, Role.TECHNICIAN})
CUSTOMER_ROLES = frozenset({Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER})


class Customer(models.Model):
    """A business the MSP serves: the tenant that owns sites, appliances and users."""

    name = models.CharField(max_length=200, unique=True)
    contact_email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    is_active = models.BooleanField(default=True)
    require_mfa = models.BooleanField(
        "Require two-factor sign-in",
        default=False,
        help_text="This customer's users must sign in with a code from an authenticator app.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = ""
    objects = TenantManager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Site(models.Model):
    """A customer's location, where its appliances stand."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="sites")
    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC")

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["customer__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "name"], name="site_unique_name_per_customer"
            )
        ]

    def __str__(self) -> str:
        return f"{self.customer.name} / {self.name}"


class PortalUserManager(UserManager.from_queryset(TenantQuerySet)):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        extra_fields.setdefault("role", Role.MSP_ADMIN)
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    """A person who signs in: MSP staff (no customer) or a customer's user (exactly one)."""

    role = models.CharField(max_length=20, choices=Role.choices, default=Role.CUSTOMER_USER)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )

    tenant_path = "customer"
    objects = PortalUserManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="user_customer_matches_role",
                condition=(
                    Q(role__in=[Role.MSP_ADMIN, Role.TECHNICIAN], customer__isnull=True)
                    | Q(role__in=[Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER], customer__isnull=False)
                ),
            )
        ]

    @property
    def is_msp(self) -> bool:
        return self.role in MSP_ROLES

    @property
    def is_msp_admin(self) -> bool:
        return self.role == Role.MSP_ADMIN

    @property
    def is_customer_admin(self) -> bool:
        return self.role == Role.CUSTOMER_ADMIN


class AuditEvent(models.Model):
    """Who did what to which object, when, and from where. Written by services only."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=150, blank=True)
    # The actor was MSP staff: customer admins see "MSP staff", not the name and address.
    actor_is_msp = models.BooleanField(default=False)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_events"
    )
    action = models.CharField(max_length=80, db_index=True)
    object_type = models.CharField(max_length=80, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action} {self.object_repr}"
