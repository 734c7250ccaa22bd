"""The VM console in the browser: one-time tokens, and the appliance end of the relay.

The path of the bytes: noVNC in the browser -> websocket to ``manage.py console_proxy``
(restores/console_proxy.py) with a token from ``issue_token`` -> ``open_console`` opens the
appliance's rpc over the usual pinned SSH connection (or the local agent in demo mode) and calls
``vm.console`` (``AgentClient.open_relay``: only appliances/client.py writes protocol lines)
-> the agent relays to qemu's VNC Unix socket. Nothing new listens on the
appliance and its ``restrict``ed key needs no port forwarding.

Tokens are signed (``django.core.signing``, salt ``bdr.vm-console``), live
``BDR_CONSOLE_TOKEN_SECONDS`` (60 s) and work once: the proxy records each nonce in Django's
cache with ``cache.add``. The default cache is per process, which is right for the one proxy
process; several proxy processes need a shared cache (Redis) for "once" to hold across them.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404

from appliances import sync
from appliances.client import AgentClient, AgentError, TransportError
from portal import audit
from portal.models import User
from portal.tenancy import get_for_user
from restores.models import VirtualMachine, VmState

SALT = "bdr.vm-console"


class ConsoleRefused(Exception):
    """The console cannot be opened; the message is for people (and the proxy's log)."""


def token_seconds() -> int:
    return int(getattr(settings, "BDR_CONSOLE_TOKEN_SECONDS", 60))


def issue_token(vm: VirtualMachine, *, actor: User, request=None) -> str:
    """A one-time token that lets ``actor`` open ``vm``'s console for the next minute."""
    if not vm.agent_id or vm.state not in (VmState.RUNNING, VmState.STOPPING):
        raise ValidationError("This VM is not running.")
    payload = {"user": actor.pk, "vm": vm.pk, "nonce": secrets.token_urlsafe(16)}
    token = signing.dumps(payload, salt=SALT)
    audit.record(actor, "vm.console_open", vm.server, request=request, detail={"vm": vm.pk})
    return token


def redeem_token(token: str) -> tuple[User, VirtualMachine]:
    """Check a token and use it up: (user, VM) if the user may still see the VM, else
    ConsoleRefused. Runs in the proxy, outside any request, so the checks are all redone."""
    try:
        payload = signing.loads(token, salt=SALT, max_age=token_seconds())
    except signing.SignatureExpired:
        raise ConsoleRefused("console token expired; open the console again") from None
    except signing.BadSignature:
        raise ConsoleRefused("invalid console token") from None
    if not isinstance(payload, dict) or not {"user", "vm", "nonce"} <= payload.keys():
        raise ConsoleRefused("invalid console token")
    # add() is atomic (and across processes with a shared cache): only the first use wins.
    if not cache.add(f"{SALT}:{payload['nonce']}", True, timeout=token_seconds() + 30):
        raise ConsoleRefused("console token already used")
    user = User.objects.filter(pk=payload["user"], is_active=True).first()
    if user is None or not user.is_msp:  # the roles of msp_required, checked again now
        raise ConsoleRefused("this user may not open VM consoles")
    try:
        vm = get_for_user(VirtualMachine, user, pk=payload["vm"])
    except Http404:
        raise ConsoleRefused("this user may not open this VM's console") from None
    if not vm.agent_id:
        raise ConsoleRefused("this VM is not running")
    return user, vm


@dataclass
class ConsoleSession:
    """The appliance end of one console: raw RFB bytes in both directions."""

    agent: AgentClient
    pending: bytes = b""  # RFB bytes that arrived with the rpc answer
    closed: bool = field(default=False)

    def read(self) -> bytes:
        """The next bytes from the VM's VNC server, b"" when the relay has ended. Blocking."""
        if self.pending:
            data, self.pending = self.pending, b""
            return data
        while not self.closed:
            try:
                return self.agent.stream.read_some(65536)
            except TimeoutError:
                continue  # an idle screen sends nothing for a while; that is not an end
            except (OSError, ValueError):  # ValueError: read on a stream closed meanwhile
                return b""
        return b""

    def write(self, data: bytes) -> None:
        self.agent.stream.wfile.write(data)
        self.agent.stream.wfile.flush()

    def close(self) -> None:
        self.closed = True
        self.agent.close()


def open_console(vm: VirtualMachine) -> ConsoleSession:
    """Open the appliance's rpc and turn it into a relay to the VM's VNC socket. Blocking."""
    try:
        agent = sync.open_agent(vm.server.appliance, retries=())
    except (TransportError, sync.ApplianceUnavailable) as exc:
        raise ConsoleRefused(f"the appliance is unreachable: {exc}") from None
    try:
        _, pending = agent.open_relay("vm.console", vm_id=vm.agent_id)
    except AgentError as exc:
        agent.close()
        raise ConsoleRefused(f"the appliance refused the console: {exc}") from None
    except TransportError as exc:
        agent.close()
        raise ConsoleRefused(f"connection to the appliance lost: {exc}") from None
    except BaseException:
        agent.close()
        raise
    return ConsoleSession(agent, pending)
