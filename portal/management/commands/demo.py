"""Load demo data (idempotent) and print the logins of each role."""

import datetime as dt

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from appliances import services as appliance_services
from appliances.models import Appliance
from portal import services
from portal.models import Customer, Role, User
from restores.models import RecoveryPoint, Tier

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105  (printed for the demo on purpose)

USERS = [
    ("admin", Role.MSP_ADMIN, None),
    ("tech", Role.TECHNICIAN, None),
    ("acme-admin", Role.CUSTOMER_ADMIN, "Acme Dental"),
    ("acme-user", Role.CUSTOMER_USER, "Acme Dental"),
    ("globex-admin", Role.CUSTOMER_ADMIN, "Globex Accounting"),
    ("globex-user", Role.CUSTOMER_USER, "Globex Accounting"),
]

APPLIANCES = [
    # customer, site, serial, name, model, servers
    ("Acme Dental", "Main office", "V1-0001", "acme-nas", "V1", ["dc01", "files01"]),
    ("Globex Accounting", "Head office", "V2-0001", "globex-nas", "V2", ["dc01", "sql01", "erp01"]),
]


class Command(BaseCommand):
    help = "Create demo customers, appliances, servers, recovery points and one user per role."

    @transaction.atomic
    def handle(self, *args, **options):
        customers = {}
        for name in {c for c, *_ in APPLIANCES}:
            customers[name] = Customer.objects.filter(
                name=name
            ).first() or services.create_customer(
                actor=None, name=name, contact_email=f"it@{name.split()[0].lower()}.example"
            )
        for cname, site_name, serial, name, model, servers in APPLIANCES:
            customer = customers[cname]
            site = customer.sites.filter(name=site_name).first() or services.create_site(
                customer, actor=None, name=site_name
            )
            appliance = Appliance.objects.filter(serial=serial).first()
            if appliance is None:
                appliance = appliance_services.create_appliance(
                    actor=None,
                    serial=serial,
                    name=name,
                    model=model,
                    customer=customer,
                    site=site,
                    purchased_on=dt.date(2026, 1, 15),
                )
            for sname in servers:
                server = appliance.servers.filter(
                    name=sname
                ).first() or appliance_services.add_server(
                    appliance,
                    actor=None,
                    name=sname,
                    hostname=f"{sname}.{cname.split()[0].lower()}.local",
                )
                self._points(server)
        for username, role, cname in USERS:
            if User.objects.filter(username=username).exists():
                continue
            user = User(
                username=username,
                role=role,
                email=f"{username}@bdr.example",
                customer=customers.get(cname),
            )
            services.save_user(user, actor=None, password=DEMO_PASSWORD)
        self.stdout.write("Demo data ready. Sign in at http://127.0.0.1:8000/ with:")
        for username, role, cname in USERS:
            self.stdout.write(
                f"  {username:14} / {DEMO_PASSWORD}   {role.label}{' of ' + cname if cname else ''}"
            )

    def _points(self, server):
        if server.points.exists():
            return
        now = timezone.now().replace(minute=0, second=0, microsecond=0)
        stamps = [(now - dt.timedelta(minutes=15 * i), Tier.INTRADAY) for i in range(8)]
        stamps += [(now - dt.timedelta(days=d), Tier.DAILY) for d in range(1, 7)]
        stamps += [(now - dt.timedelta(weeks=w), Tier.WEEKLY) for w in range(1, 4)]
        for taken_at, tier in stamps:
            RecoveryPoint.objects.create(
                server=server,
                agent_id=f"{server.name}/c/{taken_at:%Y%m%dT%H%M%SZ}",
                volume="C",
                taken_at=taken_at,
                tier=tier,
                size_bytes=120 * 2**30,
                stored_bytes=3 * 2**30,
            )
