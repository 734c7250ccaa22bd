from django.core.management import call_command

from appliances.models import Appliance
from portal.models import Role, User


def test_demo_data_is_complete_and_idempotent(db, capsys):
    call_command("demo")
    call_command("demo")
    out = capsys.readouterr().out
    assert {a.model for a in Appliance.objects.all()} == {"V1", "V2"}
    assert set(User.objects.values_list("role", flat=True)) == set(Role.values)
    for username in ("admin", "tech", "acme-admin", "acme-user"):
        assert username in out
    assert User.objects.get(username="acme-user").check_password("demo-pass-2026")
