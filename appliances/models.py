"""Appliances (the NAS units), the servers they protect, schedules, retention, jobs, alerts."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from appliances.limits import MODEL_LIMITS, limits_for
from portal.encryption import EncryptedTextField
from portal.models import Customer, Site
from portal.tenancy import TenantManager


class ApplianceModel(models.TextChoices):
    V1 = "V1", f"V1 ({MODEL_LIMITS['V1'].summary})"
    V2 = "V2", f"V2 ({MODEL_LIMITS['V2'].summary})"


class ApplianceState(models.TextChoices):
    NEW = "new", "Not enrolled"
    ONLINE = "online", "Online"
    OFFLINE = "offline", "Offline"
    HOST_KEY_MISMATCH = "host_key_mismatch", "Host key changed"
    RETIRED = "retired", "Retired"


# The states in which an appliance takes new jobs (the one place that knows).
STATES_TAKING_JOBS = frozenset({ApplianceState.ONLINE})


class Transport(models.TextChoices):
    SSH = "ssh", "SSH"
    # A store on the portal's own machine, driven through a subprocess: demo mode only.
    LOCAL = "local", "Local (demo)"


class Appliance(models.Model):
    """A NAS appliance at a customer's site, reached by the portal over SSH."""

    serial = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=100)
    model = models.CharField(max_length=2, choices=ApplianceModel.choices)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="appliances")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="appliances")
    transport = models.CharField(max_length=5, choices=Transport.choices, default=Transport.SSH)
    local_store = models.CharField(max_length=500, blank=True)
    ssh_host = models.CharField(max_length=255, blank=True)
    ssh_port = models.PositiveIntegerField(default=22)
    ssh_user = models.CharField(max_length=64, default="bdr")
    # The appliance's host key as "<type> <base64>", pinned at enrolment; empty until then.
    host_key = models.TextField(blank=True)
    client_public_key = models.TextField(blank=True)
    client_private_key = EncryptedTextField(blank=True)
    # A key rotation under way (appliances/key_rotation.py): the new pair waits here until
    # the appliance accepts it, then replaces the one above.
    next_client_public_key = models.TextField(blank=True)
    next_client_private_key = EncryptedTextField(blank=True)
    state = models.CharField(
        max_length=20, choices=ApplianceState.choices, default=ApplianceState.NEW
    )
    capacity_bytes = models.BigIntegerField(default=0)
    used_bytes = models.BigIntegerField(default=0)
    purchased_on = models.DateField(default=dt.date.today)
    agent_version = models.CharField(max_length=40, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["customer__name", "name"]
        constraints = [
            models.CheckConstraint(
                name="appliance_model_valid", condition=Q(model__in=list(MODEL_LIMITS))
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.serial})"

    @property
    def limits(self):
        return limits_for(self.model)

    @property
    def takes_jobs(self) -> bool:
        return self.state in STATES_TAKING_JOBS

    @property
    def warranty_end(self) -> dt.date:
        try:
            return self.purchased_on.replace(year=self.purchased_on.year + 2)
        except ValueError:  # 29 February
            return self.purchased_on.replace(year=self.purchased_on.year + 2, day=28)


class OperatingSystem(models.TextChoices):
    WINDOWS = "windows", "Windows"
    LINUX = "linux", "Linux"


class ProtectedServer(models.Model):
    """A customer's server whose volumes an appliance backs up."""

    appliance = models.ForeignKey(Appliance, on_delete=models.CASCADE, related_name="servers")
    # The agent's name for the server: letters, digits, dot, dash, underscore.
    name = models.SlugField(max_length=64)
    hostname = models.CharField(max_length=255, blank=True)
    os = models.CharField(
        max_length=10, choices=OperatingSystem.choices, default=OperatingSystem.WINDOWS
    )
    mac_address = models.CharField(max_length=17, blank=True)
    cpus = models.PositiveSmallIntegerField(default=2)
    memory_mib = models.PositiveIntegerField(default=4096)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    tenant_path = "appliance__customer"
    # Customer users see a server only with a restore grant (portal/tenancy.py).
    server_path = ""
    objects = TenantManager()

    class Meta:
        ordering = ["appliance__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["appliance", "name"], name="server_unique_name_per_appliance"
            )
        ]

    def __str__(self) -> str:
        return self.hostname or self.name


class Volume(models.Model):
    server = models.ForeignKey(ProtectedServer, on_delete=models.CASCADE, related_name="volumes")
    name = models.CharField(max_length=64)
    source = models.CharField(
        max_length=500, help_text="Block device or image path on the appliance"
    )
    size_bytes = models.BigIntegerField(default=0)

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["server", "name"], name="volume_unique_name_per_server")
        ]

    def __str__(self) -> str:
        return self.name


ALL_WEEKDAYS = [0, 1, 2, 3, 4, 5, 6]


