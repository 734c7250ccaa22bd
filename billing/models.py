"""Billing: the price book, subscriptions, daily usage samples, invoices and Stripe events."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from appliances.models import Appliance, ApplianceModel
from portal.models import Customer
from portal.tenancy import TenantManager

# Off-site storage is metered in binary gigabytes, and the invoice says so.
GB_BYTES = 2**30
WARRANTY_YEARS = 2


class PriceBook(models.Model):
    """One version of the prices, in force from ``effective_from`` until the next version."""

    version = models.PositiveIntegerField(unique=True)
    # Always the first day of a month, so one month is billed at one version.
    effective_from = models.DateField(unique=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-effective_from"]
        constraints = [
            models.CheckConstraint(
                name="price_book_starts_on_first_of_month", condition=Q(effective_from__day=1)
            )
        ]

    def __str__(self) -> str:
        return f"Price book v{self.version} from {self.effective_from:%Y-%m-%d}"


class Price(models.Model):
    """The prices of one appliance model in one price book version."""

    price_book = models.ForeignKey(PriceBook, on_delete=models.CASCADE, related_name="prices")
    model = models.CharField(max_length=2, choices=ApplianceModel.choices)
    purchase = models.DecimalField(max_digits=10, decimal_places=2)
    rental_monthly = models.DecimalField(max_digits=10, decimal_places=2)
    monitoring_monthly = models.DecimalField(max_digits=10, decimal_places=2)
    included_gb = models.PositiveIntegerField()
    overage_per_gb = models.DecimalField(max_digits=10, decimal_places=4)

    class Meta:
        ordering = ["model"]
        constraints = [
            models.UniqueConstraint(fields=["price_book", "model"], name="price_one_per_model"),
            models.CheckConstraint(
                name="price_amounts_not_negative",
                condition=Q(
                    purchase__gte=0,
                    rental_monthly__gte=0,
                    monitoring_monthly__gte=0,
                    overage_per_gb__gte=0,
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model} in v{self.price_book.version}"


class SubscriptionKind(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    RENTAL = "rental", "Rental"


class Subscription(models.Model):
    """An appliance a customer bought or rents, from ``starts_on`` to ``ends_on`` (inclusive)."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="subscriptions")
    appliance = models.ForeignKey(Appliance, on_delete=models.PROTECT, related_name="subscriptions")
    kind = models.CharField(max_length=10, choices=SubscriptionKind.choices)
    starts_on = models.DateField()
    ends_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["customer__name", "appliance__name", "starts_on"]
        constraints = [
            models.CheckConstraint(
                name="subscription_ends_after_start",
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=F("starts_on")),
            ),
            models.CheckConstraint(
                name="subscription_kind_valid",
                condition=Q(kind__in=[k.value for k in SubscriptionKind]),
            ),
            models.UniqueConstraint(
                fields=["appliance"],
                condition=Q(ends_on__isnull=True),
                name="subscription_one_open_per_appliance",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.appliance.name}"

    @property
    def warranty_end(self) -> dt.date:
        start = self.starts_on
        try:
            return start.replace(year=start.year + WARRANTY_YEARS)
        except ValueError:  # 29 February
            return start.replace(year=start.year + WARRANTY_YEARS, day=28)


class UsageSource(models.TextChoices):
    # The bytes of the blobs the appliance's points reference on its vault, counted once.
    VAULT = "vault", "measured on the vault"
    # No vault set (or it has not reported yet): the recovery points' stored bytes stand in.
    LOCAL = "local", "local bytes (no vault figure)"


class UsageSample(models.Model):
    """One day's off-site storage of one appliance, in bytes."""

    appliance = models.ForeignKey(Appliance, on_delete=models.CASCADE, related_name="usage_samples")
    day = models.DateField()
    offsite_bytes = models.BigIntegerField()
    source = models.CharField(max_length=5, choices=UsageSource.choices, default=UsageSource.LOCAL)
    taken_at = models.DateTimeField(auto_now=True)

    tenant_path = "appliance__customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(fields=["appliance", "day"], name="usage_one_sample_per_day"),
            models.CheckConstraint(
                name="usage_bytes_not_negative", condition=Q(offsite_bytes__gte=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.appliance_id} {self.day}: {self.offsite_bytes} bytes"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized (unpaid)"
    PAST_DUE = "past_due", "Past due"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


UNPAID_STATUSES = [InvoiceStatus.FINALIZED, InvoiceStatus.PAST_DUE]
# Invoices that count as billed revenue.
BILLED_STATUSES = [InvoiceStatus.FINALIZED, InvoiceStatus.PAST_DUE, InvoiceStatus.PAID]


class Invoice(models.Model):
    """A customer's invoice for one calendar month. At most one that is not void per month."""

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    period_start = models.DateField()  # first day of the billed month
    number = models.CharField(max_length=40, unique=True)
    status = models.CharField(
        max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )
    price_book = models.ForeignKey(PriceBook, on_delete=models.PROTECT, related_name="invoices")
    currency = models.CharField(max_length=3, default="usd")
    total = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0.00"))
    created_at = models.DateTimeField(auto_now_add=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    due_on = models.DateField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    paid_via = models.CharField(max_length=10, blank=True)  # "manual" or "stripe"
    voided_at = models.DateTimeField(null=True, blank=True)
    stripe_invoice_id = models.CharField(max_length=64, blank=True, db_index=True)
    stripe_pushed_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-period_start", "customer__name", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start"],
                condition=~Q(status="void"),
                name="invoice_one_live_per_customer_month",
            ),
            models.CheckConstraint(
                name="invoice_period_starts_on_first", condition=Q(period_start__day=1)
            ),
            models.CheckConstraint(
                name="invoice_status_valid",
                condition=Q(status__in=[s.value for s in InvoiceStatus]),
            ),
        ]

    def __str__(self) -> str:
        return f"Invoice {self.number}"

    @property
    def period_end(self) -> dt.date:
        from billing.periods import month_end

        return month_end(self.period_start)

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT

    @property
    def is_unpaid(self) -> bool:
        return self.status in UNPAID_STATUSES


class LineCategory(models.TextChoices):
    HARDWARE = "hardware", "Hardware"
    RENTAL = "rental", "Rental"
    MONITORING = "monitoring", "Monitoring"
    OVERAGE = "overage", "Off-site overage"


class InvoiceLine(models.Model):
    """One priced line of an invoice; ``amount`` is rounded to cents once, here."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    appliance = models.ForeignKey(
        Appliance, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    category = models.CharField(max_length=12, choices=LineCategory.choices)
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=12, decimal_places=4)
    unit_price = models.DecimalField(max_digits=10, decimal_places=4)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    detail = models.JSONField(default=dict, blank=True)

    tenant_path = "invoice__customer"
    objects = TenantManager()

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["invoice", "position"], name="invoice_line_unique_position"
            ),
        ]

    def __str__(self) -> str:
        return self.description


class BillingAccount(models.Model):
    """A customer's link to the payment provider."""

    customer = models.OneToOneField(
        Customer, on_delete=models.CASCADE, related_name="billing_account"
    )
    stripe_customer_id = models.CharField(max_length=64, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "customer"
    objects = TenantManager()

    def __str__(self) -> str:
        return f"Billing account of {self.customer}"


class StripeEvent(models.Model):
    """A webhook event already handled. The unique id makes replays and duplicates no-ops."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.SET_NULL, related_name="stripe_events"
    )
    outcome = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
