"""Who may hold a VM console open: the Origin, the one-time token, and the checks the console
proxy repeats every few seconds while a console is open.

The token is random (not signed: nothing here depends on ``SECRET_KEY``), stored as its
SHA-256 in ``ConsoleToken`` and used up by one ``UPDATE … WHERE used_at IS NULL``, which
PostgreSQL runs atomically whichever proxy process asks. The page hands it to the proxy in
the websocket's ``Sec-WebSocket-Protocol`` header (``bdr-token.<token>``, beside the
``bdr-console`` protocol the proxy answers with), so it never appears in a URL or an access
log.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import import_module
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.core.exceptions import ValidationError
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device

from portal import audit, mfa
from portal.models import User
from restores.models import ConsoleToken, VirtualMachine, VmState

PROTOCOL = "bdr-console"  # the subprotocol the proxy selects
TOKEN_PREFIX = "bdr-token."  # noqa: S105 (a prefix) the subprotocol carrying the token
# Used and expired tokens are kept this long (a replay then says "already used"), then deleted.
KEEP_SPENT = timedelta(hours=1)


class ConsoleRefused(Exception):
    """The console cannot be opened or must close; the message is for people (and logs)."""

    def __init__(self, message: str, *, user: User | None = None, vm: VirtualMachine | None = None):
        super().__init__(message)
        self.user, self.vm = user, vm


@dataclass(frozen=True)
class ConsoleGrant:
    """What a redeemed token lets the proxy open, and what it must keep checking."""

    user: User
    vm: VirtualMachine
    session_key: str


def token_seconds() -> int:
    return int(settings.BDR_CONSOLE_TOKEN_SECONDS)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def issue_token(vm: VirtualMachine, *, actor: User, request, now: datetime | None = None) -> str:
    """A one-time token that lets ``actor``, signed in with ``request``'s session, open
    ``vm``'s console within ``BDR_CONSOLE_TOKEN_SECONDS``."""
    if not vm.agent_id or vm.state not in (VmState.RUNNING, VmState.STOPPING):
        raise ValidationError("This VM is not running.")
    now = now or timezone.now()
    token = secrets.token_urlsafe(32)  # letters, digits, - and _: valid in a subprotocol
    ConsoleToken.objects.filter(expires_at__lt=now - KEEP_SPENT).delete()
    ConsoleToken.objects.create(
        digest=_digest(token),
        user=actor,
        vm=vm,
        session_key=request.session.session_key or "",
        issued_at=now,
        expires_at=now + timedelta(seconds=token_seconds()),
    )
    audit.record(actor, "vm.console_open", vm.server, request=request, detail={"vm": vm.pk})
    return token


def token_from_protocols(offered: list[str]) -> str:
    """The token among the subprotocols the browser offered ("" when there is none)."""
    tokens = [p[len(TOKEN_PREFIX) :] for p in offered if p.startswith(TOKEN_PREFIX)]
    return tokens[0] if len(tokens) == 1 else ""


def redeem_token(token: str, *, now: datetime | None = None) -> ConsoleGrant:
    """Use the token up and check its user may open its VM's console now; ConsoleRefused
    otherwise. Runs in the proxy, outside any request, so every check is made again."""
    now = now or timezone.now()
    if not token or len(token) > 200:
        raise ConsoleRefused("invalid console token")
    digest = _digest(token)
    won = ConsoleToken.objects.filter(
        digest=digest, used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    row = ConsoleToken.objects.filter(digest=digest).select_related("user").first()
    if row is None:
        raise ConsoleRefused("invalid console token")
    user = row.user
    if not won:
        if row.used_at is not None:
            raise ConsoleRefused("console token already used", user=user)
        raise ConsoleRefused("console token expired; open the console again", user=user)
    grant = ConsoleGrant(user=user, vm=_vm_or_none(row.vm_id), session_key=row.session_key)
    reason = still_allowed(grant.user.pk, row.vm_id, grant.session_key)
    if reason is not None:
        raise ConsoleRefused(reason, user=user, vm=grant.vm)
    if not grant.vm.agent_id:
        raise ConsoleRefused("this VM is not running", user=user, vm=grant.vm)
    return grant


def _vm_or_none(vm_pk: int) -> VirtualMachine | None:
    return VirtualMachine.objects.select_related("server__appliance").filter(pk=vm_pk).first()


def still_allowed(user_pk: int, vm_pk: int, session_key: str) -> str | None:
    """None while ``user_pk`` may hold ``vm_pk``'s console open from ``session_key``, else
    the reason it may not: the user deactivated, no longer MSP staff, signed out (or the
    session ended, or was another user's, or lost its second factor), or the VM is no longer
    theirs to see."""
    user = User.objects.filter(pk=user_pk).first()
    if user is None or not user.is_active:
        return "the user was deactivated"
    if not user.is_msp:  # msp_required's roles, as on the VM pages
        return "this user may not open VM consoles"
    reason = _session_reason(session_key, user)
    if reason is not None:
        return reason
    if not VirtualMachine.objects.for_user(user).filter(pk=vm_pk).exists():
        return "this user may not open this VM's console"
    return None


def _session_reason(session_key: str, user: User) -> str | None:
    """Why ``session_key`` no longer signs ``user`` in (read only: unlike
    ``django.contrib.auth.get_user`` this never flushes or cycles the session)."""
    engine = import_module(settings.SESSION_ENGINE)
    data = engine.SessionStore(session_key=session_key or None).load() if session_key else {}
    if data.get(SESSION_KEY) != str(user.pk):
        return "the user signed out"
    stored = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not any(constant_time_compare(stored, h) for h in hashes):
        return "the user's password changed"
    if mfa.mfa_required(user) or mfa.has_device(user):
        device = Device.from_persistent_id(data.get(DEVICE_ID_SESSION_KEY) or "")
        if device is None or device.user_id != user.pk or not device.confirmed:
            return "the session lost its second factor"
    return None


def origin_refusal(origins: list[str]) -> str | None:
    """None when the websocket's ``Origin`` is one of the portal's own (a scheme the portal
    serves, a host in ``ALLOWED_HOSTS``), else why not. Browsers always send Origin on a
    websocket; without this check any page the user visits could open a console with a token
    it obtained (cross-site websocket hijacking)."""
    if len(origins) != 1:
        return "no Origin header" if not origins else "several Origin headers"
    origin = origins[0]
    schemes = {"https"} if settings.PRODUCTION else {"http", "https"}
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
        domain, _port = split_domain_port(parts.netloc.lower())
    except ValueError:
        return f"Origin {origin[:80]!r} is not a URL"
    odd = parts.path or parts.query or parts.fragment or "@" in parts.netloc
    if parts.scheme not in schemes or odd or not domain:
        return f"Origin {origin[:80]!r} is not this portal's ({' or '.join(sorted(schemes))})"
    allowed = [h for h in settings.ALLOWED_HOSTS if h != "*"]  # "*" would allow any site
    if settings.DEBUG and not settings.ALLOWED_HOSTS:  # what Django itself allows then
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    if not validate_host(domain, allowed):
        return f"Origin {origin[:80]!r} is not one of ALLOWED_HOSTS"
    return None
