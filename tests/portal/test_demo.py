from django.core.management import call_command

from appliances.models import Appliance
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


def test_demo_appliances_hold_real_backups_with_a_daily_point(db, tmp_path):
    from restores.models import RecoveryPoint

    call_command("demo", store_dir=str(tmp_path))
    acme = Appliance.objects.get(serial="V1-0001")
    assert acme.state == "online" and acme.transport == "local"
    tiers = set(RecoveryPoint.objects.filter(server__appliance=acme).values_list("tier", flat=True))
    assert tiers == {"daily", "intraday"}
    assert Appliance.objects.get(serial="V2-0002").state == "new"
