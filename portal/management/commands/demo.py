"""Load demo data (idempotent) and print the logins of each role.

The demo appliances are real agent stores on this machine (``demo-store/``), reached through
the local transport, so "Back up now", jobs and recovery points work without SSH.
"""

import base64
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from appliances import services as appliance_services
from appliances import sync
from appliances.models import Appliance, ApplianceState, Transport
from offsite.demo import make_demo_vaults
from portal import services
from portal.models import Customer, Role, User

DEMO_PASSWORD = "demo-pass-2026"  # noqa: S105  (printed for the demo on purpose)
# MSP staff sign in with a second factor. So that the demo's 'admin' and 'tech' can, they get an
# authenticator with this known secret (printed; add it to an authenticator app, or
# `oathtool --totp -b SECRET`). Demo only: the command refuses to run in production.
DEMO_TOTP_SECRET = "BDRDEMO2FACTORSECRETFORDEMOONLY2"  # noqa: S105
VOLUME_MIB = 32

USERS = [
    ("admin", Role.MSP_ADMIN, None),
    ("tech", Role.TECHNICIAN, None),
    ("acme-admin", Role.CUSTOMER_ADMIN, "Acme Dental"),
    ("acme-user", Role.CUSTOMER_USER, "Acme Dental"),
    ("globex-admin", Role.CUSTOMER_ADMIN, "Globex Accounting"),
    ("globex-user", Role.CUSTOMER_USER, "Globex Accounting"),
]

# Customer users restore only from servers granted to them: the file server, not the domain
# controller (its NTDS.dit is not for every employee).
RESTORE_GRANTS = {"acme-user": ["files01"], "globex-user": ["sql01"]}

APPLIANCES = [
    # customer, site, serial, name, model, servers, enrolled
    ("Acme Dental", "Main office", "V1-0001", "acme-nas", "V1", ["dc01", "files01"], True),
    ("Globex Accounting", "Head office", "V2-0001", "globex-nas", "V2", ["dc01", "sql01"], True),
    ("Globex Accounting", "Warehouse", "V2-0002", "globex-lab", "V2", [], False),
]


# The demo describes the morning of its "today": yesterday's last backup at 17:30 (kept as the
# daily point) and today's at 08:00 and 09:00. Before 09:15 UTC "today" is the day before, so
# every point is in the past and the demo looks the same at any hour of the day.
DEMO_CLOCK = dt.time(9, 15)
DEMO_POINTS = ((-1, dt.time(17, 30)), (0, dt.time(8, 0)), (0, dt.time(9, 0)))


def demo_clock(now: dt.datetime) -> dt.datetime:
    """The moment the demo's data is made at: the last 09:15 UTC at or before ``now``."""
    now = now.astimezone(dt.UTC)
    anchor = dt.datetime.combine(now.date(), DEMO_CLOCK, tzinfo=dt.UTC)
    return anchor if anchor <= now else anchor - dt.timedelta(days=1)


