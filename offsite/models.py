"""Off-site copies: the vaults (MSP inventory) and each appliance's replication to one.

A vault is a keyless store of sealed blobs in a data centre (``bdr-agent vault``); the
appliance replicates to its vault, which replicates on to its second vault. The portal keeps
the inventory, which vault each appliance uses and how its uplink is throttled, and a mirror
of what the appliance's ``offsite.status`` says (the agent is the truth).
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import F, Q

from appliances.models import Appliance, ProtectedServer
from portal.tenancy import TenantManager


class Vault(models.Model):
    """A vault host (or bucket) in a data centre. MSP inventory: no customer owns one."""

    name = models.CharField(max_length=100, unique=True)
    data_centre = models.CharField(max_length=100)
    # ssh://user@host[:port]/DIR (forced command `bdr-agent vault serve DIR`) or
    # s3://bucket/prefix; a local directory only where local transports are allowed (demo).
    endpoint = models.CharField(max_length=500, unique=True)
    # The vault host's SSH host key, "<type> <base64>", pinned on every appliance using it.
    host_key = models.TextField(blank=True)
    capacity_bytes = models.BigIntegerField(default=0)
    # Where this vault replicates to (`bdr-agent vault replicate` on the vault host).
    second_vault = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="first_vaults"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="vault_not_its_own_second", condition=~Q(second_vault=F("id"))
            ),
            models.CheckConstraint(
                name="vault_capacity_not_negative", condition=Q(capacity_bytes__gte=0)
            ),
            # An SSH vault is reached only with its host key pinned.
            models.CheckConstraint(
                name="vault_ssh_has_host_key",
                condition=~Q(endpoint__startswith="ssh://") | ~Q(host_key=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.data_centre})"


class ApplianceOffsite(models.Model):
    """One appliance's off-site copy: its vault, its throttle, and the state it reports."""

    appliance = models.OneToOneField(Appliance, on_delete=models.CASCADE, related_name="offsite")
    vault = models.ForeignKey(
        Vault, null=True, blank=True, on_delete=models.PROTECT, related_name="appliances"
    )
    # Throttle windows, DESIGN.md's SPEC ("mon-fri 08:00-18:00 512kbit; * * 20mbit");
    # empty: no limit. Validated with the agent's own parser.
    windows = models.CharField(max_length=500, blank=True)
    # The last push of vault and windows to the appliance (settings.set), and what went wrong.
    pushed_at = models.DateTimeField(null=True, blank=True)
    push_error = models.CharField(max_length=500, blank=True)
    # The SSH public key the appliance shows vault hosts (rpc offsite.key), for their
    # authorized_keys; read with each push.
    appliance_key = models.TextField(blank=True)

    # Mirrored from the appliance's offsite.status (appliances/sync.py's poller, a
    # replication's end): when it was read, and what it said.
    status_at = models.DateTimeField(null=True, blank=True)
    # taken_at of the newest point on the vault, and of the oldest local point not there yet
    # (the lag is "now" minus that; None: nothing waits).
    last_offsite_at = models.DateTimeField(null=True, blank=True)
    waiting_since = models.DateTimeField(null=True, blank=True)
    points_local = models.PositiveIntegerField(default=0)
    points_offsite = models.PositiveIntegerField(default=0)
    queued_bytes = models.BigIntegerField(default=0)
    rate_bps = models.BigIntegerField(default=0)  # measured, bytes per second
    limit_bps = models.BigIntegerField(null=True, blank=True)  # in force now; None: no limit
    eta_at = models.DateTimeField(null=True, blank=True)  # caught up by, at the current limit
    # Bytes of the blobs its points reference on the vault, each blob counted once (metering).
    vault_bytes = models.BigIntegerField(null=True, blank=True)

    tenant_path = "appliance__customer"
    objects = TenantManager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="offsite_bytes_not_negative",
                condition=Q(queued_bytes__gte=0, rate_bps__gte=0)
                & (Q(vault_bytes__isnull=True) | Q(vault_bytes__gte=0)),
            ),
        ]

    def __str__(self) -> str:
        return f"off-site copy of {self.appliance.name}"

    def lag(self, now: dt.datetime) -> dt.timedelta:
        """How long the oldest point not yet off-site has waited (zero when none waits)."""
        if self.waiting_since is None:
            return dt.timedelta(0)
        return max(dt.timedelta(0), now - self.waiting_since)


class OffsiteRetention(models.Model):
    """How many points of each tier the vaults keep for a server. It may keep more than the
    appliance does (years of yearly points); a server without one keeps everything
    off-site. The vaults apply it themselves, deleting through a trash (agent/README.md)."""

    server = models.OneToOneField(
        ProtectedServer, on_delete=models.CASCADE, related_name="offsite_retention"
    )
    daily = models.PositiveIntegerField(default=7)
    weekly = models.PositiveIntegerField(default=4)
    monthly = models.PositiveIntegerField(default=12)
    yearly = models.PositiveIntegerField(default=7)

    tenant_path = "server__appliance__customer"
    server_path = "server"
    objects = TenantManager()

    TIERS = ("daily", "weekly", "monthly", "yearly")

    def __str__(self) -> str:
        return ", ".join(f"{getattr(self, t)} {t}" for t in self.TIERS) + " off-site"

    def as_policy(self) -> dict:
        """The agent's form (``offsite_policies`` entry): today's points all kept."""
        return {t: getattr(self, t) for t in self.TIERS}
