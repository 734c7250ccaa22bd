"""Rotating SECRETS_KEYS (README, "Security: threat model"): with the new key first and the
old one after it, ``manage.py rotate_secrets`` seals every stored secret again with the new
key; then the old key can be dropped, and a copy of it (leaked with an old backup of the
settings) no longer opens anything in the database."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from appliances.models import Appliance
from portal.models import Role
from restores import services
from tests import factories as f
from tests.factories import ApplianceFactory

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-material-canary\n"


def _stored(appliance) -> str:
    with connection.cursor() as cur:
        cur.execute("SELECT client_private_key FROM appliances_appliance WHERE id = %s",
                    [appliance.pk])  # fmt: skip
        return cur.fetchone()[0]


def test_rotate_secrets_reseals_with_the_newest_key(db, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_KEYS = [old]
    appliances = [ApplianceFactory(client_private_key=SECRET) for _ in range(2)]
    ApplianceFactory(client_private_key="")  # nothing to seal
    settings.SECRETS_KEYS = [new, old]
    call_command("rotate_secrets")
    out = capsys.readouterr().out
    assert "appliances.Appliance.client_private_key: 2 re-sealed" in out
    assert "the other keys of SECRETS_KEYS may now be removed" in out
    settings.SECRETS_KEYS = [new]  # the old key is gone from the settings
    for appliance in appliances:
        assert Appliance.objects.get(pk=appliance.pk).client_private_key == SECRET
        with pytest.raises(InvalidToken):  # and a leaked copy of it opens nothing
            Fernet(old.encode()).decrypt(_stored(appliance).encode())


def test_rotate_secrets_without_the_old_key_changes_nothing(db, settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_KEYS = [old]
    appliance = ApplianceFactory(client_private_key=SECRET)
    before = _stored(appliance)
    settings.SECRETS_KEYS = [new]  # the old key was dropped too early
    with pytest.raises(CommandError) as refused:
        call_command("rotate_secrets")
    assert str(refused.value) == (
        f"appliances.Appliance.client_private_key of appliance {appliance.pk} cannot be opened "
        "with any key of SECRETS_KEYS: add the key it was sealed with (after the new one) and "
        "run again; nothing was changed"
    )
    assert _stored(appliance) == before


def test_links_signed_with_the_old_secret_key_work_while_it_is_a_fallback(db, settings):
    point = f.RecoveryPointFactory()
    user = f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=point.server.appliance.customer)
    settings.SECRET_KEY = "old-" + "k" * 50
    token = services.sign_download(user, point, ["/a.txt"], None)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "new-" + "k" * 50, ["old-" + "k" * 50]
    assert services.open_download(user, token).paths == ["/a.txt"]
    settings.SECRET_KEY_FALLBACKS = []  # the rotation is over: old links are refused
    with pytest.raises(services.LinkRefused):
        services.open_download(user, token)
