from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Tenancy"

    def ready(self):
        from portal import admin  # noqa: F401  (admin site permission override)
