"""Enrolment: the portal's key for an appliance, its authorized_keys line, and host key pinning."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from appliances import transport
from appliances.client import connect
from appliances.models import Alert, Appliance, ApplianceState, Severity
from portal import audit
from portal.models import User


class EnrolmentError(Exception):
    """Enrolment cannot go on; the message is for the technician."""


@transaction.atomic
def ensure_client_key(appliance: Appliance, *, actor: User | None, request=None) -> Appliance:
    """Give the appliance its own Ed25519 client key (once); the private half is sealed at rest."""
    if appliance.client_public_key:
        return appliance
    private, public = transport.generate_client_key()
    appliance.client_private_key = private
    appliance.client_public_key = f"{public} bdr-portal@{appliance.serial}"
    appliance.save(update_fields=["client_private_key", "client_public_key"])
    audit.record(actor, "appliance.client_key_generated", appliance, request=request)
    return appliance


def authorized_keys_line(appliance: Appliance, public_key: str | None = None) -> str:
    """The exact line for the appliance's authorized_keys: rpc only, no shell, no forwarding
    (for its current client key, or ``public_key``: the next one, during a rotation)."""
    key = appliance.client_public_key if public_key is None else public_key
    return f'restrict,command="{settings.BDR_AGENT_COMMAND}" {key}'


def probe_host_key(appliance: Appliance) -> tuple[str, str]:
    """The host key the appliance presents now and its fingerprint, for the technician to check."""
    if appliance.transport == "local":
        return "", "local store (no SSH)"
    if not appliance.ssh_host:
        raise EnrolmentError("Set the appliance's SSH host first.")
    try:
        key = transport.fetch_host_key(appliance.ssh_host, appliance.ssh_port)
    except transport.TransportError as exc:
        raise EnrolmentError(str(exc)) from None
    return key, transport.fingerprint(key)


def pin_host_key(
    appliance: Appliance, confirmed_fingerprint: str, *, actor: User, request=None
) -> Appliance:
    """Pin the key the appliance presents, if it is the one the technician confirmed, then
    check that the rpc answers. A key that changed between "test" and "confirm" is refused."""
    key, fp = probe_host_key(appliance)
    if appliance.transport != "local" and fp != confirmed_fingerprint:
        raise EnrolmentError(
            f"The appliance now presents {fp}, not the {confirmed_fingerprint} you confirmed. "
            "Nothing was pinned."
        )
    appliance.host_key = key
    appliance.save(update_fields=["host_key"])
    try:
        with connect(appliance, retries=()) as agent:
            hello = agent.hello
            status = agent.call("status")
    except Exception as exc:
        appliance.host_key = ""
        appliance.save(update_fields=["host_key"])
        raise EnrolmentError(f"The host key is right but the agent did not answer: {exc}") from None
    appliance.state = ApplianceState.ONLINE
    appliance.agent_version = hello.get("agent_version", "")
    appliance.used_bytes = status.get("used_bytes", 0)
    appliance.last_seen_at = timezone.now()
    appliance.save(update_fields=["state", "agent_version", "used_bytes", "last_seen_at"])
    audit.record(actor, "appliance.enrolled", appliance, request=request, detail={"host_key": fp})
    return appliance


def host_key_changed(appliance: Appliance, presented: str) -> None:
    """Record a changed host key: the appliance is refused until a technician re-enrols it."""
    already = appliance.state == ApplianceState.HOST_KEY_MISMATCH
    Appliance.objects.filter(pk=appliance.pk).update(state=ApplianceState.HOST_KEY_MISMATCH)
    appliance.state = ApplianceState.HOST_KEY_MISMATCH
    if not already:
        Alert.objects.create(
            customer_id=appliance.customer_id,
            appliance=appliance,
            kind="host_key_changed",
            severity=Severity.CRITICAL,
            message=(
                f"{appliance.name}: SSH host key changed (now {transport.fingerprint(presented)}); "
                "connections refused until it is re-enrolled."
            ),
        )
        audit.record(
            None,
            "appliance.host_key_mismatch",
            appliance,
            detail={"presented": transport.fingerprint(presented)},
        )


@transaction.atomic
def reset_enrolment(appliance: Appliance, *, actor: User, request=None) -> Appliance:
    """Forget the pinned key so the appliance can be enrolled again (after a verified reinstall)."""
    appliance.host_key = ""
    appliance.state = ApplianceState.NEW
    appliance.save(update_fields=["host_key", "state"])
    audit.record(actor, "appliance.enrolment_reset", appliance, request=request)
    return appliance
