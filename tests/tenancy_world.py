"""Two tenants with one of everything, for the isolation tests.

Everything of the other tenant carries OTHER_MARK in its name, so a page that leaks it is
caught by a text search; URL kwargs are filled from ``ids_of(world.other)``.
"""

from dataclasses import dataclass, field

from portal.models import Role
from tests import factories as f

OTHER_MARK = "ZZOTHERTENANT"


@dataclass
class Tenant:
    customer: object
    objects: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)


def build_tenant(label: str) -> Tenant:
    customer = f.CustomerFactory(name=f"{label} customer")
    site = f.SiteFactory(customer=customer, name=f"{label} site")
    appliance = f.ApplianceFactory(customer=customer, site=site, name=f"{label}-nas")
    server = f.ProtectedServerFactory(appliance=appliance, hostname=f"{label}-server")
    tenant = Tenant(customer=customer)
    tenant.objects = {
        "customer": customer,
        "site": site,
        "appliance": appliance,
        "server": server,
        "volume": f.VolumeFactory(server=server, name=f"{label}vol"[:60]),
        "job": f.JobFactory(appliance=appliance, server=server, log=f"{label} job log"),
        "alert": f.AlertFactory(appliance=appliance, message=f"{label} alert"),
        "point": f.RecoveryPointFactory(server=server, volume=f"{label}vol"[:60]),
        "audit": f.AuditEventFactory(customer=customer, object_repr=f"{label} audited thing"),
    }
    tenant.objects["vm"] = f.VirtualMachineFactory(
        server=server, point=tenant.objects["point"], error=f"{label} vm"
    )
    tenant.objects["vault"] = f.VaultFactory(name=f"{label} vault", data_centre=f"{label} dc")
    f.ApplianceOffsiteFactory(appliance=appliance, vault=tenant.objects["vault"])
    tenant.objects["subscription"] = f.SubscriptionFactory(appliance=appliance)
    tenant.objects["usage"] = f.UsageSampleFactory(appliance=appliance)
    tenant.objects["invoice"] = f.InvoiceFactory(customer=customer, number=f"{label}-INV"[:40])
    tenant.objects["invoice_line"] = f.InvoiceLineFactory(
        invoice=tenant.objects["invoice"], appliance=appliance, description=f"{label} rental"
    )
    _monitoring(tenant, label)
    _notifications(tenant, label)
    for role in (Role.CUSTOMER_ADMIN, Role.CUSTOMER_USER):
        tenant.users[role] = f.UserFactory(role=role, customer=customer, username=f"{label}-{role}")
    tenant.objects["user"] = tenant.users[Role.CUSTOMER_USER]
    tenant.objects["apikey"], _ = f.issue_api_key(customer=customer, name=f"{label} PSA key")
    return tenant


def _monitoring(tenant: Tenant, label: str) -> None:
    """A status on the fleet pages (unprotected, short of its retention) and a maintenance
    window, each naming the tenant."""
    import datetime as dt

    from django.utils import timezone

    from monitoring import counts
    from monitoring.models import MaintenanceWindow, ServerStatus

    ServerStatus.objects.create(
        server=tenant.objects["server"], state="unprotected", rank=0, since=timezone.now(),
        reason=f"{label} never backed up", retention_ok=False,
        retention_summary=f"{label} 3 dailies missing",
    )  # fmt: skip
    counts.refresh()  # as the cycle that wrote the status would
    tenant.objects["maintenance"] = MaintenanceWindow.objects.create(
        customer=tenant.customer, appliance=tenant.objects["appliance"],
        starts_at=timezone.now(), ends_at=timezone.now() + dt.timedelta(hours=2),
        reason=f"{label} maintenance",
    )  # fmt: skip


def _notifications(tenant: Tenant, label: str) -> None:
    """The tenant's own e-mail recipient and webhook endpoint, with one delivery logged."""
    from django.utils import timezone

    from monitoring.models import AlertNotice, Delivery, EmailRecipient, WebhookEndpoint

    now = timezone.now()
    tenant.objects["recipient"] = EmailRecipient.objects.create(
        customer=tenant.customer, address=f"{label.lower()}@example.com"
    )
    tenant.objects["endpoint"] = WebhookEndpoint.objects.create(
        customer=tenant.customer, name=f"{label} hook", url=f"https://{label.lower()}.example/",
        secret="whsec_" + "A" * 44,
    )  # fmt: skip
    notice = AlertNotice.objects.create(alert=tenant.objects["alert"], kind="opened", at=now)
    tenant.objects["delivery"] = Delivery.objects.create(
        notice=notice, endpoint=tenant.objects["endpoint"], message_id=f"msg_{label}",
        body="{}", state="failed", created_at=now, failures=1,
    )  # fmt: skip


@dataclass
class World:
    own: Tenant
    other: Tenant
    msp: dict


def build_world() -> World:
    return World(
        own=build_tenant("owntenant"),
        other=build_tenant(OTHER_MARK),
        msp={
            Role.MSP_ADMIN: f.UserFactory(role=Role.MSP_ADMIN, username="msp-admin"),
            Role.TECHNICIAN: f.UserFactory(role=Role.TECHNICIAN, username="msp-tech"),
        },
    )
