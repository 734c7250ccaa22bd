import pytest
from cryptography.fernet import Fernet
from django.db import connection

from portal import encryption
from tests.factories import ApplianceFactory

SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-material-canary\n"


def test_encrypted_field_never_stores_plaintext(db):
    appliance = ApplianceFactory(client_private_key=SECRET)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT client_private_key FROM appliances_appliance WHERE id = %s", [appliance.pk]
        )
        (raw,) = cur.fetchone()
    assert "canary" not in raw and raw.startswith("gAAAA")
    appliance.refresh_from_db()
    assert appliance.client_private_key == SECRET


def test_rotation_new_key_encrypts_old_key_still_decrypts(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_KEYS = [old]
    token = encryption.seal("api-token")
    settings.SECRETS_KEYS = [new, old]
    assert encryption.unseal(token) == "api-token"
    settings.SECRETS_KEYS = [new]
    with pytest.raises(encryption.SecretError):
        encryption.unseal(token)
