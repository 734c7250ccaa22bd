from django import forms
from django.contrib import admin

from appliances.models import Alert, Appliance, Job, ProtectedServer
from appliances.services import check_room_for_server, ensure_defaults


class ProtectedServerAdminForm(forms.ModelForm):
    class Meta:
        model = ProtectedServer
        fields = [
            "appliance",
            "name",
            "hostname",
            "os",
            "mac_address",
            "cpus",
            "memory_mib",
            "is_active",
        ]

    def clean(self):
        data = super().clean()
        appliance = data.get("appliance")
        adding_active = data.get("is_active", True) and (
            self.instance.pk is None
            or not self.instance.is_active
            or self.instance.appliance_id != getattr(appliance, "pk", None)
        )
        if appliance is not None and adding_active:
            check_room_for_server(appliance)
        return data


@admin.register(Appliance)
class ApplianceAdmin(admin.ModelAdmin):
    list_display = ["serial", "name", "model", "customer", "state", "last_seen_at"]
    list_filter = ["model", "state"]
    list_select_related = ["customer"]
    exclude = ["client_private_key"]
    search_fields = ["serial", "name", "customer__name"]


@admin.register(ProtectedServer)
class ProtectedServerAdmin(admin.ModelAdmin):
    form = ProtectedServerAdminForm

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        ensure_defaults(obj)

    list_display = ["name", "hostname", "appliance", "os", "is_active"]
    list_select_related = ["appliance"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "state", "appliance", "server", "created_at"]
    list_filter = ["kind", "state"]
    list_select_related = ["appliance", "server"]


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "severity", "kind", "customer", "message", "resolved_at"]
    list_select_related = ["customer"]
