from django.apps import AppConfig


class OffsiteConfig(AppConfig):
    name = "offsite"

    def ready(self) -> None:
        from offsite import tasks  # noqa: F401  (tasks are sent by name)
