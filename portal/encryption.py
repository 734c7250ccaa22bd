"""Secrets at rest: SSH private keys, API tokens. One helper, one field, reused everywhere.

Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography`` with the keys in SECRETS_KEYS;
MultiFernet lets an operator rotate: the first key encrypts, every key decrypts.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import models, transaction


class SecretError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


@lru_cache(maxsize=1)
def _box(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys])


def _current_box() -> MultiFernet:
    return _box(tuple(settings.SECRETS_KEYS))


def seal(plaintext: str) -> str:
    """Encrypt ``plaintext`` with the newest key; the result is safe to store."""
    return _current_box().encrypt(plaintext.encode()).decode()


def unseal(token: str) -> str:
    """Decrypt a value made by :func:`seal`; raises SecretError if no key fits."""
    try:
        return _current_box().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretError("stored secret cannot be decrypted with the configured keys") from exc


class EncryptedTextField(models.TextField):
    """A text field stored encrypted; Python code sees plaintext, the database never does."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return unseal(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return seal(value)


def encrypted_fields() -> list[tuple[type[models.Model], models.Field]]:
    """Every (model, field) stored with EncryptedTextField."""
    return [
        (model, field)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedTextField)
    ]


@transaction.atomic
def reseal_all() -> dict[str, int]:
    """Seal every stored secret again with the newest key of SECRETS_KEYS, so that the older
    keys can be removed afterwards. Returns how many values each field had. A value no key
    opens raises SecretError naming it, and nothing is changed (one transaction)."""
    counts = {}
    for model, field in encrypted_fields():
        label = f"{model._meta.label}.{field.name}"
        rows = model._base_manager.exclude(**{field.attname: ""})
        rows = rows.exclude(**{f"{field.attname}__isnull": True})
        counts[label] = 0
        for pk in rows.select_for_update().values_list("pk", flat=True):
            try:
                value = model._base_manager.values_list(field.attname, flat=True).get(pk=pk)
            except SecretError:
                raise SecretError(f"{label} of {model._meta.model_name} {pk}") from None
            model._base_manager.filter(pk=pk).update(**{field.attname: value})
            counts[label] += 1
    return counts
