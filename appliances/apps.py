from django.apps import AppConfig


class AppliancesConfig(AppConfig):
    name = "appliances"

    def ready(self) -> None:
        # The job life cycle sends its tasks by name; registering them here lets it do so in
        # any process (web, worker, shell), eagerly when there is no broker.
        from appliances import tasks  # noqa: F401