def _agent(store: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "agent", "--store", str(store), *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


def _volume(path: Path, seed: int) -> Path:
    """A small volume image: a third zeros, a third text, a third random."""
    import random

    if path.exists():
        return path
    rng = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(VOLUME_MIB):
            if i % 3 == 0:
                f.seek(1 << 20, 1)
            elif i % 3 == 1:
                f.write(
                    (b"ledger payroll invoice %06d\n" % i) * (1 << 20 // 29) + bytes((1 << 20) % 29)
                )
            else:
                f.write(rng.randbytes(1 << 20))
        f.truncate(VOLUME_MIB << 20)
    return path


DEMO_FILES = {
    # path: (text of the first version, text after the change the demo backs up later)
    "Users/anna/Documents/Budget 2026.xlsx": (
        "budget: rent 1200, salaries 9000\n",
        "budget: rent 1300, salaries 9400, bonus 500\n",
    ),
    "Users/anna/Documents/Letter to Mr Smith.docx": ("Dear Mr Smith, see you Monday.\n", None),
    "Users/ben/Desktop/todo.txt": ("call the lab\norder gloves\n", "call the lab\n"),
    "Shared/Price list.pdf": ("cleaning 80, filling 150, crown 900\n", None),
    "Shared/Scans/xray-0001.png": ("(scan 1)\n" * 500, None),
    "Shared/Scans/xray-0002.png": ("(scan 2)\n" * 500, None),
}  # fmt: skip


def _files_volume(path: Path, seed: int = 0, changed: bool = False) -> Path:
    """A small disk: an MBR partition table and an ext4 filesystem with office files.

    ``changed`` rebuilds it as it is after a day of work (one file edited, one shortened),
    so the points of yesterday and today differ. Made with mke2fs -d; needs no root.
    """
    import shutil
    import tempfile

    if path.exists() and not changed:
        return path
    with tempfile.TemporaryDirectory(prefix="bdr-demo-") as tmp:
        tree = Path(tmp)
        for name, (first, later) in DEMO_FILES.items():
            target = tree / name
            target.parent.mkdir(parents=True, exist_ok=True)
            text = later if changed and later is not None else first
            target.write_text(text)
        path.unlink(missing_ok=True)
        with open(path, "wb") as f:
            f.truncate(VOLUME_MIB << 20)
        _write_mbr(path, start_sector=2048, sectors=(VOLUME_MIB << 11) - 2048)
        mke2fs = shutil.which("mke2fs") or "/usr/sbin/mke2fs"
        fs_args = ["-E", "offset=1048576", "-d", str(tree), str(path), f"{VOLUME_MIB - 1}M"]
        subprocess.run(
            [mke2fs, "-q", "-F", "-t", "ext4", *fs_args], check=True, capture_output=True
        )
    _make_bootable(path)
    return path


def _write_mbr(path: Path, start_sector: int, sectors: int) -> None:
    """An MBR with one Linux partition (what ``sfdisk`` would write, without needing it)."""
    import struct

    # status, CHS first (unused: LBA), type 0x83, CHS last (unused), first LBA, sector count
    entry = struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", start_sector,
                        sectors)  # fmt: skip
    with open(path, "r+b") as f:
        f.seek(446)
        f.write(entry + bytes(48) + b"\x55\xaa")


BOOT_MARKER = "BDR demo server booted"


def _make_bootable(path: Path) -> None:
    """Put agent/bootsector.py's code in the disk's MBR (the partition table stays), so
    "Start VM" and boot verification boot every demo server: it prints "BDR demo server
    booted <disk>" on the screen and COM1, and halts."""
    from agent.vm.bootsector import boot_sector

    code = boot_sector(f"{BOOT_MARKER} {path.stem}"[:100])[:446]
    with open(path, "r+b") as f:
        f.write(code)


def _demo_authenticator(user: User) -> None:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    key = base64.b32decode(DEMO_TOTP_SECRET).hex()
    TOTPDevice.objects.create(user=user, name="demo authenticator", key=key, confirmed=True)


def _parse_now(value: str | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
        if parsed is None:
            raise CommandError(f"--now: not an ISO 8601 time: {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Create demo customers, local demo appliances with real backups, and one user per role."

    def add_arguments(self, parser):
        parser.add_argument("--store-dir", default=str(settings.BASE_DIR / "demo-store"))
        parser.add_argument(
            "--now",
            default=None,
            help="the moment to make the demo at (ISO 8601, UTC if no zone; default: now)",
        )

    def handle(self, *args, store_dir, now=None, **options):
        if settings.PRODUCTION:
            raise CommandError("the demo prints passwords and an authenticator secret: not here")
        self.clock = demo_clock(_parse_now(now) if now else timezone.now())
        root = Path(store_dir)
        (root / "volumes").mkdir(parents=True, exist_ok=True)
        customers = {}
        for cname, *_ in APPLIANCES:
            customers[cname] = Customer.objects.filter(
                name=cname
            ).first() or services.create_customer(
                actor=None, name=cname, contact_email=f"it@{cname.split()[0].lower()}.example"
            )
        for seed, (cname, site_name, serial, name, model, servers, enrolled) in enumerate(
            APPLIANCES
        ):
            self._appliance(
                root, seed, customers[cname], site_name, serial, name, model, servers, enrolled
            )
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
            if user.is_msp:
                _demo_authenticator(user)
        self._grant_restores()
        make_demo_vaults(root)
        spare = _volume(root / "volumes" / "new-server.img", seed=99)
        self.stdout.write("Demo data ready. Sign in at http://127.0.0.1:8000/ with:")
        for username, role, cname in USERS:
            self.stdout.write(
                f"  {username:14} / {DEMO_PASSWORD}   {role.label}{' of ' + cname if cname else ''}"
            )
        self.stdout.write(
            f"  admin and tech also need a code: authenticator secret {DEMO_TOTP_SECRET} "
            f"(e.g. oathtool --totp -b {DEMO_TOTP_SECRET}); recovery codes: none in the demo."
        )
        self.stdout.write(
            "Try it as 'tech': Appliances > globex-lab > Enrol > Connect, then Protect a server "
            f"with volume source {spare}, then Back up now."
        )

    def _grant_restores(self) -> None:
        from restores import grants

        for username, server_names in RESTORE_GRANTS.items():
            user = User.objects.get(username=username)
            servers = grants.grantable_servers(None, user).filter(name__in=server_names)
            grants.set_restore_grants(None, user, list(servers))

    def _appliance(self, root, seed, customer, site_name, serial, name, model, servers, enrolled):
        site = customer.sites.filter(name=site_name).first() or services.create_site(
            customer, actor=None, name=site_name
        )
        store = root / serial / "store"
        if not store.exists():
            (root / serial).mkdir(parents=True, exist_ok=True)
            _agent(
                store,
                "init",
                "--key-file",
                str(root / serial / "storage.key"),
                "--chunk-size",
                str(1 << 20),
            )
        _write_confinement(root, serial)
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
                transport=Transport.LOCAL,
                local_store=str(store),
            )
        if not enrolled or appliance.state != ApplianceState.NEW:
            return
        for i, sname in enumerate(servers):
            server = appliance.servers.filter(name=sname).first() or appliance_services.add_server(
                appliance,
                actor=None,
                name=sname,
                hostname=f"{sname}.{customer.name.split()[0].lower()}.local",
                volumes={
                    "C": str(
                        _files_volume(root / "volumes" / f"{serial}-{sname}-C.img", seed * 10 + i)
                    )
                },
            )
        appliance.state = ApplianceState.ONLINE
        appliance.save(update_fields=["state"])
        for server in appliance.servers.all():
            sync.push_server_config(server)
            image = server.volumes.get().source
            for n, (days, time_of_day) in enumerate(DEMO_POINTS):
                if n == 1:  # a day of work between yesterday's point and today's
                    _files_volume(Path(image), changed=True)
                day = self.clock.date() + dt.timedelta(days=days)
                at = dt.datetime.combine(day, time_of_day, tzinfo=dt.UTC).isoformat()
                _agent(store, "backup", server.name, image, "--volume", "C", "--at", at)
        # yesterday's point becomes a daily one
        _agent(store, "rollup", "--now", self.clock.isoformat())
        _boot_check_newest(store, appliance)
        sync.poll_appliance(appliance)


def _write_confinement(root: Path, serial: str) -> None:
    """The demo appliance's confinement (on a real one: /etc/bdr-agent/confinement.json):
    volumes are the images under ``demo-store/volumes``; put-back and exports go to
    ``demo-store/<serial>/restores`` (or /srv/restores). The local transport hands it to the
    agent (``appliances.transport.local_agent_env``)."""
    restores = root / serial / "restores"
    restores.mkdir(parents=True, exist_ok=True)
    config = {
        "source_roots": [str((root / "volumes").resolve())],
        "export_roots": [str(restores.resolve()), "/srv/restores"],
    }
    (root / serial / "confinement.json").write_text(json.dumps(config, indent=2) + "\n")


def _boot_check_newest(store: Path, appliance) -> None:
    """Boot-verify the newest point of the appliance's first server (about a second with
    qemu's TCG), so the backups page shows a verified boot with its screenshot."""
    import shutil

    server = appliance.servers.order_by("name").first()
    if server is None or not shutil.which("qemu-system-x86_64") or not shutil.which("qemu-img"):
        return
    points = subprocess.run(
        [sys.executable, "-m", "agent", "--store", str(store), "--json", "points", server.name],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    newest = max(json.loads(points.stdout), key=lambda p: p["taken_at"])
    check = [
        "bootcheck",
        newest["id"],
        "--marker",
        BOOT_MARKER,
        "--timeout",
        "30",
        "--memory",
        "64",
    ]
    # A point that fails its check is shown as failed on the page; the demo goes on.
    subprocess.run(
        [sys.executable, "-m", "agent", "--store", str(store), *check],
        capture_output=True,
        timeout=120,
    )