class Schedule(models.Model):
    """When a server is backed up: every N minutes (N >= 15) on chosen weekdays and hours."""

    server = models.OneToOneField(
        ProtectedServer, on_delete=models.CASCADE, related_name="schedule"
    )
    interval_minutes = models.PositiveIntegerField(default=15)
    weekdays = models.JSONField(default=list)  # 0 = Monday
    start_hour = models.PositiveSmallIntegerField(default=0)
    end_hour = models.PositiveSmallIntegerField(default=24)  # exclusive
    enabled = models.BooleanField(default=True)

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="schedule_interval_at_least_15", condition=Q(interval_minutes__gte=15)
            ),
            models.CheckConstraint(
                name="schedule_hours_valid",
                condition=Q(
                    start_hour__gte=0,
                    start_hour__lt=24,
                    end_hour__lte=24,
                    end_hour__gt=F("start_hour"),
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"every {self.interval_minutes} min, {self.start_hour:02}:00-{self.end_hour:02}:00"

    @property
    def runs_per_day(self) -> int:
        minutes = (self.end_hour - self.start_hour) * 60
        return -(-minutes // self.interval_minutes)


class RetentionPolicy(models.Model):
    """How many recovery points of each tier the appliance keeps for a server."""

    server = models.OneToOneField(
        ProtectedServer, on_delete=models.CASCADE, related_name="retention"
    )
    intraday = models.PositiveIntegerField(default=96, help_text="Points kept from today")
    daily = models.PositiveIntegerField(default=7)
    weekly = models.PositiveIntegerField(default=4)
    monthly = models.PositiveIntegerField(default=12)
    yearly = models.PositiveIntegerField(default=3)

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    def __str__(self) -> str:
        return (
            f"{self.intraday} intraday, {self.daily} daily, {self.weekly} weekly, "
            f"{self.monthly} monthly, {self.yearly} yearly"
        )


class JobKind(models.TextChoices):
    """The kinds the portal creates; what each one means is its entry in appliances/job_kinds.py."""

    BACKUP = "backup", "Backup"
    VERIFY = "verify", "Verify"
    ROLLUP = "rollup", "Rollup"
    VIRTUALIZE = "virtualize", "Virtualize"
    BOOTCHECK = "bootcheck", "Boot check"
    RESTORE = "restore", "Restore"
    EXPORT = "export", "Export"
    REPLICATE = "replicate", "Replication"


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_JOB_STATES = [JobState.QUEUED, JobState.RUNNING]


class Job(models.Model):
    """One operation on an appliance, as the portal tracks it."""

    appliance = models.ForeignKey(Appliance, on_delete=models.CASCADE, related_name="jobs")
    server = models.ForeignKey(
        ProtectedServer, null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    kind = models.CharField(max_length=12, choices=JobKind.choices)
    state = models.CharField(max_length=10, choices=JobState.choices, default=JobState.QUEUED)
    agent_job_id = models.CharField(max_length=64, blank=True)
    bytes_done = models.BigIntegerField(default=0)
    bytes_total = models.BigIntegerField(default=0)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # When the job last moved: the agent's record's progress_at, else when the portal saw
    # bytes_done change. The watchdog fails a job that has not moved for its kind's limit.
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "appliance__customer"
    server_path = "server"
    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["appliance", "server", "kind"],
                condition=Q(state__in=ACTIVE_JOB_STATES),
                name="job_one_active_per_server_and_kind",
            ),
            # Jobs of the whole appliance (rollup): one active per kind.
            models.UniqueConstraint(
                fields=["appliance", "kind"],
                condition=Q(state__in=ACTIVE_JOB_STATES, server__isnull=True),
                name="job_one_active_appliance_job_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def percent(self) -> int:
        if self.bytes_total <= 0:
            return 100 if self.state == JobState.SUCCEEDED else 0
        return min(100, int(self.bytes_done * 100 / self.bytes_total))

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


# Alerts the monitoring engine (monitoring/engine.py) raises on a state flip and resolves on
# the flip back: at most one open per subject, reminded and escalated while unacknowledged.
# Every other kind is an event (a failed job, a changed host key): raised once, shown, resolved
# by its own code or by hand.
ENGINE_ALERT_KINDS = ("protection", "appliance_offline", "appliance_disk")


class Alert(models.Model):
    """Something a technician must look at: a failed job, a changed host key, a silent appliance."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="alerts")
    appliance = models.ForeignKey(
        Appliance, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    # The protected server an engine alert is about (none: the appliance's, or the customer's).
    server = models.ForeignKey(
        ProtectedServer, null=True, blank=True, on_delete=models.CASCADE, related_name="alerts"
    )
    kind = models.CharField(max_length=40)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    message = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The engine's notices (monitoring.AlertNotice): the last one made, how many reminders,
    # and when it went to the escalation channel.
    notified_at = models.DateTimeField(null=True, blank=True)
    reminders = models.PositiveIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "customer"
    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "kind"],
                condition=Q(
                    resolved_at__isnull=True, server__isnull=False, kind__in=ENGINE_ALERT_KINDS
                ),
                name="alert_one_open_engine_alert_per_server",
            ),
            models.UniqueConstraint(
                fields=["appliance", "kind"],
                condition=Q(
                    resolved_at__isnull=True, server__isnull=True, kind__in=ENGINE_ALERT_KINDS
                ),
                name="alert_one_open_engine_alert_per_appliance",
            ),
        ]
        indexes = [
            models.Index(
                fields=["kind"], condition=Q(resolved_at__isnull=True), name="alert_open_by_kind"
            ),
            models.Index(
                fields=["-created_at", "-id"],
                condition=Q(resolved_at__isnull=True),
                name="alert_open_newest",
            ),
        ]

    def __str__(self) -> str:
        return self.message

    @property
    def is_engine_alert(self) -> bool:
        """Raised and resolved by the monitoring engine (acknowledged to stop reminders)."""
        return self.kind in ENGINE_ALERT_KINDS
