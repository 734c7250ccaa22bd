from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from portal.models import AuditEvent, Customer, Site, User


def _msp_admin_only(request) -> bool:
    user = request.user
    return bool(
        user.is_active
        and user.is_authenticated
        and getattr(user, "is_msp_admin", False)
        and user.is_verified()
    )


# The Django admin is for MSP admins only, whatever is_staff says, and only in a session
# verified with a second factor (portal.middleware sends others to enter their code first).
admin.site.has_permission = _msp_admin_only
admin.site.site_header = "BDR portal administration"


class SiteInline(admin.TabularInline):
    model = Site
    extra = 0


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_email", "is_active", "require_mfa", "created_at"]
    search_fields = ["name"]
    inlines = [SiteInline]


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "role", "customer", "is_active"]
    list_filter = ["role", "is_active"]
    list_select_related = ["customer"]
    fieldsets = BaseUserAdmin.fieldsets + (("Tenancy", {"fields": ("role", "customer")}),)
    add_fieldsets = BaseUserAdmin.add_fieldsets + (("Tenancy", {"fields": ("role", "customer")}),)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_label", "action", "object_repr", "customer", "ip_address"]
    list_filter = ["action"]
    list_select_related = ["customer"]
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
