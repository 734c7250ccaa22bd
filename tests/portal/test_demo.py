import base64
import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from appliances.models import Appliance
from portal.management.commands.demo import DEMO_TOTP_SECRET, demo_clock
from portal.models import Role, User


def test_demo_data_is_complete_and_idempotent(db, capsys, tmp_path):
    call_command("demo", store_dir=str(tmp_path))
    call_command("demo", store_dir=str(tmp_path))
    out = capsys.readouterr().out
    assert {a.model for a in Appliance.objects.all()} == {"V1", "V2"}
    assert set(User.objects.values_list("role", flat=True)) == set(Role.values)
    for username in ("admin", "tech", "acme-admin", "acme-user"):
        assert username in out
    assert User.objects.get(username="acme-user").check_password("demo-pass-2026")
    # Demo staff sign in with the printed authenticator secret as second factor.
    assert DEMO_TOTP_SECRET in out
    device = TOTPDevice.objects.get(user__username="tech", confirmed=True)
    assert device.verify_token(f"{TOTP(base64.b32decode(DEMO_TOTP_SECRET)).token():06d}")
    assert not TOTPDevice.objects.filter(user__username="acme-user").exists()


# Just after midnight, before the demo's morning, and just before midnight: the demo's points
# must look the same whatever the hour it is made at.
@pytest.mark.parametrize(
    ("now", "today"),
    [
        ("2026-03-10T00:30:00Z", "2026-03-09"),
        ("2026-03-10T23:59:00Z", "2026-03-10"),
    ],
)
def test_demo_appliances_hold_real_backups_with_a_daily_point(db, tmp_path, now, today):
    from restores.models import RecoveryPoint

    call_command("demo", store_dir=str(tmp_path), now=now)
    acme = Appliance.objects.get(serial="V1-0001")
    assert acme.state == "online" and acme.transport == "local"
    points = RecoveryPoint.objects.filter(server__appliance=acme, server__name="dc01")
    day = dt.date.fromisoformat(today)
    assert sorted((p.taken_at, p.tier) for p in points) == [
        (dt.datetime.combine(day - dt.timedelta(days=1), dt.time(17, 30), dt.UTC), "daily"),
        (dt.datetime.combine(day, dt.time(8, 0), dt.UTC), "intraday"),
        (dt.datetime.combine(day, dt.time(9, 0), dt.UTC), "intraday"),
    ]
    assert Appliance.objects.get(serial="V2-0002").state == "new"
    # ...and each of them is off-site twice: on ams1 and on fra1, which ams1 replicates to
    assert {(p.on_vault, p.on_second_vault) for p in points} == {(True, True)}
    assert acme.offsite.vault.name == "ams1" and acme.offsite.waiting_since is None


@pytest.mark.parametrize(
    ("now", "clock"),
    [
        ("2026-01-01T00:00:00+00:00", "2025-12-31T09:15:00+00:00"),
        ("2026-03-10T09:14:59+00:00", "2026-03-09T09:15:00+00:00"),
        ("2026-03-10T09:15:00+00:00", "2026-03-10T09:15:00+00:00"),
        ("2026-03-10T23:59:59+00:00", "2026-03-10T09:15:00+00:00"),
        ("2026-03-10T01:00:00+02:00", "2026-03-09T09:15:00+00:00"),  # 23:00 UTC the day before
    ],
)
def test_demo_clock_is_the_last_morning_at_or_before_now(now, clock):
    assert demo_clock(dt.datetime.fromisoformat(now)) == dt.datetime.fromisoformat(clock)


def test_demo_refuses_a_bad_now(db, tmp_path):
    with pytest.raises(CommandError, match="not an ISO 8601 time"):
        call_command("demo", "--store-dir", str(tmp_path), "--now", "yesterday")
    assert not Appliance.objects.exists()
