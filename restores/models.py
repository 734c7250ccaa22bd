"""Recovery points as the portal sees them: a mirror of the agent's, refreshed by sync tasks."""

from __future__ import annotations

from django.db import models

from appliances.models import ProtectedServer
from portal.models import User
from portal.tenancy import TenantManager


class RecoveryPointManager(TenantManager):
    """Every query of points leaves the boot screenshot (a PNG) out; reading
    ``point.boot_screenshot`` loads it, which only the view that serves it does."""

    def get_queryset(self):
        return super().get_queryset().defer("boot_screenshot")


class Tier(models.TextChoices):
    INTRADAY = "intraday", "Intraday"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    YEARLY = "yearly", "Yearly"
    # The agent always keeps the newest point; "latest" when no tier of the policy chose it.
    LATEST = "latest", "Latest"


class RecoveryPoint(models.Model):
    server = models.ForeignKey(ProtectedServer, on_delete=models.CASCADE, related_name="points")
    agent_id = models.CharField(max_length=200)
    volume = models.CharField(max_length=64)
    taken_at = models.DateTimeField(db_index=True)
    tier = models.CharField(max_length=10, choices=Tier.choices, default=Tier.INTRADAY)
    size_bytes = models.BigIntegerField(default=0)
    stored_bytes = models.BigIntegerField(default=0)
    verified = models.BooleanField(null=True)
    # Off-site copies, from the appliance's offsite.status: on its vault, and on the vault
    # that vault replicates to (three copies with the local one).
    on_vault = models.BooleanField(default=False)
    on_second_vault = models.BooleanField(default=False)
    synced_at = models.DateTimeField(auto_now=True)
    # Boot verification: the appliance booted the point with no network and saw it come up.
    boot_verified = models.BooleanField(null=True)
    boot_seconds = models.FloatField(null=True, blank=True)
    boot_checked_at = models.DateTimeField(null=True, blank=True)
    boot_screenshot = models.BinaryField(null=True, blank=True)

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = RecoveryPointManager()

    class Meta:
        ordering = ["-taken_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["server", "agent_id"], name="point_unique_agent_id_per_server"
            )
        ]

    def __str__(self) -> str:
        return f"{self.server} {self.volume} {self.taken_at:%Y-%m-%d %H:%M}"


class VmState(models.TextChoices):
    STARTING = "starting", "Starting"
    RUNNING = "running", "Running"
    STOPPING = "stopping", "Stopping"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


ACTIVE_VM_STATES = (VmState.STARTING, VmState.RUNNING, VmState.STOPPING)


class VmNetwork(models.TextChoices):
    NONE = "none", "No network"
    ISOLATED = "isolated", "Isolated (no way out)"
    BRIDGE = "bridge", "Bridged to the site's LAN"


class VirtualMachine(models.Model):
    """A recovery point booted as a VM on its appliance: a mirror of the agent's VM record."""

    server = models.ForeignKey(ProtectedServer, on_delete=models.CASCADE, related_name="vms")
    point = models.ForeignKey(
        RecoveryPoint, null=True, on_delete=models.SET_NULL, related_name="vms"
    )
    job = models.OneToOneField(
        "appliances.Job", null=True, on_delete=models.SET_NULL, related_name="vm"
    )
    agent_id = models.CharField(max_length=120, blank=True)
    state = models.CharField(max_length=10, choices=VmState.choices, default=VmState.STARTING)
    net = models.CharField(max_length=10, choices=VmNetwork.choices, default=VmNetwork.ISOLATED)
    cpus = models.PositiveSmallIntegerField(default=1)
    memory_mib = models.PositiveIntegerField(default=1024)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"VM of {self.server} ({self.get_state_display().lower()})"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_VM_STATES


class RestoreGrant(models.Model):
    """A customer user may restore from this protected server of their customer.

    Customer users see (and restore from) only the servers they hold a grant for; the
    tenancy scoping (``server_path`` in portal/tenancy.py) applies it. The customer's admins
    and the MSP's staff need none. Written by ``restores.grants.set_restore_grants`` only,
    which keeps the user and the server in the same customer.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="restore_grants")
    server = models.ForeignKey(
        ProtectedServer, on_delete=models.CASCADE, related_name="restore_grants"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    granted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "server"], name="restore_grant_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} may restore from {self.server}"


class ConsoleToken(models.Model):
    """A one-time VM console token, shared by every console proxy process.

    Issued by the VM page's token view (``restores.console_access.issue_token``); the first
    proxy that presents it uses it up with one ``UPDATE … WHERE used_at IS NULL``, so a copy
    presented to any other process, or again, is refused. Only the SHA-256 of the token is
    kept. ``session_key`` is the Django session that asked: the proxy closes the console when
    that session ends (sign-out) or stops being this user's.
    """

    digest = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    vm = models.ForeignKey(VirtualMachine, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    used_at = models.DateTimeField(null=True, blank=True)

    tenant_path = "vm__server__appliance__customer"
    server_path = "vm__server"
    objects = TenantManager()

    def __str__(self) -> str:
        return f"console token of {self.user} for VM {self.vm_id}"


class SessionKind(models.TextChoices):
    DOWNLOAD = "download", "downloads"
    BROWSE = "browse", "folder and search pages"


class SessionSlot(models.Model):
    """A web request that holds an appliance session right now: a download streaming (a
    file, a zip, an export image), or a browse or search page being answered.

    One row per request, shared by every web process, so the limits per user and per customer
    (``restores.session_limits``) hold across gunicorn workers. The process holding the slot
    renews ``expires_at``; a killed process stops renewing, and its slots lapse by themselves.
    """

    kind = models.CharField(max_length=10, choices=SessionKind.choices)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="session_slots")
    customer = models.ForeignKey(
        "portal.Customer", on_delete=models.CASCADE, related_name="session_slots"
    )
    started_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)
    holder = models.CharField(max_length=120, blank=True)  # host:pid, for people reading it

    tenant_path = "customer"
    objects = TenantManager()

    def __str__(self) -> str:
        return f"{self.user} {self.kind} since {self.started_at:%H:%M:%S} ({self.holder})"
