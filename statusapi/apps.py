from django.apps import AppConfig


class StatusApiConfig(AppConfig):
    name = "statusapi"
    verbose_name = "Status API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from statusapi import schema  # noqa: F401  (registers the key's security scheme)
