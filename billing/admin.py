"""Billing in the Django admin: to look only. Changes go through the billing pages, whose
services audit every write."""

from django.contrib import admin

from billing.models import Invoice, Price, PriceBook, StripeEvent, Subscription


class ViewOnly:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class PriceInline(ViewOnly, admin.TabularInline):
    model = Price
    extra = 0


@admin.register(PriceBook)
class PriceBookAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["version", "effective_from", "note"]
    inlines = [PriceInline]


@admin.register(Subscription)
class SubscriptionAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["appliance", "customer", "kind", "starts_on", "ends_on"]
    list_select_related = ["appliance", "customer"]


@admin.register(Invoice)
class InvoiceAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["number", "customer", "period_start", "status", "total"]
    list_select_related = ["customer"]
    list_filter = ["status", "period_start"]


@admin.register(StripeEvent)
class StripeEventAdmin(ViewOnly, admin.ModelAdmin):
    list_display = ["event_id", "type", "received_at", "outcome"]
