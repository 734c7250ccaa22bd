from django.contrib import admin

from restores.models import RecoveryPoint


@admin.register(RecoveryPoint)
class RecoveryPointAdmin(admin.ModelAdmin):
    list_display = ["server", "volume", "taken_at", "tier", "size_bytes", "verified"]
    list_filter = ["tier", "verified"]
    list_select_related = ["server"]
