"""Issuing, checking and revoking Status API keys. Each write is audited; the key itself is
never logged, audited or stored (only its prefix and SHA-256)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from portal import audit
from portal.models import Customer, User
from statusapi.models import Access, ApiKey

KEY_MARK = "bdr"
MAX_LIFETIME = dt.timedelta(days=730)
# Compared against when no key has the prefix, so a miss costs what a hit costs.
_NO_KEY_DIGEST = hashlib.sha256(b"no such key").hexdigest()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _split(key: str) -> str | None:
    """The prefix of a well-formed key (``bdr_<12 hex>_<secret>``), else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_MARK or len(parts[1]) != 12 or not parts[2]:
        return None
    return parts[1]


@transaction.atomic
def issue_key(
    *,
    name: str,
    customer: Customer | None,
    access: str,
    expires_at: dt.datetime,
    actor: User,
    now: dt.datetime,
    request=None,
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which the caller shows once and then forgets."""
    if access not in Access.values:
        raise ValidationError("Choose read-only or read-write.")
    if not now < expires_at <= now + MAX_LIFETIME:
        raise ValidationError("A key expires in the future, within two years.")
    prefix = secrets.token_hex(6)
    plaintext = f"{KEY_MARK}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        name=name.strip()[:100], prefix=prefix, digest=_digest(plaintext), customer=customer,
        access=access, expires_at=expires_at, created_at=now, created_by=actor,
    )  # fmt: skip
    audit.record(actor, "api_key.issued", key, request=request, customer=customer,
                 detail={"prefix": prefix, "access": access, "scope": key.scope,
                         "expires_at": expires_at.isoformat()})  # fmt: skip
    return key, plaintext


def authenticate_key(presented: str, now: dt.datetime) -> ApiKey | None:
    """The usable key ``presented`` is, or None (unknown, wrong secret, expired, revoked).
    Records when the key was last used, at most once per BDR_API_KEY_TOUCH_SECONDS."""
    prefix = _split(presented)
    key = None
    if prefix is not None:
        key = ApiKey.objects.select_related("customer").filter(prefix=prefix).first()
    stored = key.digest if key is not None else _NO_KEY_DIGEST
    if not hmac.compare_digest(stored, _digest(presented)) or key is None:
        return None
    if not key.is_usable(now):
        return None
    touch = dt.timedelta(seconds=settings.BDR_API_KEY_TOUCH_SECONDS)
    if key.last_used_at is None or now - key.last_used_at >= touch:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


@transaction.atomic
def revoke_key(key: ApiKey, *, actor: User, now: dt.datetime, request=None) -> bool:
    """Revoke a key from now on. False (and no change) when it was revoked already."""
    locked = ApiKey.objects.select_for_update().get(pk=key.pk)
    if locked.revoked_at is not None:
        return False
    locked.revoked_at = now
    locked.save(update_fields=["revoked_at"])
    audit.record(actor, "api_key.revoked", locked, request=request, customer=locked.customer,
                 detail={"prefix": locked.prefix})  # fmt: skip
    return True
